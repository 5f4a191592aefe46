"""What a run or a stored snapshot reports to a person: the funnel, the overlap of drops
between steps, and sample drops with their reasons. Plain rows, printed by the CLI and the
pages alike."""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa

from curation.runner import RunResult, StepOutcome
from warehouse import snapshots


def _funnel_row(o: StepOutcome | dict[str, Any]) -> dict[str, Any]:
    d = o.catalog_row() if isinstance(o, StepOutcome) else o
    return {
        "#": d["step_index"],
        "step": d["step_name"],
        "kind": d["step_kind"],
        "in": d["n_in"],
        "out": d["n_out"],
        "dropped": d["n_dropped"],
        "changed": d["n_changed"] or "",
        "alone": "" if d["n_would_drop"] is None else d["n_would_drop"],
        "only this": "" if d["n_exclusive"] is None else d["n_exclusive"],
        "s": round(float(d["seconds"] or 0.0), 2),
        "peak MiB": round(float(d["peak_rss_mb"] or 0.0)),
        "cache": "hit" if d["cached"] else "",
        "note": d["note"] or "",
    }


def funnel_rows(result: RunResult) -> list[dict[str, Any]]:
    return [_funnel_row(o) for o in result.steps]


def stored_funnel_rows(con: duckdb.DuckDBPyConnection, snapshot_id: str) -> list[dict[str, Any]]:
    return [_funnel_row(s) for s in snapshots.steps_of(con, snapshot_id)]


def overlap_matrix(overlap: pa.Table | None) -> list[dict[str, Any]]:
    """One row per step: how many of its drops each other step of its stage would also make
    (the diagonal is the step alone)."""
    if overlap is None or overlap.num_rows == 0:
        return []
    rows: dict[str, dict[str, Any]] = {}
    for a, b, n in zip(
        overlap.column("step_a").to_pylist(),
        overlap.column("step_b").to_pylist(),
        overlap.column("n_rows").to_pylist(),
        strict=True,
    ):
        rows.setdefault(a, {"step": a})[b] = n
    # only steps that drop anything are worth a row
    return [r for r in rows.values() if r.get(r["step"], 0)]


def stored_overlap(con: duckdb.DuckDBPyConnection, snapshot_id: str) -> pa.Table:
    return con.execute(
        "SELECT step_a, step_b, n_rows FROM drop_overlap WHERE snapshot_id = ?", [snapshot_id]
    ).to_arrow_table()


def sample_rows(result: RunResult) -> list[dict[str, Any]]:
    out = []
    for o in result.steps:
        for s in o.samples:
            out.append(
                {
                    "step": o.name,
                    "row_id": s["row_id"],
                    "reason": s["reason"],
                    "prompt": s.get("prompt", ""),
                }
            )
    return out


def stored_samples(
    con: duckdb.DuckDBPyConnection, snapshot_id: str, per_step: int = 3
) -> list[dict[str, Any]]:
    cur = con.execute(
        """SELECT step_name AS step, row_id, reason FROM (
             SELECT *, row_number() OVER (PARTITION BY step_index ORDER BY md5(row_id)) AS k
             FROM drop_ledger WHERE snapshot_id = ?) WHERE k <= ? ORDER BY step_index, k""",
        [snapshot_id, per_step],
    )
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def result_dict(result: RunResult) -> dict[str, Any]:
    """The JSON form of a run (`curate run --json`)."""
    return {
        "snapshot_id": result.snapshot_id,
        "recipe": result.recipe.name,
        "dry_run": result.dry_run,
        "committed": result.committed,
        "existed": result.existed,
        "n_input": result.n_input,
        "splits": result.splits,
        "wall_s": round(result.wall_s, 2),
        "steps": [o.catalog_row() for o in result.steps],
        "overlap": overlap_matrix(result.overlap),
        "samples": sample_rows(result),
    }
