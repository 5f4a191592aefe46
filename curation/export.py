"""Export a snapshot as files that load without this tool, in the published layout.

Three formats: ``hf`` is a `datasets.DatasetDict` folder (`save_to_disk`, read back with
`datasets.load_from_disk`), ``parquet`` mirrors the Hub's file layout
(``data/<split>-00000-of-00001.parquet``) and ``jsonl`` writes ``<split>.jsonl``. Every export
also carries ``snapshot.json`` naming the snapshot, recipe and content hash it came from.

Why it is built the way it is:

* Atomic: everything is written into a hidden sibling folder and renamed into place only when
  complete, so a crash or kill never leaves a half export at OUT. Replacing an existing export
  (``overwrite``) moves the old one aside only after the new one is complete.
* Deterministic: the same snapshot exported twice gives byte-identical files, so an export can
  be checked by hashing it. Rows come in snapshot order and in fixed-size batches; the `datasets`
  fingerprint is derived from the snapshot's content hash instead of a random one.
* Streaming: rows are read from DuckDB batch by batch and written split by split, so a 200k-row
  split of long dialogues never sits in memory whole (``hf`` stages each split in a scratch
  Arrow file that `save_to_disk` then reads memory-mapped).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import duckdb
import orjson
import psutil
import pyarrow as pa
import pyarrow.parquet as pq

from warehouse import published
from warehouse.errors import BadInputError, CurateError
from warehouse.snapshots import Snapshot, open_snapshot
from warehouse.store import Warehouse

ExportFormat = Literal["hf", "parquet", "jsonl"]
FORMATS: tuple[str, ...] = ("hf", "parquet", "jsonl")
MANIFEST = "snapshot.json"
# Rows per written batch (Parquet row group, JSON Lines chunk). Fixed, so that files do not
# depend on how DuckDB happens to chunk its output.
BATCH_ROWS = 2_000
# Ordinals per read query: what DuckDB sorts at once (see `_ranges`).
RANGE_ROWS = 20_000

_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.(?:export|replaced)-(?P<pid>\d+)-[0-9a-f]+$")


@dataclass(frozen=True)
class ExportResult:
    """What one export wrote: ``rows`` per split in published order, ``files`` relative to
    ``out`` (sorted, manifest included)."""

    out: Path
    fmt: str
    snapshot_id: str
    rows: dict[str, int]
    files: list[str] = field(default_factory=list)
    seconds: float = 0.0


# -- reading ----------------------------------------------------------------------------
def _ranges(con: duckdb.DuckDBPyConnection, snap: Snapshot, split: str) -> Iterator[pa.RecordBatch]:
    """The split's rows in ordinal order, RANGE_ROWS ordinals per query.

    Same rows as `Snapshot.split_arrow`, but one `ORDER BY ordinal` over a whole 200k-row split
    makes DuckDB hold all of it to sort; a range at a time keeps memory flat.
    """
    where = "WHERE snapshot_id = ? AND split = ?"
    params: list[Any] = [snap.snapshot_id, split]
    bounds = con.execute(
        f"SELECT min(ordinal), max(ordinal) FROM snapshot_rows {where}", params
    ).fetchone()
    if bounds is None or bounds[0] is None:
        return
    sql = (
        f"SELECT {published.select_sql(snap.kind)} FROM snapshot_rows {where} "
        "AND ordinal >= ? AND ordinal < ? ORDER BY ordinal"
    )
    for lo in range(int(bounds[0]), int(bounds[1]) + 1, RANGE_ROWS):
        yield from con.execute(sql, [*params, lo, lo + RANGE_ROWS]).to_arrow_reader(BATCH_ROWS)


def _batches(snap: Snapshot, split: str) -> Generator[pa.RecordBatch, None, None]:
    """The split in the published schema, in batches of exactly BATCH_ROWS (the last one
    shorter), whatever sizes DuckDB hands out."""
    schema = published.schema_for(snap.kind)
    with snap.warehouse.read({"memory_limit": "512MB"}) as con:
        pending: list[pa.RecordBatch] = []
        n_pending = 0
        for raw in _ranges(con, snap, split):
            batch = raw.cast(schema)
            if not pending and batch.num_rows == BATCH_ROWS:
                yield batch
                continue
            pending.append(batch)
            n_pending += batch.num_rows
            while n_pending >= BATCH_ROWS:
                merged = pa.Table.from_batches(pending, schema).combine_chunks()
                yield merged.slice(0, BATCH_ROWS).to_batches()[0]
                rest = merged.slice(BATCH_ROWS)
                pending = rest.to_batches() if rest.num_rows else []
                n_pending = rest.num_rows
        if n_pending:
            yield pa.Table.from_batches(pending, schema).combine_chunks().to_batches()[0]


# -- one writer per format; each writes one split under `root` and returns its row count -----
SplitWriter = Callable[[Snapshot, str, Iterator[pa.RecordBatch], Path], int]


def _write_hf_split(
    snap: Snapshot, split: str, batches: Iterator[pa.RecordBatch], root: Path
) -> int:
    """`Dataset.save_to_disk` into root/<split>, via a scratch Arrow file read memory-mapped."""
    from datasets import Dataset, DatasetInfo, NamedSplit
    from datasets.table import MemoryMappedTable

    features = published.features_for(snap.kind)
    scratch = root / f".{split}.scratch.arrow"
    n = 0
    with pa.OSFile(str(scratch), "wb") as sink, pa.ipc.new_stream(sink, features.arrow_schema) as w:
        for batch in batches:
            w.write_batch(batch)
            n += batch.num_rows
    info = DatasetInfo(
        description=f"snapshot {snap.snapshot_id} ({snap.recipe_name})",
        features=features,
    )
    ds = Dataset(
        MemoryMappedTable.from_file(str(scratch)),
        info=info,
        split=NamedSplit(split),
        # datasets would otherwise store a random fingerprint in state.json
        fingerprint=f"{snap.content_hash[:32]}-{split}",
    )
    ds.save_to_disk(str(root / split))
    del ds
    scratch.unlink()
    return n


def _write_parquet_split(
    snap: Snapshot, split: str, batches: Iterator[pa.RecordBatch], root: Path
) -> int:
    """root/data/<split>-00000-of-00001.parquet, one row group per batch, with the
    `datasets` features in the schema metadata as the Hub's files have them."""
    schema = published.features_for(snap.kind).arrow_schema
    path = root / "data" / f"{split}-00000-of-00001.parquet"
    path.parent.mkdir(exist_ok=True)
    n = 0
    with pq.ParquetWriter(str(path), schema, compression="snappy") as w:
        for batch in batches:
            w.write_batch(batch)
            n += batch.num_rows
    return n


def _write_jsonl_split(
    snap: Snapshot, split: str, batches: Iterator[pa.RecordBatch], root: Path
) -> int:
    """root/<split>.jsonl: one UTF-8 JSON object per line, keys in published column order
    (orjson never escapes non-ASCII, like ``ensure_ascii=False``)."""
    n = 0
    opt = orjson.OPT_APPEND_NEWLINE
    with open(root / f"{split}.jsonl", "wb") as fh:
        for batch in batches:
            fh.write(b"".join([orjson.dumps(row, option=opt) for row in batch.to_pylist()]))
            n += batch.num_rows
    return n


_WRITERS: dict[str, SplitWriter] = {
    "hf": _write_hf_split,
    "parquet": _write_parquet_split,
    "jsonl": _write_jsonl_split,
}


# -- folder handling --------------------------------------------------------------------
def _sibling(out: Path, what: str) -> Path:
    return out.with_name(f".{out.name}.{what}-{os.getpid()}-{secrets.token_hex(4)}")


def _clear_stale_siblings(out: Path) -> None:
    """Remove temp folders that killed exports to the same OUT left behind."""
    if not out.parent.is_dir():
        return
    for p in out.parent.iterdir():
        m = _TEMP_RE.match(p.name)
        if m and m["name"] == out.name and not psutil.pid_exists(int(m["pid"])):
            shutil.rmtree(p, ignore_errors=True)


def _check_out(out: Path, overwrite: bool) -> None:
    if not (out.exists() or out.is_symlink()):
        return
    if not overwrite:
        raise BadInputError(f"{out} already exists: pass overwrite (--overwrite) to replace it")
    if not out.is_dir() or out.is_symlink():
        raise BadInputError(f"{out} exists and is not a folder: refusing to replace it")
    if not (out / MANIFEST).is_file() and any(out.iterdir()):
        raise BadInputError(
            f"{out} is a non-empty folder without {MANIFEST}, so not an earlier export: "
            "refusing to replace it; pick another OUT or remove it yourself"
        )


def _publish(tmp: Path, out: Path) -> None:
    """Rename the finished folder into place; an old export is moved aside first and removed
    after, so OUT is at every moment either absent, the old export or the new one."""
    if out.exists():
        old = _sibling(out, "replaced")
        out.rename(old)
        try:
            tmp.rename(out)
        except BaseException:
            old.rename(out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out)


# -- the API ----------------------------------------------------------------------------
def _pick_splits(snap: Snapshot, splits: list[str] | None) -> list[str]:
    """Requested (or all) splits, in the published order."""
    order = published.SFT_SPLITS if snap.kind == "sft" else published.PREFERENCE_SPLITS
    have = [s for s in order if s in snap.splits] + sorted(set(snap.splits) - set(order))
    if splits is None:
        return have
    if not splits:
        raise BadInputError("no splits asked for: pass at least one, or none for all")
    unknown = [s for s in dict.fromkeys(splits) if s not in snap.splits]
    if unknown:
        raise BadInputError(
            f"snapshot {snap.snapshot_id} ({snap.kind}) has no split "
            f"{', '.join(map(repr, unknown))}; it has: {', '.join(have) or 'none'}"
        )
    return [s for s in have if s in set(splits)]


def _manifest(snap: Snapshot, fmt: str, rows: dict[str, int]) -> dict[str, Any]:
    return {
        "snapshot_id": snap.snapshot_id,
        "kind": snap.kind,
        "recipe": snap.recipe_name,
        "content_hash": snap.content_hash,
        "created_at": snap.created_at,
        "format": fmt,
        "splits": rows,
        "snapshot_splits": {s: snap.splits[s] for s in _pick_splits(snap, None)},
        "columns": list(published.schema_for(snap.kind).names),
    }


@contextlib.contextmanager
def _quiet_datasets() -> Iterator[None]:
    """`save_to_disk` draws progress bars; an export reports through its result instead."""
    from datasets.utils import logging as ds_logging

    was_enabled = ds_logging.is_progress_bar_enabled()
    ds_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            ds_logging.enable_progress_bar()


def export_snapshot(
    warehouse: Warehouse,
    ref: str,
    out: Path | str,
    fmt: str,
    splits: list[str] | None = None,
    overwrite: bool = False,
) -> ExportResult:
    """Write snapshot `ref` (id, id prefix or tag) to folder `out` as ``hf``, ``parquet`` or
    ``jsonl`` (see the module docstring); `splits` limits it to some splits."""
    started = time.monotonic()
    if fmt not in FORMATS:
        raise BadInputError(f"unknown export format {fmt!r}: expected one of {', '.join(FORMATS)}")
    out = Path(out)
    snap = open_snapshot(warehouse, ref)
    chosen = _pick_splits(snap, splits)
    _check_out(out, overwrite)
    writer = _WRITERS[fmt]

    _clear_stale_siblings(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(out, "export")
    tmp.mkdir()
    try:
        rows: dict[str, int] = {}
        with _quiet_datasets():
            for split in chosen:
                with contextlib.closing(_batches(snap, split)) as batches:
                    n = writer(snap, split, batches, tmp)
                if n != snap.splits[split]:
                    raise CurateError(
                        f"split {split} of {snap.snapshot_id}: wrote {n} rows, the catalog "
                        f"says {snap.splits[split]}"
                    )
                rows[split] = n
        if fmt == "hf":
            (tmp / "dataset_dict.json").write_text(json.dumps({"splits": chosen}))
        manifest = json.dumps(_manifest(snap, fmt, rows), indent=2, ensure_ascii=False)
        (tmp / MANIFEST).write_text(manifest + "\n", encoding="utf-8")
        files = sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file())
        _check_out(out, overwrite)  # OUT may have appeared while we wrote
        _publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportResult(
        out=out,
        fmt=fmt,
        snapshot_id=snap.snapshot_id,
        rows=rows,
        files=files,
        seconds=round(time.monotonic() - started, 3),
    )
