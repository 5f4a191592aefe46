"""Ingest: sources -> checked Arrow chunks -> warehouse tables, one transaction per batch.

Every file (or split) is one batch committed in a single DuckDB transaction together with its
quarantine rows and its `ingest_batches` row, so a killed ingest leaves no partial batch and a
rerun resumes with the files not yet committed. Re-ingesting a file whose checksum, format and
split are already committed is a no-op that says so.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from warehouse import readers
from warehouse.errors import BadInputError
from warehouse.formats import RecordFormat, detect, get_format
from warehouse.readers import LINE_COL, Chunk
from warehouse.sources import Source, resolve
from warehouse.store import Warehouse

VERSION = "0.1.0"
# Fault injection for the crash tests: seconds to pause after each chunk is inserted.
_PAUSE_ENV = "CURATE_DEBUG_PAUSE_AFTER_CHUNK"

_QUARANTINE_SCHEMA = pa.schema(
    [
        ("batch_id", pa.string()),
        ("source_file", pa.string()),
        ("source_line", pa.int64()),
        ("format", pa.string()),
        ("reason", pa.string()),
        ("raw_text", pa.string()),
        ("raw_bytes", pa.binary()),
    ]
)


@dataclass(frozen=True)
class IngestOptions:
    format: str = "auto"
    split: str | None = None
    revision: str | None = None
    chunk_bytes: int = readers.DEFAULT_CHUNK_BYTES
    progress: bool = True


@dataclass
class BatchResult:
    batch_id: str
    source: str
    format: str
    split: str | None
    target_table: str
    n_in: int = 0
    n_accepted: int = 0
    n_quarantined: int = 0
    n_blank: int = 0
    seconds: float = 0.0
    skipped: bool = False
    note: str = ""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class _Planned:
    source: Source
    fmt: RecordFormat
    hub_table: pa.Table | None = None


Log = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def _load_hub(source: Source, revision: str | None) -> list[tuple[Source, pa.Table]]:
    import datasets  # heavy: only when a hub id is given

    assert source.hub_id is not None
    try:
        loaded = datasets.load_dataset(source.hub_id, revision=revision, split=source.split)
    except Exception as exc:
        raise BadInputError(
            f"{source.hub_id}: could not load it from the Hugging Face hub "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}). Offline "
            "(HF_HUB_OFFLINE=1) the hub cannot be reached: download the files and pass "
            "their local paths, or a `save_to_disk` folder."
        ) from exc
    splits = {source.split: loaded} if isinstance(loaded, datasets.Dataset) else dict(loaded)
    out = []
    for name, ds in splits.items():
        rev = revision or getattr(ds, "_fingerprint", None)
        sub = Source(source.given, "hub", hub_id=source.hub_id, split=name, revision=rev)
        out.append((sub, ds.data.table))
    return out


def plan(inputs: list[str], options: IngestOptions, log: Log = _stderr) -> list[_Planned]:
    """Resolve every input and settle its format before anything is written."""
    forced = None if options.format == "auto" else get_format(options.format)
    planned: list[_Planned] = []
    for source in resolve(inputs, options.split):
        if source.kind == "hub":
            for sub, table in _load_hub(source, options.revision):
                sample = table.slice(0, 20).to_pylist()
                fmt = forced or detect(sample, sub.label)
                planned.append(_Planned(sub, fmt, table))
            continue
        if forced is not None:
            planned.append(_Planned(source, forced))
            continue
        fmt = detect(readers.sample_records(source), str(source.label))
        log(f"{source.label}: detected format {fmt.name}")
        planned.append(_Planned(source, fmt))
    return planned


def _chunks(p: _Planned, options: IngestOptions) -> Iterator[Chunk]:
    s, schema = p.source, p.fmt.raw_schema
    if p.hub_table is not None:
        yield from readers.read_table(p.hub_table, schema, s.label)
    elif s.kind == "jsonl":
        yield from readers.read_jsonl(str(s.path), schema, options.chunk_bytes)
    elif s.kind == "json":
        yield from readers.read_json_array(str(s.path), schema, options.chunk_bytes)
    elif s.kind == "parquet":
        yield from readers.read_parquet(str(s.path), schema)
    elif s.kind == "arrow":
        yield from readers.read_arrow(tuple(str(f) for f in s.files), schema, s.label)
    else:  # pragma: no cover - resolve() only yields the kinds above
        raise BadInputError(f"{s.label}: unsupported source kind {s.kind}")


def _params(sql: str, values: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in values.items() if f"${k}" in sql}


def _quarantine_rows(
    rejects: list[tuple[int, str, bytes]], batch_id: str, where: str, fmt: str
) -> pa.Table:
    texts: list[str] = []
    blobs: list[bytes | None] = []
    for _, _, raw in rejects:
        try:
            texts.append(raw.decode("utf-8"))
            blobs.append(None)
        except UnicodeDecodeError:
            texts.append(raw.decode("utf-8", errors="backslashreplace"))
            blobs.append(raw)
    n = len(rejects)
    return pa.table(
        {
            "batch_id": [batch_id] * n,
            "source_file": [where] * n,
            "source_line": [r[0] for r in rejects],
            "format": [fmt] * n,
            "reason": [r[1] for r in rejects],
            "raw_text": texts,
            "raw_bytes": blobs,
        },
        schema=_QUARANTINE_SCHEMA,
    )


def _ingest_chunk(
    con: duckdb.DuckDBPyConnection,
    chunk: Chunk,
    fmt: RecordFormat,
    values: dict[str, object],
    result: BatchResult,
) -> None:
    # The Arrow tables are reached by DuckDB's replacement scan of these local names
    # (`staged`, `ok`, `rows`), not con.register(): inside one long transaction a registered
    # table stays alive until commit, so memory would grow with the file.
    staged = chunk.table
    bad = con.execute(
        f"SELECT {LINE_COL}, reason FROM (SELECT {LINE_COL}, {fmt.reason_sql} AS reason "
        f"FROM staged) WHERE reason IS NOT NULL ORDER BY {LINE_COL}"
    ).fetchall()
    rejects = [(r.line, r.reason, r.raw) for r in chunk.rejects]
    rejects += [(int(line), str(reason), chunk.raw_of(int(line))) for line, reason in bad]
    ok = staged
    if bad:
        bad_lines = pa.array([int(b[0]) for b in bad], pa.int64())
        ok = staged.filter(pc.invert(pc.is_in(staged[LINE_COL], value_set=bad_lines)))
    for ins in fmt.inserts:
        con.execute(
            f"INSERT INTO {ins.table} BY NAME {ins.select_sql}", _params(ins.select_sql, values)
        )
    if rejects:
        rows = _quarantine_rows(
            rejects, str(values["batch_id"]), str(values["source_file"]), fmt.name
        )
        con.execute("INSERT INTO quarantine BY NAME SELECT * FROM rows")
        del rows
    result.n_in += staged.num_rows + len(chunk.rejects)
    result.n_accepted += ok.num_rows
    result.n_quarantined += len(rejects)
    result.n_blank += chunk.n_blank


def _batch_id(checksum: str, fmt: str, split: str | None) -> str:
    return "b_" + hashlib.sha256(f"{checksum}|{fmt}|{split or ''}".encode()).hexdigest()[:16]


def _ingest_one(
    con: duckdb.DuckDBPyConnection, p: _Planned, options: IngestOptions, log: Log
) -> BatchResult:
    s, fmt = p.source, p.fmt
    checksum = s.checksum()
    batch_id = _batch_id(checksum, fmt.name, s.split)
    result = BatchResult(batch_id, s.label, fmt.name, s.split, fmt.target)
    prior = con.execute(
        "SELECT batch_id, source_file, finished_at, n_accepted, n_quarantined FROM ingest_batches "
        "WHERE batch_id = ?",
        [batch_id],
    ).fetchone()
    if prior is not None:
        result.skipped = True
        result.n_accepted, result.n_quarantined = int(prior[3]), int(prior[4])
        result.n_in = result.n_accepted + result.n_quarantined
        result.note = (
            f"already ingested as batch {prior[0]} from {prior[1]} at {prior[2]}: nothing to do"
        )
        log(f"{s.label}: {result.note}")
        return result

    where = s.label
    values: dict[str, object] = {
        "checksum": checksum,
        "split": s.split,
        "batch_id": batch_id,
        "source_file": where,
    }
    started = datetime.now(UTC).replace(tzinfo=None)
    t0 = time.perf_counter()
    pause = float(os.environ.get(_PAUSE_ENV, "0") or 0)
    size = s.size_bytes() if s.kind != "hub" else None
    total = size if s.kind in ("jsonl", "json") else None
    bar = tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        desc=f"ingest {fmt.name}",
        disable=not options.progress,
        file=sys.stderr,
        leave=False,
    )
    con.begin()
    try:
        for n, chunk in enumerate(readers.prefetched(_chunks(p, options)), start=1):
            _ingest_chunk(con, chunk, fmt, values, result)
            bar.update(chunk.n_bytes)
            bar.set_postfix(rows=result.n_in, bad=result.n_quarantined)
            if pause:
                _stderr(f"[debug] chunk {n} inserted (uncommitted), pausing {pause}s")
                time.sleep(pause)
        result.seconds = time.perf_counter() - t0
        con.execute(
            "INSERT INTO ingest_batches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                batch_id,
                s.given,
                where,
                s.kind,
                fmt.name,
                s.split,
                checksum,
                size,
                s.revision or options.revision,
                fmt.target,
                result.n_in,
                result.n_accepted,
                result.n_quarantined,
                result.n_blank,
                started,
                datetime.now(UTC).replace(tzinfo=None),
                result.seconds,
                VERSION,
            ],
        )
        con.commit()
    except BaseException:
        con.rollback()
        raise
    finally:
        bar.close()
    assert result.n_in == result.n_accepted + result.n_quarantined
    log(
        f"{where}: {fmt.name} -> {fmt.target}: {result.n_in} in = {result.n_accepted} accepted "
        f"+ {result.n_quarantined} quarantined ({result.seconds:.1f}s, batch {batch_id})"
    )
    return result


def ingest(
    warehouse: Warehouse,
    inputs: list[str],
    options: IngestOptions | None = None,
    log: Log = _stderr,
) -> list[BatchResult]:
    """Ingest every input; returns one result per batch (skipped ones included)."""
    options = options or IngestOptions()
    planned = plan(inputs, options, log)
    results = []
    with warehouse.write() as con:
        for p in planned:
            results.append(_ingest_one(con, p, options, log))
    return results
