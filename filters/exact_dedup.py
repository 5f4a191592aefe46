"""Exact dedup: rows whose normalised field text is identical form one cluster.

Each batch of normalised text is hashed twice with polars' (multi-threaded, vectorised)
64-bit string hash under two seeds; rows group on the 128-bit pair, so a false merge needs a
128-bit collision. Only the hashes of the whole table are held, never all the text.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from filters.base import Filter
from filters.dedup_base import DedupParams, cluster_scores, field_text, representatives
from filters.normalize import normalize
from filters.scope import ROW_ID, Scope


class ExactDedupParams(DedupParams):
    threshold: float | None = 1.0


def text_hashes(text: pa.Array, nfkc: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Two independent 64-bit hashes of each normalised string."""
    s = pl.Series(normalize(text, nfkc))
    return s.hash(seed=0x9E3779B9).to_numpy(), s.hash(seed=0x85EBCA6B).to_numpy()


def group_labels(h1: np.ndarray, h2: np.ndarray) -> np.ndarray:
    """Dense group label per row of equal (h1, h2)."""
    n = len(h1)
    order = np.lexsort((h2, h1))
    new = np.ones(n, bool)
    new[1:] = (h1[order][1:] != h1[order][:-1]) | (h2[order][1:] != h2[order][:-1])
    labels = np.empty(n, np.int64)
    labels[order] = np.cumsum(new) - 1
    return labels


class ExactDedupFilter(Filter):
    """Drops every row whose normalised field equals an earlier-kept representative's."""

    name = "exact_dedup"
    whole_column = True
    scope = Scope.DIALOGUE
    Params = ExactDedupParams
    drop_when = "above"

    def score(self, rows: pa.Table) -> pa.Table:
        p = self.params
        assert isinstance(p, ExactDedupParams)
        h1s, h2s, lens = [], [], []
        for start in range(0, rows.num_rows, p.batch_size):
            text = field_text(rows.slice(start, p.batch_size), p.field)
            a, b = text_hashes(text, p.nfkc)
            h1s.append(a)
            h2s.append(b)
            lens.append(pc.utf8_length(text).to_numpy(zero_copy_only=False))
        h1 = np.concatenate(h1s) if h1s else np.zeros(0, np.uint64)
        h2 = np.concatenate(h2s) if h2s else np.zeros(0, np.uint64)
        length = np.concatenate(lens) if lens else np.zeros(0, np.int64)
        labels = group_labels(h1, h2)
        rep = representatives(labels, length, p.keep)
        row_ids = rows.column(ROW_ID).combine_chunks()
        return cluster_scores(row_ids, labels, rep, np.ones(len(labels)))
