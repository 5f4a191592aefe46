"""A summary of what a warehouse holds, for `curate status`, the demo and dashboards."""

from __future__ import annotations

from typing import Any

from warehouse import schema
from warehouse.store import Warehouse


def summary(warehouse: Warehouse) -> dict[str, Any]:
    with warehouse.read() as con:
        tables = []
        for t in schema.TABLES:
            n = con.execute(f"SELECT count(*) FROM {t.name}").fetchone()
            tables.append({"table": t.name, "rows": int(n[0]) if n else 0, "what": t.doc})
        batches = [
            dict(
                zip(
                    (
                        "batch_id",
                        "source_file",
                        "format",
                        "split",
                        "in",
                        "accepted",
                        "quarantined",
                        "seconds",
                    ),
                    r,
                    strict=True,
                )
            )
            for r in con.execute(
                "SELECT batch_id, source_file, format, split, n_in, n_accepted, n_quarantined, "
                "round(seconds, 2) FROM ingest_batches ORDER BY finished_at"
            ).fetchall()
        ]
        quarantine = [
            {"reason": r[0], "rows": int(r[1])}
            for r in con.execute(
                "SELECT reason, count(*) FROM quarantine GROUP BY reason ORDER BY 2 DESC, 1"
            ).fetchall()
        ]
    return {
        "path": str(warehouse.path),
        "tables": tables,
        "batches": batches,
        "quarantine": quarantine,
        "holders": [h.describe() for h in warehouse.holders()],
    }
