"""Curation recipes end to end: wall time and peak RSS of every step, and the commit.

Why: the filter and dedup benchmarks time one filter on a table in memory; a recipe also
reads the warehouse in batches, attributes drops, holds every alive row for the whole-column
steps, splits, and commits the snapshot in one transaction. This runs the built-in recipes
through `curation.runner` on the benchmark warehouses, each case in a fresh child process
(so its memory is its own), and writes `bench/results/curation.md`.

Cases:

- `sft_full`: ultrachat_200k without semantic_dedup over the first `--dialogues` synthetic
  raw dialogues (all 1.47M by default; the embedding model runs ~60 texts/s on 2 cores, so
  semantic dedup at that size is hours);
- `sft_semantic`: the whole recipe, semantic dedup included, on the first
  `--semantic-rows` dialogues (input `where source_line <= N`);
- `uf_h4`, `uf_argilla`: ultrafeedback_binarized and ultrafeedback_binarized_cleaned over
  `--prompts` synthetic UltraFeedback prompts (4 completions each), step cache off;
- `uf_h4_cached`, `uf_argilla_cached`: the same with the step cache on, after one priming
  run with the cache on: what the cache saves, and the commit on its own.

Every measured run gets a fresh snapshot (the run label goes into the recipe description,
which the snapshot id hashes) and `use_cache=False` unless the case says otherwise. The SFT
cases run on `bench/out/curation-bench.duckdb`, a copy of `bench/out/bench.duckdb` (made on
first use), so their commits neither lock nor grow the shared benchmark warehouse. The
UltraFeedback warehouse `bench/out/bench-uf.duckdb` is generated on first use (`curate synth`,
64,000 prompts, seed 0, then `curate ingest`). A child stops itself, and the case is
reported as aborted with its step, if its RSS passes `--rss-limit-gib` or the machine's
available memory drops below 1 GiB.

    .venv/bin/python -m bench.curation_bench --quick          # smoke test, about a minute
    .venv/bin/python -m bench.curation_bench                  # everything (an hour or more)
    .venv/bin/python -m bench.curation_bench --cases uf_h4,uf_h4_cached
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import duckdb
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    MIB,
    OUT_DIR,
    emit_result,
    fmt_int,
    fmt_mib,
    fmt_s,
    log,
    machine_info,
    machine_line,
    md_table,
    offline_env,
    run_measured,
    write_result,
)

SOURCE_WAREHOUSE = OUT_DIR / "bench.duckdb"  # built by bench.ingest_bench
SFT_WAREHOUSE = OUT_DIR / "curation-bench.duckdb"  # our copy of it
UF_WAREHOUSE = OUT_DIR / "bench-uf.duckdb"
UF_PROMPTS = 64_000  # what bench-uf.duckdb is generated with
UF_SYNTH = OUT_DIR / "synth-uf64k"
RESULT_DIR = OUT_DIR / "curation"  # one JSON per case, so partial runs can be combined
FULL_DEFAULTS = {"dialogues": 1_470_000, "semantic_rows": 100_000, "prompts": UF_PROMPTS}
QUICK_DEFAULTS = {"dialogues": 20_000, "semantic_rows": 1_000, "prompts": 4_000}
CASES = (
    "sft_full",
    "sft_semantic",
    "uf_h4",
    "uf_argilla",
    "uf_h4_cached",
    "uf_argilla_cached",
)
ABORT_RC = 70


@dataclass(frozen=True)
class Case:
    """One measured recipe run (plus an optional priming run with the cache on)."""

    name: str
    title: str
    recipe: str
    warehouse: str
    where: str | None
    drop_steps: tuple[str, ...] = ()
    use_cache: bool = False
    prime: bool = False


def build_cases(dialogues: int, semantic_rows: int, prompts: int, n_source: int) -> list[Case]:
    sft_where = "source_format = 'ultrachat_raw'"
    full_where = (
        sft_where if dialogues >= n_source else f"{sft_where} AND source_line <= {dialogues}"
    )
    uf_where = None if prompts >= UF_PROMPTS else f"source_line <= {prompts}"
    uf = {"warehouse": str(UF_WAREHOUSE), "where": uf_where}
    return [
        Case(
            "sft_full",
            f"ultrachat_200k without semantic_dedup, {dialogues:,} dialogues",
            "ultrachat_200k",
            str(SFT_WAREHOUSE),
            full_where,
            drop_steps=("semantic_dedup",),
        ),
        Case(
            "sft_semantic",
            f"ultrachat_200k with semantic_dedup, first {semantic_rows:,} dialogues",
            "ultrachat_200k",
            str(SFT_WAREHOUSE),
            f"{sft_where} AND source_line <= {semantic_rows}",
        ),
        Case(
            "uf_h4",
            f"ultrafeedback_binarized, {prompts:,} prompts",
            "ultrafeedback_binarized",
            **uf,
        ),
        Case(
            "uf_argilla",
            f"ultrafeedback_binarized_cleaned, {prompts:,} prompts",
            "ultrafeedback_binarized_cleaned",
            **uf,
        ),
        Case(
            "uf_h4_cached",
            f"ultrafeedback_binarized, {prompts:,} prompts, step cache on (warm)",
            "ultrafeedback_binarized",
            use_cache=True,
            prime=True,
            **uf,
        ),
        Case(
            "uf_argilla_cached",
            f"ultrafeedback_binarized_cleaned, {prompts:,} prompts, step cache on (warm)",
            "ultrafeedback_binarized_cleaned",
            use_cache=True,
            prime=True,
            **uf,
        ),
    ]


# -- inputs ---------------------------------------------------------------------------------


def _count(path: Path, sql: str) -> int:
    con = duckdb.connect(str(path), read_only=True)
    try:
        row = con.execute(sql).fetchone()
        return int(row[0]) if row else 0
    except duckdb.Error:
        return 0
    finally:
        con.close()


def _batches(path: Path) -> str:
    con = duckdb.connect(str(path), read_only=True)
    try:
        row = con.execute("SELECT list(batch_id ORDER BY batch_id) FROM ingest_batches").fetchone()
        return str(row[0]) if row else ""
    except duckdb.Error:
        return ""
    finally:
        con.close()


def ensure_sft_warehouse() -> int:
    """Copy bench.duckdb (again when its ingest batches changed); the number of raw
    UltraChat dialogues the copy holds."""
    if not SOURCE_WAREHOUSE.exists():
        raise SystemExit(
            f"{SOURCE_WAREHOUSE} is missing: build it with "
            "`.venv/bin/python -m bench.ingest_bench --dialogues 1470000` first"
        )
    source = _batches(SOURCE_WAREHOUSE)  # "" when busy or unreadable: keep the copy
    if not SFT_WAREHOUSE.exists() or (source and source != _batches(SFT_WAREHOUSE)):
        cache = SFT_WAREHOUSE.with_name(SFT_WAREHOUSE.name + ".cache")
        shutil.rmtree(cache, ignore_errors=True)
        log(f"copying {SOURCE_WAREHOUSE.name} to {SFT_WAREHOUSE.name}")
        tmp = SFT_WAREHOUSE.with_name(SFT_WAREHOUSE.name + ".tmp")
        shutil.copyfile(SOURCE_WAREHOUSE, tmp)
        tmp.replace(SFT_WAREHOUSE)
    return _count(
        SFT_WAREHOUSE, "SELECT count(*) FROM dialogues WHERE source_format = 'ultrachat_raw'"
    )


def ensure_uf_warehouse() -> int:
    """Generate and ingest the synthetic UltraFeedback set once; its prompt count."""
    if UF_WAREHOUSE.exists():
        n = _count(UF_WAREHOUSE, "SELECT count(*) FROM uf_prompts")
        if n >= UF_PROMPTS:
            return n
    curate = [sys.executable, "-m", "curate"]
    raw = UF_SYNTH / "ultrafeedback_raw.jsonl"
    if not raw.exists():
        log(f"generating {UF_PROMPTS:,} synthetic UltraFeedback prompts into {UF_SYNTH.name}")
        subprocess.run(
            [*curate, "synth", str(UF_SYNTH), "--dialogues", "10", "--prompts", str(UF_PROMPTS)],
            check=True,
            env=offline_env(),
            stdout=subprocess.DEVNULL,
        )
    log(f"ingesting {raw.name} into {UF_WAREHOUSE.name}")
    subprocess.run(
        [*curate, "-w", str(UF_WAREHOUSE), "ingest", str(raw), "--no-progress"],
        check=True,
        env=offline_env(),
        stdout=subprocess.DEVNULL,
    )
    return _count(UF_WAREHOUSE, "SELECT count(*) FROM uf_prompts")


# -- the child: one case --------------------------------------------------------------------


def _rss_mb() -> float:
    return psutil.Process().memory_info().rss / MIB


@contextlib.contextmanager
def memory_guard(limit_mb: float, where: Callable[[], str]) -> Iterator[dict[str, float]]:
    """Stop the process (exit ABORT_RC, result says where) before it eats the machine."""
    peak = {"mb": _rss_mb()}
    stop = threading.Event()

    def watch() -> None:
        proc = psutil.Process()
        while not stop.wait(0.2):
            rss = proc.memory_info().rss / MIB
            peak["mb"] = max(peak["mb"], rss)
            avail = psutil.virtual_memory().available / MIB
            if rss > limit_mb or avail < 1024:
                emit_result(
                    {
                        "aborted": True,
                        "phase": where(),
                        "rss_mb": rss,
                        "available_mb": avail,
                        "limit_mb": limit_mb,
                    }
                )
                log(f"ABORT: RSS {rss:,.0f} MiB (available {avail:,.0f} MiB) in {where()}")
                os._exit(ABORT_RC)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        stop.set()
        thread.join()


def _timed_runner_class() -> type:
    """A Runner that also times planning, each stage / whole step as a whole (reads and
    attribution included), the embedding-cache flushes and the commit."""
    from curation.recipe import step_name
    from curation.resources import PeakRss
    from curation.runner import Runner

    class TimedRunner(Runner):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.phase = "start"
            self.phases: list[dict[str, Any]] = []
            self.flush_s = 0.0
            inner_flush = self.factory.cache.flush

            def flush() -> int:
                t = time.perf_counter()
                n = inner_flush()
                self.flush_s += time.perf_counter() - t
                return n

            self.factory.cache.flush = flush

        def _measure(self, label: str, fn: Callable[[], Any]) -> Any:
            self.phase = label
            with PeakRss() as mem:
                out = fn()
            self.phases.append({"phase": label, "seconds": mem.seconds, "peak_mb": mem.peak_mb})
            return out

        def plan(self) -> Any:
            return self._measure("plan", super().plan)

        def _run_stage(self, stage: Any, ws: Any, state: str) -> Any:
            label = "stage: " + ", ".join(step_name(s) for _, s in stage)
            return self._measure(
                label, lambda: super(TimedRunner, self)._run_stage(stage, ws, state)
            )

        def _run_whole(self, idx: int, step: Any, ws: Any, state: str, plan: Any) -> Any:
            return self._measure(
                f"whole: {step_name(step)}",
                lambda: super(TimedRunner, self)._run_whole(idx, step, ws, state, plan),
            )

        def _commit(self, *args: Any) -> Any:
            return self._measure("commit", lambda: super(TimedRunner, self)._commit(*args))

    return TimedRunner


def _recipe_for(case: Case, label: str) -> Any:
    from curation.recipe import TableInput, load_recipe, step_name

    base = load_recipe(case.recipe)
    steps = [s for s in base.steps if step_name(s) not in case.drop_steps]
    missing = set(case.drop_steps) - {step_name(s) for s in base.steps}
    if missing:
        raise SystemExit(f"{case.recipe} has no step {', '.join(sorted(missing))}")
    table = base.inputs[0].table
    return base.model_copy(
        update={
            "description": f"{base.description} [bench {case.name} {label}]",
            "inputs": [TableInput(table=table, where=case.where)],
            "steps": steps,
        }
    )


def _run_once(case: Case, use_cache: bool, label: str, guard_phase: list[Any]) -> dict[str, Any]:
    from curation.runner import RunOptions
    from warehouse.store import Warehouse

    recipe = _recipe_for(case, label)
    runner = _timed_runner_class()(
        recipe,
        Warehouse(case.warehouse, wait_s=600),
        RunOptions(progress=False, use_cache=use_cache, message=f"bench {case.name}"),
        log=lambda m: log(m.strip()),
    )
    guard_phase[0] = runner
    cpu0 = psutil.Process().cpu_times()
    load0 = os.getloadavg()[0]
    res = runner.run()
    cpu1 = psutil.Process().cpu_times()
    if res.existed:
        raise SystemExit(f"snapshot {res.snapshot_id} already existed: the label did not vary")
    return {
        "snapshot_id": res.snapshot_id,
        "n_input": res.n_input,
        "committed": res.committed,
        "wall_s": res.wall_s,
        "cpu_s": (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system),
        "load_start": load0,
        "load_end": os.getloadavg()[0],
        "flush_s": runner.flush_s,
        "phases": runner.phases,
        "splits": res.splits,
        "steps": [
            {
                "name": s.name,
                "kind": s.kind,
                "n_in": s.n_in,
                "n_out": s.n_out,
                "n_dropped": s.n_dropped,
                "n_would_drop": s.n_would_drop,
                "seconds": s.seconds,
                "peak_rss_mb": s.peak_rss_mb,
                "cached": s.cached,
                "note": s.note,
            }
            for s in res.steps
        ],
    }


def child(case_json: str, limit_gib: float) -> None:
    case = Case(**json.loads(case_json))
    holder: list[Any] = [None]

    def where() -> str:
        r = holder[0]
        return f"{case.name}: {r.phase}" if r is not None else f"{case.name}: setup"

    rss_start = _rss_mb()
    stamp = time.strftime("%Y%m%dT%H%M%S")
    out: dict[str, Any] = {"case": asdict(case), "rss_start_mb": rss_start}
    with memory_guard(limit_gib * 1024, where) as peak:
        try:
            if case.prime:
                out["prime"] = _run_once(case, True, f"{stamp}-prime", holder)
            out["run"] = _run_once(case, case.use_cache, stamp, holder)
        except Exception as exc:
            import traceback

            frames = traceback.extract_tb(exc.__traceback__)[-4:]
            out.pop("run", None)
            out.update(
                error=f"{type(exc).__name__}: {exc}",
                phase=where(),
                rss_mb=_rss_mb(),
                where_raised=[f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in frames],
            )
            emit_result(out)
            raise
    out["peak_sampled_mb"] = peak["mb"]
    emit_result(out)


# -- the parent -----------------------------------------------------------------------------


def run_case(case: Case, limit_gib: float, tag: str, argv_line: str = "") -> dict[str, Any]:
    log(f"case {case.name}: {case.title}")
    args = [
        sys.executable,
        "-m",
        "bench.curation_bench",
        "--child",
        json.dumps(asdict(case)),
        "--rss-limit-gib",
        str(limit_gib),
    ]
    m = run_measured(args, env=offline_env())
    result = dict(m.result)
    result.update(
        {
            "name": case.name,
            "title": case.title,
            "command": argv_line,
            "returncode": m.returncode,
            "process_wall_s": m.wall_s,
            "process_peak_rss_mb": m.peak_rss_bytes / MIB,
            "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        }
    )
    if not m.ok and not result.get("aborted"):
        result["error"] = f"child exited {m.returncode}"
    RESULT_DIR.mkdir(parents=True, exist_ok=True)
    (RESULT_DIR / f"{tag}-{case.name}.json").write_text(json.dumps(result, indent=1))
    status = "aborted" if result.get("aborted") else ("ok" if m.ok else "FAILED")
    log(f"case {case.name}: {status}, {m.wall_s:.1f}s, peak {fmt_mib(m.peak_rss_bytes)} MiB")
    return result


def _step_rows(run: dict[str, Any]) -> list[list[object]]:
    whole = {p["phase"][len("whole: ") :]: p["seconds"] for p in run["phases"]}
    rows: list[list[object]] = []
    for s in run["steps"]:
        rows.append(
            [
                s["name"],
                s["kind"],
                fmt_int(s["n_in"]),
                fmt_int(s["n_out"]),
                fmt_int(s["n_dropped"]),
                fmt_s(s["seconds"]),
                fmt_s(whole[s["name"]]) if s["name"] in whole else "",
                f"{s['peak_rss_mb']:,.0f}",
                "yes" if s["cached"] else "",
            ]
        )
    return rows


def _compute_seconds(run: dict[str, Any]) -> float:
    """Wall time of the stages and whole-column steps, as the bench timed them."""
    return sum(p["seconds"] for p in run["phases"] if p["phase"] not in ("plan", "commit"))


def _phase_rows(run: dict[str, Any]) -> list[list[object]]:
    return [[p["phase"], fmt_s(p["seconds"]), f"{p['peak_mb']:,.0f}"] for p in run["phases"]]


def _phase_seconds(run: dict[str, Any], name: str) -> float:
    return sum(p["seconds"] for p in run["phases"] if p["phase"] == name)


def _case_section(r: dict[str, Any]) -> str:
    out = [f"## {r['name']}: {r['title']}", ""]
    if r.get("note"):  # added by hand to a case's JSON (what the numbers cannot say)
        out += [f"Note: {r['note']}", ""]
    case = r.get("case", {})
    if case:
        out.append(
            f"Warehouse `{Path(case['warehouse']).name}`, input where `{case['where'] or 'true'}`, "
            f"step cache {'on' if case['use_cache'] else 'off'}"
            + (f", without {', '.join(case['drop_steps'])}" if case["drop_steps"] else "")
            + f"; finished {r['finished']}"
            + (f" (`{r['command']}`)." if r.get("command") else ".")
        )
        out.append("")
    if r.get("aborted"):
        out.append(
            f"**Aborted** in {r['phase']}: RSS {r['rss_mb']:,.0f} MiB (limit "
            f"{r['limit_mb']:,.0f} MiB, machine available {r['available_mb']:,.0f} MiB) after "
            f"{fmt_s(r['process_wall_s'])} s."
        )
        return "\n".join(out)
    if "run" not in r:
        out.append(
            f"**Failed** in {r.get('phase', '?')} after {fmt_s(r['process_wall_s'])} s "
            + (f"(RSS {r['rss_mb']:,.0f} MiB then, " if "rss_mb" in r else "(")
            + "process peak "
            f"{r['process_peak_rss_mb']:,.0f} MiB): `{r.get('error', 'no result')}`"
        )
        if r.get("where_raised"):
            out.append("")
            out.extend(f"    {w}" for w in r["where_raised"])
        return "\n".join(out)
    run = r["run"]
    headers = [
        "step",
        "kind",
        "in",
        "out",
        "dropped",
        "seconds",
        "bench s",
        "peak RSS MiB",
        "cached",
    ]
    out.append(md_table(headers, _step_rows(run), align="llrrrrrrl"))
    out.append("")
    out.append(
        "`seconds` is the runner's `StepOutcome.seconds`; `bench s` the bench's own timer "
        "around a whole-column step (runs before the binarize timing fix show 0 s for "
        "binarize in `seconds`)."
    )
    out.append("")
    step_s = sum(s["seconds"] for s in run["steps"])
    out.append(
        f"Runner wall {fmt_s(run['wall_s'])} s (sum of step seconds {fmt_s(step_s)} s); "
        f"CPU {fmt_s(run['cpu_s'])} s ({run['cpu_s'] / max(run['wall_s'], 1e-9):.2f} cores busy "
        f"on average); load average {run['load_start']:.2f} at start, {run['load_end']:.2f} "
        f"at end. Child process: {fmt_s(r['process_wall_s'])} s wall (imports included), "
        f"peak RSS {r['process_peak_rss_mb']:,.0f} MiB, {r['rss_start_mb']:,.0f} MiB after "
        "imports."
    )
    out.append("")
    out.append("Where the wall time went (a stage is one streaming pass of row-local steps; its")
    out.append("time includes reading the batches from DuckDB and charging drops, which the")
    out.append("per-step seconds above leave out):")
    out.append("")
    out.append(md_table(["phase", "seconds", "peak RSS MiB"], _phase_rows(run), align="lrr"))
    out.append("")
    if run["flush_s"] > 0.05:
        out.append(
            f"Embedding-cache flushes (write lock, inside the phases): {fmt_s(run['flush_s'])} s."
        )
        out.append("")
    splits = ", ".join(f"{k} {fmt_int(v)}" for k, v in sorted(run["splits"].items()))
    out.append(f"Output splits: {splits} (snapshot `{run['snapshot_id']}`).")
    notes = [f"{s['name']}: {s['note']}" for s in run["steps"] if s["note"]]
    if notes:
        out.append("")
        out.extend(f"- {n}" for n in notes)
    if "prime" in r:
        p = r["prime"]
        cached = sum(1 for s in p["steps"] if s["cached"])
        out.append("")
        out.append(
            f"Priming run before it (cache on): {fmt_s(p['wall_s'])} s, {cached} of "
            f"{len(p['steps'])} steps served from the cache."
        )
    return "\n".join(out)


def _summary(results: list[dict[str, Any]]) -> str:
    rows = []
    for r in results:
        if "run" not in r:
            state = "aborted" if r.get("aborted") else "FAILED"
            state += f" in {r.get('phase', '?').split(': ', 1)[-1]}"
            rows.append([r["name"], state, *[""] * 7, f"{r['process_peak_rss_mb']:,.0f}"])
            continue
        run = r["run"]
        whole = {p["phase"][len("whole: ") :]: p["seconds"] for p in run["phases"]}
        slow = max(run["steps"], key=lambda s: max(s["seconds"], whole.get(s["name"], 0.0)))
        slow_s = max(slow["seconds"], whole.get(slow["name"], 0.0))
        rows.append(
            [
                r["name"],
                fmt_int(run["n_input"]),
                fmt_int(sum(run["splits"].values())),
                fmt_s(run["wall_s"]),
                fmt_s(sum(s["seconds"] for s in run["steps"])),
                fmt_s(_compute_seconds(run)),
                fmt_s(_phase_seconds(run, "plan")),
                fmt_s(_phase_seconds(run, "commit")),
                f"{slow['name']} {fmt_s(slow_s)} s",
                f"{r['process_peak_rss_mb']:,.0f}",
            ]
        )
    headers = [
        "case",
        "input rows",
        "output rows",
        "wall s",
        "steps s",
        "compute s",
        "plan s",
        "commit s",
        "slowest step",
        "peak RSS MiB",
    ]
    return md_table(headers, rows, align="lrrrrrrrlr")


def _cache_section(results: dict[str, dict[str, Any]]) -> str:
    rows = []
    for base in ("uf_h4", "uf_argilla"):
        cold, warm = results.get(base), results.get(f"{base}_cached")
        if not cold or not warm or "run" not in cold or "run" not in warm:
            continue
        c, w = cold["run"], warm["run"]
        rows.append(
            [
                cold["case"]["recipe"],
                fmt_s(c["wall_s"]),
                fmt_s(w["wall_s"]),
                fmt_s(_compute_seconds(c)),
                fmt_s(_compute_seconds(w)),
                fmt_s(_phase_seconds(c, "commit")),
                fmt_s(_phase_seconds(w, "commit")),
                f"{c['wall_s'] / max(w['wall_s'], 1e-9):.1f}x",
            ]
        )
    if not rows:
        return ""
    headers = [
        "recipe",
        "wall s, cache off",
        "wall s, cache warm",
        "compute s, off",
        "compute s, warm",
        "commit s, off",
        "commit s, warm",
        "speedup",
    ]
    return "\n".join(
        [
            "## What the step cache saves (UltraFeedback)",
            "",
            "Cache off = `use_cache=False` (steps recompute; they still write their cache "
            "entries). Warm = `use_cache=True` after a priming run. Every run commits a new "
            "snapshot, so the commit is paid either way; the split step is never cached.",
            "",
            md_table(headers, rows, align="lrrrrrrr"),
            "",
        ]
    )


def write_markdown(tag: str, argv_line: str, quick: bool) -> Path:
    # one JSON per case; a JSON kept under another name (an earlier size, say) is listed last
    results: dict[str, dict[str, Any]] = {}
    for path in sorted(RESULT_DIR.glob(f"{tag}-*.json")):
        name = path.stem[len(tag) + 1 :]
        results[name] = {**json.loads(path.read_text()), "name": name}
    ordered = [results[n] for n in CASES if n in results]
    ordered += [results[n] for n in sorted(results) if n not in CASES]
    machine = machine_info()
    machine["load"] = "given per case below"  # cases ran at different times
    parts = [
        "# Curation recipes end to end (synthetic data)",
        "",
        f"Written by `{argv_line}` (each case names the command that ran it). "
        f"{machine_line(machine)} The machine is shared with other engineers "
        "(tests and training runs come and go on the same 2 cores): timings are noisy; each "
        "case reports the load average and the CPU seconds it got. Each case ran in its own "
        "child process; cases ran one after another.",
        "",
        "Per-step seconds are the runner's own (`StepOutcome.seconds`): for row-local steps "
        "the filter's compute only; for whole-column steps (dedup, binarize, split) everything "
        "inside the step. Per-step peak RSS is the process's RSS high-water mark during the "
        "step (for row-local steps: during the stage's streaming pass, shared by its steps), "
        "so it includes whatever earlier steps still hold. The data are synthetic (`curate "
        "synth`, seed 0): the drop counts reflect planted defects, not real UltraChat.",
        "",
        "## Summary",
        "",
        _summary(ordered) if ordered else "(no case finished yet)",
        "",
        "`wall s` is `RunResult.wall_s` (plan, steps, flush and commit); `steps s` the sum of "
        "the runner's per-step seconds; `compute s` the bench's timer around every stage and "
        "whole-column step (batch reads and drop attribution included); `plan s` and "
        "`commit s` the bench's timers around `Runner.plan` and `Runner._commit`; peak RSS "
        "is the child process's.",
        "",
    ]
    missing = [n for n in CASES if n not in results]
    if missing:
        parts += [f"Not run: {', '.join(missing)}.", ""]
    cache = _cache_section(results)
    if cache:
        parts.append(cache)
    for r in ordered:
        parts += [_case_section(r), ""]
    text = "\n".join(parts)
    if quick:
        path = OUT_DIR / "curation-quick.md"
        path.write_text(text)
        log(f"wrote {path}")
        return path
    return write_result("curation.md", text)


def run(
    quick: bool = False,
    dialogues: int | None = None,
    semantic_rows: int | None = None,
    prompts: int | None = None,
    cases: list[str] | None = None,
    rss_limit_gib: float = 18.0,
    argv_line: str = "python -m bench.curation_bench",
) -> Path:
    d = QUICK_DEFAULTS if quick else FULL_DEFAULTS
    dialogues = dialogues or d["dialogues"]
    semantic_rows = semantic_rows or d["semantic_rows"]
    prompts = min(prompts or d["prompts"], UF_PROMPTS)
    semantic_rows = min(semantic_rows, dialogues)
    wanted = cases or list(CASES)
    unknown = set(wanted) - set(CASES)
    if unknown:
        raise SystemExit(f"unknown case(s) {', '.join(sorted(unknown))}; cases: {', '.join(CASES)}")
    n_source = ensure_sft_warehouse() if any(c.startswith("sft") for c in wanted) else 0
    if any(c.startswith("sft") for c in wanted) and n_source < max(dialogues, semantic_rows):
        dialogues = min(dialogues, n_source)
        log(f"{SFT_WAREHOUSE.name} holds {n_source:,} dialogues: using them all")
    if any(c.startswith("uf") for c in wanted):
        ensure_uf_warehouse()
    tag = "quick" if quick else "full"
    for case in build_cases(dialogues, semantic_rows, prompts, n_source):
        if case.name in wanted:
            run_case(case, rss_limit_gib, tag, argv_line)
    return write_markdown(tag, argv_line, quick)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="20k dialogues, 1k semantic, 4k prompts")
    ap.add_argument("--dialogues", type=int, help="dialogues for sft_full (default 1,470,000)")
    ap.add_argument("--semantic-rows", type=int, help="dialogues for sft_semantic (100,000)")
    ap.add_argument("--prompts", type=int, help="UltraFeedback prompts (default 64,000)")
    ap.add_argument("--cases", help=f"comma-separated subset of {','.join(CASES)}")
    ap.add_argument("--rss-limit-gib", type=float, default=18.0, help="abort a case above this")
    ap.add_argument("--report-only", action="store_true", help="rewrite the markdown, run nothing")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        child(a.child, a.rss_limit_gib)
        return
    line = "python -m bench.curation_bench " + " ".join(sys.argv[1:] if argv is None else argv)
    if a.report_only:
        write_markdown("quick" if a.quick else "full", line.strip(), a.quick)
        return
    run(
        quick=a.quick,
        dialogues=a.dialogues,
        semantic_rows=a.semantic_rows,
        prompts=a.prompts,
        cases=a.cases.split(",") if a.cases else None,
        rss_limit_gib=a.rss_limit_gib,
        argv_line=line.strip(),
    )


if __name__ == "__main__":
    main()
