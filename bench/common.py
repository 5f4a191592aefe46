"""Shared helpers for the benchmarks: paths, logging, timing, peak-RSS of a child, tables."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
OUT_DIR = BENCH_DIR / "out"  # git-ignored: generated inputs, warehouses, caches
RESULTS_DIR = BENCH_DIR / "results"  # committed: small markdown tables
DEFAULT_DIALOGUES = 1_470_000  # the size of raw UltraChat
RESULT_PREFIX = "BENCH_RESULT "
MIB = 1 << 20


def log(msg: str) -> None:
    """Progress on stderr, with a wall-clock stamp."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def offline_env(**extra: str) -> dict[str, str]:
    """The environment for child processes: offline hub, our repo importable."""
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p),
    )
    env.update(extra)
    return env


# -- machine ------------------------------------------------------------------------------


def _version(module: str) -> str:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:
        return "n/a"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_info() -> dict[str, str]:
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "nproc": str(affinity),
        "cpu": _cpu_model(),
        "ram_gib": f"{psutil.virtual_memory().total / (1 << 30):.1f}",
        "python": platform.python_version(),
        "duckdb": _version("duckdb"),
        "pyarrow": _version("pyarrow"),
        "datasets": _version("datasets"),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load": f"{os.getloadavg()[0]:.2f}",
    }


def machine_line(info: dict[str, str] | None = None) -> str:
    i = info or machine_info()
    return (
        f"Machine: {i['nproc']} cores ({i['cpu']}), {i['ram_gib']} GiB RAM; python {i['python']}, "
        f"duckdb {i['duckdb']}, pyarrow {i['pyarrow']}, datasets {i['datasets']}; {i['date']}; "
        f"1-min load average at start {i.get('load', 'n/a')} (other work may share the cores)."
    )


# -- timing -------------------------------------------------------------------------------


@dataclass
class Timings:
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def min(self) -> float:
        return min(self.samples)


def time_repeated(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> Timings:
    """Run `fn` `warmup` times untimed, then `repeats` times timed (wall seconds)."""
    for _ in range(warmup):
        fn()
    out = Timings()
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.samples.append(time.perf_counter() - t0)
    return out


# -- child processes with peak memory ---------------------------------------------------------


@dataclass
class Measured:
    """A finished child process: exit code, wall time, peak memory and its reported result."""

    args: list[str]
    returncode: int
    wall_s: float
    peak_rss_bytes: int  # high-water RSS of the process tree (see run_measured)
    peak_anon_bytes: int  # max over samples of (RSS - file-backed shared pages)
    result: dict[str, Any]
    stdout: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def _vm_hwm(pid: int) -> int:
    """The kernel's RSS high-water mark of a process since its exec (VmHWM), in bytes."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _tree_memory(proc: psutil.Process, hwm: dict[int, int]) -> tuple[int, int]:
    rss = anon = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0, 0
    for p in procs:
        try:
            mi = p.memory_info()
        except psutil.Error:
            continue
        rss += mi.rss
        anon += max(mi.rss - getattr(mi, "shared", 0), 0)
        hwm[p.pid] = max(hwm.get(p.pid, 0), _vm_hwm(p.pid))
    return rss, anon


def run_measured(
    args: Sequence[str], env: dict[str, str] | None = None, interval_s: float = 0.05
) -> Measured:
    """Run a child to completion, sampling the memory of its process tree every `interval_s`.

    stderr passes through (progress bars); stdout is captured and the last line starting
    with RESULT_PREFIX is parsed as the child's JSON result. Peak RSS is the larger of the
    highest sampled tree RSS and the sum of each process's last-seen VmHWM (the kernel's own
    high-water mark, so short spikes between samples are not missed). `ru_maxrss` from
    wait4 is not used: Linux carries the parent's RSS at fork into the child's maxrss.
    """
    t0 = time.perf_counter()
    popen = subprocess.Popen(list(args), stdout=subprocess.PIPE, env=env, cwd=REPO_ROOT)
    peak = [0, 0]
    hwm: dict[int, int] = {}
    stop = threading.Event()

    def sample() -> None:
        try:
            proc = psutil.Process(popen.pid)
        except psutil.Error:
            return
        while not stop.is_set():
            rss, anon = _tree_memory(proc, hwm)
            peak[0] = max(peak[0], rss)
            peak[1] = max(peak[1], anon)
            stop.wait(interval_s)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    assert popen.stdout is not None
    stdout = popen.stdout.read().decode("utf-8", errors="replace")
    popen.stdout.close()
    returncode = popen.wait()
    wall = time.perf_counter() - t0
    stop.set()
    sampler.join()
    result: dict[str, Any] = {}
    for line in stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX) :])
    return Measured(
        args=list(args),
        returncode=returncode,
        wall_s=wall,
        peak_rss_bytes=max(peak[0], sum(hwm.values())),
        peak_anon_bytes=peak[1],
        result=result,
        stdout=stdout,
    )


def emit_result(result: dict[str, Any]) -> None:
    """Called in a child: hand its result to `run_measured`."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


# -- output -------------------------------------------------------------------------------


def md_table(headers: Sequence[str], rows: Sequence[Sequence[object]], align: str = "") -> str:
    """A markdown table; `align` is one letter per column (l or r), default left."""
    cells = [[str(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    al = (align or "l" * len(headers)).ljust(len(headers), "l")

    def fmt(row: Sequence[str]) -> str:
        parts = [
            c.rjust(w) if a == "r" else c.ljust(w) for c, w, a in zip(row, widths, al, strict=True)
        ]
        return "| " + " | ".join(parts) + " |"

    sep = (
        "|"
        + "|".join(
            ("-" * (w + 1) + ":") if a == "r" else "-" * (w + 2)
            for w, a in zip(widths, al, strict=True)
        )
        + "|"
    )
    return "\n".join([fmt(list(headers)), sep, *(fmt(r) for r in cells)])


def write_result(name: str, text: str) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / name
    path.write_text(text if text.endswith("\n") else text + "\n")
    log(f"wrote {path.relative_to(REPO_ROOT)}")
    return path


def fmt_int(n: float) -> str:
    return f"{round(n):,}"


def fmt_mib(n_bytes: float) -> str:
    return f"{n_bytes / MIB:,.0f}"


def fmt_s(seconds: float) -> str:
    return f"{seconds:.3f}" if seconds < 10 else f"{seconds:.1f}"


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"
