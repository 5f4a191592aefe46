"""`curate verify`: recompute what a snapshot's catalog promises and compare.

Checks: the content hash over the stored rows; the id from the stored lineage (inputs,
recipe text, code version, models, seed); rows per split; and that every step's counts
add up (in = out + dropped) and match its drop-ledger rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb

from curation.code_version import code_version
from warehouse import snapshots


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class VerifyResult:
    snapshot_id: str
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "snapshot_id": self.snapshot_id,
            "ok": self.ok,
            "checks": [c.__dict__ for c in self.checks],
            "notes": self.notes,
        }


def verify_snapshot(con: duckdb.DuckDBPyConnection, ref: str) -> VerifyResult:
    sid = snapshots.resolve(con, ref)
    row = snapshots.catalog_row(con, sid)
    res = VerifyResult(sid)
    got = snapshots.content_hash(con, sid)
    res.checks.append(
        Check(
            "content_hash",
            got == row["content_hash"],
            f"stored {row['content_hash'][:16]}…, recomputed {got[:16]}…",
        )
    )
    expected_id = snapshots.snapshot_id_for(
        row["inputs"],
        row["recipe_text"],
        row["code_version"],
        row["model_versions"] or {},
        int(row["seed"]),
    )
    res.checks.append(Check("snapshot_id", expected_id == sid, f"recomputed {expected_id}"))
    counts = dict(
        con.execute(
            "SELECT split, count(*) FROM snapshot_rows WHERE snapshot_id = ? GROUP BY 1", [sid]
        ).fetchall()
    )
    stored = row["splits"] or {}
    same = {k: int(v) for k, v in counts.items()} == {k: int(v) for k, v in stored.items()}
    res.checks.append(Check("split_counts", same, f"stored {stored}, counted {counts}"))
    ledger = dict(
        con.execute(
            "SELECT step_index, count(*) FROM drop_ledger WHERE snapshot_id = ? GROUP BY 1", [sid]
        ).fetchall()
    )
    bad = []
    for step in snapshots.steps_of(con, sid):
        n_led = int(ledger.get(step["step_index"], 0))
        if step["n_in"] != step["n_out"] + step["n_dropped"] or n_led != step["n_dropped"]:
            bad.append(
                f"{step['step_name']}: in {step['n_in']} out {step['n_out']} dropped "
                f"{step['n_dropped']} ledger {n_led}"
            )
    res.checks.append(
        Check("step_counts", not bad, "; ".join(bad) or "in = out + dropped = ledger rows")
    )
    if row["code_version"] != code_version():
        res.notes.append(
            f"the code has changed since this snapshot ({row['code_version']} then, "
            f"{code_version()} now): rerunning its recipe would give a new snapshot id"
        )
    return res
