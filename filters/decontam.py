"""Decontamination: drop dialogues whose user turns contain benchmark prompts.

Why: training on MT-Bench / AlpacaEval / TruthfulQA prompts inflates the scores measured on
them. Two signals, one score per user turn, the larger of:

* n-gram containment: the share of a benchmark item's distinct word n-grams (normalised: lower
  case, punctuation dropped) found in the turn. Catches verbatim copies, case and punctuation
  changes, and prompts embedded in longer text. Items shorter than `ngram` words use all
  their words as one gram (items under `min_words` words are left to the embeddings).
* embedding cosine to the nearest benchmark item (when an embedder is given). Catches word
  substitutions and paraphrases that break n-grams.

Default threshold 0.8 and n = 8: see bench/results/semantic.md (verbatim and lightly edited
plants vs clean synthetic turns). `matched` names the item ("mt_bench:81:turn1"),
`similarity` is the cosine to it (NULL without an embedder).
"""

from __future__ import annotations

from typing import Any, Literal

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from filters.base import MATCHED, SCORE, Filter, FilterParams
from filters.benchmarks import BUILTIN_BENCHMARKS, load_benchmarks
from filters.embed import Embedder
from filters.scope import CONTENT, ROW_ID, TURN_INDEX, Scope

_P = np.uint64(1_000_003)


class DecontamParams(FilterParams):
    threshold: float | None = 0.8
    ngram: int = Field(default=8, ge=1)
    min_words: int = Field(default=4, ge=1)
    turns: Literal["user_turns", "first_user_turn"] = "user_turns"
    benchmarks: list[str] = Field(default_factory=lambda: list(BUILTIN_BENCHMARKS))
    use_embeddings: bool = True


def normalise_words(text: pa.Array | pa.ChunkedArray) -> pa.ListArray:
    """Lower-case words with punctuation removed, as a list per text."""
    low = pc.utf8_lower(pc.fill_null(text, ""))
    clean = pc.replace_substring_regex(low, r"[^\p{L}\p{N}]+", " ")
    lists = pc.utf8_split_whitespace(clean)
    if isinstance(lists, pa.ChunkedArray):
        lists = lists.combine_chunks()
    flat, parents = pc.list_flatten(lists), pc.list_parent_indices(lists)
    nonempty = pc.not_equal(flat, "")  # split leaves "" at the ends and for empty text
    counts = np.bincount(parents.filter(nonempty).to_numpy(), minlength=len(lists))
    offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), flat.filter(nonempty))


def _grams(
    ids: np.ndarray, offsets: np.ndarray, rows: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Polynomial hashes of the word n-grams of the given rows of a list array: (hash, row).

    `ids` are the flat word ids, `offsets` the list offsets; loops over n, not over rows.
    """
    starts, ends = offsets[rows], offsets[rows + 1]
    count = np.maximum(ends - starts - n + 1, 0)
    owner = np.repeat(rows, count)
    first = np.repeat(starts - np.concatenate(([0], np.cumsum(count)[:-1])), count)
    pos = np.arange(int(count.sum())) + first
    h = np.zeros(len(pos), np.uint64)
    for k in range(n):
        h = h * _P + (ids[pos + k].astype(np.uint64) + np.uint64(1))
    return h, owner


def _unique_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(a) == 0:
        return a, b
    u = np.unique(np.stack([a.astype(np.uint64), b.astype(np.uint64)], axis=1), axis=0)
    return u[:, 0].astype(np.int64), u[:, 1]


class DecontamFilter(Filter):
    """Score per user turn = max(n-gram containment, embedding cosine) over benchmark items;
    a dialogue is dropped when any scored turn reaches `threshold`."""

    name = "decontam"
    scope = Scope.USER_TURNS
    Params = DecontamParams
    drop_when = "above"
    aggregate = "max"

    def __init__(
        self,
        embedder: Embedder | None = None,
        benchmarks: pa.Table | None = None,
        params: FilterParams | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(params, **kwargs)
        self.embedder = embedder
        self.items = benchmarks if benchmarks is not None else load_benchmarks(self.p.benchmarks)
        self._labels = pc.binary_join_element_wise(
            self.items.column("benchmark"), self.items.column("item_id"), ":"
        ).combine_chunks()
        self._item_vecs: np.ndarray | None = None

    @property
    def p(self) -> DecontamParams:
        assert isinstance(self.params, DecontamParams)
        return self.params

    # -- signals ----------------------------------------------------------------------------
    def ngram_containment(self, text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """Best containment per text and the item index giving it (-1 where none)."""
        n_t, n_i = len(text), self.items.num_rows
        best, best_item = np.zeros(n_t), np.full(n_t, -1, np.int64)
        words = normalise_words(
            pa.concat_arrays(
                [
                    text.cast(pa.string()),
                    self.items.column("text").combine_chunks().cast(pa.string()),
                ]
            )
        )
        ids = pc.dictionary_encode(words.flatten()).indices.to_numpy().astype(np.int64)
        offsets = words.offsets.to_numpy().astype(np.int64)
        item_len = np.diff(offsets)[n_t:]
        gram_len = np.minimum(item_len, self.p.ngram)
        gram_len[item_len < self.p.min_words] = 0
        for g in np.unique(gram_len[gram_len > 0]):
            items = np.flatnonzero(gram_len == g)
            bh, bown = _grams(ids, offsets, items + n_t, int(g))
            bown, bh = _unique_pairs(bown - n_t, bh)
            total = np.bincount(bown, minlength=n_i)
            th, town = _grams(ids, offsets, np.arange(n_t), int(g))
            hit = np.isin(th, bh)
            if not hit.any():
                continue
            tt = pa.table({"t": town[hit], "h": th[hit]})
            bt = pa.table({"i": bown, "h": bh})
            joined = tt.join(bt, "h").group_by(["t", "i"]).aggregate([("h", "count_distinct")])
            t_idx = joined.column("t").to_numpy()
            i_idx = joined.column("i").to_numpy()
            share = joined.column("h_count_distinct").to_numpy() / total[i_idx]
            order = np.lexsort((i_idx, -share, t_idx))  # ties: the earlier item
            first = np.ones(len(order), bool)
            first[1:] = t_idx[order][1:] != t_idx[order][:-1]
            sel = order[first]
            cur, cur_item = best[t_idx[sel]], best_item[t_idx[sel]]
            better = (share[sel] > cur) | ((share[sel] == cur) & (i_idx[sel] < cur_item))
            best[t_idx[sel][better]] = share[sel][better]
            best_item[t_idx[sel][better]] = i_idx[sel][better]
        return best, best_item

    def _vectors(self) -> np.ndarray:
        assert self.embedder is not None
        if self._item_vecs is None:
            self._item_vecs = np.ascontiguousarray(
                self.embedder.embed(self.items.column("text")), np.float32
            )
        return self._item_vecs

    def embedding_similarity(self, text: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Best cosine per text, its item, and the turn vectors (to score other items)."""
        assert self.embedder is not None
        x = np.ascontiguousarray(self.embedder.embed(text), np.float32)
        index = faiss.IndexFlatIP(x.shape[1])
        index.add(self._vectors())
        sims, idx = index.search(x, 1)
        return sims[:, 0].astype(np.float64), idx[:, 0].astype(np.int64), x

    # -- the filter -------------------------------------------------------------------------
    def score(self, rows: pa.Table) -> pa.Table:
        if self.p.turns == "first_user_turn" and rows.num_rows:
            codes = pc.dictionary_encode(rows.column(ROW_ID)).combine_chunks().indices
            _, first = np.unique(codes.to_numpy(), return_index=True)
            rows = rows.take(pa.array(np.sort(first)))
        text = pc.fill_null(rows.column(CONTENT), "").combine_chunks()
        score, item = self.ngram_containment(text)
        similarity: pa.Array = pa.nulls(len(text), pa.float64())
        if self.embedder is not None and self.p.use_embeddings and len(text):
            cos, cos_item, x = self.embedding_similarity(text)
            use_cos = cos > score
            score = np.where(use_cos, cos, score)
            item = np.where(use_cos, cos_item, item)
            safe = np.maximum(item, 0)
            sim = np.einsum("ij,ij->i", x, self._vectors()[safe]).astype(np.float64)
            similarity = pa.array(sim, pa.float64())
        has = item >= 0
        matched = pc.take(self._labels, pa.array(np.where(has, item, 0)))
        matched = pc.if_else(pa.array(has), matched, pa.scalar(None, pa.string()))
        return pa.table(
            {
                ROW_ID: rows.column(ROW_ID),
                TURN_INDEX: rows.column(TURN_INDEX),
                SCORE: pa.array(score, pa.float64()),
                MATCHED: matched,
                "similarity": similarity,
            }
        )


__all__ = ["DecontamFilter", "DecontamParams", "normalise_words"]
