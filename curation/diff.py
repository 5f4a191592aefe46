"""What changed between two snapshots, and which step caused each change.

A row present in a split of A but not in that split of B was *removed*: B's drop ledger
names the step that dropped it, or the row moved to another split of B, or it was not among
B's inputs. A row in B but not in A was *added*: A's ledger names the step that had dropped
it there (or it moved, or it is new input). Rows in both whose content differs (a transform edited
them) are *changed*. Everything is one SQL query over snapshot_rows and drop_ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from warehouse import snapshots

_ROW_HASH = (
    "md5(concat_ws(chr(31), coalesce(prompt, ''), coalesce(to_json(messages)::VARCHAR, ''), "
    "coalesce(to_json(chosen)::VARCHAR, ''), coalesce(to_json(rejected)::VARCHAR, '')))"
)

_DIFF_SQL = f"""
WITH a AS (SELECT split, row_id, {_ROW_HASH} AS h FROM snapshot_rows WHERE snapshot_id = $a),
     b AS (SELECT split, row_id, {_ROW_HASH} AS h FROM snapshot_rows WHERE snapshot_id = $b),
     d AS (
       SELECT coalesce(a.split, b.split) AS split, coalesce(a.row_id, b.row_id) AS row_id,
              CASE WHEN a.row_id IS NULL THEN 'added'
                   WHEN b.row_id IS NULL THEN 'removed' ELSE 'changed' END AS change
       FROM a FULL OUTER JOIN b ON a.split = b.split AND a.row_id = b.row_id
       WHERE a.row_id IS NULL OR b.row_id IS NULL OR a.h <> b.h
     ),
     la AS (SELECT row_id, any_value(step_name) AS step, any_value(reason) AS reason
            FROM drop_ledger WHERE snapshot_id = $a GROUP BY row_id),
     lb AS (SELECT row_id, any_value(step_name) AS step, any_value(reason) AS reason
            FROM drop_ledger WHERE snapshot_id = $b GROUP BY row_id),
     sa AS (SELECT row_id, string_agg(DISTINCT split, ', ' ORDER BY split) AS splits
            FROM a GROUP BY row_id),
     sb AS (SELECT row_id, string_agg(DISTINCT split, ', ' ORDER BY split) AS splits
            FROM b GROUP BY row_id)
SELECT d.split, d.change, d.row_id,
       CASE d.change
         WHEN 'removed' THEN coalesce('B dropped it at step ' || lb.step,
                                      'moved to B''s ' || sb.splits, 'not among B''s inputs')
         WHEN 'added' THEN coalesce('A dropped it at step ' || la.step,
                                    'moved from A''s ' || sa.splits, 'not among A''s inputs')
         ELSE 'content changed' END AS cause,
       CASE d.change WHEN 'removed' THEN lb.step WHEN 'added' THEN la.step END AS step,
       CASE d.change WHEN 'removed' THEN lb.reason WHEN 'added' THEN la.reason END AS reason
FROM d LEFT JOIN la USING (row_id) LEFT JOIN lb USING (row_id)
  LEFT JOIN sa USING (row_id) LEFT JOIN sb USING (row_id)
"""


@dataclass
class SnapshotDiff:
    a: str
    b: str
    summary: list[dict[str, Any]]  # split, change, cause, n
    rows: pa.Table  # split, change, row_id, cause, step, reason (capped)
    n_added: int
    n_removed: int
    n_changed: int

    @property
    def identical(self) -> bool:
        return self.n_added == self.n_removed == self.n_changed == 0


def diff_snapshots(
    con: duckdb.DuckDBPyConnection, ref_a: str, ref_b: str, max_rows: int = 1000
) -> SnapshotDiff:
    a, b = snapshots.resolve(con, ref_a), snapshots.resolve(con, ref_b)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _diff AS {_DIFF_SQL}", {"a": a, "b": b})
    try:
        cur = con.execute(
            "SELECT split, change, cause, count(*) AS n FROM _diff GROUP BY ALL "
            "ORDER BY split, change, n DESC"
        )
        names = [d[0] for d in cur.description or []]
        summary = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        rows = con.execute(
            f"SELECT * FROM _diff ORDER BY split, change, row_id LIMIT {int(max_rows)}"
        ).to_arrow_table()
        counts = dict(con.execute("SELECT change, count(*) FROM _diff GROUP BY 1").fetchall())
    finally:
        con.execute("DROP TABLE IF EXISTS _diff")
    return SnapshotDiff(
        a,
        b,
        summary,
        rows,
        int(counts.get("added", 0)),
        int(counts.get("removed", 0)),
        int(counts.get("changed", 0)),
    )
