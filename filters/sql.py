"""A filter written as a SQL predicate over the rows of its scope: rows where it holds stay.

The predicate runs in an in-memory DuckDB over the Arrow batch (no file is touched), e.g.
`SqlFilter(name="enough_turns", predicate="n_turns >= 4")` on dialogues, or
`SqlFilter(name="no_urls", predicate="NOT regexp_matches(content, 'https?://')",
scope=Scope.ASSISTANT_TURNS)` per turn.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from filters.base import SCORE, Filter, FilterParams
from filters.scope import ROW_ID, TURN_INDEX, Scope


class SqlParams(FilterParams):
    threshold: float | None = 1.0
    predicate: str


class SqlFilter(Filter):
    """Score 1 where the predicate holds, 0 where it does not (or is NULL); keeps score 1."""

    name = "sql"
    Params = SqlParams
    drop_when = "below"
    aggregate = "min"  # per turn: a dialogue stays only if every turn satisfies it

    def __init__(
        self,
        params: SqlParams | None = None,
        *,
        name: str | None = None,
        scope: Scope = Scope.DIALOGUE,
        **kwargs: Any,
    ) -> None:
        super().__init__(params, **kwargs)
        self.name = name or "sql"  # type: ignore[misc]
        self.scope = scope  # type: ignore[misc]

    def reasons(self, scores: pa.Table, keep: pa.Array, threshold: float | None) -> pa.Array:
        """The predicate itself is the reason ("score 0 < 1" says nothing)."""
        assert isinstance(self.params, SqlParams)
        text = f"{self.name}: predicate not satisfied: {self.params.predicate}"
        n = scores.num_rows
        return pc.if_else(keep, pa.nulls(n, pa.string()), pa.array([text] * n, pa.string()))

    def score(self, rows: pa.Table) -> pa.Table:
        assert isinstance(self.params, SqlParams)
        keys = [ROW_ID] + ([TURN_INDEX] if self.scope.per_turn else [])
        con = duckdb.connect()
        try:
            out = con.execute(
                f"SELECT {', '.join(keys)}, "
                f"coalesce(({self.params.predicate})::BOOLEAN, false)::DOUBLE AS {SCORE} "
                "FROM rows"
            ).to_arrow_table()
        except duckdb.Error as exc:
            raise ValueError(f"filter {self.name}: predicate failed: {exc}") from exc
        finally:
            con.close()
        return out
