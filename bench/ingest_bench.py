"""Ingest benchmark: our ingest of raw UltraChat vs `datasets` json -> parquet.

    python -m bench.ingest_bench --dialogues 1470000

Generates (once, cached under bench/out/) synthetic raw UltraChat JSON Lines with
`warehouse.synth`, then runs each path in a fresh child process so its peak memory is its own:

* ours: `warehouse.ingest.ingest` into a fresh DuckDB file (bench/out/bench.duckdb, which the
  query benchmark then reuses);
* datasets: `datasets.load_dataset("json", ...)` then `Dataset.to_parquet`, which is what a
  user would otherwise do to get the file into a columnar form.

Writes bench/results/ingest.md.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import pstats
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import (
    DEFAULT_DIALOGUES,
    MIB,
    OUT_DIR,
    REPO_ROOT,
    Measured,
    emit_result,
    fmt_int,
    fmt_mib,
    fmt_s,
    log,
    machine_info,
    machine_line,
    md_table,
    met,
    offline_env,
    run_measured,
    write_result,
)

BENCH_DB = OUT_DIR / "bench.duckdb"
SYNTH_MODULE = REPO_ROOT / "warehouse" / "synth.py"
GOAL_SPEEDUP = 3.0
GOAL_RSS_BYTES = 2 << 30
N_PROMPTS = 1_000  # UltraFeedback prompts the generator also writes; unused here


# -- input ----------------------------------------------------------------------------------


def wait_for_synth(timeout_s: float = 3600.0) -> None:
    """`warehouse/synth.py` may still be being written: wait until it defines `generate`."""
    deadline = time.monotonic() + timeout_s
    said = False
    while True:
        try:
            if "def generate" in SYNTH_MODULE.read_text():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{SYNTH_MODULE} has no `def generate` after {timeout_s:.0f}s")
        if not said:
            log(f"waiting for {SYNTH_MODULE.relative_to(REPO_ROOT)} to define generate() ...")
            said = True
        time.sleep(10)


def synth_dir(n_dialogues: int, seed: int = 0) -> Path:
    return OUT_DIR / f"synth-{n_dialogues}-seed{seed}"


def ensure_input(n_dialogues: int, seed: int = 0) -> Path:
    """The raw UltraChat JSONL of `n_dialogues` synthetic dialogues, generated once."""
    folder = synth_dir(n_dialogues, seed)
    manifest = folder / "bench-manifest.json"
    if manifest.exists():
        info = json.loads(manifest.read_text())
        path = Path(info["ultrachat_path"])
        if path.exists() and path.stat().st_size == info["size_bytes"]:
            log(f"reusing {path} ({info['size_bytes'] / MIB:,.0f} MiB, {n_dialogues:,} dialogues)")
            return path
    wait_for_synth()
    from warehouse.synth import SynthConfig, generate

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    log(f"generating {n_dialogues:,} synthetic raw UltraChat dialogues into {folder} ...")
    t0 = time.perf_counter()
    res = generate(
        folder, SynthConfig(n_dialogues=n_dialogues, n_prompts=N_PROMPTS, seed=seed), progress=True
    )
    path = Path(res.ultrachat_path).resolve()
    size = path.stat().st_size
    manifest.write_text(
        json.dumps(
            {
                "ultrachat_path": str(path),
                "size_bytes": size,
                "n_dialogues": n_dialogues,
                "seed": seed,
                "generate_seconds": round(time.perf_counter() - t0, 1),
            },
            indent=2,
        )
    )
    log(f"generated {path} ({size / MIB:,.0f} MiB) in {time.perf_counter() - t0:.0f}s")
    return path


# -- the two paths, each run in a child process -------------------------------------------------


def _remove_db(db: Path) -> None:
    for p in (db, db.with_name(db.name + ".wal")):
        p.unlink(missing_ok=True)
    shutil.rmtree(db.with_name(db.name + ".holders"), ignore_errors=True)


def child_ours(input_path: Path, db: Path, profile_out: Path | None) -> None:
    from warehouse import Warehouse
    from warehouse.ingest import IngestOptions, ingest

    _remove_db(db)
    prof = cProfile.Profile() if profile_out else None
    t0 = time.perf_counter()
    if prof:
        prof.enable()
    results = ingest(Warehouse(db), [str(input_path)], IngestOptions(progress=True))
    if prof:
        prof.disable()
    seconds = time.perf_counter() - t0
    if prof and profile_out:
        prof.dump_stats(str(profile_out))
    emit_result(
        {
            "rows": sum(r.n_accepted for r in results),
            "n_in": sum(r.n_in for r in results),
            "n_quarantined": sum(r.n_quarantined for r in results),
            "seconds": seconds,
            "batch_seconds": sum(r.seconds for r in results),
            "output_bytes": db.stat().st_size,
        }
    )


def child_datasets(input_path: Path, out: Path, cache: Path) -> None:
    import datasets

    shutil.rmtree(cache, ignore_errors=True)
    out.unlink(missing_ok=True)
    t0 = time.perf_counter()
    ds = datasets.load_dataset(
        "json", data_files=str(input_path), split="train", cache_dir=str(cache)
    )
    loaded = time.perf_counter()
    ds.to_parquet(str(out))
    seconds = time.perf_counter() - t0
    emit_result(
        {
            "rows": ds.num_rows,
            "seconds": seconds,
            "load_seconds": loaded - t0,
            "output_bytes": out.stat().st_size,
        }
    )


def _child(args: list[str]) -> Measured:
    cmd = [sys.executable, "-m", "bench.ingest_bench", *args]
    m = run_measured(cmd, env=offline_env())
    if not m.ok or "rows" not in m.result:
        raise SystemExit(f"child failed (exit {m.returncode}): {' '.join(cmd)}\n{m.stdout[-2000:]}")
    return m


def run_ours(input_path: Path, db: Path = BENCH_DB, profile_out: Path | None = None) -> Measured:
    log(f"ours: ingest {input_path.name} -> {db} (fresh child process)")
    extra = ["--profile-out", str(profile_out)] if profile_out else []
    m = _child(["--child", "ours", "--input", str(input_path), "--db", str(db), *extra])
    log(
        f"ours: {m.result['rows']:,} rows in {m.result['seconds']:.1f}s, "
        f"peak RSS {m.peak_rss_bytes / MIB:,.0f} MiB"
    )
    return m


def run_datasets(input_path: Path) -> Measured:
    out, cache = OUT_DIR / "datasets-out.parquet", OUT_DIR / "hf-cache"
    log(f"datasets: load_dataset('json') + to_parquet of {input_path.name} (fresh child process)")
    try:
        m = _child(
            [
                "--child",
                "datasets",
                "--input",
                str(input_path),
                "--out",
                str(out),
                "--cache",
                str(cache),
            ]
        )
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        out.unlink(missing_ok=True)
    log(
        f"datasets: {m.result['rows']:,} rows in {m.result['seconds']:.1f}s, "
        f"peak RSS {m.peak_rss_bytes / MIB:,.0f} MiB"
    )
    return m


def warehouse_rows(db: Path) -> int | None:
    """Dialogues in an existing benchmark warehouse, or None when it is missing or unreadable."""
    if not db.exists():
        return None
    try:
        from warehouse import Warehouse

        with Warehouse(db, wait_s=0).read() as con:
            row = con.execute("SELECT count(*) FROM dialogues").fetchone()
            return int(row[0]) if row else None
    except Exception:
        return None


def ensure_warehouse(n_dialogues: int, db: Path = BENCH_DB) -> Path:
    """The benchmark warehouse holding `n_dialogues` dialogues, built when missing."""
    if warehouse_rows(db) == n_dialogues:
        log(f"reusing {db} ({n_dialogues:,} dialogues)")
        return db
    run_ours(ensure_input(n_dialogues), db)
    return db


# -- report ---------------------------------------------------------------------------------


@dataclass
class PathResult:
    name: str
    m: Measured

    @property
    def rows(self) -> int:
        return int(self.m.result["rows"])

    @property
    def seconds(self) -> float:
        return float(self.m.result["seconds"])


def render(
    n_dialogues: int,
    input_path: Path,
    ours: PathResult,
    theirs: PathResult | None,
    info: dict[str, str],
    buckets: list[tuple[str, float]] | None = None,
) -> str:
    base = theirs.seconds if theirs else None
    rows = []
    for r in (ours, theirs):
        if r is None:
            continue
        speedup = f"{base / r.seconds:.2f}x" if base else "n/a"
        rows.append(
            [
                r.name,
                fmt_int(r.rows),
                fmt_s(r.seconds),
                fmt_int(r.rows / r.seconds),
                fmt_mib(r.m.peak_rss_bytes),
                fmt_mib(r.m.peak_anon_bytes),
                fmt_s(r.m.wall_s),
                fmt_mib(r.m.result["output_bytes"]),
                speedup,
            ]
        )
    table = md_table(
        [
            "path",
            "rows",
            "seconds",
            "rows/s",
            "peak RSS MiB",
            "peak anon MiB",
            "process wall s",
            "output MiB",
            "speedup vs datasets",
        ],
        rows,
        "lrrrrrrrr",
    )
    speed_ok = base is not None and base / ours.seconds >= GOAL_SPEEDUP
    rss_ok = ours.m.peak_rss_bytes < GOAL_RSS_BYTES
    speed = f"{base / ours.seconds:.2f}x" if base else "not measured (--skip-datasets)"
    verdict = (
        f"**Speed: {met(speed_ok) if base else 'not measured'} ({speed}). "
        f"Memory: {met(rss_ok)} (peak RSS {fmt_mib(ours.m.peak_rss_bytes)} MiB).**"
    )
    res = ours.m.result
    other = ours.seconds - float(res["batch_seconds"])
    notes = [
        f"- ours: {res['n_in']:,} records in, {res['rows']:,} accepted, {res['n_quarantined']:,} "
        f"quarantined. Of its {fmt_s(ours.seconds)} s, {fmt_s(res['batch_seconds'])} s are the "
        f"batch itself (parse, validate, insert) and {fmt_s(other)} s are around it (sha256 of "
        "the file, format detection, commit and checkpoint on close).",
    ]
    if theirs:
        t = theirs.m.result
        notes.append(
            f"- datasets: `load_dataset` {fmt_s(t['load_seconds'])} s, `to_parquet` "
            f"{fmt_s(t['seconds'] - t['load_seconds'])} s."
        )
    notes += [
        "- seconds: the operation inside the child process (interpreter start and imports "
        "excluded); process wall s includes them. rows/s = rows / seconds.",
        "- peak RSS: the kernel's high-water mark (VmHWM) of the child process tree, or its "
        "highest RSS sampled every 50 ms if larger. peak anon: the highest sampled RSS minus "
        "file-backed pages; `datasets` memory-maps its Arrow cache, and those pages count in "
        "RSS although the kernel can drop them.",
        "- The input file was in the page cache for both paths (it had just been generated "
        "or read).",
        "- output MiB: the DuckDB file (ours, with its derived columns and hashes) or the "
        "parquet file (datasets, the raw columns only).",
    ]
    return "\n".join(
        [
            "# Ingest benchmark",
            "",
            f"Input: {n_dialogues:,} synthetic raw UltraChat dialogues (`warehouse.synth`, seed 0), "
            f"{input_path.stat().st_size / MIB:,.0f} MiB of JSON Lines.",
            "",
            machine_line(info),
            "",
            f"Goal: ≥{GOAL_SPEEDUP:g}x faster than datasets json → parquet; peak RSS < 2 GiB. "
            + verdict,
            "",
            table,
            "",
            *notes,
            "",
            *_render_buckets(buckets),
            f"Reproduce: `python -m bench.ingest_bench --dialogues {n_dialogues}"
            + (" --profile`." if buckets else "`."),
        ]
    )


_BUCKETS = (
    ("sha256 of the whole file (Source.checksum)", "sources.py", "checksum"),
    ("Arrow JSON parse (readers._read_block)", "readers.py", "_read_block"),
    (
        "reading + line splitting in Python/numpy (read_jsonl less the parse)",
        "readers.py",
        "read_jsonl",
    ),
    ("DuckDB validate + insert per chunk (_ingest_chunk)", "ingest.py", "_ingest_chunk"),
    ("DuckDB commit (WAL, or checkpoint when the WAL is large)", "~", "commit"),
    ("open + schema + close (close checkpoints a pending WAL)", "store.py", "write"),
)


def profile_buckets(stats_file: Path) -> list[tuple[str, float]]:
    """Where the time of a profiled ingest went, in a few coarse buckets (cumulative s)."""
    st = pstats.Stats(str(stats_file))
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, object]]
    raw = st.stats  # type: ignore[attr-defined]
    total = max((v[3] for v in raw.values()), default=0.0)

    def cum(file_part: str, func: str) -> float:
        found = 0.0
        for (fname, _line, name), v in raw.items():
            if fname.endswith(file_part) and (name == func or name.endswith(f".{func}>")):
                found = max(found, v[3])
        return found

    vals = {label: cum(f, fn) for label, f, fn in _BUCKETS}
    parse = vals[_BUCKETS[1][0]]
    vals[_BUCKETS[2][0]] = max(vals[_BUCKETS[2][0]] - parse, 0.0)
    out = list(vals.items())
    out.append(("other", max(total - sum(vals.values()), 0.0)))
    out.append(("total (under cProfile)", total))
    return out


def _render_buckets(buckets: list[tuple[str, float]] | None) -> list[str]:
    if not buckets:
        return []
    total = buckets[-1][1] or 1.0
    rows = [[label, f"{sec:.1f}", f"{100 * sec / total:.0f}%"] for label, sec in buckets]
    return [
        "## Where our ingest's time goes",
        "",
        "One more run of ours under cProfile (slower than the timed run; shares matter, not "
        "seconds). DuckDB's work shows up inside the Python calls that run it. Full listing: "
        "`bench/out/ingest-profile.txt`.",
        "",
        md_table(["part", "seconds", "share"], rows, "lrr"),
        "",
    ]


def print_profile(stats_file: Path, top: int = 30) -> str:
    buf = io.StringIO()
    st = pstats.Stats(str(stats_file), stream=buf)
    st.sort_stats("cumulative").print_stats(top)
    st.sort_stats("tottime").print_stats(top)
    return buf.getvalue()


def run(n_dialogues: int, skip_datasets: bool = False, profile: bool = False) -> Path:
    info = machine_info()
    input_path = ensure_input(n_dialogues)
    ours = PathResult("ours: curate ingest → DuckDB", run_ours(input_path))
    theirs = None
    if not skip_datasets:
        theirs = PathResult("datasets: load_dataset json → to_parquet", run_datasets(input_path))
    buckets = None
    if profile:
        stats = OUT_DIR / "ingest-profile.pstats"
        with contextlib.suppress(FileNotFoundError):
            stats.unlink()
        run_ours(input_path, OUT_DIR / "profile.duckdb", stats)
        _remove_db(OUT_DIR / "profile.duckdb")
        (OUT_DIR / "ingest-profile.txt").write_text(print_profile(stats))
        log(f"cProfile (not a timing) written to {OUT_DIR / 'ingest-profile.txt'}")
        buckets = profile_buckets(stats)
    return write_result("ingest.md", render(n_dialogues, input_path, ours, theirs, info, buckets))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dialogues", type=int, default=DEFAULT_DIALOGUES)
    ap.add_argument("--skip-datasets", action="store_true", help="only time our ingest")
    ap.add_argument(
        "--profile", action="store_true", help="also run ours under cProfile (bench/out/)"
    )
    # Internal: the child processes.
    ap.add_argument("--child", choices=["ours", "datasets"], help=argparse.SUPPRESS)
    ap.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--profile-out", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child == "ours":
        child_ours(a.input, a.db, a.profile_out)
    elif a.child == "datasets":
        child_datasets(a.input, a.out, a.cache)
    else:
        run(a.dialogues, a.skip_datasets, a.profile)


if __name__ == "__main__":
    main()
