"""`curate serve`: the HTTP service (JSON API + pages) over the root `--warehouse`.

Registered by curate/cli.py like `runs_command`. It composes `dashboards.serve` only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def serve_command(
    host: Annotated[
        str, typer.Option(help="Address to bind (loopback by default; the API runs SQL and jobs).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8765,
    token: Annotated[
        str | None,
        typer.Option(
            help="Bearer token for changes (default $CURATE_TOKEN); without one, changes are "
            "refused.",
            show_default=False,
        ),
    ] = None,
    protect_reads: Annotated[
        bool, typer.Option("--protect-reads", help="Require the token for reads too.")
    ] = False,
    recipes_root: Annotated[
        Path | None,
        typer.Option(help="Folder of recipe / training-config YAML files the API may name."),
    ] = None,
    export_root: Annotated[
        Path | None,
        typer.Option(help="Folder exports go under (default <warehouse>.exports/)."),
    ] = None,
    sql_time_limit: Annotated[
        float, typer.Option(help="Seconds per SQL query (requests may lower it).")
    ] = 10.0,
    sql_max_rows: Annotated[
        int, typer.Option(help="Rows per SQL answer (requests may lower it).")
    ] = 1000,
) -> None:
    """Serve the JSON API (/api, OpenAPI at /openapi.json) and the dashboard pages.

    Example: CURATE_TOKEN=secret curate serve --port 8765
    """
    from curate.cli import UsageProblem, _State
    from dashboards.serve import serve
    from dashboards.settings import ServiceSettings

    fields: dict[str, object] = {
        "warehouse": _State.warehouse_path,
        "protect_reads": protect_reads,
        "recipes_root": recipes_root,
        "export_root": export_root,
        "sql_time_limit_s": sql_time_limit,
        "sql_max_rows": sql_max_rows,
    }
    if token is not None:
        fields["token"] = token or None
    settings = ServiceSettings.model_validate(fields)
    if settings.protect_reads and not settings.token:
        raise UsageProblem("--protect-reads needs a token: --token or $CURATE_TOKEN")
    serve(settings, host=host, port=port)
