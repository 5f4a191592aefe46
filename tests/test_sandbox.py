"""User SQL is read-only and sandboxed, with a time limit and a row cap."""

from __future__ import annotations

from pathlib import Path

import pytest

from warehouse import BadInputError, QueryRefusedError, QueryTimeoutError, Warehouse
from warehouse.ingest import IngestOptions, ingest
from warehouse.sandbox import QueryLimits, run_query


@pytest.fixture
def loaded(wh: Warehouse, samples: Path) -> Warehouse:
    ingest(wh, [str(samples)], IngestOptions(progress=False), log=lambda _: None)
    return wh


@pytest.mark.parametrize(
    ("sql", "refused_word"),
    [
        ("INSERT INTO dialogues SELECT * FROM dialogues", "INSERT"),
        ("DELETE FROM dialogues", "DELETE"),
        ("CREATE TABLE t AS SELECT 1", "CREATE"),
        ("DROP TABLE dialogues", "DROP"),
        ("COPY dialogues TO '/tmp/out.csv'", "COPY"),
        ("ATTACH '/tmp/other.duckdb' AS o", "ATTACH"),
        ("DETACH wh", "DETACH"),
        ("INSTALL fts", "INSTALL"),
        ("LOAD fts", "LOAD"),
        ("SET threads = 8", "SET"),
        ("PRAGMA version", "PRAGMA"),
        ("/* hidden */ pragma database_list", "PRAGMA"),
        ("CALL pragma_version()", "CALL"),
        ("EXPORT DATABASE '/tmp/x'", "EXPORT"),
    ],
)
def test_statements_other_than_queries_are_refused(
    loaded: Warehouse, sql: str, refused_word: str
) -> None:
    with pytest.raises(QueryRefusedError, match=f"refused {refused_word} statement"):
        run_query(loaded, sql)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/hostname')",
        "SELECT * FROM glob('/etc/*')",
        "SELECT * FROM read_parquet('/tmp/*.parquet')",
    ],
)
def test_file_reads_are_refused(loaded: Warehouse, sql: str) -> None:
    with pytest.raises(QueryRefusedError, match="warehouse tables and views only"):
        run_query(loaded, sql)


def test_replacement_scan_of_a_path_finds_nothing(loaded: Warehouse) -> None:
    with pytest.raises(BadInputError, match="does not exist"):
        run_query(loaded, "SELECT * FROM '/etc/passwd'")


def test_one_statement_per_call(loaded: Warehouse) -> None:
    with pytest.raises(QueryRefusedError, match="exactly one statement"):
        run_query(loaded, "SELECT 1; SELECT 2")


def test_syntax_error_is_bad_input(loaded: Warehouse) -> None:
    with pytest.raises(BadInputError, match="syntax error"):
        run_query(loaded, "SELEC 1")


def test_time_limit_stops_a_long_query(loaded: Warehouse) -> None:
    with pytest.raises(QueryTimeoutError, match=r"time limit of 0\.5s"):
        run_query(
            loaded,
            "SELECT count(*) FROM range(100000000) a, range(100000) b WHERE a.range * b.range % 7 = 3",
            QueryLimits(time_limit_s=0.5),
        )


def test_row_cap_truncates_and_says_so(loaded: Warehouse) -> None:
    res = run_query(loaded, "SELECT * FROM turns", QueryLimits(max_rows=7))
    assert res.truncated and res.table.num_rows == 7
    full = run_query(loaded, "SELECT count(*) AS n FROM turns")
    assert not full.truncated and full.table.column("n")[0].as_py() > 7


def test_limits_can_only_be_lowered() -> None:
    clamped = QueryLimits(max_rows=10**9, time_limit_s=10**6).clamp()
    assert clamped.max_rows == 100_000 and clamped.time_limit_s == 60.0


def test_slice_views_are_one_line(loaded: Warehouse) -> None:
    n = lambda sql: run_query(loaded, sql).table.column(0)[0].as_py()  # noqa: E731
    assert n("SELECT count(*) FROM assistant_turns") == n(
        "SELECT sum(n_assistant_turns) FROM dialogues"
    )
    assert n("SELECT count(*) FROM first_user_turns") == n("SELECT count(*) FROM dialogues")
    assert n("SELECT count(*) FROM multi_turn_dialogues") == n(
        "SELECT count(*) FROM dialogues WHERE n_user_turns > 1"
    )
    assert (
        n("SELECT count(*) FROM completions_rated") == n("SELECT count(*) FROM uf_completions") > 0
    )
    assert (
        n(
            "SELECT count(*) FROM first_user_turns f JOIN dialogues d USING (dialogue_id) WHERE f.content <> d.messages[1].content"
        )
        == 0
    )


def test_the_warehouse_is_unchanged_after_refusals(loaded: Warehouse) -> None:
    before = run_query(loaded, "SELECT count(*) FROM dialogues").table.to_pylist()
    for sql in ("DELETE FROM dialogues", "DROP VIEW turns"):
        with pytest.raises(QueryRefusedError):
            run_query(loaded, sql)
    assert run_query(loaded, "SELECT count(*) FROM dialogues").table.to_pylist() == before


def test_turns_view_keeps_turn_order(loaded: Warehouse) -> None:
    wrong = run_query(
        loaded,
        """SELECT count(*) FROM turns t JOIN dialogues d USING (dialogue_id)
           WHERE d.messages[t.turn_index + 1].content <> t.content
              OR d.messages[t.turn_index + 1].role <> t.role""",
    )
    assert wrong.table.column(0)[0].as_py() == 0
