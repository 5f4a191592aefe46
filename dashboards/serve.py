"""`serve(settings, host, port)`: run the app with uvicorn, in this process.

Loopback by default: the service runs user SQL and starts jobs, so exposing it is a choice
made with `--host`. Job recovery runs in the app's startup (see dashboards/app.py), before
the first request is served.
"""

from __future__ import annotations

import contextlib
import sys

import uvicorn

from dashboards.app import create_app
from dashboards.settings import ServiceSettings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def serve(
    settings: ServiceSettings,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    log_level: str = "info",
) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM stop it cleanly)."""
    if not settings.token:
        print(
            "note: no CURATE_TOKEN set: reads work, every change (runs, training, export, "
            "tags, cancel) is refused until the service is started with a token",
            file=sys.stderr,
            flush=True,
        )
    app = create_app(settings)
    # keep-alive longer than uvicorn's 5 s: a client whose pooled connection idled while a
    # slow request ran must not race the server closing it
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        timeout_keep_alive=75,
    )
    # uvicorn shuts down cleanly (jobs marked, workers stopped) on Ctrl-C / SIGTERM and then
    # re-raises the interrupt; the stop was asked for, so end quietly
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run()
