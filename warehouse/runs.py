"""Training run records (`training_runs`): which model folder came from which snapshot.

A run is written as `running` before the model loads and finished as completed, failed or
interrupted. A run killed outright (SIGKILL, power loss) cannot finish its own row, so the next
run on the same output folder marks such rows `interrupted` before it starts. Connections are
opened only for the few milliseconds each write takes, so a long training run never holds the
warehouse.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb

from warehouse.errors import BadInputError
from warehouse.store import Warehouse

STATUSES = ("running", "completed", "failed", "interrupted")
_COLUMNS = (
    "run_id",
    "snapshot_id",
    "trainer",
    "train_split",
    "eval_split",
    "model",
    "config",
    "code_version",
    "started_at",
    "ended_at",
    "status",
    "metrics",
    "output_dir",
    "error",
)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def new_run_id(now: datetime | None = None) -> str:
    """r_ + UTC timestamp + a short random hash (sortable by start time)."""
    stamp = (now or _now()).strftime("%Y%m%d-%H%M%S")
    salt = hashlib.sha256(os.urandom(16)).hexdigest()[:6]
    return f"r_{stamp}_{salt}"


@dataclass(frozen=True)
class RunStart:
    """What is known about a run when it starts."""

    snapshot_id: str
    trainer: str
    train_split: str
    eval_split: str | None
    model: str
    config: dict[str, Any]
    code_version: str
    output_dir: str


def start_run(wh: Warehouse, start: RunStart, run_id: str | None = None) -> str:
    """Insert a `running` row; returns its run id."""
    rid = run_id or new_run_id()
    with wh.write() as con:
        con.execute(
            "INSERT INTO training_runs (run_id, snapshot_id, trainer, train_split, eval_split, "
            "model, config, code_version, started_at, status, output_dir) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', ?)",
            [
                rid,
                start.snapshot_id,
                start.trainer,
                start.train_split,
                start.eval_split,
                start.model,
                json.dumps(start.config, sort_keys=True, default=str),
                start.code_version,
                _now(),
                start.output_dir,
            ],
        )
    return rid


def finish_run(
    wh: Warehouse,
    run_id: str,
    status: str,
    metrics: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    """Set the end time, final status, metrics and error of a run."""
    if status not in STATUSES or status == "running":
        raise ValueError(f"finish_run: status {status!r} is not a final status")
    with wh.write() as con:
        con.execute(
            "UPDATE training_runs SET ended_at = ?, status = ?, metrics = ?, error = ? "
            "WHERE run_id = ?",
            [
                _now(),
                status,
                json.dumps(metrics or {}, sort_keys=True, default=str),
                error,
                run_id,
            ],
        )


def mark_interrupted(wh: Warehouse, output_dir: str, reason: str) -> list[str]:
    """Rows still `running` for this output folder were killed: mark them interrupted."""
    with wh.write() as con:
        rows = con.execute(
            "SELECT run_id FROM training_runs WHERE output_dir = ? AND status = 'running'",
            [output_dir],
        ).fetchall()
        ids = [str(r[0]) for r in rows]
        if ids:
            con.execute(
                "UPDATE training_runs SET status = 'interrupted', ended_at = coalesce(ended_at, ?), "
                "error = ? WHERE run_id IN (SELECT unnest(?::VARCHAR[]))",
                [_now(), reason, ids],
            )
    return ids


def _has_table(con: duckdb.DuckDBPyConnection) -> bool:
    """An older warehouse file opened read-only may predate the table."""
    got = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'training_runs'"
    ).fetchone()
    return bool(got and got[0])


def _row_dict(names: list[str], row: tuple[Any, ...]) -> dict[str, Any]:
    d = dict(zip(names, row, strict=True))
    for key in ("config", "metrics"):
        d[key] = json.loads(d[key]) if d.get(key) else None
    for key in ("started_at", "ended_at"):
        d[key] = None if d.get(key) is None else str(d[key])
    return d


def list_runs(
    wh: Warehouse,
    snapshot: str | None = None,
    status: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Runs, newest first; `snapshot` matches a full id or a prefix of it."""
    if status is not None and status not in STATUSES:
        raise BadInputError(f"status {status!r}: expected one of {', '.join(STATUSES)}")
    where, params = [], []
    if snapshot:
        where.append("starts_with(snapshot_id, ?)")
        params.append(snapshot)
    if status:
        where.append("status = ?")
        params.append(status)
    sql = f"SELECT {', '.join(_COLUMNS)} FROM training_runs"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY started_at DESC, run_id DESC LIMIT ?"
    with wh.read() as con:
        if not _has_table(con):
            return []
        rows = con.execute(sql, [*params, int(limit)]).fetchall()
    return [_row_dict(list(_COLUMNS), r) for r in rows]


def get_run(wh: Warehouse, run_id: str) -> dict[str, Any]:
    with wh.read() as con:
        if not _has_table(con):
            raise BadInputError(f"no training run {run_id!r}: this warehouse has no runs yet")
        row = con.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM training_runs WHERE run_id = ?", [run_id]
        ).fetchone()
    if row is None:
        raise BadInputError(f"no training run {run_id!r}: `curate runs` lists them")
    return _row_dict(list(_COLUMNS), row)
