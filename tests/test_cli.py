"""CLI round trips: exit codes, stdout data vs stderr logs, output formats, schema docs."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq

from tests.conftest import ROOT, CliResult, curate_subprocess
from warehouse import schema

Cli = Callable[..., CliResult]


def test_ingest_json_output_and_counts(cli: Cli, samples: Path) -> None:
    res = cli("ingest", str(samples / "trl_flat_sample.jsonl"), "--json", "--no-progress")
    assert res.code == 0
    [batch] = res.json()  # type: ignore[misc]
    assert batch["n_in"] == batch["n_accepted"] + batch["n_quarantined"] == 300
    assert "detected format trl_flat" in res.err
    again = cli("ingest", str(samples / "trl_flat_sample.jsonl"), "--no-progress")
    assert again.code == 0 and "already ingested" in again.out + again.err


def test_sql_formats(cli: Cli, samples: Path, tmp_path: Path) -> None:
    cli("ingest", str(samples / "ultrachat_200k_exact_records.jsonl"), "--no-progress")
    q = "SELECT prompt_id, n_turns, messages FROM dialogues ORDER BY source_line"
    as_json = cli("sql", q, "--format", "json")
    rows = [json.loads(line) for line in as_json.out.splitlines()]
    assert len(rows) == 10 and rows[0]["messages"][0]["role"] == "user"
    as_csv = cli("sql", q, "--format", "csv")
    assert as_csv.out.splitlines()[0] == '"prompt_id","n_turns","messages"'
    assert len(as_csv.out.splitlines()) >= 11
    out = tmp_path / "x.parquet"
    assert cli("sql", q, "--format", "parquet", "--output", str(out)).code == 0
    assert pq.read_table(out).num_rows == 10
    table = cli("sql", "SELECT count(*) AS n FROM dialogues")
    assert table.code == 0 and "10" in table.out and "1 rows" in table.err


def test_sql_from_file_and_truncation_notice(cli: Cli, samples: Path, tmp_path: Path) -> None:
    cli("ingest", str(samples / "ultrachat_200k_sample.jsonl"), "--no-progress")
    f = tmp_path / "q.sql"
    f.write_text("SELECT dialogue_id FROM dialogues")
    res = cli("sql", "--file", str(f), "--max-rows", "5", "--format", "csv")
    assert res.code == 0 and len(res.out.splitlines()) == 6
    assert "truncated at the row cap of 5" in res.err


def test_exit_codes(cli: Cli, samples: Path) -> None:
    assert cli("ingest", "missing.jsonl").code == 3
    assert cli("sql", "SELECT 1").code == 3  # no warehouse yet
    cli("ingest", str(samples / "trl_flat_sample.jsonl"), "--no-progress")
    refused = cli("sql", "SELECT * FROM read_csv('/etc/passwd')")
    assert refused.code == 3 and "refused" in refused.err and refused.out == ""
    assert cli("sql", "DELETE FROM preference_pairs").code == 3
    assert (
        cli(
            "sql", "SELECT count(*) FROM range(100000000) a, range(100000) b", "--time-limit", "0.3"
        ).code
        == 5
    )
    assert cli("ingest", "--no-such-option").code == 2
    assert cli("sql", "SELECT 1", "--format", "parquet").code == 2


def test_schema_doc_is_in_sync(cli: Cli) -> None:
    res = cli("schema", "--markdown")
    assert res.code == 0
    assert (ROOT / "docs" / "schema.md").read_text() == schema.render_markdown() + "\n"
    listed = cli("schema", "--json").json()
    assert [t["name"] for t in listed["tables"]] == [t.name for t in schema.TABLES]  # type: ignore[index]


def test_status_reports_tables_and_batches(cli: Cli, samples: Path) -> None:
    cli("ingest", str(samples / "ultrachat_raw_fixture.jsonl"), "--no-progress")
    info = cli("status", "--json").json()
    tables = {t["table"]: t["rows"] for t in info["tables"]}  # type: ignore[index]
    assert tables["dialogues"] == 200 and tables["quarantine"] == 0
    assert len(info["batches"]) == 1  # type: ignore[index]


def test_python_dash_m_entry_and_help(tmp_path: Path) -> None:
    proc = curate_subprocess("--help")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "ingest" in out and "sql" in out
    for cmd in ("ingest", "sql", "schema", "status", "synth"):
        p = curate_subprocess(cmd, "--help")
        o, _ = p.communicate(timeout=60)
        assert p.returncode == 0 and "Usage" in o


def test_sql_from_stdin_in_a_real_process(tmp_path: Path, samples: Path) -> None:
    wh = str(tmp_path / "wh.duckdb")
    ing = curate_subprocess(
        "--warehouse", wh, "ingest", str(samples / "argilla_cleaned_sharegpt_sample.jsonl")
    )
    _, err = ing.communicate(timeout=120)
    assert ing.returncode == 0, err
    proc = curate_subprocess(
        "--warehouse", wh, "sql", "-", "--format", "json", stdin=subprocess.PIPE
    )
    out, err = proc.communicate(
        "SELECT source, chosen_model FROM preference_pairs ORDER BY source_line LIMIT 2",
        timeout=120,
    )
    assert proc.returncode == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 2 and rows[0]["chosen_model"] == "starchat"
