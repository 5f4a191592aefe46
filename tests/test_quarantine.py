"""Bad input never stops the good rows and is never lost; counts always add up."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import write_lines
from warehouse import Warehouse
from warehouse.ingest import IngestOptions, ingest

GOOD = {"id": "g", "data": ["Hello there.", "Hi! How can I help?"]}


def _quarantine(wh: Warehouse) -> list[tuple[int, str, str, bytes | None]]:
    with wh.read() as con:
        return [
            (int(r[0]), r[1], r[2], r[3])
            for r in con.execute(
                "SELECT source_line, reason, raw_text, raw_bytes FROM quarantine ORDER BY source_line"
            ).fetchall()
        ]


def test_each_kind_of_bad_line_is_quarantined_with_its_reason(
    wh: Warehouse, tmp_path: Path
) -> None:
    lines: list[bytes | str | dict[str, object]] = [
        {**GOOD, "id": "1"},  # 1 good
        '{"id": "2", "data": ["unterminated"',  # 2 malformed JSON
        {"id": "3", "data": "not a list"},  # 3 wrong shape
        b'{"id": "4", "data": ["caf\xe9 latin-1", "ok"]}',  # 4 bad UTF-8
        {"id": "5", "data": ["question", "   "]},  # 5 empty content
        "[1, 2, 3]",  # 6 not an object
        "",  # 7 blank: not a record
        {"id": "", "data": ["a", "b"]},  # 8 empty id
        {"id": "9", "data": []},  # 9 empty dialogue
        {"id": "10", "data": ["a", 5]},  # 10 wrong element type
        {**GOOD, "id": "11"},  # 11 good
    ]
    path = write_lines(tmp_path / "mixed.jsonl", lines)
    [res] = ingest(
        wh, [str(path)], IngestOptions(format="ultrachat_raw", progress=False), log=lambda _: None
    )
    assert res.n_blank == 1
    assert res.n_in == 10 == res.n_accepted + res.n_quarantined
    assert res.n_accepted == 2
    q = _quarantine(wh)
    by_line = {line: reason for line, reason, _, _ in q}
    assert set(by_line) == {2, 3, 4, 5, 6, 8, 9, 10}
    assert by_line[2].startswith("malformed JSON")
    assert by_line[3] == "wrong shape: Column(/data) changed from array to string"
    assert by_line[4].startswith("invalid UTF-8 at byte")
    assert by_line[5] == "data[1]: empty"
    assert by_line[6] == "record is a JSON list, not an object"
    assert by_line[8] == "id: missing or empty"
    assert by_line[9] == "data: empty list"
    assert "changed from string to number" in by_line[10]
    # raw text is kept exactly; bytes that are not UTF-8 are kept as bytes too
    raw = {line: (text, blob) for line, _, text, blob in q}
    assert raw[2][0] == '{"id": "2", "data": ["unterminated"'
    assert raw[4][1] == b'{"id": "4", "data": ["caf\xe9 latin-1", "ok"]}'
    assert "\\xe9" in raw[4][0]
    assert raw[5] == (json.dumps({"id": "5", "data": ["question", "   "]}), None)
    with wh.read() as con:
        ids = con.execute("SELECT source_id, source_line FROM dialogues ORDER BY 2").fetchall()
        batch = con.execute(
            "SELECT n_in, n_accepted, n_quarantined, n_blank FROM ingest_batches"
        ).fetchall()
    assert ids == [("1", 1), ("11", 11)]
    assert batch == [(10, 2, 8, 1)]


def test_role_order_and_roles_in_message_formats(wh: Warehouse, tmp_path: Path) -> None:
    def rec(msgs: list[tuple[str, str]]) -> dict[str, object]:
        prompt = msgs[0][1]
        return {
            "prompt": prompt,
            "prompt_id": None,
            "messages": [{"role": r, "content": c} for r, c in msgs],
        }

    lines: list[bytes | str | dict[str, object]] = [
        rec([("user", "q"), ("assistant", "a")]),
        rec([("user", "q"), ("user", "again"), ("assistant", "a")]),
        rec([("assistant", "a"), ("user", "q")]),
        rec([("user", "q"), ("robot", "beep")]),
        rec([("system", "be nice"), ("user", "q"), ("assistant", "a")]),
        rec([("user", "q"), ("assistant", "a"), ("system", "late")]),
        {"prompt": "q", "prompt_id": "0" * 64, "messages": [{"role": "user", "content": "q"}]},
    ]
    path = write_lines(tmp_path / "roles.jsonl", lines)
    [res] = ingest(
        wh, [str(path)], IngestOptions(format="ultrachat_200k", progress=False), log=lambda _: None
    )
    assert (res.n_in, res.n_accepted, res.n_quarantined) == (7, 2, 5)
    reasons = {line: reason for line, reason, _, _ in _quarantine(wh)}
    assert reasons == {
        2: "messages[1].role: broken role order, got user",
        3: "messages[0].role: broken role order, got assistant",
        4: "messages[1].role: unknown role 'robot'",
        6: "messages[2].role: broken role order, got system",
        7: "prompt_id: does not equal sha256(prompt)",
    }


def test_bad_blocks_do_not_stop_good_blocks(wh: Warehouse, tmp_path: Path) -> None:
    """Many small chunks, a bad line in some: every good line lands, line numbers stay right."""
    lines: list[bytes | str | dict[str, object]] = []
    for i in range(1, 2001):
        lines.append("{broken" if i % 97 == 0 else {"id": str(i), "data": [f"q{i}", f"a{i}"]})
    path = write_lines(tmp_path / "many.jsonl", lines)
    opts = IngestOptions(format="ultrachat_raw", chunk_bytes=4096, progress=False)
    [res] = ingest(wh, [str(path)], opts, log=lambda _: None)
    bad = [i for i in range(1, 2001) if i % 97 == 0]
    assert res.n_quarantined == len(bad) and res.n_accepted == 2000 - len(bad)
    assert [line for line, *_ in _quarantine(wh)] == bad
    with wh.read() as con:
        wrong = con.execute(
            "SELECT count(*) FROM dialogues WHERE source_id <> source_line::VARCHAR OR prompt <> 'q' || source_id"
        ).fetchone()
    assert wrong == (0,)


def test_raw_ultrafeedback_bad_completions(wh: Warehouse, samples: Path, tmp_path: Path) -> None:
    records = [json.loads(line) for line in open(samples / "ultrafeedback_raw_fixture.jsonl")][:4]
    records[1]["completions"][1]["response"] = ""
    records[2]["completions"][0]["annotations"]["honesty"]["Rating"] = "great"
    records[3]["instruction"] = "  "
    path = write_lines(tmp_path / "uf.jsonl", list(records))
    [res] = ingest(wh, [str(path)], IngestOptions(progress=False), log=lambda _: None)
    assert (res.n_accepted, res.n_quarantined) == (1, 3)
    reasons = {line: reason for line, reason, _, _ in _quarantine(wh)}
    assert reasons == {
        2: "completions[1].response: empty",
        3: "completions[0].annotations: a Rating is neither a number nor N/A",
        4: "instruction: missing or empty",
    }
    with wh.read() as con:
        assert con.execute("SELECT count(*) FROM uf_completions").fetchone() == (
            len(records[0]["completions"]),
        )
