"""Exact benchmark-question matches: drop a row whose prompt *is* a benchmark question.

This is the TruthfulQA clean-up H4 applied to ultrafeedback_binarized (recipe doc §4.2): any
instruction equal to a TruthfulQA question is removed, whatever its source subset. Equality is
taken after light normalisation: surrounding whitespace stripped and inner runs of whitespace
(Unicode spaces included) collapsed to one space; `casefold=True` also lower-cases both sides
(Arrow's Unicode lower-casing, not Python's full case folding). A paraphrase does not match;
the n-gram/embedding `decontam` filter is the one for near matches.

`column` names the text field of the rows (default "prompt", as in uf_prompts and
preference_pairs); "first_user_turn" works on dialogues, taken from the messages when the
batch has no such column. Score is 1.0 on a match, else 0.0; `matched` names the item as
"<benchmark>:<item_id>" (the first item, when several benchmark items normalise equal).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from filters.base import MATCHED, SCORE, Filter, FilterParams
from filters.benchmarks import load_benchmarks
from filters.scope import CONTENT, ROW_ID, Scope


class ExactMatchParams(FilterParams):
    threshold: float | None = 1.0
    column: str = "prompt"
    casefold: bool = False
    benchmarks: list[str] = Field(default_factory=lambda: ["truthfulqa"])


def normalise_text(
    text: pa.Array | pa.ChunkedArray, casefold: bool = False
) -> pa.Array | pa.ChunkedArray:
    """Whitespace runs to one space, ends stripped, optionally lower-cased."""
    out = pc.replace_substring_regex(text, r"[\s\p{Z}]+", " ")
    out = pc.utf8_trim_whitespace(out)
    return pc.utf8_lower(out) if casefold else out


class ExactMatchFilter(Filter):
    """Score 1.0 when the row's text equals a benchmark question after normalisation; such
    rows are dropped (threshold 1.0, drop_when "above")."""

    name = "exact_match"
    scope = Scope.COLUMN
    Params = ExactMatchParams
    drop_when = "above"
    aggregate = "max"

    def __init__(
        self,
        params: FilterParams | None = None,
        benchmarks: pa.Table | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(params, **kwargs)
        if self.p.column == "first_user_turn":
            self.scope = Scope.FIRST_USER_TURN  # type: ignore[misc]
        else:
            self.column = self.p.column  # type: ignore[misc]
        items = benchmarks if benchmarks is not None else load_benchmarks(self.p.benchmarks)
        keys = normalise_text(items.column("text"), self.p.casefold)
        labels = pc.binary_join_element_wise(
            pc.cast(items.column("benchmark"), pa.string()),
            pc.cast(items.column("item_id"), pa.string()),
            ":",
        )
        # one label per distinct normalised question: that of the first item having it
        keys = keys.combine_chunks() if isinstance(keys, pa.ChunkedArray) else keys
        self._keys = pc.unique(keys)
        self._labels = pc.take(labels, pc.index_in(self._keys, value_set=keys))

    @property
    def p(self) -> ExactMatchParams:
        assert isinstance(self.params, ExactMatchParams)
        return self.params

    def score(self, rows: pa.Table) -> pa.Table:
        text = normalise_text(pc.cast(rows.column(CONTENT), pa.string()), self.p.casefold)
        pos = pc.index_in(text, value_set=self._keys)
        hit = pc.is_valid(pos)
        return pa.table(
            {
                ROW_ID: rows.column(ROW_ID),
                SCORE: pc.cast(hit, pa.float64()),
                MATCHED: pc.take(self._labels, pos),
            }
        )


__all__ = ["ExactMatchFilter", "ExactMatchParams", "normalise_text"]
