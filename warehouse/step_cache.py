"""Cached results of recipe steps, as Parquet files beside the warehouse file.

Why files and not tables: a run computes its steps while only reading the warehouse (other
processes may keep reading it) and takes the write lock just for the commit. Each entry is
written to a temporary name, fsynced and renamed into place, so a killed run leaves whole
entries only; the rerun finds them and skips those steps.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from warehouse.store import Warehouse


class StepCache:
    """get/put of Arrow tables by (key, part); `part` names what a step stored."""

    def __init__(self, warehouse: Warehouse) -> None:
        self.root = warehouse.path.with_name(warehouse.path.name + ".cache") / "steps"

    def path(self, key: str, part: str) -> Path:
        return self.root / key[:2] / f"{key}.{part}.parquet"

    def has(self, key: str, part: str) -> bool:
        return self.path(key, part).exists()

    def get(self, key: str, part: str) -> pa.Table | None:
        p = self.path(key, part)
        if not p.exists():
            return None
        return pq.read_table(p)

    def put(self, key: str, part: str, table: pa.Table) -> None:
        p = self.path(key, part)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
        try:
            pq.write_table(table, tmp, compression="zstd")
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, p)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def size_bytes(self) -> int:
        if not self.root.exists():
            return 0
        return sum(f.stat().st_size for f in self.root.rglob("*.parquet"))

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
