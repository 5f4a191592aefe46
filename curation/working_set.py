"""The rows still in play while a recipe runs.

Before a binarize step the rows live in the warehouse: the input relation narrowed to the
alive row ids, with messages rewritten by transforms laid over it (only changed rows are
held in memory). After binarize they are an in-memory Arrow table of pairs (64k rows).
Connections are opened per read, read-only, so other processes can read the warehouse
while a recipe computes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from filters.scope import ROW_ID
from warehouse.store import Warehouse

# DuckDB's default (80% of RAM) lets its buffer pool grow beside the Arrow batches we hold
READ_CONFIG = {"memory_limit": "2GB"}
TAKE_ROWS = 65_536


def take_chunked(table: pa.Table, order: np.ndarray) -> pa.Table:
    """`table.take(order)` that never builds one array over all rows: a string or list column
    past 2 GiB would overflow Arrow's 32-bit offsets. Each slice of the output gathers its
    rows from the record batches holding them, then puts them in order."""
    batches = table.to_batches()
    starts = np.cumsum([0] + [b.num_rows for b in batches])
    out: list[pa.RecordBatch] = []
    for lo in range(0, len(order), TAKE_ROWS):
        want = order[lo : lo + TAKE_ROWS]
        owner = np.searchsorted(starts, want, side="right") - 1
        pieces, positions = [], []
        for b in np.unique(owner):
            sel = np.nonzero(owner == b)[0]
            pieces.append(batches[b].take(pa.array(want[sel] - starts[b])))
            positions.append(sel)
        piece = pa.Table.from_batches(pieces, schema=table.schema)
        back = np.argsort(np.concatenate(positions), kind="stable")
        out.extend(piece.take(pa.array(back)).to_batches())
    return pa.Table.from_batches(out, schema=table.schema)


class WorkingSet:
    def __init__(self, warehouse: Warehouse, input_sql: str, n_rows: int) -> None:
        self.warehouse = warehouse
        self.input_sql = input_sql
        self.alive: pa.Array | None = None  # None: every input row
        self.overlay: pa.Table | None = None  # row_id, messages of rewritten rows
        self.mem: pa.Table | None = None
        self._n = n_rows

    @property
    def n(self) -> int:
        return self._n

    # -- reading ------------------------------------------------------------------------
    def relation_sql(self) -> str:
        sql = f"SELECT * FROM ({self.input_sql}) i"
        if self.alive is not None:
            sql += " WHERE i.row_id IN (SELECT row_id FROM ws_alive)"
        if self.overlay is not None:
            sql = (
                "SELECT r.* REPLACE (coalesce(o.messages, r.messages) AS messages) "
                f"FROM ({sql}) r LEFT JOIN ws_overlay o USING (row_id)"
            )
        return sql

    @contextlib.contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only warehouse connection with the working set's tables registered."""
        with self.warehouse.read(READ_CONFIG) as con:
            self.register(con)
            yield con

    def register(self, con: duckdb.DuckDBPyConnection) -> str:
        """Make the working set's tables visible in `con`; returns the relation to read."""
        if self.alive is not None:
            con.register("ws_alive", pa.table({ROW_ID: self.alive}))
        if self.overlay is not None:
            con.register("ws_overlay", self.overlay)
        if self.mem is not None:
            con.register("ws_mem", self.mem)
            return "ws_mem"
        return f"({self.relation_sql()})"

    def read_all(self, columns: list[str] | None = None) -> pa.Table:
        """Every alive row in input order (`ord`), optionally only some columns."""
        if self.mem is not None:
            table = self.mem
            return table.select(columns) if columns else table
        cols = ", ".join(dict.fromkeys([*(columns or ["*"]), "ord"])) if columns else "*"
        with self.connection() as con:
            table = con.execute(f"SELECT {cols} FROM ({self.relation_sql()})").to_arrow_table()
        ord_ = table.column("ord").to_numpy()
        if len(ord_) > 1 and not np.all(ord_[1:] > ord_[:-1]):
            table = take_chunked(table, np.argsort(ord_, kind="stable"))
        if columns and "ord" not in columns:
            table = table.drop_columns(["ord"])
        return table

    def batches(self, size: int) -> Iterator[pa.Table]:
        """Alive rows in batches of up to `size` (order not guaranteed; row-local steps)."""
        if self.mem is not None:
            for b in self.mem.to_batches(max_chunksize=size):
                yield pa.Table.from_batches([b])
            return
        with self.connection() as con:
            reader = con.execute(self.relation_sql()).to_arrow_reader(size)
            for b in reader:
                yield pa.Table.from_batches([b])

    def query(self, sql: str) -> pa.Table:
        """SQL over the alive rows, exposed as `ws`."""
        with self.warehouse.read(READ_CONFIG) as con:
            src = self.register(con)
            return con.execute(sql.replace("{ws}", src)).to_arrow_table()

    # -- narrowing ------------------------------------------------------------------------
    def alive_ids(self) -> pa.Array:
        """Row ids still in play; read from the warehouse once, then kept in memory."""
        if self.mem is not None:
            return self.mem.column(ROW_ID).combine_chunks()
        if self.alive is None:
            self.alive = self.query("SELECT row_id FROM {ws}").column(ROW_ID).combine_chunks()
        return self.alive

    def drop(self, row_ids: pa.Array | pa.ChunkedArray) -> None:
        if len(row_ids) == 0:
            return
        if self.mem is not None:
            keep = pc.invert(pc.is_in(self.mem.column(ROW_ID), value_set=row_ids))
            self.mem = self.mem.filter(keep)
            self._n = self.mem.num_rows
            return
        keep = pc.invert(pc.is_in(self.alive_ids(), value_set=row_ids))
        self.alive = self.alive_ids().filter(keep)
        self._n = len(self.alive)
        if self.overlay is not None:
            self.overlay = self.overlay.filter(
                pc.is_in(self.overlay.column(ROW_ID), value_set=self.alive)
            )

    def add_overlay(self, rewritten: pa.Table) -> None:
        """Lay rewritten messages (row_id, messages) over the rows; later rewrites win."""
        if rewritten.num_rows == 0:
            return
        rewritten = rewritten.select([ROW_ID, "messages"])
        if self.mem is not None:
            idx = pc.index_in(self.mem.column(ROW_ID), value_set=rewritten.column(ROW_ID))
            new = pc.take(rewritten.column("messages"), pc.fill_null(idx, 0))
            merged = pc.if_else(pc.is_null(idx), self.mem.column("messages"), new)
            pos = self.mem.schema.get_field_index("messages")
            self.mem = self.mem.set_column(pos, "messages", merged)
            return
        if self.overlay is None:
            self.overlay = rewritten
        else:
            old = self.overlay.filter(
                pc.invert(pc.is_in(self.overlay.column(ROW_ID), value_set=rewritten.column(ROW_ID)))
            )
            self.overlay = pa.concat_tables([old, rewritten.cast(old.schema)])

    def replace_with(self, table: pa.Table) -> None:
        """From now on the rows are this in-memory table (after binarize)."""
        self.mem = table
        self.alive = None
        self.overlay = None
        self._n = table.num_rows
