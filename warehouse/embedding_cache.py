"""Embedding vectors stored in the warehouse, keyed by (model_id, text hash).

Why: embedding 1.47M dialogues takes hours on CPU; storing each vector once makes re-runs,
threshold changes and decontamination of the same texts nearly free. Reads and writes are
batched Arrow joins in DuckDB (no per-row statements). Reads use a read-only connection, so
several readers may share the file while nothing writes.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa

from warehouse import schema
from warehouse.store import Warehouse

TABLE = "embedding_cache"

# Declared with the other tables in warehouse/schema.py; created here too for files made
# before the table existed.
EMBEDDING_CACHE_DDL = schema.EMBEDDING_CACHE.ddl()


def _has_table(con: duckdb.DuckDBPyConnection) -> bool:
    row = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [TABLE]
    ).fetchone()
    return bool(row and row[0])


def _vectors_array(vectors: np.ndarray) -> pa.Array:
    vecs = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = vecs.shape
    offsets = pa.array(np.arange(0, (n + 1) * dim, dim, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(vecs.reshape(-1)))


class EmbeddingCache:
    """get/put of vectors for many hashes at once (the `VectorCache` of filters.embed).

    Pass `connection` to reuse a connection the caller already holds (DuckDB refuses a
    second connection with another mode to the same file in one process).
    """

    def __init__(
        self, warehouse: Warehouse, connection: duckdb.DuckDBPyConnection | None = None
    ) -> None:
        self.warehouse = warehouse
        self.connection = connection

    def get(self, model_id: str, hashes: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        n = len(hashes)
        found = np.zeros(n, dtype=bool)
        empty = np.zeros((0, 0), np.float32)
        if n == 0 or (self.connection is None and not self.warehouse.path.exists()):
            return found, empty
        if self.connection is not None:
            res = self._get(self.connection, model_id, hashes)
        else:
            with self.warehouse.read() as con:
                res = self._get(con, model_id, hashes)
        if res is None or res.num_rows == 0:
            return found, empty
        pos = res.column("pos").to_numpy()
        dim = int(res.column("dim")[0].as_py())
        flat = res.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False)
        vecs = np.asarray(flat, np.float32).reshape(len(pos), dim)
        found[pos] = True
        return found, vecs  # rows sorted by pos, the order of the found mask

    @staticmethod
    def _get(con: duckdb.DuckDBPyConnection, model_id: str, hashes: pa.Array) -> pa.Table | None:
        if not _has_table(con):
            return None
        wanted = pa.table(
            {"pos": pa.array(np.arange(len(hashes), dtype=np.int64)), "text_hash": hashes}
        )
        con.register("_wanted_hashes", wanted)
        try:
            return con.execute(
                f"""SELECT w.pos, any_value(c.dim) AS dim, any_value(c.vector) AS vector
                FROM _wanted_hashes w JOIN {TABLE} c
                  ON c.text_hash = w.text_hash AND c.model_id = ?
                GROUP BY w.pos ORDER BY w.pos""",
                [model_id],
            ).to_arrow_table()
        finally:
            con.unregister("_wanted_hashes")

    def put(self, model_id: str, hashes: pa.Array, vectors: np.ndarray) -> None:
        if len(hashes) == 0:
            return
        if len(hashes) != len(vectors):
            raise ValueError(f"{len(hashes)} hashes but {len(vectors)} vectors")
        if self.connection is not None:
            self._put(self.connection, model_id, hashes, vectors)
        else:
            with self.warehouse.write() as con:
                self._put(con, model_id, hashes, vectors)

    @staticmethod
    def _put(
        con: duckdb.DuckDBPyConnection, model_id: str, hashes: pa.Array, vectors: np.ndarray
    ) -> None:
        con.execute(EMBEDDING_CACHE_DDL)
        new = pa.table({"text_hash": hashes, "vector": _vectors_array(vectors)})
        con.register("_new_vectors", new)
        try:
            # anti-join: a hash already stored for this model is not stored twice
            con.execute(
                f"""INSERT INTO {TABLE}
                SELECT DISTINCT ON (n.text_hash) ?, n.text_hash, ?, n.vector
                FROM _new_vectors n
                WHERE NOT EXISTS (
                  SELECT 1 FROM {TABLE} c WHERE c.model_id = ? AND c.text_hash = n.text_hash
                )""",
                [model_id, int(vectors.shape[1]), model_id],
            )
        finally:
            con.unregister("_new_vectors")

    def count(self, model_id: str | None = None) -> int:
        """Stored vectors (for one model, or all)."""
        if not self.warehouse.path.exists() and self.connection is None:
            return 0
        sql = f"SELECT count(*) FROM {TABLE}" + (" WHERE model_id = ?" if model_id else "")
        args = [model_id] if model_id else []
        if self.connection is not None:
            con = self.connection
            if not _has_table(con):
                return 0
            row = con.execute(sql, args).fetchone()
        else:
            with self.warehouse.read() as con:
                if not _has_table(con):
                    return 0
                row = con.execute(sql, args).fetchone()
        return int(row[0]) if row else 0
