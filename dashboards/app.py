"""The one HTTP process over the warehouse: JSON API under /api, pages under /.

`create_app(settings)` builds it (tests call it directly); `curate serve` runs it with
uvicorn. Plotly's JS comes from the plotly package itself, served under /static: no CDN.

On startup the job runner opens the job records and marks jobs a dead service left behind
as interrupted; on shutdown it stops the running job and marks it (and queued ones)
interrupted. OpenAPI is at /openapi.json. The interactive /docs and /redoc pages are off:
FastAPI's versions load their JavaScript from a CDN, which the closed network cannot reach,
and no installed package ships those files.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from dashboards import errors
from dashboards.jobs import JobRunner
from dashboards.memo import OnceCache
from dashboards.settings import ServiceSettings
from dashboards.sql_pool import SqlPool


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    from dashboards import api, pages

    settings = settings or ServiceSettings()
    jobs = JobRunner(settings)
    sql = SqlPool(settings.sql_workers)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(jobs.start)
        try:
            yield
        finally:
            await run_in_threadpool(jobs.stop)
            sql.close()

    app = FastAPI(
        title="curate",
        description="Curation service: SQL, snapshots, drop ledger, recipe runs, training. "
        "Mutations need `Authorization: Bearer $CURATE_TOKEN`.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.jobs = jobs
    app.state.sql = sql
    app.state.diff_cache = OnceCache()
    errors.install(app)
    app.include_router(api.router, prefix="/api")
    pages.mount(app)
    return app
