"""UltraFeedback binarization (H4 and Argilla policies) and the exact-match TruthfulQA filter."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from pydantic import ValidationError

from curation.binarize import PAIR_COLUMNS, BinarizeConfig, BinarizeResult, binarize
from filters.benchmarks import load_benchmark
from filters.exact_match import ExactMatchFilter
from warehouse import Warehouse
from warehouse.ingest import IngestOptions, ingest

Scores = Sequence[float | None]


def _con(
    overall: Mapping[str, Scores],
    aspect: Mapping[str, Scores] | None = None,
    responses: dict[str, list[str | None]] | None = None,
    order: list[str] | None = None,
) -> duckdb.DuckDBPyConnection:
    """A connection with relations P (prompts) and C (completions) built from score lists.

    Response text is "<uid>#<index>" unless given, so a pair names its completions.
    """
    uids = order or list(overall)
    prompts = pa.table(
        {
            "row_id": uids,
            "prompt": [f"prompt of {u}" for u in uids],
            "prompt_id": [f"pid-{u}" for u in uids],
            "source": ["evol_instruct"] * len(uids),
            "ord": pa.array(range(len(uids)), pa.int64()),
        }
    )
    columns: tuple[str, ...] = ("prompt_uid", "completion_index", "model", "response")
    columns += ("overall_score", "mean_aspect_rating")
    rows: dict[str, list[object]] = {k: [] for k in columns}
    for uid in uids:
        for i, s in enumerate(overall[uid]):
            rows["prompt_uid"].append(uid)
            rows["completion_index"].append(i)
            rows["model"].append(f"model-{i}")
            text = responses[uid][i] if responses and uid in responses else f"{uid}#{i}"
            rows["response"].append(text)
            rows["overall_score"].append(s)
            rows["mean_aspect_rating"].append(aspect[uid][i] if aspect else s)
    completions = pa.table(
        {
            "prompt_uid": pa.array(rows["prompt_uid"], pa.string()),
            "completion_index": pa.array(rows["completion_index"], pa.int32()),
            "model": pa.array(rows["model"], pa.string()),
            "response": pa.array(rows["response"], pa.string()),
            "overall_score": pa.array(rows["overall_score"], pa.float64()),
            "mean_aspect_rating": pa.array(rows["mean_aspect_rating"], pa.float64()),
        }
    )
    con = duckdb.connect()
    con.register("P", prompts)
    con.register("C", completions)
    return con


def _random_scores(n: int, seed: int = 0) -> dict[str, list[float]]:
    rng = np.random.default_rng(seed)
    return {f"p{i:03d}": [float(x) for x in rng.integers(1, 11, 4)] for i in range(n)}


def _run(con: duckdb.DuckDBPyConnection, **cfg: object) -> BinarizeResult:
    return binarize(con, "P", "C", BinarizeConfig.model_validate(cfg))


def _index(turns: list[dict[str, str]]) -> int:
    """The completion index encoded in the assistant text ("<uid>#<index>")."""
    return int(turns[1]["content"].rsplit("#", 1)[1])


# -- H4 -------------------------------------------------------------------------------------
def test_h4_chosen_is_top_score_and_rejected_another_completion() -> None:
    scores = _random_scores(200)
    res = _run(_con(scores))
    assert res.pairs.num_rows == 200 and res.dropped.num_rows == 0
    for row in res.pairs.to_pylist():
        s = scores[row["row_id"]]
        ci, ri = _index(row["chosen"]), _index(row["rejected"])
        assert row["score_chosen"] == max(s)
        assert ci == s.index(max(s))  # ties: the lowest completion_index, like max()
        assert ri != ci
        assert row["score_rejected"] == s[ri]
        assert row["messages"] == row["chosen"]


def test_h4_allows_ties() -> None:
    res = _run(_con({"a": [5.0, 5.0, 5.0, 5.0]}))
    [row] = res.pairs.to_pylist()
    assert row["score_chosen"] == row["score_rejected"] == 5.0
    assert _index(row["chosen"]) == 0 and _index(row["rejected"]) != 0


def test_draw_is_deterministic_and_order_independent() -> None:
    scores = _random_scores(200)
    a = _run(_con(scores))
    b = _run(_con(scores))
    c = _run(_con(scores, order=list(reversed(scores))))
    assert a.pairs.equals(b.pairs)
    by_id = {r["row_id"]: r["rejected"] for r in c.pairs.to_pylist()}
    assert all(by_id[r["row_id"]] == r["rejected"] for r in a.pairs.to_pylist())


def test_other_seed_changes_some_rejected_draws() -> None:
    scores = _random_scores(200)
    a = _run(_con(scores), seed=42).pairs.column("rejected").to_pylist()
    b = _run(_con(scores), seed=43).pairs.column("rejected").to_pylist()
    changed = sum(x != y for x, y in zip(a, b, strict=True))
    assert 30 < changed < 200  # with 3 candidates about 2/3 change


def test_pairs_schema_and_message_layout() -> None:
    res = _run(_con({"a": [1.0, 9.0]}))
    messages = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    assert tuple(res.pairs.column_names) == PAIR_COLUMNS
    for name in ("chosen", "rejected", "messages"):
        assert res.pairs.schema.field(name).type.equals(messages, check_metadata=False)
    assert res.pairs.schema.field("score_chosen").type == pa.float64()
    assert res.pairs.schema.field("ord").type == pa.int64()
    [row] = res.pairs.to_pylist()
    assert row["chosen"] == [
        {"role": "user", "content": "prompt of a"},
        {"role": "assistant", "content": "a#1"},
    ]
    assert row["rejected"][1]["content"] == "a#0"
    assert (row["chosen_model"], row["rejected_model"]) == ("model-1", "model-0")
    assert row["prompt_id"] == "pid-a" and row["source"] == "evol_instruct"


# -- Argilla ---------------------------------------------------------------------------------
def test_argilla_never_ties_and_drops_all_equal_prompts() -> None:
    scores = _random_scores(200)
    scores["tie"] = [3.0, 3.0, 3.0, 3.0]
    res = _run(_con(scores), policy="argilla")
    s_c = res.pairs.column("score_chosen").to_numpy()
    s_r = res.pairs.column("score_rejected").to_numpy()
    assert (s_r < s_c).all()
    dropped = {r["row_id"]: r for r in res.dropped.to_pylist()}
    assert dropped["tie"]["reason"] == "binarize: no completion scored below the chosen 3 (tie)"
    assert dropped["tie"]["score"] == 3.0
    # prompts whose top score is shared by all are the only drops
    assert set(dropped) == {u for u, s in scores.items() if len(set(s)) == 1}


def test_argilla_scores_on_mean_aspect_rating() -> None:
    con = _con({"a": [9.0, 2.0, 5.0]}, aspect={"a": [1.5, 4.25, 3.0]})
    [row] = _run(con, policy="argilla").pairs.to_pylist()
    assert _index(row["chosen"]) == 1 and row["score_chosen"] == 4.25
    [h4] = _run(con).pairs.to_pylist()
    assert _index(h4["chosen"]) == 0 and h4["score_chosen"] == 9.0


def test_argilla_ties_below_the_top_can_still_pair() -> None:
    """Top shared by two completions, one lower: the lower one is the only rejected."""
    [row] = _run(_con({"a": [4.0, 4.0, 2.0]}), policy="argilla").pairs.to_pylist()
    assert _index(row["chosen"]) == 0 and _index(row["rejected"]) == 2


# -- options -----------------------------------------------------------------------------------
def test_min_margin() -> None:
    scores = _random_scores(200)
    res = _run(_con(scores), min_margin=3.0)
    margin = pc.subtract(res.pairs.column("score_chosen"), res.pairs.column("score_rejected"))
    assert pc.min(margin).as_py() >= 3.0
    for r in res.dropped.to_pylist():
        s = scores[r["row_id"]]
        assert max(s) - min(s) < 3.0
        assert r["reason"] == "binarize: no rejected within min_margin 3"
    assert res.dropped.num_rows > 0


def test_worst_takes_the_lowest_score() -> None:
    scores = _random_scores(200)
    res = _run(_con(scores), rejected="worst")
    for row in res.pairs.to_pylist():
        assert row["score_rejected"] == min(scores[row["row_id"]])
    # lowest-score ties are broken by the seeded hash, deterministically
    con = _con({"a": [9.0, 1.0, 1.0, 1.0]})
    draws = {
        _index(_run(con, rejected="worst", seed=s).pairs.to_pylist()[0]["rejected"])
        for s in range(20)
    }
    assert draws <= {1, 2, 3} and len(draws) > 1


def test_n_rejected_two_gives_two_distinct_pairs() -> None:
    scores = _random_scores(50)
    scores["two"] = [5.0, 1.0]
    res = _run(_con(scores), n_rejected=2)
    rows = res.pairs.to_pylist()
    assert len(rows) == 50 * 2 + 1
    by_prompt: dict[str, list[dict[str, object]]] = {}
    for r in rows:
        uid, k = str(r["row_id"]).rsplit(":", 1)
        by_prompt.setdefault(uid, []).append(r)
        assert k in ("0", "1")
    for uid, group in by_prompt.items():
        rejected = [str(g["rejected"]) for g in group]
        assert len(set(rejected)) == len(rejected)
        assert len(group) == (1 if uid == "two" else 2)
        assert len({str(g["chosen"]) for g in group}) == 1
    assert [r["ord"] for r in rows] == sorted(r["ord"] for r in rows)
    assert res.counts() == (51, 51, 0)


def test_fewer_than_two_scored_completions_dropped_with_reason() -> None:
    con = _con(
        {"one": [7.0], "null": [None, 6.0], "empty": [8.0, 2.0], "ok": [3.0, 1.0], "none": []},
        responses={"empty": ["   \n", "fine"]},
    )
    res = _run(con)
    reasons = {r["row_id"]: (r["reason"], r["score"]) for r in res.dropped.to_pylist()}
    assert reasons == {
        "one": ("binarize: fewer than 2 scored completions (1)", 7.0),
        "null": ("binarize: fewer than 2 scored completions (1)", 6.0),
        "empty": ("binarize: fewer than 2 scored completions (1)", 2.0),
        "none": ("binarize: fewer than 2 scored completions (0)", None),
    }
    assert res.pairs.column("row_id").to_pylist() == ["ok"]


def test_counts_add_up() -> None:
    scores = _random_scores(120, seed=3)
    scores["short"] = [4.0]
    scores["flat"] = [2.0, 2.0]
    for cfg in (
        {},
        {"policy": "argilla"},
        {"min_margin": 4.0},
        {"n_rejected": 3, "rejected": "random_lower"},
    ):
        res = _run(_con(scores), **cfg)
        n_in, n_kept, n_dropped = res.counts()
        assert n_in == len(scores) == n_kept + n_dropped, cfg
        assert res.balanced
        kept = {str(x).split(":")[0] for x in res.pairs.column("row_id").to_pylist()}
        assert not kept & set(res.dropped.column("row_id").to_pylist())


def test_config_defaults_and_validation() -> None:
    assert BinarizeConfig().score_column == "overall_score"
    assert BinarizeConfig().rejected_mode == "random"
    arg = BinarizeConfig(policy="argilla")
    assert (arg.score_column, arg.rejected_mode) == ("mean_aspect_rating", "random_lower")
    assert BinarizeConfig(policy="argilla", score="overall_score").score_column == "overall_score"
    with pytest.raises(ValidationError):
        BinarizeConfig(n_rejected=0)
    with pytest.raises(ValidationError):
        BinarizeConfig(temperature=1.0)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="relation"):
        binarize(duckdb.connect(), "P; DROP TABLE x", "C", BinarizeConfig())


# -- real records ------------------------------------------------------------------------------
def test_binarize_real_ultrafeedback_records(tmp_path: Path, samples: Path) -> None:
    wh = Warehouse(tmp_path / "wh.duckdb", wait_s=0)
    ingest(
        wh,
        [str(samples / "ultrafeedback_raw_fixture.jsonl")],
        IngestOptions(progress=False),
        log=lambda _: None,
    )
    with wh.read() as con:
        con.execute(
            "CREATE TEMP VIEW uf_p AS SELECT prompt_uid AS row_id, prompt, prompt_id, source, "
            "row_number() OVER (ORDER BY source_line) AS ord FROM uf_prompts"
        )
        h4 = binarize(con, "uf_p", "uf_completions", BinarizeConfig())
        arg = binarize(con, "uf_p", "uf_completions", BinarizeConfig(policy="argilla"))
        truth = con.execute(
            "SELECT prompt_uid, max(overall_score), max(mean_aspect_rating), "
            "count(overall_score) FROM uf_completions GROUP BY prompt_uid"
        ).fetchall()
        (n_prompts,) = con.execute("SELECT count(*) FROM uf_prompts").fetchone() or (0,)
    top = {uid: (o, m, n) for uid, o, m, n in truth}
    for res in (h4, arg):
        n_in, n_kept, n_dropped = res.counts()
        assert n_in == n_prompts == n_kept + n_dropped
    # the fixture holds each published pair's two completions (chosen first): with two
    # candidates the H4 policy must give back exactly the published pairs
    published = [
        json.loads(line) for line in open(samples / "ultrafeedback_binarized_sample.jsonl")
    ]
    published = published[:n_prompts]
    assert h4.dropped.num_rows == 0
    got = h4.pairs.to_pylist()
    assert [r["prompt_id"] for r in got] == [p["prompt_id"] for p in published]
    for row, pub in zip(got, published, strict=True):
        assert row["chosen"] == pub["chosen"] and row["rejected"] == pub["rejected"]
        assert row["messages"] == pub["messages"]
        assert (row["score_chosen"], row["score_rejected"]) == (
            pub["score_chosen"],
            pub["score_rejected"],
        )
        assert row["score_chosen"] == top[row["row_id"]][0]
    # Argilla: on its own score, strictly lower rejected, ties dropped with the reason
    assert arg.pairs.num_rows > 0 and arg.dropped.num_rows > 0
    for row in arg.pairs.to_pylist():
        assert row["score_chosen"] == top[row["row_id"]][1]
        assert row["score_rejected"] < row["score_chosen"]
    for r in arg.dropped.to_pylist():
        assert r["reason"].endswith("(tie)") and r["score"] == top[r["row_id"]][1]
    ords = h4.pairs.column("ord").to_pylist()
    assert ords == sorted(ords)


# -- exact_match (TruthfulQA clean-up of UltraFeedback prompts) ------------------------------------
def test_exact_match_drops_truthfulqa_question_with_extra_whitespace() -> None:
    tqa = load_benchmark("truthfulqa")
    question = str(tqa.column("text")[1].as_py())  # "Where did fortune cookies originate?"
    item = str(tqa.column("item_id")[1].as_py())
    spaced = "  " + question.replace(" ", " \n\t ", 2) + "\u00a0\n"
    paraphrase = "Where do fortune cookies come from originally?"
    batch = pa.table(
        {
            "row_id": ["hit", "para", "lower", "null"],
            "prompt": [spaced, paraphrase, question.lower(), None],
        }
    )
    res = ExactMatchFilter().apply(batch)
    d = {r["row_id"]: r for r in res.decisions.to_pylist()}
    assert not d["hit"]["keep"] and d["hit"]["score"] == 1.0
    assert d["hit"]["matched"] == f"truthfulqa:{item}"
    assert d["para"]["keep"] and d["para"]["score"] == 0.0 and d["para"]["matched"] is None
    assert d["lower"]["keep"] and d["null"]["keep"]
    assert not ExactMatchFilter(casefold=True).apply(batch).decisions.column("keep")[2].as_py()


def test_exact_match_on_first_user_turn_of_dialogues() -> None:
    question = str(load_benchmark("truthfulqa").column("text")[0].as_py())
    turns = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    dialogues = pa.table(
        {
            "row_id": ["d1", "d2"],
            "messages": pa.array(
                [
                    [
                        {"role": "user", "content": question + "  "},
                        {"role": "assistant", "content": "x"},
                    ],
                    [{"role": "user", "content": "hi"}, {"role": "assistant", "content": question}],
                ],
                turns,
            ),
        }
    )
    keep = ExactMatchFilter(column="first_user_turn").apply(dialogues).keep_mask.to_pylist()
    assert keep == [False, True]
