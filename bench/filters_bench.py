"""Throughput of the heuristic filters and persona, and their accuracy on the ground truth.

    python -m bench.filters_bench [--dialogues 1470000] [--batch 50000]

Reads the dialogues of bench/out/bench.duckdb (built by bench.ingest_bench) through a
read-only connection in Arrow batches, and runs, each in a fresh child process so its peak
memory is its own: a read-only pass (the floor), every heuristic filter alone, persona, and
all heuristic filters together on each batch (the goal: 1.47M dialogues in under 2 minutes).
Persona and truecasing are scored against the synthetic ground truth
(bench/out/synth-<N>-seed0/ground_truth.parquet; raw ids are `source_id`). Writes
bench/results/filters.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench.common import (
    DEFAULT_DIALOGUES,
    OUT_DIR,
    REPO_ROOT,
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
)
from filters import Filter, PersonaFilter
from filters.language import NonEnglishFilter
from filters.quality import QUALITY_FILTERS
from filters.truecase import TruecaseFilter

GOAL_S = 120.0
DB = OUT_DIR / "bench.duckdb"
HEURISTICS: tuple[type[Filter], ...] = (*QUALITY_FILTERS, NonEnglishFilter, TruecaseFilter)
JOBS = ["read", *(f.name for f in HEURISTICS), "persona", "all_heuristics"]


def batches(db: Path, n: int, batch: int) -> Iterator[pa.Table]:
    """The first `n` dialogues (by raw line), `source_id` as row_id, one Arrow batch at a
    time from a read-only connection."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        reader = con.execute(
            "SELECT source_id AS row_id, messages, n_turns FROM dialogues "
            f"WHERE source_line <= {int(n)}"
        ).to_arrow_reader(batch)
        for rb in reader:
            yield pa.Table.from_batches([rb])
    finally:
        con.close()


# The benchmark warehouse holds the 1.47M-dialogue synthetic set; smaller runs read its first
# N raw lines, and only the ground truth of the rows read counts.
TRUTH = OUT_DIR / f"synth-{DEFAULT_DIALOGUES}-seed0" / "ground_truth.parquet"


def _child(job: str, db: Path, n: int, batch: int, truth: Path) -> None:
    """Run one job over the batches and emit its timings and counts."""
    filters: list[Filter]
    if job == "read":
        filters = []
    elif job == "all_heuristics":
        filters = [cls() for cls in HEURISTICS]
    elif job == "persona":
        filters = [PersonaFilter()]
    else:
        filters = [next(cls for cls in HEURISTICS if cls.name == job)()]
    gt = pq.read_table(truth) if job in ("persona", "truecase") else None
    persona_ids = lowercase = None
    if gt is not None:
        persona_ids = pc.filter(gt.column("record_id"), pc.equal(gt.column("plant"), "persona"))
        neg_ids = pc.filter(
            gt.column("record_id"), pc.equal(gt.column("plant"), "persona_negative")
        )
        low = gt.filter(pc.equal(gt.column("plant"), "lowercase"))
        lowercase = set(
            zip(
                low.column("record_id").to_pylist(),
                low.column("turn_index").to_pylist(),
                strict=True,
            )
        )
    rows = dropped = 0
    filter_s = 0.0
    flagged: set[str] = set()
    seen_planted = seen_neg = 0
    changed: set[tuple[str, int]] = set()
    seen_low: set[tuple[str, int]] = set()
    t0 = time.perf_counter()
    for b in batches(db, n, batch):
        rows += b.num_rows
        for f in filters:
            t1 = time.perf_counter()
            if isinstance(f, TruecaseFilter) and job == "truecase":
                _, res = f.apply_transform(b)  # the transform itself, with its records
                r = res.records
                changed.update(
                    zip(
                        r.column("row_id").to_pylist(),
                        r.column("turn_index").to_pylist(),
                        strict=True,
                    )
                )
                n_drop = 0
            else:
                result = f.apply(b)
                n_drop = result.stats.n_dropped
                if job == "persona":
                    flagged.update(result.dropped().column("row_id").to_pylist())
            filter_s += time.perf_counter() - t1
            dropped += n_drop
        if persona_ids is not None:
            ids = b.column("row_id")
            seen_planted += int(pc.sum(pc.is_in(ids, persona_ids)).as_py() or 0)
            seen_neg += int(pc.sum(pc.is_in(ids, neg_ids)).as_py() or 0)
            if lowercase is not None and job == "truecase":
                present = set(ids.to_pylist())
                seen_low.update(k for k in lowercase if k[0] in present)
    result: dict[str, Any] = {
        "rows": rows,
        "dropped": dropped,
        "filter_s": filter_s,
        "total_s": time.perf_counter() - t0,
    }
    if job == "persona" and gt is not None:
        planted = set(
            pc.filter(persona_ids, pc.is_in(persona_ids, pa.array(list(flagged)))).to_pylist()
        )
        negs = set(neg_ids.to_pylist()) & flagged
        result.update(
            flagged=len(flagged),
            tp=len(planted),
            planted=seen_planted,
            neg=seen_neg,
            neg_flagged=len(negs),
        )
    if job == "truecase":
        hits = changed & seen_low
        result.update(
            changed_turns=len(changed),
            tp=len(hits),
            planted=len(seen_low),
            changed_dialogues=len({k[0] for k in changed}),
        )
    emit_result(result)


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.4f}" if b else "n/a"


def _report(n: int, batch: int, out: dict[str, Any], info: dict[str, str]) -> str:
    rows_tbl = []
    for job in JOBS:
        m = out[job]
        r = m.result
        rows_tbl.append(
            [
                job,
                fmt_int(r["rows"]),
                fmt_s(r["filter_s"]) if job != "read" else "-",
                fmt_int(r["rows"] / r["filter_s"]) if job != "read" and r["filter_s"] else "-",
                fmt_s(r["total_s"]),
                fmt_int(r["rows"] / r["total_s"]),
                fmt_mib(m.peak_rss_bytes),
                fmt_int(r["dropped"]) if job not in ("read", "all_heuristics") else "-",
                f"{100 * r['dropped'] / r['rows']:.2f}"
                if job not in ("read", "all_heuristics")
                else "-",
            ]
        )
    allh = out["all_heuristics"].result
    p = out["persona"].result
    t = out["truecase"].result
    lines = [
        "# Filters benchmark",
        "",
        f"{fmt_int(n)} synthetic dialogues (`warehouse.synth`, seed 0) read from "
        f"`bench/out/bench.duckdb` (read-only DuckDB, Arrow batches of {fmt_int(batch)}; "
        "`source_id` as row_id). Each row is a fresh child process: **filter s** is the time "
        "inside `Filter.apply` (for `truecase`, `apply_transform`: the rewrite and its change "
        "record); **total s** adds reading the batches; peak RSS is the child's high-water "
        "mark. `read` is the reading alone. `all_heuristics` runs every heuristic filter "
        "(quality, non_english, truecase; not persona) on each batch as it is read.",
        "",
        machine_line(info),
        "",
        md_table(
            [
                "job",
                "rows",
                "filter s",
                "rows/s (filter)",
                "total s",
                "rows/s (total)",
                "peak RSS MiB",
                "dropped",
                "dropped %",
            ],
            rows_tbl,
            "lrrrrrrrr",
        ),
        "",
        f"Goal: all heuristic filters over {fmt_int(n)} dialogues in under "
        f"{GOAL_S:.0f} s: {fmt_s(allh['total_s'])} s including reading, "
        f"{fmt_s(allh['filter_s'])} s in the filters — "
        f"{met(allh['total_s'] < GOAL_S * n / DEFAULT_DIALOGUES)}"
        + (" (goal scaled to this size)" if n != DEFAULT_DIALOGUES else "")
        + ".",
        "",
        "## Accuracy against the synthetic ground truth",
        "",
        md_table(
            [
                "filter",
                "planted",
                "flagged/changed",
                "true positives",
                "precision",
                "recall",
                "note",
            ],
            [
                [
                    "persona (dialogues)",
                    fmt_int(p["planted"]),
                    fmt_int(p["flagged"]),
                    fmt_int(p["tp"]),
                    _ratio(p["tp"], p["flagged"]),
                    _ratio(p["tp"], p["planted"]),
                    f"{p['neg_flagged']} of {fmt_int(p['neg'])} hard negatives flagged",
                ],
                [
                    "truecase (turns)",
                    fmt_int(t["planted"]),
                    fmt_int(t["changed_turns"]),
                    fmt_int(t["tp"]),
                    _ratio(t["tp"], t["changed_turns"]),
                    _ratio(t["tp"], t["planted"]),
                    f"{100 * t['changed_dialogues'] / t['rows']:.2f}% of dialogues changed",
                ],
            ],
            "lrrrrrl",
        ),
        "",
        'Persona catches the lead-in variant ("Honestly, as an AI language model, ...") '
        "through `as_an_ai_aside`; before that pattern it missed 827 plants at 1.47M. "
        "Truecasing's extra "
        "changed turns are benchmark prompts (AlpacaEval) with a lower-case paragraph after a "
        'sentence end ("...subject.\\n\\nhistory of the USA"), which our rule '
        "capitalises and the generator does not count as a lower-case start. The synthetic "
        "text has no real-world noise (pasted poems, unfenced code), so truecasing precision "
        "here is an upper bound; on the 400 bundled real records it changes ~10% of "
        "dialogues. At 1.47M the 8 `non_english` drops are clean synthetic dialogues whose "
        "made-up vocabulary has few stopwords (scores 0.56-0.68).",
        "",
        "## Notes",
        "",
        "- Peak RSS is mostly the reader: the `read` row (DuckDB scan into Arrow batches, no "
        "filter) already peaks near 1.9 GiB; filters add 0.2-1.1 GiB on top (truecase holds "
        "the rewritten content column and its change record).",
        "- `all_heuristics` is less than the sum of the rows above: `min_tokens` and "
        "`max_tokens` share one token count per batch (`filters.quality._LastCounts`), "
        "`truecase` only counts edits when scoring (its own row includes the rewrite), and the "
        "batches are read once.",
        "- The cores are shared with other work (see the load average above); timings of the "
        "same code varied by up to 2x between runs while other benchmarks ran.",
        "- The cost is in four text passes of about 30 s each at this size (token regex, "
        "repetition, stopword regex, truecase candidate regex); the structural checks "
        "(turns, roles, lengths) take seconds.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dialogues", type=int, default=DEFAULT_DIALOGUES)
    ap.add_argument("--batch", type=int, default=50_000)
    ap.add_argument("--db", type=Path, default=DB)
    ap.add_argument("--truth", type=Path, default=None)
    ap.add_argument("--child", choices=JOBS, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=None, help="default: results/filters.md")
    args = ap.parse_args(argv)
    truth = args.truth or TRUTH
    if args.child:
        _child(args.child, args.db, args.dialogues, args.batch, truth)
        return 0
    info = machine_info()
    out = {}
    for job in JOBS:
        log(f"{job} over {fmt_int(args.dialogues)} dialogues")
        cmd = [
            sys.executable,
            "-m",
            "bench.filters_bench",
            "--child",
            job,
            "--dialogues",
            str(args.dialogues),
            "--batch",
            str(args.batch),
            "--db",
            str(args.db),
            "--truth",
            str(truth),
        ]
        m = run_measured(cmd, env=offline_env())
        if not m.ok:
            log(f"{job} failed:\n{m.stdout}")
            return 1
        log(f"  {json.dumps(m.result)} peak {fmt_mib(m.peak_rss_bytes)} MiB")
        out[job] = m
    text = _report(args.dialogues, args.batch, out, info)
    if args.out is None and args.dialogues != DEFAULT_DIALOGUES:
        args.out = OUT_DIR / f"filters-{args.dialogues}.md"  # a trial run: keep results clean
    path = args.out or REPO_ROOT / "bench" / "results" / "filters.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
