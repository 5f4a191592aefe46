"""Every format ingests from the bundled real records, with the published ids and counts."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from warehouse import BadInputError, Warehouse
from warehouse.ingest import IngestOptions, ingest

QUIET = IngestOptions(progress=False)


def _count(wh: Warehouse, sql: str) -> int:
    with wh.read() as con:
        row = con.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize(
    ("name", "fmt", "table", "rows"),
    [
        ("ultrachat_raw_fixture.jsonl", "ultrachat_raw", "dialogues", 200),
        ("ultrachat_200k_sample.jsonl", "ultrachat_200k", "dialogues", 400),
        ("ultrachat_200k_exact_records.jsonl", "ultrachat_200k", "dialogues", 10),
        ("ultrafeedback_raw_fixture.jsonl", "ultrafeedback_raw", "uf_prompts", 120),
        ("ultrafeedback_binarized_sample.jsonl", "h4_binarized", "preference_pairs", 300),
        ("trl_flat_sample.jsonl", "trl_flat", "preference_pairs", 300),
        ("argilla_cleaned_sharegpt_sample.jsonl", "argilla_cleaned", "preference_pairs", 8),
    ],
)
def test_each_format_is_detected_and_ingested(
    wh: Warehouse, samples: Path, name: str, fmt: str, table: str, rows: int
) -> None:
    lines = sum(1 for _ in open(samples / name))
    [res] = ingest(wh, [str(samples / name)], QUIET, log=lambda _: None)
    assert res.format == fmt and res.target_table == table
    assert res.n_in == lines == rows == res.n_accepted + res.n_quarantined
    assert res.n_quarantined == 0
    assert _count(wh, f"SELECT count(*) FROM {table}") == rows
    # every row points back to its batch, file and line
    key = "source_line"
    assert _count(wh, f"SELECT count(DISTINCT {key}) FROM {table}") == rows
    assert _count(wh, f"SELECT max({key}) FROM {table}") == rows


def test_prompt_id_equals_published_value(wh: Warehouse, samples: Path) -> None:
    path = samples / "ultrachat_200k_exact_records.jsonl"
    published = [json.loads(line) for line in open(path)]
    ingest(wh, [str(path)], QUIET, log=lambda _: None)
    with wh.read() as con:
        got = con.execute(
            "SELECT prompt, prompt_id, sha256(prompt), messages[1].content FROM dialogues ORDER BY source_line"
        ).fetchall()
    assert [g[1] for g in got] == [p["prompt_id"] for p in published]
    for prompt, pid, recomputed, _ in got:
        assert pid == recomputed == hashlib.sha256(prompt.encode("utf-8")).hexdigest()
    # The real quirk: prompt differs from the (truecased) first message in at least one record.
    assert any(prompt != first for prompt, _, _, first in got)


def test_raw_ultrachat_prompt_id_is_h4s(wh: Warehouse, samples: Path) -> None:
    """Raw `data[0]` hashed as H4 does gives the same id as the published 200k record."""
    ingest(wh, [str(samples / "ultrachat_raw_fixture.jsonl")], QUIET, log=lambda _: None)
    ingest(wh, [str(samples / "ultrachat_200k_sample.jsonl")], QUIET, log=lambda _: None)
    with wh.read() as con:
        mismatched = con.execute(
            """SELECT count(*) FROM dialogues r JOIN dialogues h USING (source_line)
               WHERE r.source_format = 'ultrachat_raw' AND h.source_format = 'ultrachat_200k'
                 AND r.prompt_id <> h.prompt_id"""
        ).fetchone()
        roles = con.execute(
            "SELECT list_distinct(list(role ORDER BY role)) FROM turns WHERE source_format='ultrachat_raw'"
        ).fetchone()
    assert mismatched == (0,)
    assert roles is not None and sorted(roles[0]) == ["assistant", "user"]


def test_derived_columns_and_views(wh: Warehouse, samples: Path) -> None:
    ingest(wh, [str(samples / "ultrachat_200k_exact_records.jsonl")], QUIET, log=lambda _: None)
    published = [json.loads(line) for line in open(samples / "ultrachat_200k_exact_records.jsonl")]
    with wh.read() as con:
        rows = con.execute(
            "SELECT n_turns, n_user_turns, n_assistant_turns, last_role, n_chars FROM dialogues ORDER BY source_line"
        ).fetchall()
        n_turn_rows = con.execute("SELECT count(*) FROM turns").fetchone()
        first = con.execute("SELECT content FROM first_user_turns ORDER BY dialogue_id").fetchall()
        multi = con.execute("SELECT count(*) FROM multi_turn_dialogues").fetchone()
    for (n, nu, na, last, chars), rec in zip(rows, published, strict=True):
        msgs = rec["messages"]
        assert n == len(msgs)
        assert nu == sum(m["role"] == "user" for m in msgs)
        assert na == sum(m["role"] == "assistant" for m in msgs)
        assert last == msgs[-1]["role"]
        assert chars == sum(len(m["content"]) for m in msgs)
    assert n_turn_rows == (sum(len(r["messages"]) for r in published),)
    assert len(first) == 10
    assert multi == (
        sum(1 for r in published if sum(m["role"] == "user" for m in r["messages"]) > 1),
    )
    assert any(r[3] == "user" for r in rows), "test_gen records that end with a user turn"


def test_raw_ultrafeedback_ratings(wh: Warehouse, samples: Path) -> None:
    path = samples / "ultrafeedback_raw_fixture.jsonl"
    ingest(wh, [str(path)], QUIET, log=lambda _: None)
    records = [json.loads(line) for line in open(path)]
    n_completions = sum(len(r["completions"]) for r in records)
    n_na = sum(
        1
        for r in records
        for c in r["completions"]
        for a in c["annotations"].values()
        if a["Rating"] == "N/A"
    )
    with wh.read() as con:
        assert con.execute("SELECT count(*) FROM uf_completions").fetchone() == (n_completions,)
        assert con.execute("SELECT sum(n_na_ratings) FROM uf_completions").fetchone() == (n_na,)
        assert con.execute(
            "SELECT count(*) FROM uf_completions WHERE truthfulness_rating IS NULL"
        ).fetchone() == (n_na,)
        bad_mean = con.execute(
            "SELECT count(*) FROM uf_completions WHERE abs(mean_aspect_rating - fine_grained_score) > 1e-9"
        ).fetchone()
        joined = con.execute("SELECT count(*) FROM completions_rated").fetchone()
    assert bad_mean == (0,)
    assert joined == (n_completions,)


def test_trl_flat_becomes_conversations(wh: Warehouse, samples: Path) -> None:
    ingest(wh, [str(samples / "trl_flat_sample.jsonl")], QUIET, log=lambda _: None)
    first = json.loads(open(samples / "trl_flat_sample.jsonl").readline())
    with wh.read() as con:
        row = con.execute(
            "SELECT chosen, rejected, score_chosen, score_rejected, source_index FROM preference_pairs WHERE source_line = 1"
        ).fetchone()
    assert row is not None
    assert row[0] == [
        {"role": "user", "content": first["prompt"]},
        {"role": "assistant", "content": first["chosen"]},
    ]
    assert row[1][1]["content"] == first["rejected"]
    assert (row[2], row[3], row[4]) == (
        first["metadata"]["score_chosen"],
        first["metadata"]["score_rejected"],
        first["source_index"],
    )


def test_argilla_roles_are_mapped(wh: Warehouse, samples: Path) -> None:
    ingest(wh, [str(samples / "argilla_cleaned_sharegpt_sample.jsonl")], QUIET, log=lambda _: None)
    with wh.read() as con:
        roles = con.execute(
            "SELECT DISTINCT unnest(list_transform(chosen, m -> m.role)) FROM preference_pairs ORDER BY 1"
        ).fetchall()
        ties = con.execute("SELECT count(*) FROM preference_pairs WHERE is_tie").fetchone()
    assert roles == [("assistant",), ("user",)]
    assert ties == (0,)  # the cleaned set has no ties


def test_unknown_file_is_a_clear_error_and_writes_nothing(wh: Warehouse, tmp_path: Path) -> None:
    odd = tmp_path / "odd.jsonl"
    odd.write_text('{"question": "q", "answer": "a"}\n')
    with pytest.raises(
        BadInputError, match=r"odd.jsonl: cannot place this file.*'answer', 'question'"
    ):
        ingest(wh, [str(odd)], QUIET, log=lambda _: None)
    assert not wh.path.exists()


def test_missing_path_fails_before_anything_is_written(wh: Warehouse, samples: Path) -> None:
    with pytest.raises(BadInputError, match=r"nope\.jsonl: no such file"):
        ingest(
            wh, [str(samples / "trl_flat_sample.jsonl"), "nope.jsonl"], QUIET, log=lambda _: None
        )
    assert not wh.path.exists()


def test_unknown_format_name(wh: Warehouse, samples: Path) -> None:
    with pytest.raises(BadInputError, match="unknown format 'sharegpt'"):
        ingest(
            wh, [str(samples)], IngestOptions(format="sharegpt", progress=False), log=lambda _: None
        )
    assert not wh.path.exists()


def test_forced_wrong_format_quarantines_every_record(wh: Warehouse, samples: Path) -> None:
    path = samples / "argilla_cleaned_sharegpt_sample.jsonl"
    [res] = ingest(
        wh, [str(path)], IngestOptions(format="ultrachat_raw", progress=False), log=lambda _: None
    )
    assert (res.n_in, res.n_accepted, res.n_quarantined) == (8, 0, 8)
    with wh.read() as con:
        reasons = con.execute("SELECT DISTINCT reason FROM quarantine").fetchall()
    assert reasons == [("id: missing or empty",)]
