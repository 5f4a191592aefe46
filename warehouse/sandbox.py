"""Read-only, sandboxed user SQL over the warehouse.

Layers, outermost first:
1. the file is opened read-only, so no statement can change it;
2. exactly one statement, and it must be a query (SELECT / WITH / VALUES / DESCRIBE / SHOW /
   SUMMARIZE / EXPLAIN); everything else is refused by name before it runs;
3. external access is disabled and the configuration locked, so table functions that read
   files or the network (`read_csv('/etc/passwd')`, `'file.parquet'`, `glob`) fail, and no
   SET can undo it; extension autoloading/installing is off;
4. a time limit (a timer calls `interrupt()`, since duckdb 1.5 has no `max_execution_time`)
   and a row cap fetched as cap + 1 to report truncation; both can only be lowered.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from warehouse.errors import BadInputError, QueryRefusedError, QueryTimeoutError
from warehouse.store import Warehouse

MAX_ROWS_CEILING = 100_000
TIME_LIMIT_CEILING_S = 60.0
DEFAULT_MAX_ROWS = 10_000
DEFAULT_TIME_LIMIT_S = 30.0

_ALLOWED_TYPES = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}
_LEADING = re.compile(r"^\s*(?:(?:--[^\n]*\n)|(?:/\*.*?\*/)|\s)*(\w+)", re.DOTALL)
_ALLOWED_WORDS = {
    "select",
    "with",
    "from",
    "values",
    "describe",
    "show",
    "summarize",
    "explain",
    "table",
}
_REFUSAL_HINT = {
    "INSERT": "writes are not allowed: the warehouse is read-only here",
    "UPDATE": "writes are not allowed: the warehouse is read-only here",
    "DELETE": "writes are not allowed: the warehouse is read-only here",
    "CREATE": "creating objects is not allowed: the warehouse is read-only here",
    "DROP": "dropping objects is not allowed",
    "ALTER": "altering objects is not allowed",
    "COPY": "COPY reads or writes files, which user SQL may not do; use --output instead",
    "EXPORT": "EXPORT writes files, which user SQL may not do; use --output instead",
    "ATTACH": "ATTACH opens other databases, which user SQL may not do",
    "DETACH": "DETACH is not allowed",
    "INSTALL": "installing extensions is not allowed",
    "LOAD": "loading extensions is not allowed",
    "SET": "changing settings is not allowed (limits can only be lowered with the CLI options)",
    "RESET": "changing settings is not allowed",
    "PRAGMA": "PRAGMA statements are not allowed",
    "CALL": "CALL is not allowed; use SELECT * FROM table_function(...)",
    "USE": "switching databases is not allowed",
    "CHECKPOINT": "CHECKPOINT is not allowed",
    "VACUUM": "VACUUM is not allowed",
    "TRANSACTION": "transaction control is not allowed",
    "BEGIN": "transaction control is not allowed",
    "PREPARE": "PREPARE is not allowed",
    "EXECUTE": "EXECUTE is not allowed",
}


@dataclass(frozen=True)
class QueryLimits:
    max_rows: int = DEFAULT_MAX_ROWS
    time_limit_s: float = DEFAULT_TIME_LIMIT_S

    def clamp(self) -> QueryLimits:
        """Users may lower the limits, never raise them past the ceilings."""
        return QueryLimits(
            max(1, min(self.max_rows, MAX_ROWS_CEILING)),
            max(0.01, min(self.time_limit_s, TIME_LIMIT_CEILING_S)),
        )


@dataclass
class QueryResult:
    table: pa.Table
    truncated: bool
    seconds: float
    limits: QueryLimits


def check_statement(sql: str) -> None:
    """Refuse anything but one read-only query, naming what was refused and why."""
    if not sql.strip():
        raise BadInputError("empty query")
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise BadInputError(f"SQL syntax error: {exc}") from exc
    if len(statements) != 1:
        raise QueryRefusedError(f"exactly one statement per call is allowed, got {len(statements)}")
    stmt = statements[0]
    word_match = _LEADING.match(sql)
    word = word_match.group(1).upper() if word_match else ""
    if stmt.type not in _ALLOWED_TYPES or word.lower() not in _ALLOWED_WORDS:
        kind = word or stmt.type.name
        hint = _REFUSAL_HINT.get(kind) or _REFUSAL_HINT.get(
            stmt.type.name, "only queries are allowed"
        )
        raise QueryRefusedError(f"refused {kind} statement: {hint}")


def _lockdown(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


_CONFIG: dict[str, Any] = {
    "threads": 2,
    "memory_limit": "2GB",
    "autoload_known_extensions": False,
    "autoinstall_known_extensions": False,
    "allow_community_extensions": False,
}


def _explain_error(exc: duckdb.Error) -> BadInputError:
    msg = str(exc)
    if isinstance(exc, duckdb.PermissionException) or "disabled by configuration" in msg:
        return QueryRefusedError(
            "refused: user SQL may read warehouse tables and views only, not files, "
            f"the network or settings ({msg.splitlines()[0]})"
        )
    return BadInputError(f"query failed: {msg}")


def run_query(warehouse: Warehouse, sql: str, limits: QueryLimits | None = None) -> QueryResult:
    """Run one read-only query with a time limit and a row cap."""
    limits = (limits or QueryLimits()).clamp()
    check_statement(sql)
    with warehouse.read(config=_CONFIG) as con:
        _lockdown(con)
        cur = con.cursor()
        timed_out = threading.Event()

        def _interrupt() -> None:
            timed_out.set()
            cur.interrupt()

        timer = threading.Timer(limits.time_limit_s, _interrupt)
        t0 = time.perf_counter()
        timer.start()
        try:
            cur.execute(sql)
            reader = cur.to_arrow_reader(min(limits.max_rows + 1, 10_000))
            batches: list[pa.RecordBatch] = []
            n = 0
            for batch in reader:
                batches.append(batch)
                n += batch.num_rows
                if n > limits.max_rows:
                    break
            table = pa.Table.from_batches(batches, schema=reader.schema)
        except duckdb.InterruptException as exc:
            raise QueryTimeoutError(
                f"query stopped after its time limit of {limits.time_limit_s:g}s; "
                "narrow it (WHERE, LIMIT) or sample (USING SAMPLE 1%)"
            ) from exc
        except duckdb.Error as exc:
            if timed_out.is_set():
                raise QueryTimeoutError(
                    f"query stopped after its time limit of {limits.time_limit_s:g}s"
                ) from exc
            raise _explain_error(exc) from exc
        finally:
            timer.cancel()
        seconds = time.perf_counter() - t0
    truncated = table.num_rows > limits.max_rows
    if truncated:
        table = table.slice(0, limits.max_rows)
    return QueryResult(table, truncated, seconds, limits)
