"""`curate`: the command line. It composes the packages' functions and adds no logic.

Data goes to stdout, progress and logs to stderr. Exit codes: 0 ok, 1 internal error,
2 usage error, 3 bad input (missing file, unknown format, refused or failing SQL),
4 warehouse busy (another process holds it), 5 query time limit reached.
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
    "warehouse and query it with SQL.",
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


def main(argv: list[str] | None = None) -> int:
    """Entry point: maps errors to exit codes and keeps tracebacks for real bugs."""
    try:
        app(args=argv, prog_name="curate", standalone_mode=False)
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
    return 0
