"""A recipe's inputs as one SQL relation, plus the lineage its snapshot id hashes.

Every input becomes rows with a `row_id`, an `ord` (a stable input order, so "keep the
first" dedup and the splits are deterministic) and the columns filters read: `messages`
(for UltraFeedback prompts, the prompt as one user turn), `prompt`, `prompt_id`, and the
table's other columns. Lineage pins exactly which ingest batches (or snapshot ids) were read,
so a new ingest gives a new snapshot id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb

from curation.recipe import Recipe, SnapshotInput, TableInput
from curation.sqltext import lit, lit_list
from warehouse import snapshots
from warehouse.errors import BadInputError

_TABLE_SELECT = {
    "dialogues": (
        "SELECT dialogue_id AS row_id, * EXCLUDE (dialogue_id, split, source_file), "
        "split AS source_split FROM {src}"
    ),
    "uf_prompts": (
        "SELECT prompt_uid AS row_id, * EXCLUDE (prompt_uid, source_file), "
        "[struct_pack(role := 'user', content := prompt)] AS messages FROM {src}"
    ),
    "preference_pairs": (
        "SELECT pair_id AS row_id, * EXCLUDE (pair_id, split, source_file), "
        "split AS source_split FROM {src}"
    ),
}

SNAPSHOT_COLUMNS = (
    "row_id, prompt, prompt_id, messages, chosen, rejected, score_chosen, score_rejected, "
    "chosen_model, rejected_model, source"
)
DEFAULT_SNAPSHOT_SPLITS = {
    "sft": ["train_sft", "test_sft"],
    "preferences": ["train_prefs", "test_prefs"],
}


ORD_STRIDE = 10_000_000_000


def _list_literal(values: list[str]) -> str:
    return "[" + ", ".join(lit(v) for v in values) + "]"


@dataclass
class InputPlan:
    """The input relation (`sql`, with `ord`), its lineage, and its kind."""

    sql: str
    lineage: list[dict[str, Any]]
    table: str  # dialogues | uf_prompts | preference_pairs | snapshot
    n_rows: int = 0
    excluded_snapshots: dict[str, str] = field(default_factory=dict)


def _table_part(con: duckdb.DuckDBPyConnection, spec: TableInput) -> tuple[str, dict[str, Any]]:
    where = f"({spec.where})" if spec.where else "true"
    try:
        batches = [
            str(r[0])
            for r in con.execute(
                f"SELECT DISTINCT batch_id FROM {spec.table} WHERE {where} ORDER BY 1"
            ).fetchall()
        ]
    except duckdb.Error as exc:
        raise BadInputError(f"input {spec.table} where {spec.where!r}: {exc}") from exc
    if not batches:
        raise BadInputError(
            f"input {spec.table}"
            + (f" where {spec.where!r}" if spec.where else "")
            + " has no rows: ingest data first (`curate ingest PATH`)"
        )
    # the predicate applies to the table's own columns; batches pin what was read
    src = f"(SELECT * FROM {spec.table} WHERE batch_id IN {lit_list(batches)} AND {where}) t"
    base = _TABLE_SELECT[spec.table].format(src=src)
    # ord without a sort: (rank of the batch id, line); scans keep insertion order, so
    # readers rarely need to reorder (see WorkingSet.read_all)
    sql = (
        "SELECT * EXCLUDE (batch_id, source_line), "
        f"list_position({_list_literal(batches)}, batch_id)::BIGINT * {ORD_STRIDE} "
        f"+ source_line AS ord FROM ({base})"
    )
    return sql, {"table": spec.table, "where": spec.where, "batches": batches}


def _snapshot_part(
    con: duckdb.DuckDBPyConnection, spec: SnapshotInput, kind: str
) -> tuple[str, dict[str, Any]]:
    sid = snapshots.resolve(con, spec.snapshot)
    row = snapshots.catalog_row(con, sid)
    if row["kind"] != kind:
        raise BadInputError(
            f"input snapshot {spec.snapshot} ({sid}) holds {row['kind']} rows; this recipe "
            f"makes {kind}"
        )
    splits = spec.splits or DEFAULT_SNAPSHOT_SPLITS[kind]
    missing = [s for s in splits if s not in (row["splits"] or {})]
    if missing:
        raise BadInputError(f"input snapshot {sid} has no split {', '.join(missing)}")
    sql = (
        f"SELECT {SNAPSHOT_COLUMNS}, split AS source_split, "
        f"list_position({_list_literal(sorted(splits))}, split)::BIGINT * {ORD_STRIDE} "
        "+ ordinal AS ord FROM snapshot_rows "
        f"WHERE snapshot_id = {lit(sid)} AND split IN {lit_list(splits)}"
    )
    return sql, {"snapshot": sid, "splits": splits}


def plan_inputs(con: duckdb.DuckDBPyConnection, recipe: Recipe) -> InputPlan:
    parts, lineage = [], []
    table = "snapshot"
    for spec in recipe.inputs:
        if isinstance(spec, TableInput):
            sql, lin = _table_part(con, spec)
            table = spec.table
        else:
            sql, lin = _snapshot_part(con, spec, recipe.output)
        parts.append(sql)
        lineage.append(lin)
    if len(parts) == 1:
        sql = parts[0]
    else:  # several inputs: one order over all of them, input by input
        numbered = [
            f"SELECT * REPLACE ({i + 1} * {ORD_STRIDE} * 1000 + ord AS ord) FROM ({p})"
            for i, p in enumerate(parts)
        ]
        sql = " UNION ALL BY NAME ".join(numbered)
    count = con.execute(f"SELECT count(*) FROM ({sql})").fetchone()
    return InputPlan(sql=sql, lineage=lineage, table=table, n_rows=int(count[0]) if count else 0)
