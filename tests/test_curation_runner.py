"""Recipes run end to end on the bundled real records and commit auditable snapshots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.compute as pc
import pytest

from curation.diff import diff_snapshots
from curation.recipe import Recipe, load_recipe
from curation.runner import RunOptions, RunResult, run_recipe
from curation.sweep import sweep
from curation.verify import verify_snapshot
from filters import load_filter
from warehouse import snapshots
from warehouse.errors import BadInputError
from warehouse.ingest import IngestOptions, ingest
from warehouse.snapshots import open_snapshot
from warehouse.step_cache import StepCache
from warehouse.store import Warehouse

ROOT = Path(__file__).resolve().parents[1]
UC_RAW = ROOT / "data" / "samples" / "ultrachat_raw_fixture.jsonl"
UF_RAW = ROOT / "data" / "samples" / "ultrafeedback_raw_fixture.jsonl"

QUIET = RunOptions(progress=False)

# The SFT pipeline without the embedding steps (those are covered by the slow e2e test).
LIGHT_SFT: dict[str, Any] = {
    "name": "light_sft",
    "output": "sft",
    "seed": 42,
    "inputs": [{"table": "dialogues"}],
    "steps": [
        {"transform": "truecase"},
        {"filter": "persona"},
        {"filter": "min_chars", "params": {"threshold": 1500}},
        {"filter": "max_turns", "params": {"threshold": 7}},
        {"dedup": "exact_dedup"},
        {"dedup": "minhash_dedup"},
        {"filter": "decontam", "params": {"use_embeddings": False}},
        {
            "split": {
                "policy": "ultrachat_200k",
                "sizes": {"train_sft": 60, "test_sft": 10, "train_gen": 80, "test_gen": 12},
            }
        },
    ],
}


def _ingest(path: Path) -> Warehouse:
    wh = Warehouse(path, wait_s=0)
    ingest(wh, [str(UC_RAW), str(UF_RAW)], IngestOptions(progress=False), log=lambda m: None)
    return wh


@pytest.fixture
def wh(tmp_path: Path) -> Warehouse:
    return _ingest(tmp_path / "wh.duckdb")


def _run(wh: Warehouse, recipe: Recipe | str | dict[str, Any], **opts: Any) -> RunResult:
    if isinstance(recipe, str):
        recipe = load_recipe(recipe)
    elif isinstance(recipe, dict):
        recipe = Recipe.model_validate(recipe)
    return run_recipe(recipe, wh, RunOptions(progress=False, **opts), log=lambda m: None)


def _q(wh: Warehouse, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with wh.read() as con:
        return con.execute(sql, params or []).fetchall()


def _uf_scores(wh: Warehouse, column: str) -> dict[str, list[float]]:
    rows = _q(
        wh,
        f"SELECT prompt_uid, list({column} ORDER BY completion_index) FROM uf_completions "
        "GROUP BY 1",
    )
    return {r[0]: [x for x in r[1] if x is not None] for r in rows}


# -- counts and the ledger ---------------------------------------------------------------
def test_every_step_accounts_for_its_rows_in_the_ledger(wh: Warehouse) -> None:
    res = _run(wh, LIGHT_SFT)
    assert res.committed and res.n_input == 200
    ledger = dict(
        _q(
            wh,
            "SELECT step_name, count(*) FROM drop_ledger WHERE snapshot_id = ? GROUP BY 1",
            [res.snapshot_id],
        )
    )
    n = res.n_input
    for step in res.steps:
        assert step.n_in == n, step.name
        assert step.n_in == step.n_out + step.n_dropped
        assert ledger.get(step.name, 0) == step.n_dropped
        n = step.n_out
    # in = accepted + rejected over the whole run
    kept = _q(
        wh,
        "SELECT count(DISTINCT row_id) FROM snapshot_rows WHERE snapshot_id = ?",
        [res.snapshot_id],
    )[0][0]
    assert kept + sum(ledger.values()) == res.n_input
    # the min_chars drops carry the score that was compared and a readable reason
    score, reason = _q(
        wh,
        "SELECT score, reason FROM drop_ledger WHERE snapshot_id = ? AND step_name = "
        "'min_chars' LIMIT 1",
        [res.snapshot_id],
    )[0]
    assert score < 1500 and "< 1500" in reason


def test_overlap_matrix_matches_filters_applied_alone(wh: Warehouse) -> None:
    res = _run(wh, LIGHT_SFT, dry_run=True)
    by_name = {s.name: s for s in res.steps}
    table = open_rows(wh)
    alone = {}
    for name in ("min_chars", "max_turns"):
        f = load_filter(name)(
            threshold=LIGHT_SFT["steps"][2 if name == "min_chars" else 3]["params"]["threshold"]
        )
        dec = f.apply(table).decisions
        alone[name] = set(dec.filter(pc.invert(dec.column("keep"))).column("row_id").to_pylist())
        assert by_name[name].n_would_drop == len(alone[name])
    both = len(alone["min_chars"] & alone["max_turns"])
    assert both > 0, "the fixture should have long dialogues that are also short on chars"
    pairs = {
        (a, b): n
        for a, b, n in zip(
            res.overlap.column("step_a").to_pylist(),
            res.overlap.column("step_b").to_pylist(),
            res.overlap.column("n_rows").to_pylist(),
            strict=True,
        )
    }
    assert pairs[("min_chars", "max_turns")] == both
    others = set()
    for s in res.steps:
        if s.name != "max_turns" and s.kind == "filter" and s.would_drop is not None:
            others |= set(s.would_drop.to_pylist())
    assert by_name["max_turns"].n_exclusive == len(alone["max_turns"] - others)
    # sequential attribution: max_turns is charged only what the steps before it left
    before = set()
    for s in res.steps[:3]:
        before |= set(s.would_drop.to_pylist()) if s.would_drop is not None else set()
    assert by_name["max_turns"].n_dropped == len(alone["max_turns"] - before)


def open_rows(wh: Warehouse) -> Any:
    with wh.read() as con:
        return con.execute(
            "SELECT dialogue_id AS row_id, messages, first_user_turn, n_turns FROM dialogues"
        ).to_arrow_table()


# -- identity, dry runs, caching ----------------------------------------------------------
def test_same_inputs_same_id_and_rerun_is_a_noop(wh: Warehouse, tmp_path: Path) -> None:
    first = _run(wh, "ultrafeedback_binarized")
    again = _run(wh, "ultrafeedback_binarized")
    assert again.snapshot_id == first.snapshot_id and again.existed and not again.committed
    # another warehouse with the same files gives the same id and the same content hash
    other = _ingest(tmp_path / "other.duckdb")
    third = _run(other, "ultrafeedback_binarized")
    assert third.snapshot_id == first.snapshot_id
    assert open_snapshot(other, third.snapshot_id).content_hash == (
        open_snapshot(wh, first.snapshot_id).content_hash
    )
    # a different seed is a different snapshot
    seeded = load_recipe("ultrafeedback_binarized").model_copy(update={"seed": 7})
    assert _run(wh, seeded).snapshot_id != first.snapshot_id


def test_dry_run_writes_nothing_and_reports_the_funnel(wh: Warehouse) -> None:
    before = _q(wh, "SELECT count(*) FROM snapshots")[0][0]
    size = wh.path.stat().st_size
    dry = _run(wh, "ultrafeedback_binarized", dry_run=True)
    assert not dry.committed and dry.dry_run
    assert _q(wh, "SELECT count(*) FROM snapshots")[0][0] == before
    assert wh.path.stat().st_size == size
    assert not StepCache(wh).root.exists()
    assert [s.name for s in dry.steps] == [
        "no_truthful_qa_source",
        "truthfulqa_questions",
        "binarize",
        "split",
    ]
    assert dry.steps[0].n_dropped == 20  # the fixture's truthful_qa rows
    assert dry.steps[0].samples and "truthful_qa" in dry.steps[0].samples[0]["reason"]
    real = _run(wh, "ultrafeedback_binarized")
    assert real.snapshot_id == dry.snapshot_id
    assert [s.n_out for s in real.steps] == [s.n_out for s in dry.steps]


def test_cached_scores_serve_a_new_threshold_without_rescoring(wh: Warehouse) -> None:
    first = _run(wh, LIGHT_SFT)
    assert not any(s.cached for s in first.steps)
    steps = [dict(s) for s in LIGHT_SFT["steps"]]
    steps[2] = {**steps[2], "threshold": 3000}  # override min_chars' threshold
    second = _run(wh, {**LIGHT_SFT, "steps": steps})
    by_name = {s.name: s for s in second.steps}
    assert by_name["persona"].cached and by_name["min_chars"].cached
    assert by_name["min_chars"].n_dropped > {s.name: s for s in first.steps}["min_chars"].n_dropped
    assert second.snapshot_id != first.snapshot_id
    # the sweep reads the same stored scores and agrees with the rerun
    rows, _ = sweep(Recipe.model_validate(LIGHT_SFT), wh, "min_chars", "threshold", [1500, 3000])
    assert rows[1].dropped_after_earlier == by_name["min_chars"].n_dropped
    assert rows[0].dropped_after_earlier == {s.name: s for s in first.steps}["min_chars"].n_dropped


def test_sweep_refuses_params_that_change_scores_and_missing_scores(wh: Warehouse) -> None:
    recipe = Recipe.model_validate(LIGHT_SFT)
    with pytest.raises(BadInputError, match="only `threshold`"):
        sweep(recipe, wh, "min_chars", "n", [1.0])
    with pytest.raises(BadInputError, match="run the recipe once"):
        sweep(recipe, wh, "min_chars", "threshold", [1.0])
    with pytest.raises(BadInputError, match="no step"):
        sweep(recipe, wh, "nope", "threshold", [1.0])


# -- diff, verify, tags, exclude ----------------------------------------------------------
def test_diff_attributes_each_change_to_a_step(wh: Warehouse) -> None:
    a = _run(wh, LIGHT_SFT)
    steps = [dict(s) for s in LIGHT_SFT["steps"]]
    steps[2] = {**steps[2], "params": {"threshold": 3000}}
    b = _run(wh, {**LIGHT_SFT, "steps": steps})
    with wh.read() as con:
        same = diff_snapshots(con, a.snapshot_id, a.snapshot_id)
        d = diff_snapshots(con, a.snapshot_id, b.snapshot_id, max_rows=10_000)
    assert same.identical
    assert d.n_removed > 0
    removed = d.rows.filter(pc.equal(d.rows.column("change"), "removed")).to_pylist()
    # every removed row is explained: B's min_chars dropped it, or it moved split
    for r in removed:
        assert r["step"] == "min_chars" or r["cause"].startswith("moved to"), r
    by_min = [r for r in removed if r["step"] == "min_chars"]
    assert by_min and all("< 3000" in r["reason"] for r in by_min)
    # counts agree with the splits
    a_rows = sum(a.splits.values())
    b_rows = sum(b.splits.values())
    assert a_rows - d.n_removed + d.n_added == b_rows


def test_verify_detects_tampering(wh: Warehouse) -> None:
    res = _run(wh, "ultrafeedback_binarized")
    with wh.read() as con:
        ok = verify_snapshot(con, res.snapshot_id)
    assert ok.ok, ok.checks
    with wh.write() as con:
        con.execute(
            "UPDATE snapshot_rows SET score_chosen = score_chosen + 1 WHERE snapshot_id = ? "
            "AND ordinal = 0 AND split = 'train_prefs'",
            [res.snapshot_id],
        )
    with wh.read() as con:
        bad = verify_snapshot(con, res.snapshot_id)
    assert not bad.ok
    assert [c.name for c in bad.checks if not c.ok] == ["content_hash"]


def test_tags_resolve_and_do_not_move_silently(wh: Warehouse) -> None:
    a = _run(wh, "ultrafeedback_binarized", tags=["uf-v1"])
    b = _run(wh, "ultrafeedback_binarized_cleaned")
    with wh.write() as con:
        assert snapshots.resolve(con, "uf-v1") == a.snapshot_id
        assert snapshots.resolve(con, a.snapshot_id[:8]) == a.snapshot_id
        with pytest.raises(BadInputError, match="already names"):
            snapshots.set_tag(con, b.snapshot_id, "uf-v1")
        snapshots.set_tag(con, b.snapshot_id, "uf-v1", force=True)
        assert snapshots.resolve(con, "uf-v1") == b.snapshot_id
        with pytest.raises(BadInputError, match="no snapshot or tag"):
            snapshots.resolve(con, "missing")
        with pytest.raises(BadInputError, match="matches 2 snapshots"):
            snapshots.resolve(con, "s_")


def test_exclude_removes_prompts_of_another_snapshot(wh: Warehouse) -> None:
    base = _run(wh, LIGHT_SFT)
    recipe = {
        **LIGHT_SFT,
        "name": "without_base",
        "steps": [{"exclude": {"snapshot": base.snapshot_id}}, LIGHT_SFT["steps"][-1]],
    }
    res = _run(wh, recipe)
    excl = res.steps[0]
    in_base = _q(
        wh,
        "SELECT count(DISTINCT prompt_id) FROM snapshot_rows WHERE snapshot_id = ?",
        [base.snapshot_id],
    )[0][0]
    assert excl.n_dropped >= in_base > 0
    shared = _q(
        wh,
        "SELECT count(*) FROM (SELECT prompt_id FROM snapshot_rows WHERE snapshot_id = ? "
        "INTERSECT SELECT prompt_id FROM snapshot_rows WHERE snapshot_id = ?)",
        [base.snapshot_id, res.snapshot_id],
    )[0][0]
    assert shared == 0
    info = _q(wh, "SELECT parent_snapshots FROM snapshots WHERE snapshot_id = ?", [res.snapshot_id])
    assert info[0][0] == [base.snapshot_id]


def test_snapshot_input_refilters_an_earlier_snapshot(wh: Warehouse) -> None:
    base = _run(wh, "ultrafeedback_binarized", tags=["uf"])
    recipe = {
        "name": "uf_long_answers",
        "output": "preferences",
        "inputs": [{"snapshot": "uf"}],
        "steps": [
            {
                "filter": "sql",
                "name": "long_chosen",
                "params": {"predicate": "length(chosen[-1].content) >= 500"},
            }
        ],
    }
    res = _run(wh, recipe)
    n_in = base.splits["train_prefs"] + base.splits["test_prefs"]
    assert res.n_input == n_in
    assert res.splits == {"train": n_in - res.steps[0].n_dropped}
    short = _q(
        wh,
        "SELECT count(*) FROM snapshot_rows WHERE snapshot_id = ? "
        "AND length(chosen[-1].content) < 500",
        [res.snapshot_id],
    )[0][0]
    assert short == 0
    with pytest.raises(BadInputError, match="holds preferences rows"):
        _run(wh, {**LIGHT_SFT, "inputs": [{"snapshot": "uf"}]})


# -- the preference recipes on real records ----------------------------------------------
def test_h4_recipe_invariants_on_real_records(wh: Warehouse) -> None:
    res = _run(wh, "ultrafeedback_binarized")
    snap = open_snapshot(wh, res.snapshot_id)
    assert snap.kind == "preferences"
    s = res.splits
    assert s["train_prefs"] == s["train_sft"] == s["train_gen"]
    assert s["test_sft"] == s["test_gen"] == s["test_prefs"] // 2
    assert s["train_prefs"] + s["test_prefs"] == 100  # 120 - 20 truthful_qa rows
    overall = _uf_scores(wh, "overall_score")
    uid_rows = _q(
        wh,
        "SELECT row_id, score_chosen, score_rejected, chosen[-1].content <> rejected[-1].content "
        "FROM snapshot_rows WHERE snapshot_id = ? AND split = 'train_prefs'",
        [res.snapshot_id],
    )
    for uid, chosen, _rejected, differ in uid_rows:
        assert chosen == max(overall[uid])
        assert differ
    gen = snap.split_arrow("train_gen").to_pylist()
    assert all(r["messages"][-1]["role"] == "user" for r in gen)
    sft = snap.split_arrow("train_sft").to_pylist()
    assert all(r["messages"] == r["chosen"] for r in sft)
    no_tqa = _q(
        wh,
        "SELECT count(*) FROM snapshot_rows r JOIN uf_prompts p ON p.prompt_uid = r.row_id "
        "WHERE r.snapshot_id = ? AND p.source = 'truthful_qa'",
        [res.snapshot_id],
    )[0][0]
    assert no_tqa == 0


def test_argilla_recipe_never_keeps_a_tie(wh: Warehouse) -> None:
    res = _run(wh, "ultrafeedback_binarized_cleaned")
    ties = _q(
        wh,
        "SELECT count(*) FROM snapshot_rows WHERE snapshot_id = ? "
        "AND score_rejected >= score_chosen",
        [res.snapshot_id],
    )[0][0]
    assert ties == 0
    binarize = {s.name: s for s in res.steps}["binarize"]
    assert binarize.n_dropped > 0
    reasons = _q(
        wh,
        "SELECT DISTINCT reason FROM drop_ledger WHERE snapshot_id = ? AND step_name = 'binarize'",
        [res.snapshot_id],
    )
    assert any("tie" in r[0] for r in reasons)


def test_split_dataset_has_the_published_features(wh: Warehouse) -> None:
    from datasets import Features, List, Value

    res = _run(wh, "ultrafeedback_binarized")
    ds = open_snapshot(wh, res.snapshot_id).split_dataset("train_prefs")
    msg = List({"content": Value("string"), "role": Value("string")})
    assert ds.features == Features(
        {
            "prompt": Value("string"),
            "prompt_id": Value("string"),
            "chosen": msg,
            "rejected": msg,
            "messages": msg,
            "score_chosen": Value("float64"),
            "score_rejected": Value("float64"),
        }
    )
    assert len(ds) == res.splits["train_prefs"]
    with pytest.raises(BadInputError, match="no split 'train_sft2'"):
        open_snapshot(wh, res.snapshot_id).split_arrow("train_sft2")


# -- the full SFT recipe ------------------------------------------------------------------
@pytest.mark.slow
def test_ultrachat_200k_recipe_end_to_end(wh: Warehouse) -> None:
    res = _run(wh, "ultrachat_200k", tags=["uc"])
    names = [s.name for s in res.steps]
    assert names[:2] == ["truecase", "persona"] and "semantic_dedup" in names
    sizes = res.splits
    # published sizes scaled by 200 / raw UltraChat count
    assert sizes["train_sft"] == round(207_865 * 200 / 1_468_346)
    assert sizes["test_gen"] == round(28_304 * 200 / 1_468_346)
    snap = open_snapshot(wh, "uc")
    assert snap.splits == sizes
    sft = snap.split_arrow("train_sft").to_pylist()
    gen = snap.split_arrow("train_gen").to_pylist()
    assert all(r["messages"][-1]["role"] == "assistant" for r in sft)
    assert all(r["messages"][-1]["role"] == "user" for r in gen)
    train = {r["prompt_id"] for r in sft + gen}
    test = {
        r["prompt_id"] for s in ("test_sft", "test_gen") for r in snap.split_arrow(s).to_pylist()
    }
    assert not train & test
    # truecasing rewrote the messages it reported, and the ledger holds the persona drops
    truecase = res.steps[0]
    assert truecase.n_changed > 0 and truecase.n_dropped == 0
    persona = _q(
        wh,
        "SELECT count(*), min(reason) FROM drop_ledger WHERE snapshot_id = ? "
        "AND step_name = 'persona'",
        [res.snapshot_id],
    )[0]
    assert persona[0] == res.steps[1].n_dropped > 0 and "persona" in persona[1]
    models = json.loads(
        _q(wh, "SELECT model_versions FROM snapshots WHERE snapshot_id = ?", [res.snapshot_id])[0][
            0
        ]
    )
    assert "MiniLM" in models["semantic_dedup"]


def test_uncommitted_transaction_leaves_nothing(wh: Warehouse) -> None:
    """commit_snapshot is one transaction: an error after the rows are inserted rolls back."""
    import pyarrow as pa

    meta = snapshots.SnapshotMeta(
        snapshot_id="s_test",
        kind="sft",
        recipe_name="t",
        recipe_text="{}",
        inputs=[],
        code_version="c",
    )
    rows = pa.table({"split": ["train"], "ordinal": [0], "row_id": ["r"], "prompt": ["p"]})
    with wh.write() as con:
        with pytest.raises(duckdb.Error):
            snapshots.commit_snapshot(con, meta, rows=rows, ledger_sql="SELECT nope FROM nowhere")
        assert con.execute("SELECT count(*) FROM snapshot_rows").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM snapshots").fetchone() == (0,)


def test_take_chunked_reorders_across_batches_like_take() -> None:
    import numpy as np
    import pyarrow as pa

    from curation import working_set

    rng = np.random.default_rng(0)
    parts = [
        pa.table({"ord": pa.array(rng.permutation(50) + 50 * i), "t": [f"x{j}" for j in range(50)]})
        for i in range(7)
    ]
    table = pa.concat_tables(parts)
    order = np.argsort(table.column("ord").to_numpy(), kind="stable")
    old = working_set.TAKE_ROWS
    working_set.TAKE_ROWS = 33  # several output slices, each spanning several batches
    try:
        got = working_set.take_chunked(table, order)
    finally:
        working_set.TAKE_ROWS = old
    assert got.to_pydict() == table.take(pa.array(order)).to_pydict()
    assert got.column("ord").to_pylist() == list(range(350))
