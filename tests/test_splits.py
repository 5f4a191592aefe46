"""Split policies: H4's ultrafeedback_binarized index selection and ultrachat_200k sizing."""

from __future__ import annotations

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from curation.splits import (
    ASSIGNMENT_SCHEMA,
    H4_PREFS_ROWS,
    ULTRACHAT_200K_SIZES,
    ULTRACHAT_RAW_DIALOGUES,
    SplitPlan,
    assign_h4_prefs,
    assign_ultrachat_200k,
)


def _ids(n: int, prefix: str = "r") -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def _split(plan: SplitPlan, name: str) -> list[str]:
    a = plan.assignments
    part = a.filter(pc.equal(a.column("split"), name)).sort_by("ordinal")
    return [str(x) for x in part.column("row_id").to_pylist()]


def _gen(plan: SplitPlan, name: str) -> set[bool]:
    a = plan.assignments
    return set(a.filter(pc.equal(a.column("split"), name)).column("gen").to_pylist())


def _h4_with_datasets(ids: list[str], test_size: int) -> dict[str, list[str]]:
    """What H4's create_dataset.py gets from `datasets` for these rows."""
    ds = datasets.Dataset.from_dict({"row_id": ids})
    outer = ds.train_test_split(test_size=test_size, seed=42, shuffle=True, keep_in_memory=True)
    inner = outer["test"].train_test_split(0.5, seed=42, shuffle=True, keep_in_memory=True)
    first, second = list(inner["train"]["row_id"]), list(inner["test"]["row_id"])
    return {
        "train_prefs": list(outer["train"]["row_id"]),
        "test_prefs": first + second,
        "test_sft": first,
    }


# -- H4 ultrafeedback_binarized ----------------------------------------------------------------
def test_h4_indices_equal_datasets_train_test_split_small() -> None:
    ids = _ids(500)
    plan = assign_h4_prefs(pa.array(ids), test_size=100)  # 500 >= 2 * 100: no scaling
    want = _h4_with_datasets(ids, 100)
    for name in ("train_prefs", "test_prefs", "test_sft"):
        assert _split(plan, name) == want[name], name
    assert plan.notes == []


def test_h4_full_scale_sizes_and_indices() -> None:
    ids = _ids(H4_PREFS_ROWS)
    plan = assign_h4_prefs(pa.array(ids))
    assert plan.got == {
        "train_prefs": 61_966,
        "train_sft": 61_966,
        "train_gen": 61_966,
        "test_prefs": 2_000,
        "test_sft": 1_000,
        "test_gen": 1_000,
    }
    assert plan.got == plan.requested and plan.short == {}
    want = _h4_with_datasets(ids, 2000)
    assert _split(plan, "train_prefs") == want["train_prefs"]
    assert _split(plan, "test_prefs") == want["test_prefs"]
    assert _split(plan, "test_sft") == want["test_sft"]
    assert plan.assignments.schema == ASSIGNMENT_SCHEMA


def test_h4_train_and_test_disjoint_and_sft_gen_shared() -> None:
    plan = assign_h4_prefs(pa.array(_ids(5000)))
    train, test = set(_split(plan, "train_prefs")), set(_split(plan, "test_prefs"))
    assert not train & test
    assert len(train) + len(test) == 5000
    assert _split(plan, "train_sft") == _split(plan, "train_gen") == _split(plan, "train_prefs")
    assert _split(plan, "test_gen") == _split(plan, "test_sft")
    assert set(_split(plan, "test_sft")) < test
    for name in ("train_prefs", "train_sft", "test_prefs", "test_sft"):
        assert _gen(plan, name) == {False}, name
    assert _gen(plan, "train_gen") == _gen(plan, "test_gen") == {True}


def test_h4_small_input_scales_test_size_evenly_and_matches_datasets() -> None:
    ids = _ids(900)  # < 4000 rows: test size scaled, round(900 * 2000 / 63966) = 28
    plan = assign_h4_prefs(pa.array(ids))
    assert plan.got["test_prefs"] == 28 and plan.got["test_sft"] == 14
    assert plan.got["train_prefs"] == 872
    assert plan.notes and "scaled" in plan.notes[0]
    want = _h4_with_datasets(ids, 28)
    assert _split(plan, "test_prefs") == want["test_prefs"]
    assert _split(plan, "train_prefs") == want["train_prefs"]
    for n in (3, 10, 150, 1001, 3999):
        got = assign_h4_prefs(pa.array(_ids(n))).got
        assert got["test_prefs"] % 2 == 0 and got["test_prefs"] >= 2, n
        assert got["train_prefs"] >= 1 and got["train_prefs"] + got["test_prefs"] == n, n


def test_h4_order_of_rows_matters_like_datasets() -> None:
    """Selection is positional (as in datasets): the same ids in another order split differently."""
    ids = _ids(500)
    a = assign_h4_prefs(pa.array(ids), test_size=100)
    b = assign_h4_prefs(pa.array(ids[::-1]), test_size=100)
    assert set(_split(a, "test_prefs")) != set(_split(b, "test_prefs"))


def test_split_rejects_duplicate_ids() -> None:
    with pytest.raises(ValueError, match="unique"):
        assign_h4_prefs(pa.array(["a", "b", "a"]))


# -- ultrachat_200k ----------------------------------------------------------------------------
def test_ultrachat_sizes_scale_with_input() -> None:
    n_input = ULTRACHAT_RAW_DIALOGUES // 10
    plan = assign_ultrachat_200k(pa.array(_ids(40_000)), n_input=n_input)
    ratio = n_input / ULTRACHAT_RAW_DIALOGUES
    expected = {k: round(v * ratio) for k, v in ULTRACHAT_200K_SIZES.items()}
    assert plan.requested == expected == plan.got
    assert plan.got["train_sft"] == 20_786 and plan.got["test_gen"] == 2_830


def test_ultrachat_pools_disjoint_and_sft_inside_gen() -> None:
    plan = assign_ultrachat_200k(pa.array(_ids(5000)), n_input=ULTRACHAT_RAW_DIALOGUES // 100)
    train = set(_split(plan, "train_sft")) | set(_split(plan, "train_gen"))
    test = set(_split(plan, "test_sft")) | set(_split(plan, "test_gen"))
    assert not train & test
    # sft and gen are prefixes of the same shuffled pool
    assert _split(plan, "train_gen")[: plan.got["train_sft"]] == _split(plan, "train_sft")
    assert _split(plan, "test_gen")[: plan.got["test_sft"]] == _split(plan, "test_sft")
    assert _gen(plan, "train_gen") == _gen(plan, "test_gen") == {True}
    assert _gen(plan, "train_sft") == _gen(plan, "test_sft") == {False}


def test_ultrachat_shuffle_is_order_independent_and_seeded() -> None:
    ids = _ids(3000)
    a = assign_ultrachat_200k(pa.array(ids), n_input=ULTRACHAT_RAW_DIALOGUES // 100)
    b = assign_ultrachat_200k(pa.array(ids[::-1]), n_input=ULTRACHAT_RAW_DIALOGUES // 100)
    c = assign_ultrachat_200k(pa.array(ids), n_input=ULTRACHAT_RAW_DIALOGUES // 100, seed=7)
    assert a.assignments.equals(b.assignments)
    assert _split(a, "test_gen") != _split(c, "test_gen")
    # not the input order either
    train_gen = _split(a, "train_gen")
    members = set(train_gen)
    assert train_gen != [i for i in ids if i in members]


def test_ultrachat_small_pool_takes_what_there_is() -> None:
    plan = assign_ultrachat_200k(
        pa.array(_ids(50)),
        n_input=100,
        sizes={"train_sft": 30, "test_sft": 10, "train_gen": 45, "test_gen": 12},
    )
    assert plan.got == {"train_sft": 30, "test_sft": 10, "train_gen": 38, "test_gen": 12}
    assert plan.short == {"train_gen": 7}
    assert any("train_gen" in n for n in plan.notes)
    # scaled sizes never go to zero on a non-empty pool
    tiny = assign_ultrachat_200k(pa.array(_ids(20)), n_input=100)
    assert all(v >= 1 for v in tiny.requested.values())
    assert not set(_split(tiny, "train_gen")) & set(_split(tiny, "test_gen"))


def test_ultrachat_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="sizes"):
        assign_ultrachat_200k(pa.array(_ids(5)), n_input=5, sizes={"train_sft": 1})


def test_assignments_carry_no_text_columns() -> None:
    plan = assign_ultrachat_200k(pa.array(np.arange(100).astype(str)), n_input=1000)
    assert plan.assignments.schema == ASSIGNMENT_SCHEMA
    assert plan.assignments.column("ordinal").to_pylist()[:3] == [0, 1, 2]
