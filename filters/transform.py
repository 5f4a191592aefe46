"""Transforms: filters that change text and record what they changed.

A filter only scores and decides; a transform also rewrites turn contents (truecasing, say).
Every rewrite is accounted for: which rows changed, how many edits each got, and a short
before/after snippet per changed row, so a curator can audit a transform like a drop ledger.
`with_turn_contents` puts rewritten turns back into the dialogues' `messages` column without
a Python loop over rows (flatten, swap the content child, rebuild with the same offsets).
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from filters.base import Filter
from filters.scope import CONTENT, ROW_ID, TURN_INDEX, Scope, rows_for

SNIPPET_CHARS = 80

RECORD_SCHEMA = pa.schema(
    [
        (ROW_ID, pa.string()),
        (TURN_INDEX, pa.int32()),
        ("n_edits", pa.int64()),
        ("before", pa.string()),
        ("after", pa.string()),
    ]
)


@dataclass
class TransformResult:
    """New contents aligned with the input rows, and what changed.

    `records` holds one row per changed row (RECORD_SCHEMA): the snippets start a little
    before the first difference so a reviewer sees the edit, not the unchanged opening.
    """

    content: pa.Array
    changed: pa.Array
    n_edits: pa.Array
    records: pa.Table

    @property
    def n_changed(self) -> int:
        return int(pc.sum(self.changed.cast(pa.int64())).as_py() or 0)


def change_records(
    rows: pa.Table, before: pa.Array, after: pa.Array, n_edits: pa.Array
) -> pa.Table:
    """RECORD_SCHEMA rows for the changed rows only (the loop is over those few rows)."""
    changed = pc.fill_null(pc.not_equal(before, after), False)
    idx = pc.indices_nonzero(changed)
    ids = pc.take(rows.column(ROW_ID), idx).to_pylist()
    if TURN_INDEX in rows.column_names:
        turns = pc.take(rows.column(TURN_INDEX), idx).to_pylist()
    else:
        turns = [None] * len(ids)
    b_list = pc.take(before, idx).to_pylist()
    a_list = pc.take(after, idx).to_pylist()
    edits = pc.take(n_edits, idx).to_pylist()
    snips_b, snips_a = [], []
    for b, a in zip(b_list, a_list, strict=True):
        first = next((i for i, (x, y) in enumerate(zip(b, a, strict=False)) if x != y), 0)
        start = max(0, first - SNIPPET_CHARS // 4)
        snips_b.append(b[start : start + SNIPPET_CHARS])
        snips_a.append(a[start : start + SNIPPET_CHARS])
    return pa.table(
        {
            ROW_ID: pa.array(ids, pa.string()),
            TURN_INDEX: pa.array(turns, pa.int32()),
            "n_edits": pa.array(edits, pa.int64()),
            "before": pa.array(snips_b, pa.string()),
            "after": pa.array(snips_a, pa.string()),
        },
        schema=RECORD_SCHEMA,
    )


def with_turn_contents(dialogues: pa.Table, contents: pa.Array | pa.ChunkedArray) -> pa.Table:
    """The dialogues with each message's content replaced by `contents`, given in the order of
    the flattened `messages` (the order of `explode_turns(dialogues)`); roles, other struct
    fields, list offsets and null lists are kept."""
    messages = dialogues.column("messages").combine_chunks()
    if isinstance(messages, pa.ChunkedArray):  # pragma: no cover - a table of one chunk
        messages = messages.chunk(0)
    flat = pc.list_flatten(messages)
    if len(contents) != len(flat):
        raise ValueError(f"{len(contents)} contents for {len(flat)} messages")
    if isinstance(contents, pa.ChunkedArray):
        contents = contents.combine_chunks()
    fields = list(flat.type)
    children = [
        contents.cast(f.type) if f.name == CONTENT else pc.struct_field(flat, f.name)
        for f in fields
    ]
    struct = pa.StructArray.from_arrays(children, fields=fields)
    offsets = messages.offsets.to_numpy()
    offsets = offsets - offsets[0]
    nulls = messages.is_null() if messages.null_count else None
    rebuilt = pa.ListArray.from_arrays(
        pa.array(offsets.astype(np.int32)), struct, type=messages.type, mask=nulls
    )
    return dialogues.set_column(dialogues.schema.get_field_index("messages"), "messages", rebuilt)


class Transform(Filter):
    """A filter that can also rewrite turns: `transform(rows)` returns the new contents of
    the rows of its (per-turn) scope; `apply_transform(batch)` rewrites a dialogue batch.

    As a filter it scores the number of edits per turn, so a dry run counts what the
    transform would change; it drops nothing unless given a threshold.
    """

    scope = Scope.ALL_TURNS
    aggregate = "sum"

    @abstractmethod
    def transform(self, rows: pa.Table) -> TransformResult:
        """New contents for the rows (row_id, turn_index, content), with the change record."""

    def score(self, rows: pa.Table) -> pa.Table:
        res = self.transform(rows)
        return pa.table(
            {
                ROW_ID: rows.column(ROW_ID),
                TURN_INDEX: rows.column(TURN_INDEX),
                "score": pc.cast(res.n_edits, pa.float64()),
            }
        )

    def reasons(self, scores: pa.Table, keep: pa.Array, threshold: float | None) -> pa.Array:
        # base `reasons` formats the threshold, which is None for a transform's dry run
        if threshold is None:
            return pa.nulls(scores.num_rows, pa.string())
        return super().reasons(scores, keep, threshold)

    def apply_transform(self, batch: pa.Table) -> tuple[pa.Table, TransformResult]:
        """The batch with transformed turns put back into `messages`, and the change record."""
        if self.scope is not Scope.ALL_TURNS:
            raise ValueError("apply_transform needs a transform over all turns")
        rows = rows_for(batch, self.scope)
        res = self.transform(rows)
        return with_turn_contents(batch, res.content), res
