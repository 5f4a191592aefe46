"""Server-rendered pages over the warehouse (Jinja2, autoescaped), each with a JSON twin.

Every page is a GET with its state in the query string, so any view can be shared as a URL;
`?format=json` returns the data the template was given. The pages only read: each request
opens its own read-only connection, and DuckDB does the aggregation so a browser receives
bins and pages, never the 1.47M rows. Plotly's JS is served from the installed plotly
package (the network is closed, so no CDN).
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import math
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import jinja2
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from curation.diff import diff_snapshots
from dashboards import deps, queries
from dashboards.auth import check_token
from dashboards.settings import ServiceSettings
from dashboards.sql_pool import SqlPool
from warehouse import snapshots
from warehouse.errors import BadInputError, CurateError, QueryTimeoutError
from warehouse.sandbox import check_statement

HERE = Path(__file__).resolve().parent
# autoescape on for every template (they all end in .html): conversation text is data
templates = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(HERE / "templates")),
        autoescape=jinja2.select_autoescape(default=True),
    )
)
TOKEN_COOKIE = "curate_token"


def require_page_read(request: Request) -> None:
    """With `protect_reads`, pages need the token like the API: as a Bearer header, or as
    the cookie /login sets (a browser cannot add the header). Without either, go to /login."""
    settings = _settings(request)
    if not settings.protect_reads:
        return
    auth = request.headers.get("authorization")
    cookie = request.cookies.get(TOKEN_COOKIE)
    if not auth and not cookie:
        target = "/login?" + urllib.parse.urlencode({"next": _local(str(request.url))})
        raise HTTPException(303, "log in first", headers={"Location": target})
    check_token(settings, auth or f"Bearer {cookie}", "reading")


def _local(url: str) -> str:
    """Path and query only, so /login can never redirect off this site."""
    parts = urllib.parse.urlsplit(url)
    path = parts.path if parts.path.startswith("/") and not parts.path.startswith("//") else "/"
    return path + (f"?{parts.query}" if parts.query else "")


router = APIRouter(dependencies=[Depends(require_page_read)])
login_router = APIRouter()
CLUSTERS_PER_PAGE = 20  # each cluster fetches previews of all its members
SAMPLE_SQL = "SELECT step_name, count(*) AS n FROM drop_ledger GROUP BY step_name ORDER BY n DESC"


def plotly_js_path() -> Path:
    """plotly.min.js as shipped inside the plotly wheel."""
    import plotly

    return Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"


def _settings(request: Request) -> ServiceSettings:
    settings = getattr(request.app.state, "settings", None)
    return settings if isinstance(settings, ServiceSettings) else ServiceSettings()


def _page_size(request: Request) -> int:
    return max(1, int(_settings(request).page_size))


@contextlib.contextmanager
def _read(request: Request) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short read-only connection (deps: it first yields to a committing writer)."""
    with deps.read_connection(_settings(request)) as con:
        yield con


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime.datetime | datetime.date):
        return str(value)
    if isinstance(value, decimal.Decimal):
        return float(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def render(request: Request, template: str, ctx: dict[str, Any], status: int = 200) -> Response:
    """The HTML page, or with ?format=json the same data as JSON."""
    if request.query_params.get("format") == "json":
        return JSONResponse(_jsonable(ctx), status_code=status)
    return templates.TemplateResponse(request, template, ctx, status_code=status)


def _error(request: Request, message: str, status: int = 404) -> Response:
    title = "Not found" if status == 404 else "Unavailable"
    return render(request, "error.html", {"title": title, "error": message}, status)


# -- pages --------------------------------------------------------------------------------------
@router.get("/", name="overview")
def overview(request: Request) -> Response:
    try:
        with _read(request) as con:
            ctx = {
                "title": "Overview",
                "warehouse": str(_settings(request).warehouse),
                "tables": queries.table_counts(con),
                "batches": queries.ingest_batches(con),
                "snapshots": queries.snapshot_list(con),
            }
    except BadInputError as exc:
        return _error(request, str(exc), 503)
    return render(request, "overview.html", ctx)


@router.get("/snapshots/{ref}", name="snapshot")
def snapshot_page(request: Request, ref: str) -> Response:
    db = str(_settings(request).warehouse.resolve())
    try:
        with _read(request) as con:
            sid = snapshots.resolve(con, ref)
            cat = queries.catalog(con, sid)
            ctx = {
                "title": f"Snapshot {sid}",
                "ref": ref,
                "sid": sid,
                "catalog": cat,
                "funnel": queries.funnel(con, sid),
                "overlap": queries.overlap(con, sid),
                "shape": queries.shape(con, db, sid),
                "drop_scores": queries.drop_scores(con, sid),
                "pair_scores": (
                    queries.pair_scores(con, db, sid) if cat["kind"] == "preferences" else []
                ),
                "sources": queries.sources(con, db, sid, str(cat["kind"])),
                "runs": [r for r in queries.training_runs(con) if r["snapshot_id"] == sid],
            }
    except BadInputError as exc:
        return _error(request, str(exc))
    return render(request, "snapshot.html", ctx)


def _step_choice(
    con: duckdb.DuckDBPyConnection, sid: str, step: str, want_clusters: bool
) -> tuple[int | None, list[dict[str, Any]]]:
    steps = queries.funnel(con, sid)
    if want_clusters:
        steps = [s for s in steps if s["kind"] == "dedup"]
    else:
        steps = [s for s in steps if s["dropped"]]
    idx = queries.step_index(con, sid, step) if step else None
    if idx is None and not step and steps:
        idx = int(steps[0]["index"])
    return idx, steps


@router.get("/snapshots/{ref}/drops", name="drops")
def drops_page(request: Request, ref: str, step: str = "", after: str = "") -> Response:
    size = _page_size(request)
    try:
        with _read(request) as con:
            sid = snapshots.resolve(con, ref)
            idx, steps = _step_choice(con, sid, step, want_clusters=False)
            rows: list[dict[str, Any]] = []
            nxt: str | None = None
            if idx is None:
                if step:
                    return _error(request, f"snapshot {sid} has no step {step!r}")
            else:
                rows, nxt = queries.drops_page(con, sid, idx, after, size)
            current = next((s for s in queries.funnel(con, sid) if s["index"] == idx), None)
    except BadInputError as exc:
        return _error(request, str(exc))
    ctx = {
        "title": f"Drops of {sid}",
        "ref": ref,
        "sid": sid,
        "steps": steps,
        "step": current,
        "after": after,
        "rows": rows,
        "next": nxt,
        "page_size": size,
    }
    return render(request, "drops.html", ctx)


@router.get("/snapshots/{ref}/clusters", name="clusters")
def clusters_page(request: Request, ref: str, step: str = "", after: str = "") -> Response:
    size = min(_page_size(request), CLUSTERS_PER_PAGE)
    try:
        with _read(request) as con:
            sid = snapshots.resolve(con, ref)
            idx, steps = _step_choice(con, sid, step, want_clusters=True)
            clusters: list[dict[str, Any]] = []
            nxt: str | None = None
            if idx is None:
                if step:
                    return _error(request, f"snapshot {sid} has no step {step!r}")
            else:
                clusters, nxt = queries.clusters_page(con, sid, idx, after, size)
            current = next((s for s in queries.funnel(con, sid) if s["index"] == idx), None)
    except BadInputError as exc:
        return _error(request, str(exc))
    ctx = {
        "title": f"Dedup clusters of {sid}",
        "ref": ref,
        "sid": sid,
        "steps": steps,
        "step": current,
        "after": after,
        "clusters": clusters,
        "next": nxt,
    }
    return render(request, "clusters.html", ctx)


@router.get("/snapshots/{ref}/rows", name="snapshot_rows")
def snapshot_rows_page(request: Request, ref: str, split: str = "", after: int = -1) -> Response:
    size = _page_size(request)
    try:
        with _read(request) as con:
            sid = snapshots.resolve(con, ref)
            splits = queries.split_counts(con, sid)
            split = split or next(iter(splits), "")
            if split not in splits:
                return _error(request, f"snapshot {sid} has no split {split!r}")
            rows, nxt = queries.snapshot_rows_page(con, sid, split, after, size)
    except BadInputError as exc:
        return _error(request, str(exc))
    ctx = {
        "title": f"Rows of {sid} / {split}",
        "ref": ref,
        "sid": sid,
        "splits": splits,
        "split": split,
        "after": after,
        "rows": rows,
        "next": nxt,
    }
    return render(request, "rows.html", ctx)


@router.get("/rows/{row_id}", name="row")
def row_page(request: Request, row_id: str, snapshot: str = "") -> Response:
    try:
        with _read(request) as con:
            sid = snapshots.resolve(con, snapshot) if snapshot else None
            versions = queries.snapshot_versions(con, sid, row_id) if sid else []
            source = queries.source_row(con, row_id)
            ledger = queries.ledger_entries(con, row_id, sid)
    except BadInputError as exc:
        return _error(request, str(exc))
    if source is None and not versions and not ledger:
        return _error(request, f"no row {row_id!r} in dialogues, preference pairs or prompts")
    ctx = {
        "title": f"Row {row_id}",
        "row_id": row_id,
        "sid": sid,
        "versions": versions,
        "source": source,
        "ledger": ledger,
    }
    return render(request, "row.html", ctx)


def _sql_result(request: Request, sql: str) -> dict[str, Any]:
    """Run user SQL in the service's worker processes (app.state.sql): the sandbox's DuckDB
    config differs from the pages' reads, and one process cannot hold both."""
    settings = _settings(request)
    pool = getattr(request.app.state, "sql", None)
    try:
        check_statement(sql)  # refuse early, without a worker round trip
        if not isinstance(pool, SqlPool):
            raise CurateError("the SQL workers are not running in this service")
        ans = pool.run(
            deps.wait_readable(settings),
            settings.read_wait_s,
            sql,
            settings.sql_max_rows,
            settings.sql_time_limit_s,
            settings.sql_max_bytes,
        )
    except QueryTimeoutError as exc:
        return {"error": str(exc), "error_kind": "timeout"}
    except CurateError as exc:
        return {"error": str(exc), "error_kind": "refused"}
    rows = ans.rows()
    return {
        "columns": ans.columns,
        "types": ans.types,
        "rows": rows,
        "truncated": ans.truncated,
        "seconds": ans.seconds,
        "max_rows": ans.max_rows,
        "chart": _quick_chart(ans.types, ans.columns, rows),
    }


_NUMERIC = ("int", "float", "double", "decimal", "uint")


def _quick_chart(
    types: list[str], columns: list[str], rows: list[list[Any]]
) -> dict[str, Any] | None:
    """First numeric column against the first column, when there are two or more columns."""
    if len(columns) < 2 or not rows:
        return None
    numeric = [i for i, t in enumerate(types) if i > 0 and t.lower().startswith(_NUMERIC)]
    if not numeric:
        return None
    y = numeric[0]
    return {
        "x": [_jsonable(r[0]) for r in rows],
        "y": [_jsonable(r[y]) for r in rows],
        "x_name": columns[0],
        "y_name": columns[y],
    }


@router.get("/sql", name="sql")
def sql_page(request: Request, q: str = "") -> Response:
    result = _sql_result(request, q) if q.strip() else None
    ctx = {"title": "SQL console", "q": q or SAMPLE_SQL, "ran": bool(q.strip()), "result": result}
    status = 200
    if result and "error" in result:
        status = 504 if result["error_kind"] == "timeout" else 400
    return render(request, "sql.html", ctx, status)


DIFF_SAMPLES = 8  # sample rows shown per (split, change, cause)


def _diff_dict(con: duckdb.DuckDBPyConnection, a: str, b: str) -> dict[str, Any]:
    """Counts per split/change/cause, and a few rows of each (from the first 5,000)."""
    d = diff_snapshots(con, a, b, max_rows=5_000)
    seen: dict[tuple[str, str, str], int] = {}
    sample = []
    for r in d.rows.to_pylist():
        key = (r["split"], r["change"], r["cause"])
        seen[key] = seen.get(key, 0) + 1
        if seen[key] <= DIFF_SAMPLES:
            sample.append(r)
    return {
        "a": d.a,
        "b": d.b,
        "n_added": d.n_added,
        "n_removed": d.n_removed,
        "n_changed": d.n_changed,
        "identical": d.identical,
        "summary": d.summary,
        "rows": sample,
    }


@router.get("/diff", name="diff")
def diff_page(request: Request, a: str = "", b: str = "") -> Response:
    ctx: dict[str, Any] = {"title": "Snapshot diff", "a": a, "b": b, "diff": None}
    try:
        with _read(request) as con:
            ctx["snapshots"] = queries.snapshot_list(con)
            if a and b:
                ids = (snapshots.resolve(con, a), snapshots.resolve(con, b))
                ctx["diff"] = queries.memoised(
                    str(_settings(request).warehouse.resolve()),
                    "|".join(ids),
                    "diff",
                    lambda: _diff_dict(con, *ids),
                )
    except BadInputError as exc:
        ctx["error"] = str(exc)
        return render(request, "diff.html", ctx, 404)
    return render(request, "diff.html", ctx)


@router.get("/runs", name="runs")
def runs_page(request: Request) -> Response:
    try:
        with _read(request) as con:
            runs = queries.training_runs(con)
    except BadInputError as exc:
        return _error(request, str(exc), 503)
    return render(request, "runs.html", {"title": "Training runs", "runs": runs})


@login_router.get("/login", name="login")
def login_form(request: Request, next: str = "/") -> Response:
    ctx = {"title": "Log in", "next": _local(next), "error": ""}
    return templates.TemplateResponse(request, "login.html", ctx)


@login_router.post("/login")
async def login(request: Request) -> Response:
    """Check the token from the form and keep it in an HttpOnly, same-site cookie."""
    form = urllib.parse.parse_qs((await request.body()).decode("utf-8", "replace"))
    token = (form.get("token") or [""])[0]
    target = _local((form.get("next") or ["/"])[0])
    try:
        check_token(_settings(request), f"Bearer {token}", "reading")
    except HTTPException as exc:
        ctx = {"title": "Log in", "next": target, "error": str(exc.detail)}
        return templates.TemplateResponse(request, "login.html", ctx, status_code=exc.status_code)
    resp = RedirectResponse(target, status_code=303)
    resp.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
    return resp


def mount(app: FastAPI) -> None:
    """Add the pages, Plotly's JS from the plotly package, and the static folder."""
    js = plotly_js_path()

    def plotly_min_js() -> FileResponse:
        return FileResponse(
            js, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"}
        )

    # registered before the /static mount so it wins over the folder
    app.add_api_route("/static/plotly.min.js", plotly_min_js, include_in_schema=False)
    app.include_router(login_router, include_in_schema=False)
    app.include_router(router, include_in_schema=False)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
