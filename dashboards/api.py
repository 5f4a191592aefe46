"""The JSON API under /api: SQL, tables, snapshots, ledger, diff, export, tags, jobs, training.

Reads are open unless the service protects them; every endpoint that starts, stops or writes
something needs the bearer token (dashboards/auth.py). Errors are mapped in one place
(dashboards/errors.py). The business logic stays in warehouse/ and curation/: each endpoint
opens a short read connection, calls them, and shapes JSON. Writes to the warehouse happen in
`curate` subprocesses (jobs, tagging), never in this process.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from dashboards import deps
from dashboards.auth import require_read, require_write
from dashboards.errors import not_found_if_missing
from dashboards.jobs import JobRunner, run_short
from dashboards.memo import OnceCache
from dashboards.settings import ServiceSettings
from dashboards.sql_pool import SqlPool
from warehouse import schema
from warehouse.errors import BadInputError, CurateError, WarehouseBusyError

router = APIRouter()
Read = [Depends(require_read)]
Write = [Depends(require_write)]

_SHIPPED_CONFIGS = Path(__file__).resolve().parents[1] / "configs"
_TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/+-]*$")


def _settings(request: Request) -> ServiceSettings:
    return deps.settings_of(request)


def _jobs(request: Request) -> JobRunner:
    runner: JobRunner = request.app.state.jobs
    return runner


def _sql_pool(request: Request) -> SqlPool:
    pool: SqlPool = request.app.state.sql
    return pool


# -- health -------------------------------------------------------------------------------
@router.get("/health", tags=["service"])
def health(request: Request) -> dict[str, Any]:
    """Liveness, and what the service serves (open even when reads are protected)."""
    settings = _settings(request)
    runner = _jobs(request)
    counts: dict[str, int] = {}
    if runner.store is not None:
        for status in ("queued", "running"):
            counts[status] = len(runner.list_jobs(status=status, limit=1000))
    return {
        "status": "ok",
        "warehouse_exists": settings.warehouse.exists(),
        "jobs": counts,
        "token_configured": bool(settings.token),
        "protect_reads": settings.protect_reads,
    }


# -- SQL ----------------------------------------------------------------------------------
class SqlRequest(BaseModel):
    sql: str = Field(description="One read-only query (SELECT, WITH, DESCRIBE, SHOW, ...).")
    max_rows: int | None = Field(None, gt=0, description="Row cap; can only lower the default.")
    time_limit_s: float | None = Field(
        None, gt=0, description="Seconds before the query is stopped; can only lower the default."
    )


_SQL_EXAMPLE = {
    "columns": ["role", "n"],
    "types": ["string", "int64"],
    "row_count": 2,
    "truncated": False,
    "truncated_by": None,
    "seconds": 0.012,
    "limits": {"max_rows": 1000, "time_limit_s": 10.0},
    "rows": [["assistant", 1204], ["user", 1210]],
}


@router.post(
    "/sql",
    tags=["sql"],
    dependencies=Read,
    responses={200: {"content": {"application/json": {"example": _SQL_EXAMPLE}}}},
)
def sql(body: SqlRequest, request: Request) -> Response:
    """Run one sandboxed read-only query: {columns, types, rows, truncated, seconds, ...}.

    Refused statements (several statements, writes, ATTACH, COPY, PRAGMA, SET, file-reading
    functions) are 400 with the reason; a query stopped at its time limit is 504.
    """
    from warehouse.sandbox import check_statement

    settings = _settings(request)
    check_statement(body.sql)  # refuse early, without a worker round trip
    max_rows = min(body.max_rows or settings.sql_max_rows, settings.sql_max_rows)
    limit_s = min(body.time_limit_s or settings.sql_time_limit_s, settings.sql_time_limit_s)
    wh = deps.wait_readable(settings)
    ans = _sql_pool(request).run(
        wh, settings.read_wait_s, body.sql, max_rows, limit_s, settings.sql_max_bytes
    )
    head = orjson.dumps(
        {
            "columns": ans.columns,
            "types": ans.types,
            "row_count": ans.n_rows,
            "truncated": ans.truncated,
            "truncated_by": ans.truncated_by,
            "seconds": ans.seconds,
            "limits": {"max_rows": ans.max_rows, "time_limit_s": ans.time_limit_s},
        }
    )
    content = head[:-1] + b',"rows":' + ans.rows_json + b"}"
    return Response(content=content, media_type="application/json")


# -- tables -------------------------------------------------------------------------------
@router.get("/tables", tags=["warehouse"], dependencies=Read)
def tables(request: Request) -> dict[str, Any]:
    """Every table with its row count and meaning, and the views."""
    with deps.read_connection(_settings(request)) as con:
        out = []
        for t in schema.TABLES:
            got = con.execute(f"SELECT count(*) FROM {t.name}").fetchone()
            out.append({"table": t.name, "rows": int(got[0]) if got else 0, "what": t.doc})
    return {"tables": out, "views": [{"view": v.name, "what": v.doc} for v in schema.VIEWS]}


# -- snapshots ----------------------------------------------------------------------------
@router.get("/snapshots", tags=["snapshots"], dependencies=Read)
def list_snapshots(request: Request) -> list[dict[str, Any]]:
    """Every snapshot, newest first, with tags and split sizes."""
    from warehouse import snapshots

    with deps.read_connection(_settings(request)) as con:
        return snapshots.list_snapshots(con)


@router.get("/snapshots/{ref}", tags=["snapshots"], dependencies=Read)
def show_snapshot(
    ref: str,
    request: Request,
    samples: Annotated[
        int, Query(ge=0, le=20, description="Sample drops per step (0: none; costs a ledger scan).")
    ] = 0,
) -> dict[str, Any]:
    """Catalog row, recipe, per-step funnel and drop overlap matrix (and sample drops)."""
    from curation import report
    from warehouse import snapshots

    settings = _settings(request)
    with deps.read_connection(settings) as con:
        sid = deps.resolve_snapshot(con, ref)
        info = snapshots.catalog_row(con, sid)
        steps = snapshots.steps_of(con, sid)
        overlap = report.overlap_matrix(report.stored_overlap(con, sid))
        picked = []
        if samples:
            with deps.time_limited(con, settings.read_time_limit_s, "sampling the drop ledger"):
                picked = report.stored_samples(con, sid, per_step=samples)
    recipe_text = info.pop("recipe_text", None)
    info["recipe"] = json.loads(recipe_text) if recipe_text else None
    return {**info, "funnel": steps, "overlap": overlap, "samples": picked}


_ROW_COLS = "split, ordinal, row_id, prompt, prompt_id, messages, chosen, rejected, " + (
    "score_chosen, score_rejected, chosen_model, rejected_model, source"
)


@router.get("/snapshots/{ref}/rows", tags=["snapshots"], dependencies=Read)
def snapshot_rows(
    ref: str,
    request: Request,
    split: str | None = None,
    after: Annotated[int, Query(description="Last ordinal of the previous page.")] = -1,
    limit: Annotated[int, Query(gt=0, le=500)] = 50,
) -> dict[str, Any]:
    """A page of a split in snapshot order (keyset by ordinal: pass `next_after` back)."""
    from warehouse import snapshots

    with deps.read_connection(_settings(request)) as con:
        sid = deps.resolve_snapshot(con, ref)
        splits = snapshots.catalog_row(con, sid)["splits"] or {}
        split = split or next(iter(splits), None)
        if split not in splits:
            raise deps.NotFoundError(
                f"snapshot {sid} has no split {split!r}; it has: {', '.join(splits) or 'none'}"
            )
        # ordinals are dense (0..n-1 per split), so a page is an ordinal range: DuckDB skips
        # every other row group by its min/max instead of sorting the whole split
        cur = con.execute(
            f"SELECT {_ROW_COLS} FROM snapshot_rows WHERE snapshot_id = ? AND split = ? "
            "AND ordinal > ? AND ordinal <= ? ORDER BY ordinal",
            [sid, split, after, after + limit],
        )
        names = [d[0] for d in cur.description or []]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    total = int(splits[split])
    last = rows[-1]["ordinal"] if rows else None
    return {
        "snapshot_id": sid,
        "split": split,
        "total": total,
        "rows": rows,
        "next_after": last if last is not None and last < total - 1 else None,
    }


@router.get("/snapshots/{ref}/ledger", tags=["snapshots"], dependencies=Read)
def snapshot_ledger(
    ref: str,
    request: Request,
    step: Annotated[str | None, Query(description="Step name or index.")] = None,
    after: Annotated[
        str | None, Query(description="`next_after` of the previous page (opaque).")
    ] = None,
    limit: Annotated[int, Query(gt=0, le=500)] = 50,
) -> dict[str, Any]:
    """A page of the drop ledger (why each row was dropped), ordered by step then row id."""
    where = ["l.snapshot_id = ?"]
    with deps.read_connection(_settings(request)) as con:
        sid = deps.resolve_snapshot(con, ref)
        params: list[Any] = [sid]
        if step is not None:
            if step.isdigit():
                where.append("l.step_index = ?")
                params.append(int(step))
            else:
                where.append("l.step_name = ?")
                params.append(step)
        total_row = con.execute(
            f"SELECT count(*) FROM drop_ledger l WHERE {' AND '.join(where)}", params
        ).fetchone()
        if after:
            idx, _, row_id = after.partition(":")
            if not idx.isdigit():
                raise BadInputError(f"after={after!r}: pass back the `next_after` of a page")
            where.append("(l.step_index, l.row_id) > (?, ?)")
            params += [int(idx), row_id]
        cur = con.execute(
            "SELECT l.step_index, l.step_name, l.row_id, l.filter, l.score, l.reason, "
            "l.turn_index, l.matched, l.cluster_id, l.representative, l.similarity "
            f"FROM drop_ledger l WHERE {' AND '.join(where)} "
            "ORDER BY l.step_index, l.row_id LIMIT ?",
            [*params, limit + 1],
        )
        names = [d[0] for d in cur.description or []]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if rows else None
    return {
        "snapshot_id": sid,
        "step": step,
        "total": int(total_row[0]) if total_row else 0,
        "rows": rows,
        "next_after": f"{last['step_index']}:{last['row_id']}" if more and last else None,
    }


@router.get("/diff", tags=["snapshots"], dependencies=Read)
def diff(
    a: str,
    b: str,
    request: Request,
    limit: Annotated[int, Query(ge=0, le=5000)] = 100,
) -> dict[str, Any]:
    """Rows added, removed and changed from A to B, and the step that caused each."""
    from curation.diff import diff_snapshots

    settings = _settings(request)
    with deps.read_connection(settings) as con:
        sa, sb = deps.resolve_snapshot(con, a), deps.resolve_snapshot(con, b)

    def compute() -> dict[str, Any]:
        what = f"the diff of {sa} and {sb}"
        with (
            deps.read_connection(settings) as con,
            deps.time_limited(con, settings.read_time_limit_s, what),
        ):
            d = diff_snapshots(con, sa, sb, max_rows=limit)
        return {
            "a": d.a,
            "b": d.b,
            "added": d.n_added,
            "removed": d.n_removed,
            "changed": d.n_changed,
            "summary": d.summary,
            "rows": d.rows.to_pylist(),
        }

    # snapshots never change, so neither does their diff: compute it once
    cache: OnceCache = request.app.state.diff_cache
    result: dict[str, Any] = cache.get(("diff", sa, sb, limit), compute)
    return result


class ExportRequest(BaseModel):
    format: Literal["hf", "parquet", "jsonl"] = "parquet"
    out: str = Field(description="Folder to write, relative to the service's export root.")
    splits: list[str] | None = None
    overwrite: bool = False


@router.post("/snapshots/{ref}/export", tags=["snapshots"], dependencies=Write)
def export(ref: str, body: ExportRequest, request: Request) -> dict[str, Any]:
    """Export a snapshot in the published layout into a folder under the export root."""
    from curation.export import export_snapshot
    from warehouse.store import Warehouse

    settings = _settings(request)
    root = settings.exports
    root.mkdir(parents=True, exist_ok=True)
    out = deps.confined(root, body.out, "export folder")
    if out == root.resolve():
        raise BadInputError("export folder: name a folder inside the export root, not the root")
    deps.wait_readable(settings)
    try:
        res = export_snapshot(
            Warehouse(settings.warehouse, wait_s=settings.read_wait_s),
            ref,
            out,
            body.format,
            splits=body.splits,
            overwrite=body.overwrite,
        )
    except BadInputError as exc:
        raise not_found_if_missing(exc) from exc
    return {
        "out": str(res.out),
        "relative": res.out.relative_to(root.resolve()).as_posix(),
        "format": res.fmt,
        "snapshot_id": res.snapshot_id,
        "rows": res.rows,
        "files": res.files,
        "seconds": res.seconds,
    }


class TagRequest(BaseModel):
    tag: str
    force: bool = False


@router.post("/snapshots/{ref}/tags", tags=["snapshots"], dependencies=Write)
def tag(ref: str, body: TagRequest, request: Request) -> dict[str, Any]:
    """Name a snapshot; moving a tag that names another snapshot needs `force`."""
    settings = _settings(request)
    if not _TAG_RE.match(body.tag) or body.tag.startswith("s_"):
        raise BadInputError(
            f"tag {body.tag!r}: letters, digits and ._:/+- only, not starting with s_ or -"
        )
    with deps.read_connection(settings) as con:
        sid = deps.resolve_snapshot(con, ref)
    command = ["tag", *(["--force"] if body.force else []), "--", sid, body.tag]
    rc, _, err = run_short(settings, command, timeout_s=settings.read_wait_s + 60)
    if rc != 0:
        message = next(
            (ln[len("error:") :].strip() for ln in err.splitlines() if ln.startswith("error:")),
            err.strip()[-500:],
        )
        cls: type[CurateError] = WarehouseBusyError if rc == 4 else BadInputError
        raise cls(message)
    return {"tag": body.tag, "snapshot_id": sid}


# -- recipe runs and training (jobs) ------------------------------------------------------
class RunRequest(BaseModel):
    recipe: str = Field(description="A built-in recipe name, or a YAML file under recipes_root.")
    dry_run: bool = False
    tags: list[str] = Field(default_factory=list)
    message: str = ""
    no_cache: bool = False


def _recipe_arg(settings: ServiceSettings, ref: str) -> str:
    from curation.recipe import builtin_recipes, load_recipe

    if ref in builtin_recipes():
        return ref
    if not ref.endswith((".yaml", ".yml")):
        raise BadInputError(
            f"recipe {ref!r}: a built-in name ({', '.join(builtin_recipes())}) or a .yaml "
            "file under the service's recipes root"
        )
    if settings.recipes_root is None:
        raise BadInputError(
            f"recipe {ref!r}: this service accepts built-in recipes only "
            f"({', '.join(builtin_recipes())}); start it with a recipes root for YAML files"
        )
    path = deps.confined(settings.recipes_root, ref, "recipe")
    if not path.is_file():
        raise deps.NotFoundError(f"recipe {ref!r}: no such file under {settings.recipes_root}")
    load_recipe(path)  # a bad recipe is a 400 now, not a failed job later
    return str(path)


def _job_dict(job: Any) -> dict[str, Any]:
    d: dict[str, Any] = job.as_dict()
    d.pop("log_path", None)
    return d


@router.post("/runs", tags=["jobs"], dependencies=Write, status_code=202)
def start_run(body: RunRequest, request: Request) -> dict[str, Any]:
    """Queue a recipe run (or a dry run); poll GET /api/jobs/{job_id} for its snapshot id."""
    settings = _settings(request)
    recipe = _recipe_arg(settings, body.recipe)
    for t in body.tags:
        if not _TAG_RE.match(t) or t.startswith("s_"):
            raise BadInputError(f"tag {t!r}: letters, digits and ._:/+- only, not starting s_")
    command = ["run", "--json", "--no-progress"]
    command += ["--dry-run"] if body.dry_run else []
    command += ["--no-cache"] if body.no_cache else []
    command += [f"--message={body.message}"] if body.message else []
    command += [f"--tag={t}" for t in body.tags]
    command += ["--", recipe]
    kind = "dry_run" if body.dry_run else "run"
    return _job_dict(_jobs(request).submit(kind, body.model_dump(), command))


class TrainingRequest(BaseModel):
    trainer: Literal["sft", "dpo"]
    snapshot: str = Field(description="Snapshot id, unique prefix, or tag.")
    config: str | None = Field(
        None, description="Recipe YAML under recipes_root or the shipped configs/ (tiny/sft.yaml)."
    )
    set: list[str] = Field(default_factory=list, description="key=value overrides (YAML values).")
    dry_run: bool = False
    fresh: bool = False


def _config_arg(settings: ServiceSettings, ref: str) -> str:
    if not ref.endswith((".yaml", ".yml")):
        raise BadInputError(f"config {ref!r}: name a .yaml file")
    for root in (settings.recipes_root, _SHIPPED_CONFIGS):
        if root is None:
            continue
        path = deps.confined(root, ref, "config")
        if path.is_file():
            return str(path)
    raise deps.NotFoundError(
        f"config {ref!r}: not found under the recipes root or the shipped configs/ "
        "(e.g. tiny/sft.yaml, smollm2-135m/dpo.yaml)"
    )


@router.post("/training", tags=["jobs"], dependencies=Write, status_code=202)
def start_training(body: TrainingRequest, request: Request) -> dict[str, Any]:
    """Queue `curate train sft|dpo` on a snapshot; the job's result names the run id."""
    settings = _settings(request)
    with deps.read_connection(settings) as con:
        sid = deps.resolve_snapshot(con, body.snapshot)
    command = ["train", body.trainer, f"--snapshot={sid}", "--json"]
    if body.config:
        command.append(f"--config={_config_arg(settings, body.config)}")
    for item in body.set:
        key, eq, _ = item.partition("=")
        if not eq or not key.strip():
            raise BadInputError(f"set {item!r}: expected key=value")
        if key.strip() in ("output_dir", "hub_model_id", "push_to_hub"):
            raise BadInputError(
                f"set {key.strip()}: not through the service (models go to runs/ beside the "
                "warehouse; nothing is pushed)"
            )
        command.append(f"--set={item}")
    command += ["--dry-run"] if body.dry_run else []
    command += ["--fresh"] if body.fresh else []
    args = {**body.model_dump(), "snapshot_id": sid}
    return _job_dict(_jobs(request).submit(f"train_{body.trainer}", args, command))


@router.get("/jobs", tags=["jobs"], dependencies=Read)
def list_jobs(
    request: Request,
    status: str | None = None,
    kind: str | None = None,
    limit: Annotated[int, Query(gt=0, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Jobs, newest first."""
    return [_job_dict(j) for j in _jobs(request).list_jobs(status, kind, limit)]


@router.get("/jobs/{job_id}", tags=["jobs"], dependencies=Read)
def get_job(job_id: str, request: Request) -> dict[str, Any]:
    """One job: status, times, exit code, and on success its parsed `--json` result."""
    return _job_dict(_jobs(request).get(job_id))


@router.get("/jobs/{job_id}/log", tags=["jobs"], dependencies=Read)
def job_log(
    job_id: str, request: Request, tail: Annotated[int, Query(gt=0, le=10_000)] = 200
) -> dict[str, Any]:
    """The last `tail` lines of the job's stderr (progress, messages, errors)."""
    job, text, cut = _jobs(request).log_tail(job_id, tail)
    return {"job_id": job.job_id, "status": job.status, "text": text, "truncated": cut}


@router.post("/jobs/{job_id}/cancel", tags=["jobs"], dependencies=Write)
def cancel_job(job_id: str, request: Request) -> dict[str, Any]:
    """Cancel a queued job at once, or stop a running one (SIGTERM, then SIGKILL after 10 s)."""
    return _job_dict(_jobs(request).cancel(job_id))


@router.get("/training/runs", tags=["training"], dependencies=Read)
def training_runs(
    request: Request,
    snapshot: str | None = None,
    status: str | None = None,
    limit: Annotated[int, Query(gt=0, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Training runs recorded in the warehouse, newest first; `snapshot` takes a tag too."""
    from warehouse.runs import list_runs
    from warehouse.store import Warehouse

    settings = _settings(request)
    sid = None
    if snapshot:
        with deps.read_connection(settings) as con:
            sid = deps.resolve_snapshot(con, snapshot)
    deps.wait_readable(settings)
    return list_runs(
        Warehouse(settings.warehouse, wait_s=settings.read_wait_s),
        snapshot=sid,
        status=status,
        limit=limit,
    )
