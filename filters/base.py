"""The filter contract: score rows, then decide keep/drop from the scores.

Scoring is separate from deciding (as in NeMo Curator): `score` computes one number per row
(or per turn) with no thresholds involved, and `decide` turns scores into keep/drop with a
reason. Stored scores therefore make dry runs and threshold sweeps free.

The base class does the rest: it takes the rows of the filter's scope out of a dialogue
batch, aggregates per-turn scores to one decision per dialogue, counts, times, and emits the
decision records (the drop ledger) in one Arrow schema that every filter shares.
"""

from __future__ import annotations

import hashlib
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict

from filters.scope import ROW_ID, TURN_INDEX, Scope, rows_for

SCORE = "score"
MATCHED = "matched"

# Optional columns a score table may carry besides row_id, turn_index and score.
DETAIL_COLUMNS: dict[str, pa.DataType] = {
    MATCHED: pa.string(),
    "cluster_id": pa.int64(),
    "representative": pa.string(),
    "similarity": pa.float64(),
}

DECISION_SCHEMA = pa.schema(
    [
        (ROW_ID, pa.string()),
        ("filter", pa.string()),
        ("params_hash", pa.string()),
        (SCORE, pa.float64()),
        ("keep", pa.bool_()),
        ("reason", pa.string()),
        (TURN_INDEX, pa.int32()),
        *DETAIL_COLUMNS.items(),
    ]
)


class FilterParams(BaseModel):
    """Typed parameters; `threshold` is what `decide` compares scores with."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    threshold: float | None = None


@dataclass
class FilterStats:
    n_in: int = 0
    n_kept: int = 0
    n_dropped: int = 0
    seconds: float = 0.0

    def add(self, other: FilterStats) -> None:
        self.n_in += other.n_in
        self.n_kept += other.n_kept
        self.n_dropped += other.n_dropped
        self.seconds += other.seconds


@dataclass
class FilterResult:
    """Scores (per scope row) and decisions (one per input row) of one batch."""

    scores: pa.Table
    decisions: pa.Table
    stats: FilterStats = field(default_factory=FilterStats)

    @property
    def keep_mask(self) -> pa.Array:
        return self.decisions.column("keep").combine_chunks()

    def dropped(self) -> pa.Table:
        return self.decisions.filter(pc.invert(self.decisions.column("keep")))


class Filter(ABC):
    """A named, parameterised scorer with a keep/drop rule.

    Subclasses set `name`, `scope`, `Params`, and implement `score`. `drop_when` says which
    side of the threshold drops: "above" (score >= threshold drops, e.g. a persona match
    count) or "below" (score < threshold drops, e.g. a minimum length).
    """

    name: ClassVar[str]
    scope: ClassVar[Scope] = Scope.DIALOGUE
    Params: ClassVar[type[FilterParams]] = FilterParams
    drop_when: ClassVar[Literal["above", "below"]] = "above"
    # How per-turn scores become one score per dialogue.
    aggregate: ClassVar[Literal["max", "min", "sum"]] = "max"
    column: ClassVar[str | None] = None
    # True for filters whose scores depend on the other rows (dedup): the runner gives them
    # every alive row at once instead of batches.
    whole_column: ClassVar[bool] = False

    def __init__(self, params: FilterParams | None = None, **kwargs: Any) -> None:
        self.params = params if params is not None else self.Params(**kwargs)

    # -- identity ------------------------------------------------------------------------
    @property
    def params_hash(self) -> str:
        """Stable across runs: the filter name and its parameters, canonical JSON."""
        payload = json.dumps(
            {"filter": self.name, "params": self.params.model_dump(mode="json")},
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params!r})"

    # -- the two halves ------------------------------------------------------------------
    @abstractmethod
    def score(self, rows: pa.Table) -> pa.Table:
        """Scores for the rows of this filter's scope: a table with row_id (and turn_index
        for turn scopes), `score` (float64), and optionally the DETAIL_COLUMNS."""

    def decide(self, scores: pa.Table, threshold: float | None = None) -> pa.Table:
        """keep/drop per row from (aggregated) scores; `threshold` overrides the params."""
        t = self.params.threshold if threshold is None else threshold
        score = scores.column(SCORE)
        if t is None:  # no rule: score only (a transform, or a dry run)
            keep = pa.array(np.ones(scores.num_rows, dtype=bool))
            reasons = pa.nulls(scores.num_rows, pa.string())
            return scores.append_column("keep", keep).append_column("reason", reasons)
        elif self.drop_when == "above":
            keep = pc.fill_null(pc.less(score, t), True)
        else:
            keep = pc.fill_null(pc.greater_equal(score, t), True)
        reasons = self.reasons(scores, keep, t)
        return scores.append_column("keep", keep).append_column("reason", reasons)

    def reasons(self, scores: pa.Table, keep: pa.Array, threshold: float | None) -> pa.Array:
        """Why each dropped row was dropped (NULL for kept rows), built in columns."""
        op = ">=" if self.drop_when == "above" else "<"
        n = scores.num_rows
        score_text = pc.cast(scores.column(SCORE), pa.string())
        text = pc.binary_join_element_wise(
            pa.array([f"{self.name}: score "] * n, pa.string()),
            score_text,
            pa.array([f" {op} {threshold:g}"] * n, pa.string()),
            "",
        )
        if MATCHED in scores.column_names:
            matched = scores.column(MATCHED)
            with_match = pc.binary_join_element_wise(
                text,
                pa.array([" (matched "] * n, pa.string()),
                pc.cast(matched, pa.string()),
                pa.array([")"] * n, pa.string()),
                "",
            )
            text = pc.if_else(pc.is_null(matched), text, with_match)
        return pc.if_else(keep, pa.nulls(n, pa.string()), text)

    # -- running over dialogues ----------------------------------------------------------
    def aggregate_scores(self, scores: pa.Table, row_ids: pa.Array) -> pa.Table:
        """One score per input row: per-turn scores folded with `aggregate`; rows with no
        scored turn get score 0 (nothing matched)."""
        if TURN_INDEX not in scores.column_names:
            return scores
        order = {"max": "descending", "min": "ascending", "sum": "descending"}[self.aggregate]
        if self.aggregate == "sum":
            summed = scores.group_by(ROW_ID).aggregate([(SCORE, "sum")])
            best = pa.table({ROW_ID: summed[ROW_ID], SCORE: summed[f"{SCORE}_sum"]})
        else:
            ranked = scores.sort_by([(ROW_ID, "ascending"), (SCORE, order)])
            ids = ranked.column(ROW_ID).combine_chunks()
            if len(ids):
                first = np.concatenate(
                    ([True], pc.not_equal(ids[1:], ids[:-1]).to_numpy(zero_copy_only=False))
                )
                best = ranked.filter(pa.array(first))
            else:
                best = ranked
        # left-join onto every input row so dialogues without scored turns are present
        base = pa.table({ROW_ID: row_ids})
        joined = base.join(best, ROW_ID, join_type="left outer")
        score = pc.fill_null(joined.column(SCORE), 0.0)
        joined = joined.set_column(joined.schema.get_field_index(SCORE), SCORE, score)
        # restore input order
        pos = pc.index_in(row_ids, joined.column(ROW_ID))
        return joined.take(pos)

    def apply(self, batch: pa.Table, threshold: float | None = None) -> FilterResult:
        """Score the batch (one row per dialogue or completion) and decide each row."""
        t0 = time.perf_counter()
        rows = rows_for(batch, self.scope, self.column)
        scores = self.score(rows)
        decisions = self.decisions_from_scores(scores, batch.column(ROW_ID), threshold)
        n_kept = int(pc.sum(decisions.column("keep").cast(pa.int64())).as_py() or 0)
        stats = FilterStats(
            n_in=batch.num_rows,
            n_kept=n_kept,
            n_dropped=batch.num_rows - n_kept,
            seconds=time.perf_counter() - t0,
        )
        return FilterResult(scores, decisions, stats)

    def decisions_from_scores(
        self,
        scores: pa.Table,
        row_ids: pa.Array | pa.ChunkedArray,
        threshold: float | None = None,
    ) -> pa.Table:
        """Decision records (DECISION_SCHEMA, one per input row) from scope-level scores;
        used by `apply`, and by callers that already hold scores (transforms, caches)."""
        if isinstance(row_ids, pa.ChunkedArray):
            row_ids = row_ids.combine_chunks()
        per_row = self.aggregate_scores(scores, row_ids)
        return self._decision_table(self.decide(per_row, threshold))

    def apply_batches(self, batches: Iterable[pa.Table]) -> tuple[pa.Table, FilterStats]:
        """Decisions over many batches, concatenated, with summed stats."""
        parts, total = [], FilterStats()
        for b in batches:
            res = self.apply(b)
            parts.append(res.decisions)
            total.add(res.stats)
        table = pa.concat_tables(parts) if parts else DECISION_SCHEMA.empty_table()
        return table, total

    def sweep(self, scores: pa.Table, values: Iterable[float]) -> list[tuple[float, int, int]]:
        """(threshold, kept, dropped) for each value, from stored per-row scores."""
        out = []
        for v in values:
            keep = self.decide(scores, v).column("keep")
            kept = int(pc.sum(keep.cast(pa.int64())).as_py() or 0)
            out.append((float(v), kept, scores.num_rows - kept))
        return out

    def _decision_table(self, decided: pa.Table) -> pa.Table:
        n = decided.num_rows
        cols: dict[str, pa.Array | pa.ChunkedArray] = {
            ROW_ID: decided.column(ROW_ID),
            "filter": pa.array([self.name] * n, pa.string()),
            "params_hash": pa.array([self.params_hash] * n, pa.string()),
            SCORE: decided.column(SCORE).cast(pa.float64()),
            "keep": decided.column("keep"),
            "reason": decided.column("reason"),
        }
        for name, dtype in [(TURN_INDEX, pa.int32()), *DETAIL_COLUMNS.items()]:
            if name in decided.column_names:
                cols[name] = decided.column(name).cast(dtype)
            else:
                cols[name] = pa.nulls(n, dtype)
        return pa.table(cols, schema=DECISION_SCHEMA)


def score_table(row_ids: pa.Array | pa.ChunkedArray, scores: Any, **details: Any) -> pa.Table:
    """Build a score table from aligned arrays (helper for filter implementations)."""
    cols: dict[str, Any] = {ROW_ID: row_ids, SCORE: pa.array(scores, pa.float64())}
    for k, v in details.items():
        if v is not None:
            cols[k] = v
    return pa.table(cols)
