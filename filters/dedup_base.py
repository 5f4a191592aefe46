"""What exact, near and cross-set dedup share: the text a dedup reads, clusters to decisions.

A dedup filter sees the whole table at once (duplicates can be anywhere in it). It turns a
configurable *field* into one string per row, groups rows into clusters, keeps one
representative per cluster (the first row, or the longest text) and scores every other member
with its similarity to the representative. Representatives and singletons score 0, so the
usual `decide` (drop when score >= threshold) and `sweep` work on stored scores.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from filters.base import MATCHED, SCORE, FilterParams
from filters.scope import ROW_ID, explode_turns

WHOLE_DIALOGUE = "whole_dialogue"
FIRST_USER_TURN = "first_user_turn"
ASSISTANT_TURNS = "assistant_turns"


class DedupParams(FilterParams):
    """`field`: whole_dialogue | first_user_turn | assistant_turns | any string column."""

    field: str = WHOLE_DIALOGUE
    keep: Literal["first", "longest"] = "first"
    nfkc: bool = True
    batch_size: int = 20_000


def _join_turns(dialogues: pa.Table, role: str | None, with_role: bool) -> pa.Array:
    """Per row, its message contents (optionally one role's) joined by newlines."""
    turns = explode_turns(dialogues, role)
    content = pc.fill_null(turns.column("content"), "").combine_chunks()
    if with_role:
        content = pc.binary_join_element_wise(
            pc.fill_null(turns.column("role"), "").combine_chunks(), content, ": "
        )
    # rebuild per-row lists from the exploded (row-ordered) turns: counts -> offsets
    ids = dialogues.column(ROW_ID).combine_chunks()
    parent = pc.index_in(turns.column(ROW_ID), ids).to_numpy(zero_copy_only=False)
    counts = np.bincount(parent, minlength=len(ids)) if len(parent) else np.zeros(len(ids), int)
    offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int32)
    lists = pa.ListArray.from_arrays(pa.array(offsets), content)
    return pc.binary_join(lists, "\n")


def field_text(table: pa.Table, field: str) -> pa.Array:
    """One string per row (never NULL) for the dedup `field`."""
    if field == WHOLE_DIALOGUE:
        out = _join_turns(table, None, with_role=True)
    elif field == ASSISTANT_TURNS:
        out = _join_turns(table, "assistant", with_role=False)
    elif field == FIRST_USER_TURN and field not in table.column_names:
        from filters.scope import first_user_turn

        firsts = first_user_turn(table)
        pos = pc.index_in(table.column(ROW_ID), firsts.column(ROW_ID))
        out = pc.take(firsts.column("content"), pos)
    elif field in table.column_names:
        out = table.column(field)
    else:
        raise KeyError(f"dedup field {field!r} is neither a known field nor a column")
    out = pc.fill_null(out, "")
    return out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out


def components(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Connected-component label per row for the undirected edges (i, j)."""
    if n == 0:
        return np.zeros(0, np.int64)
    graph = coo_matrix((np.ones(len(i), np.int8), (i, j)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64)


def representatives(labels: np.ndarray, lengths: np.ndarray, keep: str) -> np.ndarray:
    """Index of each row's cluster representative: the first row, or the longest (ties: first)."""
    key = -lengths.astype(np.int64) if keep == "longest" else np.zeros(len(labels), np.int64)
    return representatives_by(labels, key)


def representatives_by(labels: np.ndarray, priority: np.ndarray) -> np.ndarray:
    """Index of each row's cluster representative: lowest `priority`, ties to the earlier row."""
    n = len(labels)
    order = np.lexsort((np.arange(n), priority, labels))  # by label, then priority, then position
    first = np.ones(n, bool)
    first[1:] = labels[order][1:] != labels[order][:-1]
    rep_of_label = np.empty(labels.max() + 1 if n else 0, np.int64)
    rep_of_label[labels[order][first]] = order[first]
    return rep_of_label[labels]


def cluster_scores(
    row_ids: pa.Array, labels: np.ndarray, rep: np.ndarray, similarity: np.ndarray
) -> pa.Table:
    """Score table: members of clusters of size > 1 get cluster_id, representative and
    similarity; non-representatives score their similarity (and `matched` = representative)."""
    n = len(labels)
    sizes = np.bincount(labels, minlength=labels.max() + 1 if n else 0)[labels] if n else labels
    in_cluster = sizes > 1
    is_rep = rep == np.arange(n)
    dup = in_cluster & ~is_rep
    # cluster_id: the representative's position (stable, meaningful), NULL for singletons
    cluster_id = pa.array(rep, pa.int64(), mask=~in_cluster)
    rep_ids = pc.take(row_ids, pa.array(rep))
    sim = np.where(is_rep, 1.0, similarity)
    return pa.table(
        {
            ROW_ID: row_ids,
            SCORE: pa.array(np.where(dup, similarity, 0.0), pa.float64()),
            MATCHED: pc.if_else(pa.array(dup), rep_ids, pa.nulls(n, pa.string())),
            "cluster_id": cluster_id,
            "representative": pc.if_else(pa.array(in_cluster), rep_ids, pa.nulls(n, pa.string())),
            "similarity": pa.array(sim, pa.float64(), mask=~in_cluster),
        }
    )


def cluster_sizes(scores: pa.Table) -> pa.Table:
    """How many clusters of each size (size >= 2), from a dedup score table."""
    ids = scores.column("cluster_id").drop_null()
    if len(ids) == 0:
        return pa.table({"size": pa.array([], pa.int64()), "n_clusters": pa.array([], pa.int64())})
    per = pa.table({"c": ids}).group_by("c").aggregate([("c", "count")])
    hist = per.group_by("c_count").aggregate([("c", "count")])
    hist = hist.rename_columns(["size", "n_clusters"]).sort_by("size")
    return hist.select(["size", "n_clusters"])
