"""Semantic (embedding) deduplication, SemDeDup-style.

Why: exact and MinHash dedup miss paraphrases and re-worded copies; cosine similarity of
sentence embeddings catches them. Pipeline: embed the chosen field (first user turn by
default) → find pairs with cosine >= `threshold` → connected components → keep one
representative per component by `keep` policy, drop the members whose similarity to it
is >= threshold (a member reached only through a chain, below the threshold to the kept
representative, is not a copy of anything kept and stays).

Pair search: exact flat inner product below `flat_max_rows` (50k); above it, faiss k-means
into ~sqrt(N) clusters and exact search inside each cluster (SemDeDup), or HNSW k-NN. The
k-means path can miss a pair split across two clusters (rare at 0.95: near copies sit next
to each other). Default threshold 0.95: on synthetic near copies (bench/results/semantic.md)
it keeps precision >= 0.95 at recall >= 0.9.
"""

from __future__ import annotations

from typing import Any, Literal

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from filters.base import Filter, FilterParams
from filters.dedup_base import (
    WHOLE_DIALOGUE,
    cluster_scores,
    components,
    representatives_by,
)
from filters.dedup_base import field_text as dedup_field_text
from filters.embed import Embedder
from filters.scope import ROW_ID, Scope


class SemanticDedupParams(FilterParams):
    threshold: float | None = 0.95
    # a dedup field (filters.dedup_base.field_text): first_user_turn, whole_dialogue (alias
    # "dialogue"), assistant_turns, or a string column
    field: str = "first_user_turn"
    max_chars: int = 2000  # text is cut to this many characters before embedding
    keep: Literal["longest", "highest_score", "first"] = "longest"
    score_column: str | None = None  # for keep="highest_score"
    index: Literal["auto", "flat", "kmeans", "hnsw"] = "auto"
    flat_max_rows: int = 50_000
    n_clusters: int | None = None  # k-means; default ~ 2 * sqrt(N)
    hnsw_k: int = Field(default=32, ge=2)
    seed: int = 0


def field_text(table: pa.Table, field: str, max_chars: int) -> pa.Array:
    """The text each row is compared on (the dedup fields of `filters.dedup_base`, with
    "dialogue" as an alias of "whole_dialogue"), cut to `max_chars` for the embedder."""
    text = dedup_field_text(table, WHOLE_DIALOGUE if field == "dialogue" else field)
    return pc.utf8_slice_codeunits(text, 0, max_chars)


def _pairs_flat(x: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (i, j, cos) with i < j and cos >= threshold, exact."""
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    lims, sims, ids = index.range_search(x, float(threshold))
    src = np.repeat(np.arange(len(x)), np.diff(lims).astype(np.int64))
    keep = src < ids
    return src[keep], ids[keep].astype(np.int64), sims[keep]


def _pairs_kmeans(
    x: np.ndarray, threshold: float, n_clusters: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SemDeDup: spherical k-means, then exact pairs inside each cluster."""
    k = max(1, min(n_clusters, len(x) // 39))  # faiss wants >= 39 points per centroid
    km = faiss.Kmeans(x.shape[1], k, niter=20, seed=seed, spherical=True, verbose=False)
    km.train(x)
    _, assign = km.index.search(x, 1)
    assign = assign.ravel()
    order = np.argsort(assign, kind="stable")
    bounds = np.searchsorted(assign[order], np.arange(k + 1))
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for c in range(k):  # loop over clusters, not rows
        members = order[bounds[c] : bounds[c + 1]]
        if len(members) < 2:
            continue
        i, j, s = _pairs_flat(x[members], threshold)
        parts.append((members[i], members[j], s))
    return _concat(parts)


def _pairs_hnsw(
    x: np.ndarray, threshold: float, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Approximate: each row's k nearest neighbours by HNSW, kept when cos >= threshold."""
    index = faiss.IndexHNSWFlat(x.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efSearch = max(64, 2 * k)
    index.add(x)
    sims, ids = index.search(x, min(k, len(x)))
    src = np.repeat(np.arange(len(x)), ids.shape[1])
    ids, sims = ids.ravel(), sims.ravel()
    keep = (ids >= 0) & (src != ids) & (sims >= threshold)
    i, j = np.minimum(src[keep], ids[keep]), np.maximum(src[keep], ids[keep])
    # a pair found from both ends is reported once
    _, first = np.unique(i.astype(np.int64) * len(x) + j, return_index=True)
    return i[first], j[first].astype(np.int64), sims[keep][first]


def _concat(
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    return (
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
    )


class SemanticDedupFilter(Filter):
    """Drops rows whose embedding is within `threshold` cosine of a kept representative.

    score = cosine to the representative for non-representative members, 0 for
    representatives and singletons (so `decide`/`sweep` over thresholds work as for any
    filter). Needs the whole table in one `apply` call.
    """

    name = "semantic_dedup"
    whole_column = True
    scope = Scope.DIALOGUE
    Params = SemanticDedupParams
    drop_when = "above"

    def __init__(
        self, embedder: Embedder, params: FilterParams | None = None, **kwargs: Any
    ) -> None:
        super().__init__(params, **kwargs)
        self.embedder = embedder
        self.last_pairs = 0

    @property
    def p(self) -> SemanticDedupParams:
        assert isinstance(self.params, SemanticDedupParams)
        return self.params

    def pairs(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Candidate duplicate pairs (i < j) with their cosine, by the configured index."""
        t = float(self.p.threshold if self.p.threshold is not None else 0.95)
        method = self.p.index
        if method == "auto":
            method = "flat" if len(x) < self.p.flat_max_rows else "kmeans"
        if method == "flat":
            return _pairs_flat(x, t)
        if method == "hnsw":
            return _pairs_hnsw(x, t, self.p.hnsw_k)
        k = self.p.n_clusters or max(1, int(2 * np.sqrt(len(x))))
        return _pairs_kmeans(x, t, k, self.p.seed)

    def _priority(self, rows: pa.Table, text: pa.Array) -> np.ndarray:
        """Sort key per row, lower = better representative; ties go to the earlier row."""
        n = rows.num_rows
        if self.p.keep == "first":
            return np.zeros(n)
        if self.p.keep == "longest":
            return -pc.utf8_length(text).to_numpy(zero_copy_only=False).astype(np.float64)
        col = self.p.score_column
        if not col or col not in rows.column_names:
            raise KeyError(f"semantic_dedup keep='highest_score' needs score_column, got {col!r}")
        vals = pc.fill_null(pc.cast(rows.column(col), pa.float64()), -np.inf)
        return -np.asarray(vals.to_numpy(), np.float64)

    def score(self, rows: pa.Table) -> pa.Table:
        n = rows.num_rows
        text = field_text(rows, self.p.field, self.p.max_chars)
        x = np.ascontiguousarray(self.embedder.embed(text), np.float32)
        i, j, _ = self.pairs(x) if n > 1 else _concat([])
        self.last_pairs = len(i)
        labels = components(n, i, j)
        rep = representatives_by(labels, self._priority(rows, text))
        sim = np.clip(np.einsum("ij,ij->i", x, x[rep]), -1.0, 1.0).astype(np.float64)
        return cluster_scores(rows.column(ROW_ID).combine_chunks(), labels, rep, sim)


__all__ = ["SemanticDedupFilter", "SemanticDedupParams", "field_text"]
