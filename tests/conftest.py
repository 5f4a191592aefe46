"""Shared fixtures: the bundled real records, a fresh warehouse, and a CLI runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from curate.cli import main
from warehouse import Warehouse

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data" / "samples"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture
def samples() -> Path:
    return SAMPLES


@pytest.fixture
def wh_path(tmp_path: Path) -> Path:
    return tmp_path / "wh.duckdb"


@pytest.fixture
def wh(wh_path: Path) -> Warehouse:
    return Warehouse(wh_path, wait_s=0)


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> object:
        return json.loads(self.out)


@pytest.fixture
def cli(wh_path: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run `curate` in-process against the test warehouse."""

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = main(["--warehouse", str(wh_path), "--wait", "0", *args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def curate_subprocess(
    *args: str, env: dict[str, str] | None = None, **kw: object
) -> subprocess.Popen[str]:
    """Start `python -m curate` as a real separate process."""
    return subprocess.Popen(
        [sys.executable, "-m", "curate", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,  # type: ignore[call-overload]
    )


def write_lines(path: Path, lines: list[bytes | str | dict[str, object]]) -> Path:
    with open(path, "wb") as fh:
        for line in lines:
            if isinstance(line, dict):
                fh.write(json.dumps(line).encode() + b"\n")
            elif isinstance(line, str):
                fh.write(line.encode() + b"\n")
            else:
                fh.write(line + b"\n")
    return path


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say loudly when the browser tests skipped for want of chromium (tests/test_browser.py),
    so a green run on a machine without it is not mistaken for a tested UI."""
    not_run = "BROWSER TESTS DID NOT RUN"  # the prefix of test_browser.py's skip reasons
    skipped = [
        rep
        for rep in terminalreporter.stats.get("skipped", [])
        if not_run in str(getattr(rep, "longrepr", ""))
    ]
    if not skipped:
        return
    reason = str(skipped[0].longrepr[2] if isinstance(skipped[0].longrepr, tuple) else "")
    tr = terminalreporter
    tr.write_sep("!", f"{not_run}: {len(skipped)} skipped", red=True, bold=True)
    tr.write_line(reason.removeprefix("Skipped: "), red=True, bold=True)
    tr.write_line(
        "Install Debian's chromium (apt-get install chromium) or set CURATE_CHROMIUM to a "
        "Chromium binary; .ci/run installs it.",
        red=True,
        bold=True,
    )
    tr.write_sep("!", not_run, red=True, bold=True)
