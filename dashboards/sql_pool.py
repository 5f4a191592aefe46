"""User SQL in worker processes, each running one sandboxed query at a time.

Why not in the service process: the sandbox opens the file with its own config and then
locks the DuckDB instance's configuration, and DuckDB shares one instance per file within a
process. A query there would refuse (or be refused by) every concurrent page read. In a
worker each query has the instance to itself; and a query that eats memory takes down a
worker, not the service. Results come back as JSON bytes, cut at a byte cap.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from warehouse.errors import CurateError, QueryTimeoutError

_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


@dataclass(frozen=True)
class SqlAnswer:
    columns: list[str]
    types: list[str]
    rows_json: bytes  # a JSON array of row arrays
    n_rows: int
    truncated: bool
    truncated_by: str | None  # "rows" or "bytes"
    seconds: float
    max_rows: int
    time_limit_s: float

    def rows(self) -> list[list[Any]]:
        """The rows as Python lists (JSON types: nested values are lists and dicts)."""
        decoded: list[list[Any]] = orjson.loads(self.rows_json)
        return decoded


def _run(
    path: str, wait_s: float, sql: str, max_rows: int, time_limit_s: float, max_bytes: int
) -> SqlAnswer:
    """In the worker: run the query through the sandbox, encode rows up to the byte cap."""
    from warehouse.sandbox import QueryLimits, run_query
    from warehouse.store import Warehouse

    res = run_query(Warehouse(Path(path), wait_s=wait_s), sql, QueryLimits(max_rows, time_limit_s))
    parts: list[bytes] = []
    size, by_bytes = 2, False
    for row in res.table.to_pylist():
        encoded = orjson.dumps(list(row.values()), default=_default, option=_OPTS)
        if size + len(encoded) + 1 > max_bytes:
            by_bytes = True
            break
        parts.append(encoded)
        size += len(encoded) + 1
    truncated = res.truncated or by_bytes
    return SqlAnswer(
        columns=list(res.table.column_names),
        types=[str(t) for t in res.table.schema.types],
        rows_json=b"[" + b",".join(parts) + b"]",
        n_rows=len(parts),
        truncated=truncated,
        truncated_by=("bytes" if by_bytes else "rows") if truncated else None,
        seconds=round(res.seconds, 4),
        max_rows=res.limits.max_rows,
        time_limit_s=res.limits.time_limit_s,
    )


def _ignore_sigint() -> None:
    """Ctrl-C reaches the whole process group: the service shuts the workers down itself."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _warm() -> bool:
    import warehouse.sandbox  # noqa: F401  (import cost paid before the first query)

    return True


class SqlPool:
    """A small process pool; rebuilt if a worker dies (out of memory, killed)."""

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _get(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                ctx = multiprocessing.get_context("spawn")  # no fork of a threaded server
                self._pool = ProcessPoolExecutor(
                    self.workers, mp_context=ctx, initializer=_ignore_sigint
                )
                for _ in range(self.workers):
                    self._pool.submit(_warm)
            return self._pool

    def run(
        self,
        path: Path,
        wait_s: float,
        sql: str,
        max_rows: int,
        time_limit_s: float,
        max_bytes: int,
    ) -> SqlAnswer:
        pool = self._get()
        started = time.monotonic()
        fut = pool.submit(_run, str(path), wait_s, sql, max_rows, time_limit_s, max_bytes)
        # the sandbox interrupts the query itself; this outer bound covers a stuck worker
        try:
            return fut.result(timeout=time_limit_s + wait_s + 30.0)
        except FutureTimeout as exc:
            fut.cancel()
            raise QueryTimeoutError(
                f"no answer after {time.monotonic() - started:.0f}s (time limit "
                f"{time_limit_s:g}s); the SQL workers are busy or stuck, retry later"
            ) from exc
        except BrokenProcessPool as exc:
            self.close()
            raise CurateError(
                "the SQL worker died while running this query (out of memory?); "
                "narrow the query and retry"
            ) from exc

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
