"""Several processes: a writer excludes others clearly; a killed ingest leaves nothing half done."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import curate_subprocess, write_lines
from warehouse import Warehouse
from warehouse.ingest import IngestOptions, ingest

pytestmark = pytest.mark.slow

PAUSE = "CURATE_DEBUG_PAUSE_AFTER_CHUNK"


def _big_file(tmp_path: Path, n: int = 3000) -> Path:
    lines: list[bytes | str | dict[str, object]] = [
        {"id": str(i), "data": [f"question {i} " * 5, f"answer {i} " * 20]} for i in range(n)
    ]
    lines.insert(10, "{not json")
    return write_lines(tmp_path / "dialogues.jsonl", lines)


def _start_paused_ingest(wh_path: Path, src: Path, pause_s: float) -> subprocess.Popen[str]:
    proc = curate_subprocess(
        "--warehouse",
        str(wh_path),
        "ingest",
        str(src),
        "--chunk-mb",
        "0.05",
        "--no-progress",
        env={PAUSE: str(pause_s)},
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    for line in proc.stderr:
        if "chunk 2 inserted" in line:
            return proc
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise AssertionError("the ingest never reached its second chunk")


def test_reader_is_told_who_holds_the_warehouse(tmp_path: Path, samples: Path) -> None:
    wh_path = tmp_path / "wh.duckdb"
    ingest(
        Warehouse(wh_path),
        [str(samples / "trl_flat_sample.jsonl")],
        IngestOptions(progress=False),
        log=lambda _: None,
    )
    writer = _start_paused_ingest(wh_path, _big_file(tmp_path), pause_s=1.0)
    try:
        reader = curate_subprocess(
            "--warehouse",
            str(wh_path),
            "--wait",
            "0",
            "sql",
            "SELECT count(*) FROM preference_pairs",
        )
        out, err = reader.communicate(timeout=60)
        assert reader.returncode == 4, err
        assert f"PID {writer.pid}" in err and "ingest" in err and "--wait" in err
        assert "Conflicting lock" not in err and "Traceback" not in err
        # with --wait the same command succeeds once the writer is done
        patient = curate_subprocess(
            "--warehouse",
            str(wh_path),
            "--wait",
            "120",
            "sql",
            "SELECT count(*) AS n FROM dialogues",
            "--format",
            "csv",
        )
        out, err = patient.communicate(timeout=180)
        assert patient.returncode == 0, err
        assert out.splitlines() == ['"n"', "3000"]
    finally:
        writer.wait(timeout=180)
    assert writer.returncode == 0


def test_kill_during_ingest_leaves_no_partial_batch(tmp_path: Path) -> None:
    wh_path = tmp_path / "wh.duckdb"
    src = _big_file(tmp_path)
    writer = _start_paused_ingest(wh_path, src, pause_s=30.0)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=30)
    wh = Warehouse(wh_path, wait_s=5)
    with wh.read() as con:
        for table in ("dialogues", "quarantine", "ingest_batches"):
            assert con.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,), table
    # the rerun resumes from scratch and commits the whole batch once
    [res] = ingest(wh, [str(src)], IngestOptions(progress=False), log=lambda _: None)
    assert (res.n_in, res.n_accepted, res.n_quarantined) == (3001, 3000, 1)
    with wh.read() as con:
        assert con.execute(
            "SELECT count(*), count(DISTINCT source_line) FROM dialogues"
        ).fetchone() == (3000, 3000)
        assert con.execute("SELECT source_line FROM quarantine").fetchall() == [(11,)]
