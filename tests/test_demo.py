"""`make demo` works end to end on the bundled records, and a second run is a no-op."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def _demo(warehouse: Path, train: bool = True) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CURATE_WAREHOUSE": str(warehouse),
        "CURATE_DEMO_OUT": str(warehouse.parent / "demo-out"),
        "CURATE_DEMO_SKIP_TRAINING": "0" if train else "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "curate.demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )


def test_demo_runs_twice(tmp_path: Path) -> None:
    first = _demo(tmp_path / "demo.duckdb")
    assert first.returncode == 0, first.stderr
    assert "3 of 1357 records quarantined" in first.stderr
    assert "As an Artificial Intelligence language model" in first.stdout
    assert "malformed JSON" in first.stdout and "exit code 3" in first.stdout
    # the recipes committed three tagged snapshots, exported one, and trained on two
    assert first.stderr.count("committed snapshot") == 3
    for tag in ("zephyr-sft-demo", "zephyr-dpo-demo", "argilla-dpo-demo"):
        assert tag in first.stdout
    assert "content_hash" in first.stdout and "FAILED" not in first.stdout
    assert (tmp_path / "demo-out" / "ultrachat_200k-demo" / "dataset_dict.json").exists()
    assert "sft: run r_" in first.stdout and "dpo: run r_" in first.stdout
    assert (tmp_path / "demo-out" / "models" / "smollm2-dpo" / "README.md").exists()
    second = _demo(tmp_path / "demo.duckdb", train=False)
    assert second.returncode == 0, second.stderr
    assert second.stderr.count("already ingested as batch") == 8
    assert second.stderr.count("already existed") == 3
