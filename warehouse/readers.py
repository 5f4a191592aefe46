"""Read a source into Arrow chunks with line numbers, setting aside what cannot be parsed.

JSON Lines are read in byte blocks and parsed by Arrow's multi-threaded JSON reader against
the format's explicit schema. Only a block that fails as a whole (a malformed line, a field of
the wrong type, bad UTF-8) is re-read line by line, so the good lines of that block still go
through Arrow and each bad line is kept with its reason. Memory stays bounded by the block.
"""

from __future__ import annotations

import contextlib
import io
import json
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.json as pj
import pyarrow.parquet as pq

from warehouse.errors import BadInputError
from warehouse.sources import Source

LINE_COL = "_line"
DEFAULT_CHUNK_BYTES = 32 << 20
_ARROW_BLOCK = 4 << 20


@dataclass
class Reject:
    line: int
    reason: str
    raw: bytes


@dataclass
class Chunk:
    """Parsed rows (with `_line`), parse-level rejects, and a way back to a row's raw text."""

    table: pa.Table
    rejects: list[Reject]
    raw_of: Callable[[int], bytes]
    n_blank: int = 0
    n_bytes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _parse_options(schema: pa.Schema) -> pj.ParseOptions:
    return pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")


def _read_block(data: bytes, schema: pa.Schema, block_size: int = _ARROW_BLOCK) -> pa.Table:
    """Arrow's JSON reader; `block_size` must exceed the longest line."""
    opts = pj.ReadOptions(block_size=max(block_size, 1 << 16))
    return pj.read_json(io.BytesIO(data), read_options=opts, parse_options=_parse_options(schema))


def _line_bounds(buf: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Start and end offsets of each line in a block (end excludes the newline)."""
    arr = np.frombuffer(buf, dtype=np.uint8)
    nl = np.flatnonzero(arr == 10)
    starts = np.concatenate(([0], nl + 1))
    ends = np.concatenate((nl, [len(buf)]))
    if len(buf) and buf.endswith(b"\n"):
        starts, ends = starts[:-1], ends[:-1]
    return starts, ends


def _blank_mask(buf: bytes, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    lengths = ends - starts
    arr = np.frombuffer(buf, dtype=np.uint8)
    blank = lengths == 0
    one = np.flatnonzero(lengths == 1)
    if len(one):
        blank[one] = arr[starts[one]] == 13  # a lone CR
    ws = np.flatnonzero((lengths > 1) & (lengths < 8))
    for i in ws:  # rare: short whitespace-only lines
        blank[i] = not buf[starts[i] : ends[i]].strip()
    return blank


def _reject_reason(line: bytes, schema: pa.Schema) -> str | None:
    """Why a single line does not parse into `schema`, or None when it does."""
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"invalid UTF-8 at byte {exc.start}"
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return f"malformed JSON: {exc}"
    if not isinstance(value, dict):
        return f"record is a JSON {type(value).__name__}, not an object"
    try:
        _read_block(line, schema, block_size=len(line) + 1)
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError) as exc:
        msg = str(exc).replace("JSON parse error: ", "")
        return f"wrong shape: {msg.split(' in row ')[0]}"
    return None


def _maybe_blank(buf: bytes) -> bool:
    """Whether a block may hold blank or whitespace-only lines (cheap byte searches)."""
    return (
        buf.startswith((b"\n", b"\r\n", b" ", b"\t"))
        or b"\n\n" in buf
        or b"\n\r\n" in buf
        or b"\n " in buf
        or b"\n\t" in buf
    )


def _parse_lines(buf: bytes, first_line: int, schema: pa.Schema) -> Chunk:
    """Parse one block of whole lines; line numbers are `first_line` onwards."""
    bounds: list[tuple[np.ndarray, np.ndarray]] = []

    def line_bounds() -> tuple[np.ndarray, np.ndarray]:
        if not bounds:
            bounds.append(_line_bounds(buf))
        return bounds[0]

    def raw_of(line_no: int) -> bytes:
        starts, ends = line_bounds()
        i = line_no - first_line
        return buf[int(starts[i]) : int(ends[i])]

    # Fast path: no blank lines and Arrow parses the whole block, so the row i is line
    # first_line + i and no per-line offsets are needed unless a row is rejected later.
    if not _maybe_blank(buf):
        n_lines = buf.count(b"\n") + (0 if buf.endswith(b"\n") else 1)
        try:
            table = _read_block(buf, schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError):
            table = None
        if table is not None and table.num_rows == n_lines:
            numbers = np.arange(first_line, first_line + n_lines, dtype=np.int64)
            table = table.append_column(LINE_COL, pa.array(numbers))
            return Chunk(table, [], raw_of, n_bytes=len(buf))

    starts, ends = line_bounds()
    blank = _blank_mask(buf, starts, ends)
    idx = np.flatnonzero(~blank)
    lines = first_line + idx  # 1-based numbers of the non-blank lines
    parsed: pa.Table | None = None
    try:
        parsed = _read_block(buf, schema)
        if parsed.num_rows != len(idx):
            parsed = None
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError):
        parsed = None
    if parsed is not None:
        parsed = parsed.append_column(LINE_COL, pa.array(lines, pa.int64()))
        return Chunk(parsed, [], raw_of, n_blank=int(blank.sum()), n_bytes=len(buf))

    # Slow path for this block only: find the bad lines, parse the good ones together.
    rejects: list[Reject] = []
    good: list[bytes] = []
    good_lines: list[int] = []
    for i, line_no in zip(idx.tolist(), lines.tolist(), strict=True):
        raw = buf[int(starts[i]) : int(ends[i])]
        reason = _reject_reason(raw, schema)
        if reason is None:
            good.append(raw)
            good_lines.append(line_no)
        else:
            rejects.append(Reject(line_no, reason, raw))
    if good:
        longest = max(len(g) for g in good) + 1
        table = _read_block(b"\n".join(good) + b"\n", schema, max(_ARROW_BLOCK, longest))
    else:
        table = schema.empty_table()
    table = table.append_column(LINE_COL, pa.array(good_lines, pa.int64()))
    return Chunk(table, rejects, raw_of, n_blank=int(blank.sum()), n_bytes=len(buf))


def read_jsonl(
    path: str, schema: pa.Schema, chunk_bytes: int = DEFAULT_CHUNK_BYTES
) -> Iterator[Chunk]:
    """Stream a JSON Lines file as blocks of whole lines (a block grows for a longer line)."""
    first_line = 1
    size = chunk_bytes
    with open(path, "rb") as fh:
        while True:
            pos = fh.tell()
            buf = fh.read(size)
            if not buf:
                break
            cut = buf.rfind(b"\n")
            if cut < 0 and len(buf) == size:  # one line longer than the block: read more
                fh.seek(pos)
                size *= 2
                continue
            if 0 <= cut < len(buf) - 1 and len(buf) == size:
                fh.seek(pos + cut + 1)
                buf = buf[: cut + 1]
            size = chunk_bytes
            chunk = _parse_lines(buf, first_line, schema)
            first_line += buf.count(b"\n") + (0 if buf.endswith(b"\n") else 1)
            yield chunk


def read_json_array(
    path: str, schema: pa.Schema, chunk_bytes: int = DEFAULT_CHUNK_BYTES
) -> Iterator[Chunk]:
    """A file holding one JSON array: records are numbered from 1 in `source_line`."""
    try:
        records = orjson.loads(open(path, "rb").read())
    except orjson.JSONDecodeError as exc:
        raise BadInputError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(records, list):
        raise BadInputError(f"{path}: expected a JSON array of records or JSON Lines")
    buf = bytearray()
    first = 1
    for n, rec in enumerate(records, start=1):
        buf += orjson.dumps(rec) + b"\n"
        if len(buf) >= chunk_bytes:
            yield _parse_lines(bytes(buf), first, schema)
            buf, first = bytearray(), n + 1
    if buf:
        yield _parse_lines(bytes(buf), first, schema)


def conform(table: pa.Table, schema: pa.Schema, where: str) -> pa.Table:
    """Select and cast a columnar source to the format's schema; missing columns are NULL."""
    cols = []
    for f in schema:
        if f.name in table.column_names:
            col = table.column(f.name)
            try:
                cols.append(col.cast(f.type) if col.type != f.type else col)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                raise BadInputError(
                    f"{where}: column {f.name!r} has type {col.type}, expected {f.type} ({exc})"
                ) from exc
        else:
            cols.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(cols, schema=schema)


def _columnar_chunks(
    batches: Iterator[pa.RecordBatch], schema: pa.Schema, where: str
) -> Iterator[Chunk]:
    row = 1
    for batch in batches:
        table = pa.Table.from_batches([batch])
        conformed = conform(table, schema, where)
        lines = np.arange(row, row + table.num_rows, dtype=np.int64)
        conformed = conformed.append_column(LINE_COL, pa.array(lines))
        start = row

        def raw_of(line_no: int, _t: pa.Table = table, _s: int = start) -> bytes:
            rec = _t.slice(line_no - _s, 1).to_pylist()[0]
            return json.dumps(rec, default=str, ensure_ascii=False).encode()

        yield Chunk(conformed, [], raw_of, n_bytes=table.nbytes)
        row += table.num_rows


def read_parquet(path: str, schema: pa.Schema, batch_rows: int = 50_000) -> Iterator[Chunk]:
    pf = pq.ParquetFile(path)
    yield from _columnar_chunks(pf.iter_batches(batch_size=batch_rows), schema, path)


def _arrow_batches(files: tuple[str, ...]) -> Iterator[pa.RecordBatch]:
    for f in files:
        with pa.memory_map(f) as src:
            try:
                reader = ipc.open_stream(src)
            except pa.ArrowInvalid:
                reader = ipc.open_file(src)
                for i in range(reader.num_record_batches):
                    yield reader.get_batch(i)
                continue
            yield from reader


def read_arrow(files: tuple[str, ...], schema: pa.Schema, where: str) -> Iterator[Chunk]:
    yield from _columnar_chunks(_arrow_batches(files), schema, where)


def read_table(
    table: pa.Table, schema: pa.Schema, where: str, batch_rows: int = 50_000
) -> Iterator[Chunk]:
    yield from _columnar_chunks(iter(table.to_batches(max_chunksize=batch_rows)), schema, where)


def sample_records(source: Source, n: int = 20) -> list[dict[str, Any]]:
    """The first records that parse as JSON objects, for format detection."""
    if source.kind == "jsonl":
        out: list[dict[str, Any]] = []
        assert source.path is not None
        with open(source.path, "rb") as fh:
            for raw in fh:
                if len(out) >= n:
                    break
                try:
                    rec = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(rec, dict):
                    out.append(rec)
        return out
    if source.kind == "json":
        assert source.path is not None
        try:
            records = orjson.loads(source.path.read_bytes())
        except orjson.JSONDecodeError as exc:
            raise BadInputError(f"{source.path}: not valid JSON ({exc})") from exc
        return [r for r in records[:n] if isinstance(r, dict)] if isinstance(records, list) else []
    if source.kind == "parquet":
        assert source.path is not None
        pf = pq.ParquetFile(source.path)
        batch = next(pf.iter_batches(batch_size=n), None)
        return batch.to_pylist() if batch is not None else []
    if source.kind == "arrow":
        batch = next(_arrow_batches(tuple(str(f) for f in source.files)), None)
        return batch.slice(0, n).to_pylist() if batch is not None else []
    raise BadInputError(f"{source.label}: cannot sample records from a {source.kind} source")


def prefetched(chunks: Iterator[Chunk], depth: int = 1) -> Iterator[Chunk]:
    """Read and parse the next block in a thread while the caller inserts this one.

    Arrow's parser and DuckDB both release the GIL, so on two cores parsing overlaps the
    insert. At most `depth` parsed blocks wait in the queue, which keeps memory bounded.
    """
    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for chunk in chunks:
                while not stop.is_set():
                    try:
                        q.put(("chunk", chunk), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(("done", None))
        except BaseException as exc:  # handed to the consumer, raised there
            q.put(("error", exc))

    worker = threading.Thread(target=produce, name="curate-reader", daemon=True)
    worker.start()
    try:
        while True:
            kind, item = q.get()
            if kind == "done":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                q.get_nowait()
        worker.join(timeout=5)
