"""Dedup filters: exact, MinHash near-dup and cross-set, on tiny tables and on synth data."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
import pyarrow.parquet as pq
import pytest

from filters import DECISION_SCHEMA
from filters.cross_dedup import CrossDedupFilter
from filters.dedup_base import cluster_sizes, field_text
from filters.exact_dedup import ExactDedupFilter
from filters.minhash import MinHashFilter, optimal_param, pair_jaccard, shingles
from filters.normalize import normalize
from warehouse.synth import SynthConfig, generate

MSG = pa.struct([("role", pa.string()), ("content", pa.string())])


def dialogues(*convs: list[tuple[str, str]]) -> pa.Table:
    return pa.table(
        {
            "row_id": [f"d{i}" for i in range(len(convs))],
            "messages": pa.array(
                [[{"role": r, "content": c} for r, c in conv] for conv in convs], pa.list_(MSG)
            ),
        }
    )


def raw_dialogues(path: Path) -> pa.Table:
    """Raw UltraChat JSONL to the dialogue batch shape (row_id = raw id), columnar."""
    raw = pj.read_json(path)
    data = raw.column("data").combine_chunks()
    flat = data.flatten()
    offsets = data.offsets.to_numpy()
    parent = pc.list_parent_indices(data).to_numpy()
    turn = np.arange(len(flat)) - offsets[parent]
    role = pc.if_else(pa.array(turn % 2 == 0), "user", "assistant")
    msgs = pa.StructArray.from_arrays([role, flat], fields=list(MSG))
    return pa.table(
        {"row_id": raw.column("id"), "messages": pa.ListArray.from_arrays(data.offsets, msgs)}
    )


def keep_map(decisions: pa.Table) -> dict[str, bool]:
    return dict(
        zip(
            decisions.column("row_id").to_pylist(),
            decisions.column("keep").to_pylist(),
            strict=True,
        )
    )


def words(rng: random.Random, n: int) -> list[str]:
    return [f"w{rng.randrange(100_000)}" for _ in range(n)]


# -- normalisation and fields -----------------------------------------------------------------


def test_normalize_folds_case_width_punctuation_and_space() -> None:
    out = normalize(pa.array(["Ｈｅｌｌｏ,  World!!\n—ok…", None, "  a\u00a0b  "]))
    assert out.to_pylist() == ["hello world ok", None, "a b"]
    assert normalize(pa.array(["Ｈｉ"]), nfkc=False).to_pylist() == ["ｈｉ"]


def test_field_text_variants() -> None:
    t = dialogues([("user", "Q1"), ("assistant", "A1"), ("user", "Q2"), ("assistant", "A2")], [])
    assert field_text(t, "whole_dialogue").to_pylist() == [
        "user: Q1\nassistant: A1\nuser: Q2\nassistant: A2",
        "",
    ]
    assert field_text(t, "assistant_turns").to_pylist() == ["A1\nA2", ""]
    assert field_text(t, "first_user_turn").to_pylist() == ["Q1", ""]
    with pytest.raises(KeyError):
        field_text(t, "nope")


# -- exact dedup ------------------------------------------------------------------------------

EXACT = dialogues(
    [("user", "Hello there"), ("assistant", "Hi!")],
    [("user", "hello  THERE!"), ("assistant", "hi")],
    [("user", "Something else"), ("assistant", "Sure.")],
    [("user", "Hello there"), ("assistant", "Hi!!! ...")],
    [("user", "Something else"), ("assistant", "Sure")],
)


def test_exact_groups_first_policy_and_schema() -> None:
    f = ExactDedupFilter()
    res = f.apply(EXACT)
    assert res.decisions.schema == DECISION_SCHEMA
    assert keep_map(res.decisions) == {
        "d0": True,
        "d1": False,
        "d2": True,
        "d3": False,
        "d4": False,
    }
    d = res.decisions.to_pylist()
    assert [r["representative"] for r in d] == ["d0", "d0", "d2", "d0", "d2"]
    assert d[1]["matched"] == "d0" and d[1]["score"] == 1.0 and d[1]["similarity"] == 1.0
    assert d[0]["score"] == 0.0 and d[0]["reason"] is None
    assert "matched d0" in d[1]["reason"]
    assert d[0]["cluster_id"] == d[3]["cluster_id"] != d[2]["cluster_id"]
    assert res.stats.n_dropped == 3
    assert cluster_sizes(res.scores).to_pylist() == [
        {"size": 2, "n_clusters": 1},
        {"size": 3, "n_clusters": 1},
    ]


def test_exact_longest_policy_and_field() -> None:
    res = ExactDedupFilter(keep="longest", batch_size=2).apply(EXACT)
    assert keep_map(res.decisions) == {
        "d0": False,
        "d1": False,
        "d2": True,
        "d3": True,
        "d4": False,
    }
    # on the first user turn alone d0, d1, d3 match, and d2, d4
    firsts = ExactDedupFilter(field="first_user_turn").apply(EXACT)
    assert firsts.stats.n_dropped == 3
    # a threshold above 1 drops nothing: decide works on the stored scores
    assert ExactDedupFilter().sweep(firsts.scores, [1.0, 1.5]) == [(1.0, 2, 3), (1.5, 5, 0)]


def test_params_hash_tracks_params() -> None:
    assert ExactDedupFilter().params_hash == ExactDedupFilter().params_hash
    assert ExactDedupFilter().params_hash != ExactDedupFilter(keep="longest").params_hash
    assert MinHashFilter().params_hash != MinHashFilter(threshold=0.8).params_hash
    assert MinHashFilter().params_hash != ExactDedupFilter().params_hash


# -- MinHash ----------------------------------------------------------------------------------


def test_optimal_param_fits_threshold() -> None:
    for t in (0.5, 0.7, 0.9):
        b, r = optimal_param(t, 128)
        assert b * r <= 128
        # the S-curve's midpoint (1/b)^(1/r) lies near the threshold
        assert abs((1 / b) ** (1 / r) - t) < 0.1
    assert optimal_param(0.9, 128)[1] > optimal_param(0.5, 128)[1]


def test_shingles_and_exact_jaccard() -> None:
    text = pa.array(["a b c d e f", "a b c d e g", "x y", ""])
    sh, counts = shingles(text, 5)
    assert counts.tolist() == [2, 2, 1, 0]
    jac = pair_jaccard(sh, counts, np.array([0, 0]), np.array([1, 2]))
    assert jac.tolist() == pytest.approx([1 / 3, 0.0])


def test_minhash_finds_near_dups_at_known_jaccard() -> None:
    rng = random.Random(0)
    base = words(rng, 200)
    near = list(base)
    near[100] = "edited"  # "user:" + 200 words: 5 of 197 shingles change, J = 192/202
    far = list(base)
    for k in range(0, 200, 20):
        far[k] = f"x{k}"  # ten edits spread out: Jaccard ~0.6
    other = words(rng, 200)
    t = dialogues(*[[("user", " ".join(w))] for w in (base, near, far, other, [])])
    res = MinHashFilter(threshold=0.7).apply(t)
    assert res.decisions.schema == DECISION_SCHEMA
    assert keep_map(res.decisions) == {"d0": True, "d1": False, "d2": True, "d3": True, "d4": True}
    d1 = res.decisions.to_pylist()[1]
    assert d1["representative"] == "d0" and d1["matched"] == "d0"
    assert d1["similarity"] == pytest.approx(192 / 202)
    # the far copy is kept at 0.7 but dropped at 0.5
    res5 = MinHashFilter(threshold=0.5).apply(t)
    assert keep_map(res5.decisions)["d2"] is False
    assert 0.5 < res5.decisions.column("score")[2].as_py() < 0.7
    # batching (bounded memory) does not change the outcome
    small = MinHashFilter(threshold=0.7, batch_size=2).apply(t)
    assert small.decisions.column("keep").equals(res.decisions.column("keep"))
    # keep="longest" picks the longer text as representative
    longer = dialogues([("user", " ".join(base))], [("user", " ".join([*base, "tail"]))])
    res_long = MinHashFilter(keep="longest").apply(longer)
    assert keep_map(res_long.decisions) == {"d0": False, "d1": True}


def test_minhash_unverified_uses_estimate() -> None:
    rng = random.Random(1)
    base = words(rng, 300)
    near = list(base)
    near[150] = "edited"
    t = dialogues([("user", " ".join(base))], [("user", " ".join(near))])
    res = MinHashFilter(verify=False, num_perm=256).apply(t)
    assert keep_map(res.decisions) == {"d0": True, "d1": False}
    assert 0.85 < res.decisions.column("similarity")[1].as_py() <= 1.0


# -- cross-set --------------------------------------------------------------------------------


def test_cross_dedup_keep_rule_and_matched() -> None:
    rng = random.Random(2)
    long_prompt = " ".join(words(rng, 60))
    edited = long_prompt.replace(long_prompt.split()[30], "changed")
    a = pa.table(
        {
            "row_id": ["a0", "a1", "a2", "a3"],
            "prompt": ["Write a POEM about cats!", "unrelated prompt here", edited, None],
        }
    )
    b = dialogues(
        [("user", "write a poem about cats"), ("assistant", "Meow.")],
        [("user", long_prompt), ("assistant", "ok")],
        [("user", "something else"), ("assistant", "ok")],
    )
    exact = CrossDedupFilter(b, field_a="prompt", field_b="first_user_turn", keep="b")
    res = exact.apply(a)
    assert res.decisions.schema == DECISION_SCHEMA
    assert keep_map(res.decisions) == {"a0": False, "a1": True, "a2": True, "a3": True}
    assert res.decisions.column("matched")[0].as_py() == "d0"
    near = CrossDedupFilter(b, field_a="prompt", field_b="first_user_turn", method="near")
    res_near = near.apply(a)
    assert keep_map(res_near.decisions) == {"a0": False, "a1": True, "a2": False, "a3": True}
    assert res_near.decisions.column("matched").to_pylist()[:3] == ["d0", None, "d1"]
    assert 0.7 < res_near.decisions.column("similarity")[2].as_py() < 1.0
    # keep="a": the decisions are about b's rows, matched = a's row_id
    flip = CrossDedupFilter(b, field_a="prompt", field_b="first_user_turn", keep="a")
    res_flip = flip.apply(a)
    assert keep_map(res_flip.decisions) == {"d0": False, "d1": True, "d2": True}
    assert res_flip.decisions.column("matched")[0].as_py() == "a0"
    assert res_flip.stats.n_in == 3


# -- synthetic data with ground truth ---------------------------------------------------------


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> tuple[pa.Table, pa.Table]:
    out = tmp_path_factory.mktemp("synth")
    generate(out, SynthConfig(n_dialogues=5000, n_prompts=20, seed=3), progress=False)
    truth = pq.read_table(out / "ground_truth.parquet")
    truth = truth.filter(pc.equal(truth.column("dataset"), "ultrachat"))
    return raw_dialogues(out / "ultrachat_raw.jsonl"), truth


def prf(dropped: set[str], truth: set[str]) -> tuple[float, float, float]:
    tp = len(dropped & truth)
    p = tp / len(dropped) if dropped else 1.0
    r = tp / len(truth) if truth else 1.0
    return p, r, 2 * p * r / (p + r) if p + r else 0.0


def planted(truth: pa.Table, *plants: str) -> set[str]:
    mask = pc.is_in(truth.column("plant"), pa.array(plants))
    return set(truth.filter(mask).column("record_id").to_pylist())


def test_exact_dedup_on_synth_is_exact(synth: tuple[pa.Table, pa.Table]) -> None:
    table, truth = synth
    res = ExactDedupFilter().apply(table)
    dropped = set(res.dropped().column("row_id").to_pylist())
    exact = planted(truth, "exact_dup")
    assert len(exact) >= 40
    assert prf(dropped, exact) == (1.0, 1.0, 1.0)
    # every dropped copy points at its planted original
    target = dict(
        zip(
            truth.column("record_id").to_pylist(),
            truth.column("target_id").to_pylist(),
            strict=True,
        )
    )
    d = res.dropped()
    assert all(
        target[r] == m
        for r, m in zip(
            d.column("row_id").to_pylist(), d.column("matched").to_pylist(), strict=True
        )
    )


def test_minhash_on_synth_precision_recall(synth: tuple[pa.Table, pa.Table]) -> None:
    table, truth = synth
    res = MinHashFilter().apply(table)
    dropped = set(res.dropped().column("row_id").to_pylist())
    dups = planted(truth, "exact_dup", "near_dup")
    p, r, f1 = prf(dropped, dups)
    assert p == 1.0
    assert f1 >= 0.99, (p, r, f1)  # measured 1.0 on this seed
    p_near, r_near, _ = prf(dropped - planted(truth, "exact_dup"), planted(truth, "near_dup"))
    assert p_near == 1.0 and r_near >= 0.98, (p_near, r_near)
