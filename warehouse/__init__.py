"""The warehouse: the only package that opens DuckDB files.

It holds raw UltraChat and UltraFeedback records in every public format, the quarantine of
rejected input, ingest batches, and (later) snapshots. It imports no other package of ours.
"""

from warehouse.errors import (
    BadInputError,
    CurateError,
    QueryRefusedError,
    QueryTimeoutError,
    WarehouseBusyError,
)
from warehouse.store import Warehouse, default_warehouse_path

__all__ = [
    "BadInputError",
    "CurateError",
    "QueryRefusedError",
    "QueryTimeoutError",
    "Warehouse",
    "WarehouseBusyError",
    "default_warehouse_path",
]
