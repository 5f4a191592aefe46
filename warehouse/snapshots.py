"""Immutable, content-addressed snapshots stored in the warehouse file.

A snapshot is a catalog row (`snapshots`), its per-step lineage (`snapshot_steps`), its rows
(`snapshot_rows`, every split in order) and its drop ledger (`drop_ledger`). `commit_snapshot`
writes all four in one DuckDB transaction: that transaction is the commit point, so a kill at
any moment leaves either no trace of the snapshot or all of it (docs/snapshots.md says why
this beat DuckLake here). The id is a hash of what produced the rows, so committing the same
thing twice is a no-op that returns the existing snapshot.

Readers (`open_snapshot`, training, exports) get a split in the published column layout as an
Arrow table or a `datasets.Dataset` wrapping that table (no cache file is written).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from warehouse import published
from warehouse.errors import BadInputError
from warehouse.store import Warehouse

PAUSE_ENV = "CURATE_DEBUG_PAUSE_IN_COMMIT"

ROW_COLUMNS = (
    "split",
    "ordinal",
    "row_id",
    "prompt",
    "prompt_id",
    "messages",
    "chosen",
    "rejected",
    "score_chosen",
    "score_rejected",
    "chosen_model",
    "rejected_model",
    "source",
)


def snapshot_id_for(
    inputs: list[dict[str, Any]],
    recipe_text: str,
    code_version: str,
    model_versions: dict[str, Any],
    seed: int,
) -> str:
    """s_ + sha256 over the canonical JSON of everything that determines the rows."""
    payload = json.dumps(
        {
            "inputs": inputs,
            "recipe": recipe_text,
            "code": code_version,
            "models": model_versions,
            "seed": seed,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return "s_" + hashlib.sha256(payload.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class SnapshotMeta:
    """Everything the catalog row records besides counts and the content hash."""

    snapshot_id: str
    kind: str
    recipe_name: str
    recipe_text: str
    inputs: list[dict[str, Any]]
    code_version: str
    model_versions: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    message: str = ""
    wall_s: float = 0.0

    @property
    def parent_snapshots(self) -> list[str]:
        return sorted({i["snapshot"] for i in self.inputs if i.get("snapshot")})

    @property
    def ingest_batches(self) -> list[str]:
        return sorted({b for i in self.inputs for b in i.get("batches", [])})

    def expected_id(self) -> str:
        return snapshot_id_for(
            self.inputs, self.recipe_text, self.code_version, self.model_versions, self.seed
        )


# -- content hash -----------------------------------------------------------------------
_ROW_TEXT = """concat_ws(chr(31), split, ordinal::VARCHAR, row_id, coalesce(prompt, ''),
  coalesce(prompt_id, ''), coalesce(to_json(messages)::VARCHAR, ''),
  coalesce(to_json(chosen)::VARCHAR, ''), coalesce(to_json(rejected)::VARCHAR, ''),
  coalesce(score_chosen::VARCHAR, ''), coalesce(score_rejected::VARCHAR, ''))"""


def content_hash(con: duckdb.DuckDBPyConnection, snapshot_id: str) -> str:
    """sha256 over per-row md5s of the stored rows in (split, ordinal) order."""
    row = con.execute(
        f"SELECT sha256(coalesce(string_agg(md5({_ROW_TEXT}), '' ORDER BY split, ordinal), '')) "
        "FROM snapshot_rows WHERE snapshot_id = ?",
        [snapshot_id],
    ).fetchone()
    return str(row[0]) if row else ""


# -- commit -----------------------------------------------------------------------------
def exists(con: duckdb.DuckDBPyConnection, snapshot_id: str) -> bool:
    row = con.execute("SELECT count(*) FROM snapshots WHERE snapshot_id = ?", [snapshot_id])
    got = row.fetchone()
    return bool(got and got[0])


def _debug_pause() -> None:
    pause = os.environ.get(PAUSE_ENV)
    if pause:
        print(f"[debug] commit paused for {pause}s before COMMIT", file=sys.stderr, flush=True)
        time.sleep(float(pause))


def _insert(
    con: duckdb.DuckDBPyConnection,
    table: str,
    source: str,
    snapshot_id: str,
    params: list[Any] | None = None,
) -> None:
    con.execute(
        f"INSERT INTO {table} BY NAME SELECT ? AS snapshot_id, * FROM {source}",
        [snapshot_id, *(params or [])],
    )


def commit_snapshot(
    con: duckdb.DuckDBPyConnection,
    meta: SnapshotMeta,
    *,
    rows: pa.Table | None = None,
    rows_sql: str | None = None,
    rows_params: list[Any] | None = None,
    steps: pa.Table | None = None,
    ledger: pa.Table | None = None,
    ledger_sql: str | None = None,
    overlap: pa.Table | None = None,
    tags: list[str] | None = None,
) -> bool:
    """Write the snapshot in one transaction; False when it already existed (no-op).

    `rows` (an Arrow table) or `rows_sql` (a SELECT run inside the transaction, so large
    outputs never pass through Python) gives the ROW_COLUMNS; missing columns are NULL.
    `steps` and `ledger`/`ledger_sql` give snapshot_steps / drop_ledger columns without
    snapshot_id.
    """
    published.schema_for(meta.kind)
    if (rows is None) == (rows_sql is None):
        raise ValueError("pass exactly one of rows= and rows_sql=")
    con.execute("BEGIN TRANSACTION")
    try:
        if exists(con, meta.snapshot_id):
            con.execute("ROLLBACK")
            return False
        sid = meta.snapshot_id
        staged = {"snapshot_rows": rows, "snapshot_steps": steps, "drop_ledger": ledger}
        staged["drop_overlap"] = overlap
        for table, arrow in staged.items():
            if arrow is not None:
                con.register("_staged", arrow)
                try:
                    _insert(con, table, "_staged", sid)
                finally:
                    con.unregister("_staged")
        if rows_sql is not None:
            _insert(con, "snapshot_rows", f"({rows_sql})", sid, rows_params)
        if ledger_sql is not None:
            _insert(con, "drop_ledger", f"({ledger_sql})", sid)
        counts = dict(
            con.execute(
                "SELECT split, count(*) FROM snapshot_rows WHERE snapshot_id = ? GROUP BY split",
                [sid],
            ).fetchall()
        )
        splits = {s: int(counts[s]) for s in published.ordered_splits(meta.kind, counts)}
        con.execute(
            "INSERT INTO snapshots BY NAME SELECT ? AS snapshot_id, ? AS kind, "
            "? AS recipe_name, ? AS recipe_text, ? AS inputs, ?::VARCHAR[] AS parent_snapshots, "
            "?::VARCHAR[] AS ingest_batches, ? AS code_version, ? AS model_versions, "
            "? AS seed, ? AS content_hash, ? AS n_rows, ? AS splits, ? AS message, "
            "? AS created_at, ? AS wall_s",
            [
                sid,
                meta.kind,
                meta.recipe_name,
                meta.recipe_text,
                json.dumps(meta.inputs, sort_keys=True),
                meta.parent_snapshots,
                meta.ingest_batches,
                meta.code_version,
                json.dumps(meta.model_versions, sort_keys=True),
                meta.seed,
                content_hash(con, sid),
                sum(splits.values()),
                json.dumps(splits),
                meta.message,
                datetime.now(UTC).replace(tzinfo=None),
                meta.wall_s,
            ],
        )
        for tag in tags or []:
            _set_tag(con, sid, tag, force=False)
        _debug_pause()
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return True


# -- catalog reads ----------------------------------------------------------------------
def resolve(con: duckdb.DuckDBPyConnection, ref: str) -> str:
    """A tag, a full snapshot id, or a unique id prefix -> the snapshot id."""
    tagged = con.execute("SELECT snapshot_id FROM snapshot_tags WHERE tag = ?", [ref]).fetchone()
    if tagged:
        return str(tagged[0])
    ids = [
        r[0]
        for r in con.execute(
            "SELECT snapshot_id FROM snapshots WHERE starts_with(snapshot_id, ?) "
            "ORDER BY snapshot_id",
            [ref],
        ).fetchall()
    ]
    if len(ids) == 1:
        return str(ids[0])
    if not ids:
        raise BadInputError(
            f"no snapshot or tag {ref!r}: `curate snapshots` lists the snapshots and tags"
        )
    raise BadInputError(f"{ref!r} matches {len(ids)} snapshots ({', '.join(ids[:5])}): be longer")


def _set_tag(con: duckdb.DuckDBPyConnection, snapshot_id: str, tag: str, force: bool) -> None:
    if not tag or tag.startswith("s_") or any(c.isspace() for c in tag):
        raise BadInputError(f"tag {tag!r}: use a non-empty name without spaces, not starting s_")
    held = con.execute("SELECT snapshot_id FROM snapshot_tags WHERE tag = ?", [tag]).fetchone()
    if held and held[0] != snapshot_id:
        if not force:
            raise BadInputError(
                f"tag {tag!r} already names {held[0]}: pass --force to move it to {snapshot_id}"
            )
        con.execute("DELETE FROM snapshot_tags WHERE tag = ?", [tag])
    elif held:
        return
    con.execute(
        "INSERT INTO snapshot_tags VALUES (?, ?, ?)",
        [tag, snapshot_id, datetime.now(UTC).replace(tzinfo=None)],
    )


def set_tag(con: duckdb.DuckDBPyConnection, ref: str, tag: str, force: bool = False) -> str:
    """Name a snapshot; a tag that names another snapshot moves only with force."""
    sid = resolve(con, ref)
    con.execute("BEGIN TRANSACTION")
    try:
        _set_tag(con, sid, tag, force)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return sid


def tags_of(con: duckdb.DuckDBPyConnection, snapshot_id: str) -> list[str]:
    return [
        str(r[0])
        for r in con.execute(
            "SELECT tag FROM snapshot_tags WHERE snapshot_id = ? ORDER BY tag", [snapshot_id]
        ).fetchall()
    ]


def list_snapshots(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Every snapshot, newest first, with its tags."""
    rows = con.execute(
        """SELECT s.snapshot_id, s.kind, s.recipe_name, s.n_rows, s.splits, s.created_at,
                  s.message, s.parent_snapshots,
                  coalesce(list(t.tag ORDER BY t.tag) FILTER (WHERE t.tag IS NOT NULL), [])
           FROM snapshots s LEFT JOIN snapshot_tags t USING (snapshot_id)
           GROUP BY ALL ORDER BY s.created_at DESC, s.snapshot_id"""
    ).fetchall()
    keys = [
        "snapshot_id",
        "kind",
        "recipe_name",
        "n_rows",
        "splits",
        "created_at",
        "message",
        "parents",
        "tags",
    ]
    out = []
    for r in rows:
        d = dict(zip(keys, r, strict=True))
        d["splits"] = json.loads(d["splits"] or "{}")
        d["created_at"] = str(d["created_at"])
        out.append(d)
    return out


def catalog_row(con: duckdb.DuckDBPyConnection, snapshot_id: str) -> dict[str, Any]:
    cur = con.execute("SELECT * FROM snapshots WHERE snapshot_id = ?", [snapshot_id])
    names = [d[0] for d in cur.description or []]
    row = cur.fetchone()
    if row is None:
        raise BadInputError(f"no snapshot {snapshot_id}")
    d = dict(zip(names, row, strict=True))
    for k in ("inputs", "model_versions", "splits"):
        d[k] = json.loads(d[k] or "null")
    d["created_at"] = str(d["created_at"])
    d["tags"] = tags_of(con, snapshot_id)
    return d


def steps_of(con: duckdb.DuckDBPyConnection, snapshot_id: str) -> list[dict[str, Any]]:
    cur = con.execute(
        "SELECT * EXCLUDE (snapshot_id) FROM snapshot_steps WHERE snapshot_id = ? "
        "ORDER BY step_index",
        [snapshot_id],
    )
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


# -- the read API -----------------------------------------------------------------------
@dataclass(frozen=True)
class Snapshot:
    """A committed snapshot; splits load in the published layout."""

    warehouse: Warehouse
    snapshot_id: str
    kind: str
    recipe_name: str
    splits: dict[str, int]
    content_hash: str
    created_at: str
    tags: tuple[str, ...] = ()

    def _check_split(self, name: str) -> None:
        if name not in self.splits:
            have = ", ".join(self.splits) or "none"
            raise BadInputError(
                f"snapshot {self.snapshot_id} ({self.kind}) has no split {name!r}; it has: {have}"
            )

    def split_arrow(self, name: str) -> pa.Table:
        """The split as an Arrow table in the published schema, in snapshot order."""
        self._check_split(name)
        with self.warehouse.read() as con:
            table = con.execute(
                f"SELECT {published.select_sql(self.kind)} FROM snapshot_rows "
                "WHERE snapshot_id = ? AND split = ? ORDER BY ordinal",
                [self.snapshot_id, name],
            ).to_arrow_table()
        return table.cast(published.schema_for(self.kind))

    def split_dataset(self, name: str) -> Any:
        """The split as a `datasets.Dataset` wrapping the Arrow table (no cache file)."""
        from datasets import Dataset, DatasetInfo, NamedSplit
        from datasets.table import InMemoryTable

        table = self.split_arrow(name)
        info = DatasetInfo(
            description=f"snapshot {self.snapshot_id} ({self.recipe_name})",
            features=published.features_for(self.kind),
        )
        return Dataset(
            InMemoryTable(table),
            info=info,
            split=NamedSplit(name),
            fingerprint=f"{self.content_hash[:16]}-{name}",
        )


def open_snapshot(warehouse: Warehouse | str | Path, ref: str) -> Snapshot:
    """A snapshot by id, unique id prefix, or tag."""
    wh = warehouse if isinstance(warehouse, Warehouse) else Warehouse(warehouse)
    with wh.read() as con:
        sid = resolve(con, ref)
        row = catalog_row(con, sid)
    return Snapshot(
        warehouse=wh,
        snapshot_id=sid,
        kind=str(row["kind"]),
        recipe_name=str(row["recipe_name"]),
        splits={str(k): int(v) for k, v in (row["splits"] or {}).items()},
        content_hash=str(row["content_hash"]),
        created_at=str(row["created_at"]),
        tags=tuple(row["tags"]),
    )
