"""`curate`: the command line. It composes the packages' functions and adds no logic.

Data goes to stdout, progress and logs to stderr. Exit codes: 0 ok, 1 internal error,
2 usage error, 3 bad input (missing file, unknown format, refused or failing SQL),
4 warehouse busy (another process holds it), 5 query time limit reached, 6 a snapshot
failed `verify`.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from curate import output
from warehouse import CurateError, Warehouse, default_warehouse_path
from warehouse.errors import BadInputError

EXIT_INTERNAL, EXIT_USAGE = 1, 2

app = typer.Typer(
    name="curate",
    help="Curate chat alignment data: ingest UltraChat / UltraFeedback into a DuckDB "
    "warehouse, query it with SQL, run recipes into versioned snapshots, export them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class UsageProblem(CurateError):
    """The command line itself is wrong (a missing argument, a bad combination)."""

    exit_code = EXIT_USAGE


class _State:
    warehouse_path: Path = default_warehouse_path()
    wait_s: float = 10.0

    @classmethod
    def warehouse(cls) -> Warehouse:
        return Warehouse(cls.warehouse_path, wait_s=cls.wait_s)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _progress_default() -> bool:
    return sys.stderr.isatty() and os.environ.get("TERM") != "dumb"


@app.callback()
def _root(
    warehouse: Annotated[
        Path | None,
        typer.Option(
            "--warehouse",
            "-w",
            help="Warehouse file (default ./curation.duckdb or $CURATE_WAREHOUSE).",
            show_default=False,
        ),
    ] = None,
    wait: Annotated[
        float,
        typer.Option(help="Seconds to wait when another process holds the warehouse."),
    ] = 10.0,
) -> None:
    """Curate chat alignment data."""
    _State.warehouse_path = warehouse or default_warehouse_path()
    _State.wait_s = wait


@app.command()
def ingest(
    paths: Annotated[
        list[str],
        typer.Argument(
            help="Files (.jsonl .json .parquet .arrow), folders, globs, `save_to_disk` "
            "folders, or hub ids (owner/name, needs network).",
            show_default=False,
        ),
    ],
    format: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="auto, ultrachat_raw, ultrachat_200k, ultrafeedback_raw, h4_binarized, "
            "trl_flat, argilla_cleaned.",
        ),
    ] = "auto",
    split: Annotated[
        str | None, typer.Option(help="Split name to record (default: from the file name).")
    ] = None,
    revision: Annotated[
        str | None, typer.Option(help="Dataset revision to record (and load, for hub ids).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
    progress: Annotated[
        bool | None, typer.Option("--progress/--no-progress", help="Progress bar on stderr.")
    ] = None,
    chunk_mb: Annotated[
        float, typer.Option(help="JSON Lines block size in MiB (memory vs speed).")
    ] = 32.0,
) -> None:
    """Ingest records into the warehouse; bad records go to quarantine with their reason.

    Example: curate ingest data/samples/ --format auto
    """
    from warehouse.ingest import IngestOptions
    from warehouse.ingest import ingest as run_ingest

    opts = IngestOptions(
        format=format,
        split=split,
        revision=revision,
        progress=_progress_default() if progress is None else progress,
        chunk_bytes=max(4096, int(chunk_mb * (1 << 20))),
    )
    results = run_ingest(_State.warehouse(), paths, opts, log=_log)
    if as_json:
        output.print_json([r.as_dict() for r in results])
        return
    rows = [
        {
            "source": r.source,
            "format": r.format,
            "table": r.target_table,
            "in": r.n_in,
            "accepted": r.n_accepted,
            "quarantined": r.n_quarantined,
            "status": "already ingested" if r.skipped else "ingested",
        }
        for r in results
    ]
    output.print_rows(rows, title=f"warehouse {_State.warehouse_path}")
    total_in = sum(r.n_in for r in results if not r.skipped)
    total_bad = sum(r.n_quarantined for r in results if not r.skipped)
    if total_bad:
        _log(
            f"{total_bad} of {total_in} records quarantined; see them with: curate sql "
            '"SELECT source_file, source_line, reason FROM quarantine"'
        )


class SqlFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"
    parquet = "parquet"


@app.command()
def sql(
    query: Annotated[
        str | None,
        typer.Argument(help="The SQL; '-' or omitted reads stdin.", show_default=False),
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="Read the SQL from this file.")
    ] = None,
    fmt: Annotated[SqlFormat, typer.Option("--format", help="Output format.")] = SqlFormat.table,
    out: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")
    ] = None,
    max_rows: Annotated[
        int, typer.Option(help="Row cap (can only be lowered; at most 100000).")
    ] = 10_000,
    time_limit: Annotated[
        float, typer.Option(help="Seconds before the query is stopped (at most 60).")
    ] = 30.0,
) -> None:
    """Run one read-only query over the warehouse tables and views.

    Example: curate sql "SELECT role, count(*) FROM turns GROUP BY role"
    """
    from warehouse.sandbox import QueryLimits, run_query

    if file is not None:
        if not file.exists():
            raise BadInputError(f"{file}: no such SQL file")
        text = file.read_text()
    elif query is None or query == "-":
        if sys.stdin.isatty():
            raise UsageProblem("give a query, --file F, or pipe SQL on stdin")
        text = sys.stdin.read()
    else:
        text = query
    if fmt is SqlFormat.parquet and out is None:
        raise UsageProblem("--format parquet needs --output FILE")
    result = run_query(_State.warehouse(), text, QueryLimits(max_rows, time_limit))
    output.write_table(result.table, fmt.value, out)
    note = f"{result.table.num_rows} rows in {result.seconds:.2f}s"
    if result.truncated:
        note += f" (truncated at the row cap of {result.limits.max_rows}; lower it with --max-rows or add LIMIT)"
    _log(note)


@app.command()
def schema(
    markdown: Annotated[bool, typer.Option("--markdown", help="Print docs/schema.md.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Print the warehouse schema: tables, columns and views, with what each means."""
    from warehouse import schema as sch

    if markdown:
        print(sch.render_markdown())
        return
    if as_json:
        output.print_json(
            {
                "tables": [
                    {
                        "name": t.name,
                        "doc": t.doc,
                        "columns": [
                            {"name": c.name, "type": c.type, "doc": c.doc} for c in t.columns
                        ],
                    }
                    for t in sch.TABLES
                ],
                "views": [{"name": v.name, "doc": v.doc, "sql": v.sql} for v in sch.VIEWS],
            }
        )
        return
    for t in sch.TABLES:
        output.print_rows(
            [{"column": c.name, "type": c.type, "meaning": c.doc} for c in t.columns],
            title=f"table {t.name}: {t.doc}",
        )
    output.print_rows([{"view": v.name, "meaning": v.doc} for v in sch.VIEWS], title="views")


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False) -> None:
    """What the warehouse holds: rows per table, ingest batches, quarantine reasons."""
    from warehouse.inspect import summary

    info = summary(_State.warehouse())
    if as_json:
        output.print_json(info)
        return
    output.print_rows(info["tables"], title=f"warehouse {info['path']}")
    if info["batches"]:
        output.print_rows(info["batches"], title="ingest batches")
    if info["quarantine"]:
        output.print_rows(info["quarantine"], title="quarantine by reason")


@app.command()
def synth(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write the files into.")],
    dialogues: Annotated[int, typer.Option(help="UltraChat dialogues.")] = 10_000,
    prompts: Annotated[
        int, typer.Option(help="UltraFeedback prompts (4 completions each).")
    ] = 2_000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same bytes).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
) -> None:
    """Write synthetic raw UltraChat and UltraFeedback with planted defects and ground truth."""
    from warehouse.synth import SynthConfig, generate

    res = generate(
        out_dir,
        SynthConfig(n_dialogues=dialogues, n_prompts=prompts, seed=seed),
        progress=_progress_default(),
    )
    if as_json:
        output.print_json(json.loads(res.manifest_path.read_text()))
        return
    output.print_rows(
        [{"plant": k, "rows": v} for k, v in sorted(res.counts.items())], title="planted"
    )
    for p in (res.ultrachat_path, res.ultrafeedback_path, res.ground_truth_path):
        print(p)


# -- curation ------------------------------------------------------------------------------
@app.command()
def run(
    recipe: Annotated[
        str,
        typer.Argument(
            help="Recipe YAML, or a built-in name: ultrachat_200k, ultrafeedback_binarized, "
            "ultrafeedback_binarized_cleaned.",
            show_default=False,
        ),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Compute and report; write nothing.")
    ] = False,
    message: Annotated[str, typer.Option("--message", "-m", help="Note stored with it.")] = "",
    tag: Annotated[
        list[str] | None, typer.Option("--tag", "-t", help="Tag the snapshot (repeatable).")
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Recompute every step (ignore cached results).")
    ] = False,
    batch_size: Annotated[int, typer.Option(help="Rows per batch for row-local steps.")] = 20_000,
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
    progress: Annotated[
        bool | None, typer.Option("--progress/--no-progress", help="Progress bars on stderr.")
    ] = None,
) -> None:
    """Run a recipe over the warehouse and commit a snapshot (or --dry-run: report only).

    Example: curate run ultrachat_200k --tag zephyr-sft-v1
    """
    from curation import report
    from curation.recipe import load_recipe
    from curation.runner import RunOptions, run_recipe

    opts = RunOptions(
        dry_run=dry_run,
        message=message,
        tags=list(tag or []),
        progress=_progress_default() if progress is None else progress,
        batch_size=batch_size,
        use_cache=not no_cache,
    )
    result = run_recipe(load_recipe(recipe), _State.warehouse(), opts, log=_log)
    if as_json:
        output.print_json(report.result_dict(result))
        return
    if result.steps:
        output.print_rows(
            report.funnel_rows(result),
            title=f"{result.recipe.name}: {result.n_input:,} input rows "
            "(alone = what the step drops on its own among rows entering its stage)",
        )
        matrix = report.overlap_matrix(result.overlap)
        if matrix:
            output.print_rows(matrix, title="rows both steps would drop (diagonal: alone)")
        samples = report.sample_rows(result)
        if samples:
            output.print_rows(samples, title="sample drops")
    splits = ", ".join(f"{k} {v:,}" for k, v in result.splits.items())
    if result.dry_run:
        _log(f"dry run: nothing written; it would commit snapshot {result.snapshot_id} ({splits})")
    elif result.existed:
        _log(f"snapshot {result.snapshot_id} already existed ({splits}); nothing recomputed")
    else:
        _log(f"committed snapshot {result.snapshot_id} ({splits}) in {result.wall_s:.1f}s")
    print(result.snapshot_id)


@app.command()
def sweep(
    recipe: Annotated[str, typer.Argument(help="Recipe YAML or built-in name.")],
    step: Annotated[str, typer.Option("--step", help="Step name in the recipe.")],
    values: Annotated[
        list[float], typer.Option("--values", help="Values to try (repeat the option).")
    ],
    param: Annotated[str, typer.Option("--param", help="Parameter to sweep.")] = "threshold",
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
) -> None:
    """Counts per threshold value from stored scores (run the recipe once first).

    Example: curate sweep ultrachat_200k --step repetition --values 0.2 --values 0.3
    """
    from curation.recipe import load_recipe
    from curation.sweep import sweep as run_sweep

    rows, what = run_sweep(load_recipe(recipe), _State.warehouse(), step, param, values)
    data = [r.__dict__ for r in rows]
    if as_json:
        output.print_json({"step": step, "param": param, "filter": what, "rows": data})
        return
    output.print_rows(
        [
            {
                param: r.value,
                "scored": r.n_scored,
                "kept": r.kept,
                "dropped": r.dropped,
                "dropped beyond earlier steps": ""
                if r.dropped_after_earlier is None
                else r.dropped_after_earlier,
            }
            for r in rows
        ],
        title=f"{step}: {what}; from stored scores, nothing recomputed",
    )


@app.command(name="snapshots")
def snapshots_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List snapshots, newest first, with their tags and split sizes."""
    from warehouse import snapshots as snaps

    with _State.warehouse().read() as con:
        rows = snaps.list_snapshots(con)
    if as_json:
        output.print_json(rows)
        return
    output.print_rows(
        [
            {
                "snapshot": r["snapshot_id"],
                "tags": ", ".join(r["tags"]),
                "kind": r["kind"],
                "recipe": r["recipe_name"],
                "rows": r["n_rows"],
                "splits": ", ".join(f"{k} {v}" for k, v in r["splits"].items()),
                "created": r["created_at"][:19],
                "message": r["message"],
            }
            for r in rows
        ],
        title=f"snapshots in {_State.warehouse_path}",
    )


@app.command()
def show(
    snapshot: Annotated[str, typer.Argument(help="Snapshot id, id prefix, or tag.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """A snapshot's lineage, funnel, drop overlap and sample drops."""
    from curation import report
    from warehouse import snapshots as snaps

    with _State.warehouse().read() as con:
        sid = snaps.resolve(con, snapshot)
        info = snaps.catalog_row(con, sid)
        funnel = report.stored_funnel_rows(con, sid)
        matrix = report.overlap_matrix(report.stored_overlap(con, sid))
        samples = report.stored_samples(con, sid)
    if as_json:
        info = {k: v for k, v in info.items() if k != "recipe_text"}
        output.print_json({**info, "funnel": funnel, "overlap": matrix, "samples": samples})
        return
    output.print_rows(
        [{"field": k, "value": v} for k, v in info.items() if k not in ("recipe_text",)],
        title=f"snapshot {sid}",
    )
    if funnel:
        output.print_rows(funnel, title="funnel")
    if matrix:
        output.print_rows(matrix, title="rows both steps would drop (diagonal: alone)")
    if samples:
        output.print_rows(samples, title="sample drops (all of them: the drop_ledger table)")


@app.command()
def diff(
    a: Annotated[str, typer.Argument(help="Snapshot A (id, prefix or tag).")],
    b: Annotated[str, typer.Argument(help="Snapshot B.")],
    rows: Annotated[int, typer.Option(help="Changed rows to list.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Rows added, removed and changed from A to B, and the step that caused each."""
    from curation.diff import diff_snapshots

    with _State.warehouse().read() as con:
        d = diff_snapshots(con, a, b, max_rows=max(rows, 0))
    if as_json:
        output.print_json(
            {
                "a": d.a,
                "b": d.b,
                "added": d.n_added,
                "removed": d.n_removed,
                "changed": d.n_changed,
                "summary": d.summary,
                "rows": d.rows.to_pylist(),
            }
        )
        return
    if d.identical:
        _log(f"{d.a} and {d.b} hold the same rows")
        return
    output.print_rows(d.summary, title=f"{d.a} -> {d.b}")
    if rows and d.rows.num_rows:
        output.print_rows(d.rows.slice(0, rows).to_pylist(), title="rows")
    _log(f"added {d.n_added:,}, removed {d.n_removed:,}, changed {d.n_changed:,}")


@app.command()
def verify(
    snapshot: Annotated[str, typer.Argument(help="Snapshot id, id prefix, or tag.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Recompute a snapshot's content hash and id from what is stored; exit 6 on mismatch."""
    from curation.verify import verify_snapshot
    from warehouse.errors import IntegrityError

    with _State.warehouse().read() as con:
        res = verify_snapshot(con, snapshot)
    if as_json:
        output.print_json(res.as_dict())
    else:
        output.print_rows(
            [
                {"check": c.name, "ok": "ok" if c.ok else "FAILED", "detail": c.detail}
                for c in res.checks
            ],
            title=f"verify {res.snapshot_id}",
        )
        for n in res.notes:
            _log(f"note: {n}")
    if not res.ok:
        raise IntegrityError(f"snapshot {res.snapshot_id} does not match its catalog")


@app.command()
def tag(
    snapshot: Annotated[str, typer.Argument(help="Snapshot id, id prefix, or tag.")],
    name: Annotated[str, typer.Argument(help="The tag, e.g. zephyr-sft-v1.")],
    force: Annotated[
        bool, typer.Option("--force", help="Move the tag if it names another.")
    ] = False,
) -> None:
    """Give a snapshot a human name."""
    from warehouse import snapshots as snaps

    with _State.warehouse().write() as con:
        sid = snaps.set_tag(con, snapshot, name, force=force)
    _log(f"{name} -> {sid}")


@app.command()
def overlap(
    a: Annotated[str, typer.Argument(help="Snapshot A (id, prefix or tag).")],
    b: Annotated[str, typer.Argument(help="Snapshot B.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Prompts the two snapshots share, per split pair (remove with a recipe `exclude` step)."""
    from curation.overlap import prompt_overlap

    with _State.warehouse().read() as con:
        sa, sb, rows = prompt_overlap(con, a, b)
    if as_json:
        output.print_json({"a": sa, "b": sb, "overlap": rows})
        return
    if not rows:
        _log(f"{sa} and {sb} share no prompt")
        return
    output.print_rows(rows, title=f"prompts shared by {sa} and {sb}")


class ExportFormat(StrEnum):
    hf = "hf"
    parquet = "parquet"
    jsonl = "jsonl"


@app.command()
def export(
    snapshot: Annotated[str, typer.Argument(help="Snapshot id, id prefix, or tag.")],
    out: Annotated[Path, typer.Argument(help="Folder to write.")],
    fmt: Annotated[
        ExportFormat, typer.Option("--format", help="hf (DatasetDict folder), parquet, jsonl.")
    ] = ExportFormat.hf,
    split: Annotated[
        list[str] | None, typer.Option("--split", help="Only these splits (repeatable).")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUT.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Export a snapshot in the published schema (hf loads with datasets.load_from_disk).

    Example: curate export zephyr-sft-v1 out/ultrachat_200k --format hf
    """
    from curation.export import export_snapshot

    res = export_snapshot(
        _State.warehouse(), snapshot, out, fmt.value, splits=split, overwrite=overwrite
    )
    info = {k: (str(v) if isinstance(v, Path) else v) for k, v in res.__dict__.items()}
    if as_json:
        output.print_json(info)
        return
    _log(f"exported {sum(res.rows.values()):,} rows to {res.out} ({fmt.value})")


# -- training (issue 5): `curate train sft|dpo`, `curate runs` -------------------------------
def _register_training() -> None:
    from curate.cli_train import runs_command, train_app

    app.add_typer(train_app, name="train")
    app.command("runs")(runs_command)


_register_training()


# -- service (issue 6): `curate serve` ------------------------------------------------------
def _register_serve() -> None:
    from curate.cli_serve import serve_command

    app.command("serve")(serve_command)


_register_serve()


def main(argv: list[str] | None = None) -> int:
    """Entry point: maps errors to exit codes and keeps tracebacks for real bugs."""
    try:
        rc = app(args=argv, prog_name="curate", standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except (typer.Abort, KeyboardInterrupt):
        _log("interrupted: nothing half-written was kept (an open ingest batch is rolled back)")
        return 130
    except typer.TyperException as exc:  # usage errors from the parser
        show = getattr(exc, "show", None)
        if callable(show):
            show(file=sys.stderr)
        else:
            _log(f"error: {exc}")
        return int(getattr(exc, "exit_code", EXIT_USAGE))
    except CurateError as exc:
        _log(f"error: {exc}")
        return exc.exit_code
    except BrokenPipeError:
        return 0
    except Exception:
        _log("internal error (a bug in curate; please report it with this trace):")
        traceback.print_exc(file=sys.stderr)
        return EXIT_INTERNAL
    # without standalone mode the parser returns (not raises) 130 for an interrupt
    if isinstance(rc, int) and rc:
        if rc == 130:
            _log("interrupted: nothing half-written was kept")
        return rc
    return 0
