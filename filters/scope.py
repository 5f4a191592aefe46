"""What a filter reads: whole dialogues, one role's turns, the first user turn, a completion.

The runner hands filters one Arrow table of dialogues (`row_id`, `messages`, ...); `rows_for`
turns it into the rows of a scope with Arrow compute only (no Python loop over rows):
turn scopes get one row per message with `row_id`, `turn_index`, `content`.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ROW_ID = "row_id"
TURN_INDEX = "turn_index"
CONTENT = "content"


class Scope(StrEnum):
    DIALOGUE = "dialogue"
    ASSISTANT_TURNS = "assistant_turns"
    USER_TURNS = "user_turns"
    ALL_TURNS = "all_turns"
    FIRST_USER_TURN = "first_user_turn"
    COMPLETION = "completion"
    COLUMN = "column"

    @property
    def per_turn(self) -> bool:
        return self in (Scope.ASSISTANT_TURNS, Scope.USER_TURNS, Scope.ALL_TURNS)


_ROLE = {Scope.ASSISTANT_TURNS: "assistant", Scope.USER_TURNS: "user"}


def explode_turns(dialogues: pa.Table, role: str | None = None) -> pa.Table:
    """One row per message: row_id, turn_index (0-based), role, content."""
    messages = dialogues.column("messages").combine_chunks()
    if isinstance(messages, pa.ChunkedArray):  # pragma: no cover - combine_chunks of one chunk
        messages = messages.chunk(0)
    parents = pc.list_parent_indices(messages)
    flat = pc.list_flatten(messages)
    offsets = messages.offsets.to_numpy()
    parent_np = parents.to_numpy()
    turn_index = np.arange(len(parent_np), dtype=np.int32) - offsets[parent_np].astype(np.int32)
    out = pa.table(
        {
            ROW_ID: pc.take(dialogues.column(ROW_ID), parents),
            TURN_INDEX: pa.array(turn_index, pa.int32()),
            "role": pc.struct_field(flat, "role"),
            CONTENT: pc.struct_field(flat, "content"),
        }
    )
    if role is not None:
        out = out.filter(pc.equal(out.column("role"), role))
    return out


def first_user_turn(dialogues: pa.Table) -> pa.Table:
    """row_id and the content of each dialogue's first user message."""
    if "first_user_turn" in dialogues.column_names:
        return pa.table(
            {ROW_ID: dialogues.column(ROW_ID), CONTENT: dialogues.column("first_user_turn")}
        )
    turns = explode_turns(dialogues, "user")
    # the first user message of a dialogue is its first row in the exploded user turns
    _, first = np.unique(
        pc.dictionary_encode(turns.column(ROW_ID)).combine_chunks().indices.to_numpy(),
        return_index=True,
    )
    picked = turns.take(pa.array(np.sort(first)))
    return picked.select([ROW_ID, CONTENT])


def rows_for(dialogues: pa.Table, scope: Scope, column: str | None = None) -> pa.Table:
    """The rows a filter of `scope` reads, taken from a table of dialogues (or completions)."""
    if scope is Scope.DIALOGUE or scope is Scope.COMPLETION:
        return dialogues
    if scope is Scope.COLUMN:
        if not column or column not in dialogues.column_names:
            raise KeyError(f"scope column needs an existing column, got {column!r}")
        return pa.table({ROW_ID: dialogues.column(ROW_ID), CONTENT: dialogues.column(column)})
    if scope is Scope.FIRST_USER_TURN:
        return first_user_turn(dialogues)
    return explode_turns(dialogues, _ROLE.get(scope))
