"""Split policies: which row goes to which published split, as a small assignment table.

A policy returns a `SplitPlan` whose `assignments` table has one row per (split, row):
``split`` VARCHAR, ``ordinal`` BIGINT (position inside the split), ``row_id`` VARCHAR and
``gen`` BOOLEAN. No text travels through here, so assigning 1.4M UltraChat rows is cheap;
``gen=True`` tells the materialiser to cut that row's messages so they end with a user turn.
A row can appear in several splits (train_sft and train_gen share rows).

* `assign_h4_prefs` reproduces ultrafeedback_binarized's splits (recipe doc §4.2): the index
  selection of ``datasets.Dataset.train_test_split(test_size=2000, seed=42, shuffle=True)``,
  then the 2000 test rows split again with ``train_test_split(0.5, seed=42, shuffle=True)``;
  test_prefs = both halves (the second split's "train" half first), test_sft = that "train"
  half, train_prefs = train_sft = the train part, and the gen splits are the sft splits with
  gen=True. The row order inside each split is the one `datasets` produces.
* `assign_ultrachat_200k` sizes splits like ultrachat_200k (recipe doc §2.3). **The derivation
  of the gen splits is our inference:** the card says what the gen splits are for, not how they
  were built. We shuffle the pool by a seeded hash of row_id, take the test pool from the front
  and the train pool from the rest, and cut sft and gen as prefixes of each pool, so sft rows
  are also gen rows and no prompt crosses train/test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ASSIGNMENT_SCHEMA = pa.schema(
    [
        ("split", pa.string()),
        ("ordinal", pa.int64()),
        ("row_id", pa.string()),
        ("gen", pa.bool_()),
    ]
)

# ultrafeedback_binarized (zephyr-7b-beta era): 61,966 train + 2,000 test rows were split.
H4_PREFS_ROWS = 63_966
H4_TEST_SIZE = 2_000

# Raw UltraChat size used to scale ultrachat_200k's split sizes. The recipe doc (§1.2) gives
# no official exact count (README 1.57M, Zephyr paper 1.47M, card 1.4M) and asks us to count
# at ingest; the only exact figure it lists is 1,468,346 (a third-party parquet re-host), which
# we use here. Callers pass the count they ingested as `n_input`, so this only sets the ratio.
ULTRACHAT_RAW_DIALOGUES = 1_468_346

# Published ultrachat_200k split sizes (card, recipe doc §2.3).
ULTRACHAT_200K_SIZES: dict[str, int] = {
    "train_sft": 207_865,
    "test_sft": 23_110,
    "train_gen": 256_032,
    "test_gen": 28_304,
}


@dataclass
class SplitPlan:
    """Assignments plus the split sizes asked for and obtained (they differ when the pool
    was too small); `notes` says what was scaled or cut short."""

    assignments: pa.Table
    requested: dict[str, int]
    got: dict[str, int]
    notes: list[str] = field(default_factory=list)

    @property
    def short(self) -> dict[str, int]:
        """Splits that got fewer rows than requested, with the shortfall."""
        return {
            k: v - self.got.get(k, 0) for k, v in self.requested.items() if self.got.get(k, 0) < v
        }


def _ids(row_ids: pa.Array | pa.ChunkedArray) -> pa.Array:
    ids = row_ids.combine_chunks() if isinstance(row_ids, pa.ChunkedArray) else row_ids
    ids = pc.cast(ids, pa.string())
    if ids.null_count:
        raise ValueError("split: row_ids contain NULL")
    if len(ids) and pc.count_distinct(ids).as_py() != len(ids):
        raise ValueError("split: row_ids are not unique")
    return ids


def _build(parts: list[tuple[str, pa.Array, bool]]) -> pa.Table:
    tables = [
        pa.table(
            {
                "split": pa.array([name] * len(ids), pa.string()),
                "ordinal": pa.array(np.arange(len(ids), dtype=np.int64)),
                "row_id": ids,
                "gen": pa.array(np.full(len(ids), gen)),
            },
            schema=ASSIGNMENT_SCHEMA,
        )
        for name, ids, gen in parts
    ]
    return pa.concat_tables(tables) if tables else ASSIGNMENT_SCHEMA.empty_table()


def _h4_test_size(n: int, test_size: int) -> tuple[int, str | None]:
    """The test size used for n rows: `test_size` itself when n >= 2 * test_size, else scaled
    by n / 63,966 (the row count H4 split), rounded to an even number, at least 2, and
    leaving at least one train row."""
    if n >= 2 * test_size:
        return test_size, None
    scaled = round(n * test_size / H4_PREFS_ROWS)
    scaled = max(2, scaled - scaled % 2)
    cap = n - 1 if n > 1 else 0
    scaled = min(scaled, cap - cap % 2)
    return (
        scaled,
        f"test_size scaled to {scaled} for {n} rows (round(n * {test_size} / {H4_PREFS_ROWS}), even)",
    )


def assign_h4_prefs(
    row_ids: pa.Array | pa.ChunkedArray, test_size: int = H4_TEST_SIZE, seed: int = 42
) -> SplitPlan:
    """ultrafeedback_binarized's six splits over rows in input order (positions matter, as
    in `datasets`): train/test by numpy's PCG64 permutation, then the test part halved.

    With fewer than 2 * test_size rows the test size is scaled to round(n * test_size /
    63,966), made even and at least 2 (and below n), so small runs keep H4's proportions.
    """
    if test_size < 2:
        raise ValueError(f"test_size must be >= 2, got {test_size}")
    ids = _ids(row_ids)
    n = len(ids)
    n_test, note = _h4_test_size(n, test_size)
    notes = [note] if note else []
    if n_test > 0:
        # datasets: rng = default_rng(seed); perm = rng.permutation(n); test = perm[:n_test]
        perm = np.random.default_rng(seed).permutation(n)
        test_idx, train_idx = perm[:n_test], perm[n_test:]
        # the test part split again with test_size=0.5: its own "test" gets ceil(half)
        inner = np.random.default_rng(seed).permutation(n_test)
        inner_test = math.ceil(0.5 * n_test)
        half_b, half_a = test_idx[inner[:inner_test]], test_idx[inner[inner_test:]]
    else:
        train_idx = np.arange(n)
        half_a = half_b = np.arange(0)
    train = ids.take(pa.array(train_idx, pa.int64()))
    test_sft = ids.take(pa.array(half_a, pa.int64()))
    test_prefs = ids.take(pa.array(np.concatenate([half_a, half_b]), pa.int64()))
    parts = [
        ("train_prefs", train, False),
        ("train_sft", train, False),
        ("train_gen", train, True),
        ("test_prefs", test_prefs, False),
        ("test_sft", test_sft, False),
        ("test_gen", test_sft, True),
    ]
    n_train_req = max(n - n_test, 0)
    requested = {
        "train_prefs": n_train_req,
        "train_sft": n_train_req,
        "train_gen": n_train_req,
        "test_prefs": n_test,
        "test_sft": n_test // 2,
        "test_gen": n_test // 2,
    }
    got = {name: len(part) for name, part, _ in parts}
    return SplitPlan(_build(parts), requested, got, notes)


def _shuffled(ids: pa.Array, seed: int) -> pa.Array:
    """Row ids ordered by md5(seed:row_id) (row_id breaks the rare tie): the same order for
    the same set of ids, whatever order they arrive in."""
    con = duckdb.connect()
    try:
        con.register("ids", pa.table({"row_id": ids}))
        out = con.execute(
            "SELECT row_id FROM ids "
            "ORDER BY md5_number_upper(CAST($seed AS VARCHAR) || ':' || row_id), row_id",
            {"seed": seed},
        ).to_arrow_table()
    finally:
        con.close()
    return out.column("row_id").combine_chunks()


def assign_ultrachat_200k(
    row_ids: pa.Array | pa.ChunkedArray,
    n_input: int,
    seed: int = 42,
    sizes: dict[str, int] | None = None,
) -> SplitPlan:
    """ultrachat_200k's four splits over the pool `row_ids` (rows that survived filtering).

    Sizes default to the published ones scaled by n_input / ULTRACHAT_RAW_DIALOGUES (n_input =
    raw dialogues ingested), rounded, at least 1 when the pool is not empty. The test pool is
    the first max(test_sft, test_gen) rows of the seeded shuffle, the train pool the rest;
    each split is a prefix of its pool. A pool too small gives fewer rows (see `got`).
    """
    ids = _ids(row_ids)
    n = len(ids)
    if sizes is None:
        if n_input <= 0:
            raise ValueError(f"n_input must be positive, got {n_input}")
        ratio = n_input / ULTRACHAT_RAW_DIALOGUES
        requested = {k: round(v * ratio) for k, v in ULTRACHAT_200K_SIZES.items()}
        if n:
            requested = {k: max(1, v) for k, v in requested.items()}
        notes = (
            [f"sizes scaled by {n_input} / {ULTRACHAT_RAW_DIALOGUES}"]
            if n_input != ULTRACHAT_RAW_DIALOGUES
            else []
        )
    else:
        if set(sizes) != set(ULTRACHAT_200K_SIZES) or any(v < 0 for v in sizes.values()):
            raise ValueError(
                f"sizes needs non-negative {', '.join(ULTRACHAT_200K_SIZES)}; got {sizes}"
            )
        requested = {k: int(sizes[k]) for k in ULTRACHAT_200K_SIZES}
        notes = []
    order = _shuffled(ids, seed)
    n_test_pool = min(max(requested["test_sft"], requested["test_gen"]), n)
    test_pool, train_pool = order.slice(0, n_test_pool), order.slice(n_test_pool)
    parts = [
        ("train_sft", train_pool.slice(0, requested["train_sft"]), False),
        ("test_sft", test_pool.slice(0, requested["test_sft"]), False),
        ("train_gen", train_pool.slice(0, requested["train_gen"]), True),
        ("test_gen", test_pool.slice(0, requested["test_gen"]), True),
    ]
    got = {name: len(part) for name, part, _ in parts}
    plan = SplitPlan(_build(parts), requested, got, notes)
    for name, missing in plan.short.items():
        plan.notes.append(
            f"{name}: pool too small, got {got[name]} of {requested[name]} ({missing} short)"
        )
    return plan


__all__ = [
    "ASSIGNMENT_SCHEMA",
    "H4_PREFS_ROWS",
    "H4_TEST_SIZE",
    "ULTRACHAT_200K_SIZES",
    "ULTRACHAT_RAW_DIALOGUES",
    "SplitPlan",
    "assign_h4_prefs",
    "assign_ultrachat_200k",
]
