"""`make demo` works end to end on the bundled records, and a second run is a no-op."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def _demo(warehouse: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CURATE_WAREHOUSE": str(warehouse)}
    return subprocess.run(
        [sys.executable, "-m", "curate.demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_demo_runs_twice(tmp_path: Path) -> None:
    first = _demo(tmp_path / "demo.duckdb")
    assert first.returncode == 0, first.stderr
    assert "3 of 1357 records quarantined" in first.stderr
    assert "As an Artificial Intelligence language model" in first.stdout
    assert "malformed JSON" in first.stdout and "exit code 3" in first.stdout
    second = _demo(tmp_path / "demo.duckdb")
    assert second.returncode == 0, second.stderr
    assert second.stderr.count("already ingested as batch") == 8
