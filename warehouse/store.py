"""Opening the warehouse file, with one writer and many readers across processes.

DuckDB lets one process hold a file read-write, and then no other process may open it at all
(not even read-only). So every process that opens the warehouse registers itself in a small
holders folder beside the file (pid, mode, command, since). When an open is refused, we wait up
to `wait_s` for the holder to finish and otherwise raise `WarehouseBusyError`, which names the
holding process and says what to do, instead of DuckDB's raw lock error.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import psutil

from warehouse import schema
from warehouse.errors import BadInputError, WarehouseBusyError

DEFAULT_FILENAME = "curation.duckdb"
ENV_VAR = "CURATE_WAREHOUSE"


def default_warehouse_path() -> Path:
    """`$CURATE_WAREHOUSE`, else ./curation.duckdb."""
    return Path(os.environ.get(ENV_VAR) or DEFAULT_FILENAME)


@dataclass(frozen=True)
class Holder:
    pid: int
    mode: str
    command: str
    since: str

    def describe(self) -> str:
        return f"PID {self.pid} ({self.mode}, since {self.since}): {self.command}"


_LOCK_RE = re.compile(r"lock", re.IGNORECASE)
_PID_RE = re.compile(r"PID (\d+)")


class Warehouse:
    """A handle on one warehouse file. Cheap to create; connections open per use."""

    def __init__(self, path: Path | str | None = None, wait_s: float = 10.0) -> None:
        self.path = Path(path) if path is not None else default_warehouse_path()
        self.wait_s = wait_s

    # -- holders registry -------------------------------------------------------------
    @property
    def holders_dir(self) -> Path:
        return self.path.with_name(self.path.name + ".holders")

    def holders(self) -> list[Holder]:
        """Live processes that have the file open (stale entries are pruned)."""
        out: list[Holder] = []
        if not self.holders_dir.is_dir():
            return out
        for f in sorted(self.holders_dir.glob("*.json")):
            try:
                data = json.loads(f.read_text())
                holder = Holder(int(data["pid"]), data["mode"], data["command"], data["since"])
            except (OSError, ValueError, KeyError):
                continue
            if holder.pid != os.getpid() and not psutil.pid_exists(holder.pid):
                with contextlib.suppress(OSError):
                    f.unlink()
                continue
            out.append(holder)
        return out

    @contextlib.contextmanager
    def _registered(self, mode: str) -> Iterator[None]:
        entry = self.holders_dir / f"{os.getpid()}-{mode}-{time.monotonic_ns()}.json"
        info = {
            "pid": os.getpid(),
            "mode": mode,
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300],
            "since": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        }
        try:
            self.holders_dir.mkdir(parents=True, exist_ok=True)
            entry.write_text(json.dumps(info))
        except OSError:  # a read-only folder: still usable, only the busy message is vaguer
            pass
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                entry.unlink()

    # -- connections --------------------------------------------------------------------
    def _connect(self, read_only: bool, config: dict[str, Any]) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + max(self.wait_s, 0.0)
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=read_only, config=config)
            except duckdb.IOException as exc:
                if not _LOCK_RE.search(str(exc)):
                    raise BadInputError(f"cannot open warehouse {self.path}: {exc}") from exc
                if time.monotonic() >= deadline:
                    raise self._busy_error(read_only, str(exc)) from exc
                time.sleep(0.2)

    def _busy_error(self, read_only: bool, message: str) -> WarehouseBusyError:
        holders = [h for h in self.holders() if h.pid != os.getpid()]
        pid_match = _PID_RE.search(message)
        if holders:
            who = "; ".join(h.describe() for h in holders)
        elif pid_match:
            who = f"PID {pid_match.group(1)} (not a curate command, or an older one)"
        else:
            who = "another process"
        want = "read" if read_only else "write"
        return WarehouseBusyError(
            f"warehouse {self.path} is in use by {who}, so this command cannot {want} it "
            f"(DuckDB allows one writer and then no other process). Wait for that command to "
            f"finish, or run this one with --wait SECONDS to wait for it (waited "
            f"{self.wait_s:g}s)."
        )

    @contextlib.contextmanager
    def write(self, memory_limit: str = "512MB") -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection; creates the file and schema on first use."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._registered("write"):
            con = self._connect(
                read_only=False,
                config={"memory_limit": memory_limit, "preserve_insertion_order": True},
            )
            try:
                ensure_schema(con)
                yield con
            finally:
                con.close()

    @contextlib.contextmanager
    def read(self, config: dict[str, Any] | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection; several processes may read at once."""
        if not self.path.exists():
            raise BadInputError(
                f"warehouse {self.path} does not exist yet: run `curate ingest PATH` first "
                f"(or point --warehouse / ${ENV_VAR} at an existing file)"
            )
        if self._schema_outdated():
            # a file made by an older curate: add the new tables (additive DDL) first, so
            # read-only commands see every table this version knows
            with contextlib.suppress(WarehouseBusyError, OSError), self.write():
                pass
        with self._registered("read"):
            con = self._connect(read_only=True, config=dict(config or {}))
            try:
                yield con
            finally:
                con.close()

    def _schema_outdated(self) -> bool:
        try:
            con = duckdb.connect(str(self.path), read_only=True)
        except duckdb.Error:
            return False  # busy or unreadable: the real open reports it
        try:
            row = con.execute("SELECT value FROM warehouse_meta WHERE key = 'ddl_hash'").fetchone()
        except duckdb.Error:
            return False
        finally:
            con.close()
        return row is not None and row[0] != ddl_hash()


def ddl_hash() -> str:
    return hashlib.sha256("\n;\n".join(schema.all_ddl()).encode()).hexdigest()[:16]


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create missing tables and views; record the schema version.

    The DDL is skipped when the file already carries the same DDL hash, so opening an
    existing warehouse for writing costs one small query.
    """
    ddl = schema.all_ddl()
    current = ddl_hash()
    has_meta = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'warehouse_meta'"
    ).fetchone()
    if has_meta and has_meta[0]:
        meta = dict(con.execute("SELECT key, value FROM warehouse_meta").fetchall())
        if meta.get("schema_version") not in (None, schema.SCHEMA_VERSION):
            raise BadInputError(
                f"warehouse schema version {meta['schema_version']} is not "
                f"{schema.SCHEMA_VERSION}; this version of curate cannot use it"
            )
        if meta.get("ddl_hash") == current:
            return
    for stmt in ddl:
        con.execute(stmt)
    con.execute(
        "INSERT OR REPLACE INTO warehouse_meta VALUES ('schema_version', ?), ('ddl_hash', ?)",
        [schema.SCHEMA_VERSION, current],
    )
    con.execute(
        "INSERT INTO warehouse_meta SELECT 'created_at', ? "
        "WHERE NOT EXISTS (SELECT 1 FROM warehouse_meta WHERE key = 'created_at')",
        [datetime.now(UTC).isoformat(timespec="seconds")],
    )
