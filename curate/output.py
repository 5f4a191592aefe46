"""Writing results: readable tables for people, CSV / JSON / Parquet for programs."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

MAX_CELL = 80


def _console() -> Console:
    # Wide when piped, so tables are not squeezed into 80 columns.
    return Console(file=sys.stdout, width=None if sys.stdout.isatty() else 200, soft_wrap=False)


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, str):
        text = value
    elif isinstance(value, (int, float, Decimal)):
        text = str(value)
    else:
        text = json.dumps(value, default=str, ensure_ascii=False)
    text = text.replace("\n", "⏎")
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def print_rows(rows: Sequence[dict[str, Any]], title: str | None = None) -> None:
    table = Table(title=title, title_justify="left", show_lines=False)
    columns = list(rows[0].keys()) if rows else []
    for c in columns:
        table.add_column(str(c), overflow="fold")
    for r in rows:
        table.add_row(*[_cell(r.get(c)) for c in columns])
    _console().print(table)


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str, ensure_ascii=False))


def _flatten_for_csv(table: pa.Table) -> pa.Table:
    """CSV holds scalars only: nested values become JSON text."""
    cols = []
    for name, col in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_nested(col.type):
            values = [
                None if v is None else json.dumps(v, default=str, ensure_ascii=False)
                for v in col.to_pylist()
            ]
            cols.append(pa.array(values, pa.string()))
        else:
            cols.append(col)
        del name
    return pa.Table.from_arrays(cols, names=table.column_names)


def write_table(table: pa.Table, fmt: str, out: Path | None) -> None:
    """Write a query result in `fmt` to `out`, or to stdout."""
    if fmt == "parquet":
        assert out is not None
        pq.write_table(table, out)
    elif fmt == "csv":
        flat = _flatten_for_csv(table)
        if out is None:
            sink = pa.BufferOutputStream()
            pacsv.write_csv(flat, sink)
            sys.stdout.write(sink.getvalue().to_pybytes().decode())
        else:
            pacsv.write_csv(flat, str(out))
    elif fmt == "json":
        lines = "".join(
            json.dumps(r, default=str, ensure_ascii=False) + "\n" for r in table.to_pylist()
        )
        if out is None:
            sys.stdout.write(lines)
        else:
            out.write_text(lines)
    else:
        rows = table.to_pylist()
        if out is not None:
            out.write_text("".join(json.dumps(r, default=str) + "\n" for r in rows))
        elif rows:
            print_rows(rows)
        else:
            print_rows([{c: "" for c in table.column_names}][:0] or [], title="(no rows)")
