"""The service's job records, in a small sidecar DuckDB file beside the warehouse.

Why a sidecar: a job subprocess (a recipe run, a training run) holds the warehouse file
read-write while it commits, and DuckDB then lets no other process in. Job bookkeeping must
go on meanwhile, so it lives in `<warehouse>.jobs.duckdb`, which only the service process
opens, read-write, for as long as it runs. A second service on the same warehouse is refused
here, by name. Jobs survive a restart; `recover` marks those a dead service left behind.
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from warehouse.errors import BadInputError, WarehouseBusyError

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "interrupted")
FINAL = frozenset({"succeeded", "failed", "cancelled", "interrupted"})
RESTART_REASON = "cut off by a service restart"

_DDL = """CREATE TABLE IF NOT EXISTS jobs (
  job_id VARCHAR PRIMARY KEY,
  kind VARCHAR,
  args VARCHAR,
  argv VARCHAR,
  status VARCHAR,
  created_at TIMESTAMP,
  started_at TIMESTAMP,
  ended_at TIMESTAMP,
  pid INTEGER,
  exit_code INTEGER,
  log_path VARCHAR,
  result VARCHAR,
  error VARCHAR
)"""
_COLUMNS = (
    "job_id",
    "kind",
    "args",
    "argv",
    "status",
    "created_at",
    "started_at",
    "ended_at",
    "pid",
    "exit_code",
    "log_path",
    "result",
    "error",
)
_JSON = ("args", "argv", "result")
_PID_RE = re.compile(r"PID (\d+)")


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def new_job_id(now: datetime | None = None) -> str:
    """j_ + UTC timestamp + a short random hash (sortable by creation time)."""
    return f"j_{(now or _now()).strftime('%Y%m%d-%H%M%S')}_{os.urandom(3).hex()}"


@dataclass(frozen=True)
class Job:
    job_id: str
    kind: str
    args: dict[str, Any]
    argv: list[str]
    status: str
    created_at: str
    started_at: str | None
    ended_at: str | None
    pid: int | None
    exit_code: int | None
    log_path: str
    result: Any
    error: str | None

    @property
    def finished(self) -> bool:
        return self.status in FINAL

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _job(row: tuple[Any, ...]) -> Job:
    d = dict(zip(_COLUMNS, row, strict=True))
    for key in _JSON:
        d[key] = json.loads(d[key]) if d[key] is not None else None
    for key in ("created_at", "started_at", "ended_at"):
        d[key] = None if d[key] is None else str(d[key])
    d["argv"] = d["argv"] or []
    d["args"] = d["args"] or {}
    return Job(**d)


class JobStore:
    """Create, update and read job rows; one connection, held open, guarded by a lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = duckdb.connect(str(path))
        except duckdb.IOException as exc:
            pid = _PID_RE.search(str(exc))
            who = f"PID {pid.group(1)}" if pid else "another process"
            raise WarehouseBusyError(
                f"job records {path} are held by {who}: is another `curate serve` running on "
                "this warehouse? Stop it first (one service per warehouse)."
            ) from exc
        self._lock = threading.Lock()
        self._con.execute(_DDL)

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def create(
        self, kind: str, args: dict[str, Any], argv: list[str], log_path: Path, job_id: str
    ) -> Job:
        with self._lock:
            self._con.execute(
                "INSERT INTO jobs (job_id, kind, args, argv, status, created_at, log_path) "
                "VALUES (?, ?, ?, ?, 'queued', ?, ?)",
                [job_id, kind, json.dumps(args), json.dumps(argv), _now(), str(log_path)],
            )
        return self.get(job_id)

    def update(self, job_id: str, **fields: Any) -> Job:
        """Set columns; `started`/`ended` = True stamp the time; JSON columns are encoded."""
        sets: list[str] = []
        params: list[Any] = []
        for key in ("started", "ended"):
            if fields.pop(key, False):
                sets.append(f"{key}_at = ?")
                params.append(_now())
        for key, value in fields.items():
            if key not in _COLUMNS or key == "job_id":
                raise ValueError(f"no job column {key!r}")
            if key == "status" and value not in STATUSES:
                raise ValueError(f"job status {value!r}")
            sets.append(f"{key} = ?")
            params.append(json.dumps(value, default=str) if key in _JSON else value)
        if sets:
            with self._lock:
                self._con.execute(
                    f"UPDATE jobs SET {', '.join(sets)} WHERE job_id = ?", [*params, job_id]
                )
        return self.get(job_id)

    def finish_if_open(self, job_id: str, status: str, error: str | None) -> bool:
        """Move a job that is still queued or running to a final status; False if it was not."""
        with self._lock:
            row = self._con.execute(
                "UPDATE jobs SET status = ?, error = coalesce(?, error), "
                "ended_at = coalesce(ended_at, ?) "
                "WHERE job_id = ? AND status IN ('queued', 'running') RETURNING job_id",
                [status, error, _now(), job_id],
            ).fetchone()
        return row is not None

    def get(self, job_id: str) -> Job:
        with self._lock:
            row = self._con.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE job_id = ?", [job_id]
            ).fetchone()
        if row is None:
            raise BadInputError(f"no job {job_id!r}: GET /api/jobs lists them")
        return _job(row)

    def list_jobs(
        self, status: str | None = None, kind: str | None = None, limit: int = 100
    ) -> list[Job]:
        """Jobs, newest first."""
        where, params = [], []
        if status:
            if status not in STATUSES:
                raise BadInputError(f"job status {status!r}: expected one of {', '.join(STATUSES)}")
            where.append("status = ?")
            params.append(status)
        if kind:
            where.append("kind = ?")
            params.append(kind)
        sql = f"SELECT {', '.join(_COLUMNS)} FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, job_id DESC LIMIT ?"
        with self._lock:
            rows = self._con.execute(sql, [*params, max(1, int(limit))]).fetchall()
        return [_job(r) for r in rows]

    def unfinished(self) -> list[Job]:
        """Queued or running jobs, oldest first."""
        with self._lock:
            rows = self._con.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE status IN ('queued', 'running') "
                "ORDER BY created_at, job_id"
            ).fetchall()
        return [_job(r) for r in rows]

    def recover(self, reason: str = RESTART_REASON) -> list[Job]:
        """Mark jobs a previous service left queued or running as `interrupted`.

        Only one service opens this file at a time, so any such job belongs to a service that
        is gone: nobody will ever finish its row.
        """
        left = self.unfinished()
        for job in left:
            self.finish_if_open(job.job_id, "interrupted", reason)
        return [self.get(j.job_id) for j in left]
