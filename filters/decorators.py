"""`@scorer`: a filter from one short function that maps rows to numbers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import create_model

from filters.base import SCORE, Filter, FilterParams
from filters.scope import ROW_ID, TURN_INDEX, Scope

ScoreFn = Callable[[pa.Table], Any]


def scorer(
    name: str,
    scope: Scope = Scope.DIALOGUE,
    *,
    threshold: float | None = None,
    drop_when: Literal["above", "below"] = "above",
    aggregate: Literal["max", "min", "sum"] = "max",
    column: str | None = None,
) -> Callable[[ScoreFn], type[Filter]]:
    """Turn `fn(rows) -> numbers` (an Arrow array or anything pa.array accepts, one value per
    row of the scope) into a Filter class; `threshold` is its default rule.

    >>> @scorer("long_prompt", Scope.FIRST_USER_TURN, threshold=2000)
    ... def prompt_chars(rows):
    ...     return pc.utf8_length(rows["content"])
    """

    def wrap(fn: ScoreFn) -> type[Filter]:
        params = create_model(
            f"{fn.__name__}_params", __base__=FilterParams, threshold=(float | None, threshold)
        )

        def score(self: Filter, rows: pa.Table) -> pa.Table:
            values = fn(rows)
            if not isinstance(values, (pa.Array, pa.ChunkedArray)):
                values = pa.array(values)
            cols: dict[str, Any] = {ROW_ID: rows.column(ROW_ID)}
            if scope.per_turn:
                cols[TURN_INDEX] = rows.column(TURN_INDEX)
            cols[SCORE] = pc.cast(values, pa.float64())
            return pa.table(cols)

        attrs = {
            "name": name,
            "scope": scope,
            "Params": params,
            "drop_when": drop_when,
            "aggregate": aggregate,
            "column": column,
            "score": score,
            "__doc__": fn.__doc__,
            "__module__": fn.__module__,
        }
        return type(fn.__name__, (Filter,), attrs)

    return wrap
