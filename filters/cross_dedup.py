"""Cross-set dedup: rows of one table that (near-)duplicate rows of another.

Why: the same prompt can sit in two sources (an UltraFeedback instruction that is also an
UltraChat opening turn); only one copy should survive. Table A is the batch handed to
`apply`, table B the reference given to the constructor. `keep` names the side that keeps
its rows; the decisions are about the other (losing) side, with `matched` = the winning
side's row_id. `method="exact"` joins on the 128-bit hash of the normalised text;
`method="near"` joins on MinHash band keys and verifies candidates by exact shingle Jaccard.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from filters.base import MATCHED, SCORE, Filter, FilterParams, FilterResult, FilterStats
from filters.dedup_base import FIRST_USER_TURN, field_text
from filters.exact_dedup import text_hashes
from filters.minhash import MinHashFilter, pair_jaccard, shingles
from filters.scope import ROW_ID, Scope


class CrossDedupParams(FilterParams):
    threshold: float | None = 0.7
    method: Literal["exact", "near"] = "exact"
    keep: Literal["a", "b"] = "b"
    field_a: str = FIRST_USER_TURN
    field_b: str = FIRST_USER_TURN
    ngram: int = Field(5, ge=1)
    num_perm: int = Field(128, ge=2)
    seed: int = 42
    nfkc: bool = True
    batch_size: int = 20_000


def _best_match(lose: np.ndarray, win: np.ndarray, sim: np.ndarray, n: int) -> tuple[Any, ...]:
    """Per losing row: the most similar winning row (ties: the first), or -1."""
    best = np.full(n, -1, np.int64)
    best_sim = np.zeros(n)
    if len(lose):
        order = np.lexsort((win, -sim, lose))
        first = np.ones(len(order), bool)
        first[1:] = lose[order][1:] != lose[order][:-1]
        pick = order[first]
        best[lose[pick]] = win[pick]
        best_sim[lose[pick]] = sim[pick]
    return best, best_sim


class CrossDedupFilter(Filter):
    """Drops the losing side's rows that match a row of the winning side."""

    name = "cross_dedup"
    whole_column = True
    scope = Scope.DIALOGUE
    Params = CrossDedupParams
    drop_when = "above"

    def __init__(self, other: pa.Table, params: FilterParams | None = None, **kwargs: Any):
        super().__init__(params, **kwargs)
        self.other = other

    @property
    def p(self) -> CrossDedupParams:
        assert isinstance(self.params, CrossDedupParams)
        return self.params

    def _exact_pairs(self, ta: pa.Array, tb: pa.Array) -> tuple[np.ndarray, ...]:
        a1, a2 = text_hashes(ta, self.p.nfkc)
        b1, b2 = text_hashes(tb, self.p.nfkc)
        da = pl.DataFrame({"ia": np.arange(len(ta)), "h1": a1, "h2": a2})
        db = pl.DataFrame({"ib": np.arange(len(tb)), "h1": b1, "h2": b2})
        joined = da.join(db, on=["h1", "h2"])
        ia, ib = joined["ia"].to_numpy(), joined["ib"].to_numpy()
        return ia, ib, np.ones(len(ia))

    def _near_pairs(self, ta: pa.Array, tb: pa.Array) -> tuple[np.ndarray, ...]:
        p = self.p
        mh = MinHashFilter(
            threshold=p.threshold, num_perm=p.num_perm, ngram=p.ngram, seed=p.seed,
            nfkc=p.nfkc, batch_size=p.batch_size,
        )  # fmt: skip
        ka, va = mh.band_keys(ta)
        kb, vb = mh.band_keys(tb)
        ia_valid, ib_valid = np.flatnonzero(va), np.flatnonzero(vb)
        parts = []
        for band in range(ka.shape[1]):
            da = pl.DataFrame({"ia": ia_valid, "k": ka[ia_valid, band]})
            db = pl.DataFrame({"ib": ib_valid, "k": kb[ib_valid, band]})
            parts.append(da.join(db, on="k").select(["ia", "ib"]))
        cand = pl.concat(parts).unique() if parts else pl.DataFrame({"ia": [], "ib": []})
        ia, ib = cand["ia"].to_numpy().astype(np.int64), cand["ib"].to_numpy().astype(np.int64)
        if len(ia) == 0:
            return ia, ib, np.zeros(0)
        ra, inv_a = np.unique(ia, return_inverse=True)
        rb, inv_b = np.unique(ib, return_inverse=True)
        sub = pa.concat_arrays(
            [pc.take(t, pa.array(r)).cast(pa.large_string()) for t, r in ((ta, ra), (tb, rb))]
        )
        sh, counts = shingles(sub, p.ngram, p.nfkc)
        sim = pair_jaccard(sh, counts, inv_a, len(ra) + inv_b)
        ok = sim >= (p.threshold if p.threshold is not None else 0.7)
        return ia[ok], ib[ok], sim[ok]

    def score(self, rows: pa.Table) -> pa.Table:
        """Scores for the losing side's rows (A = `rows` when keep="b", else B)."""
        p = self.p
        ta, tb = field_text(rows, p.field_a), field_text(self.other, p.field_b)
        pairs = self._exact_pairs if p.method == "exact" else self._near_pairs
        ia, ib, sim = pairs(ta, tb)
        lose_tab, win_tab = (rows, self.other) if p.keep == "b" else (self.other, rows)
        lose, win = (ia, ib) if p.keep == "b" else (ib, ia)
        best, best_sim = _best_match(lose, win, sim, lose_tab.num_rows)
        hit = best >= 0
        win_ids = pc.take(win_tab.column(ROW_ID), pa.array(np.where(hit, best, 0)))
        none = pa.nulls(lose_tab.num_rows, pa.string())
        matched = pc.if_else(pa.array(hit), win_ids, none) if win_tab.num_rows else none
        return pa.table(
            {
                ROW_ID: lose_tab.column(ROW_ID),
                SCORE: pa.array(best_sim, pa.float64()),
                MATCHED: matched,
                "representative": matched,
                "similarity": pa.array(best_sim, pa.float64(), mask=~hit),
            }
        )

    def apply(self, batch: pa.Table, threshold: float | None = None) -> FilterResult:
        """Decisions for the losing side (see the module docstring), not always `batch`."""
        t0 = time.perf_counter()
        scores = self.score(batch)
        decisions = self._decision_table(self.decide(scores, threshold))
        n = decisions.num_rows
        n_kept = int(pc.sum(decisions.column("keep").cast(pa.int64())).as_py() or 0)
        stats = FilterStats(n, n_kept, n - n_kept, time.perf_counter() - t0)
        return FilterResult(scores, decisions, stats)
