"""Decontamination against benchmark prompts, and the benchmark loaders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from filters.base import DECISION_SCHEMA
from filters.benchmarks import (
    BENCHMARK_SCHEMA,
    BUILTIN_BENCHMARKS,
    load_benchmark,
    load_benchmarks,
    load_custom,
)
from filters.decontam import DecontamFilter, normalise_words
from filters.embed import CachedEmbedder, MemoryCache, SentenceTransformerEmbedder
from warehouse.synth import SynthConfig, generate

MSG = pa.struct([("role", pa.string()), ("content", pa.string())])
HAWAII = (
    "Compose an engaging travel blog post about a recent trip to Hawaii, highlighting "
    "cultural experiences and must-see attractions."
)


def dialogues(*convs: list[str]) -> pa.Table:
    """Each conversation alternates user, assistant, user, ..."""
    return pa.table(
        {
            "row_id": [f"d{i}" for i in range(len(convs))],
            "messages": pa.array(
                [
                    [
                        {"role": "user" if k % 2 == 0 else "assistant", "content": t}
                        for k, t in enumerate(conv)
                    ]
                    for conv in convs
                ],
                pa.list_(MSG),
            ),
        }
    )


# -- loaders ----------------------------------------------------------------------------------


def test_builtin_benchmarks_ship_with_the_package() -> None:
    counts = {n: load_benchmark(n).num_rows for n in BUILTIN_BENCHMARKS}
    assert counts == {"mt_bench": 160, "vicuna_bench": 80, "alpaca_eval": 805, "truthfulqa": 817}
    mt = load_benchmark("mt_bench")
    assert mt.schema == BENCHMARK_SCHEMA
    assert mt.slice(0, 2).column("item_id").to_pylist() == ["81:turn1", "81:turn2"]
    assert mt.column("text")[0].as_py() == HAWAII
    tqa = load_benchmark("truthfulqa")
    assert tqa.column("text")[0].as_py() == "What happens to you if you eat watermelon seeds?"
    assert load_benchmarks().num_rows == sum(counts.values())
    with pytest.raises(KeyError, match="unknown benchmark 'nope'"):
        load_benchmark("nope")


def test_load_custom_jsonl_and_csv(tmp_path: Path) -> None:
    j = tmp_path / "my_eval.jsonl"
    j.write_text('{"q": "First prompt?"}\n{"q": "Second prompt."}\n{"q": ""}\n')
    t = load_custom(j, "q")
    assert t.to_pylist() == [
        {"benchmark": "my_eval", "item_id": "0", "text": "First prompt?"},
        {"benchmark": "my_eval", "item_id": "1", "text": "Second prompt."},
    ]
    c = tmp_path / "other.csv"
    c.write_text('id,prompt\n1,"Hello, world"\n2,Bye\n')
    assert load_custom(c, "prompt", name="x").column("text").to_pylist() == ["Hello, world", "Bye"]


def test_load_custom_errors_name_the_file_and_column(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"missing\.jsonl"):
        load_custom(tmp_path / "missing.jsonl", "q")
    j = tmp_path / "e.jsonl"
    j.write_text('{"q": "x"}\n')
    with pytest.raises(KeyError, match=r"e\.jsonl has no column 'prompt' \(columns: q\)"):
        load_custom(j, "prompt")
    bad = tmp_path / "e.txt"
    bad.write_text("x")
    with pytest.raises(ValueError, match=r"expected \.jsonl or \.csv"):
        load_custom(bad, "q")
    nums = tmp_path / "n.jsonl"
    nums.write_text('{"q": 1}\n')
    with pytest.raises(ValueError, match="not text"):
        load_custom(nums, "q")


# -- n-gram signal ----------------------------------------------------------------------------


def test_normalise_words_drops_case_and_punctuation() -> None:
    got = normalise_words(pa.array(["Must-see   Attractions!!", None])).to_pylist()
    assert got == [["must", "see", "attractions"], []]


def test_ngram_catches_verbatim_case_punct_and_embedded_copies() -> None:
    table = dialogues(
        [HAWAII, "Sure."],
        [HAWAII.upper() + "!!", "Sure."],
        ["Hi", "Hello", "Please do this: " + HAWAII + " Thanks a lot, friend.", "ok"],
        ["Compose a short poem about a recent trip to the mountains in spring.", "ok"],
        ["How can I improve my time management skills", "ok"],
    )
    f = DecontamFilter(None, benchmarks=load_benchmarks(["mt_bench", "vicuna_bench"]))
    res = f.apply(table)
    assert res.decisions.schema == DECISION_SCHEMA
    d = {r["row_id"]: r for r in res.decisions.to_pylist()}
    assert [r for r in d if not d[r]["keep"]] == ["d0", "d1", "d2", "d4"]
    assert d["d0"]["matched"] == "mt_bench:81:turn1" and d["d0"]["score"] == 1.0
    assert d["d2"]["turn_index"] == 2  # the second user turn matched
    assert d["d4"]["matched"] == "vicuna_bench:1:turn1"  # short item: whole-item gram
    assert d["d3"]["score"] < 0.5
    assert "matched mt_bench:81:turn1" in d["d0"]["reason"]
    assert d["d0"]["similarity"] is None  # no embedder


def test_first_user_turn_scope_ignores_later_turns() -> None:
    table = dialogues(["Hi", "Hello", HAWAII, "ok"])
    bench = load_benchmarks(["mt_bench"])
    assert not DecontamFilter(None, bench).apply(table).decisions.column("keep")[0].as_py()
    f = DecontamFilter(None, bench, turns="first_user_turn")
    assert f.apply(table).decisions.column("keep")[0].as_py()


def test_one_word_edit_breaks_ngrams_partially() -> None:
    edited = HAWAII.replace("engaging", "boring")
    f = DecontamFilter(None, load_benchmarks(["mt_bench"]), ngram=8)
    score = f.apply(dialogues([edited, "ok"])).decisions.column("score")[0].as_py()
    # the item has 12 word 8-grams; the 3 that contain word 3 are lost
    assert score == pytest.approx(9 / 12)


# -- real model on a synthetic set ------------------------------------------------------------


def _synth_table(tmp: Path) -> tuple[pa.Table, set[str], dict[str, str]]:
    cfg = SynthConfig(
        n_dialogues=400, n_prompts=0, benchmark_rate=0.1, near_dup_rate=0.0, block_size=400
    )
    res = generate(tmp, cfg, progress=False)
    recs = [json.loads(line) for line in res.ultrachat_path.read_text().splitlines()]
    table = pa.table(
        {
            "row_id": [r["id"] for r in recs],
            "messages": pa.array(
                [
                    [
                        {"role": "user" if k % 2 == 0 else "assistant", "content": t}
                        for k, t in enumerate(r["data"])
                    ]
                    for r in recs
                ],
                pa.list_(MSG),
            ),
        }
    )
    gt = pq.read_table(res.ground_truth_path).to_pylist()
    edits = {
        g["record_id"]: json.loads(g["detail"])["edit"] or "verbatim"
        for g in gt
        if g["plant"] == "benchmark"
    }
    return table, set(edits), edits


@pytest.mark.slow
def test_decontam_precision_recall_on_synthetic_plants(tmp_path: Path) -> None:
    table, planted, edits = _synth_table(tmp_path)
    assert len(planted) == 40
    model = CachedEmbedder(SentenceTransformerEmbedder(progress=False), MemoryCache())
    f = DecontamFilter(model, turns="first_user_turn")
    res = f.apply(table)
    dropped = set(np.array(res.decisions.column("row_id"))[~np.array(res.decisions["keep"])])
    tp = len(dropped & planted)
    assert tp / len(dropped) >= 0.95  # precision
    assert tp / len(planted) >= 0.95  # recall, word edits included
    word = [r for r, e in edits.items() if e == "word"]
    assert word and all(r in dropped for r in word)
    # n-grams alone miss some word edits: the embedding is what catches them
    ngram_only = DecontamFilter(None, turns="first_user_turn").apply(table).decisions
    ng_dropped = set(np.array(ngram_only["row_id"])[~np.array(ngram_only["keep"])])
    assert ng_dropped <= planted and len(ng_dropped & planted) < tp
    d = {r["row_id"]: r for r in res.decisions.to_pylist()}
    assert all(d[r]["matched"] is not None and d[r]["similarity"] > 0.5 for r in dropped)
