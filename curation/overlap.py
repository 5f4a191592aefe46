"""Prompts shared between two snapshots (an SFT set and a preference set, say).

Training SFT and DPO on the same prompts is a choice, not an accident: this reports the
overlap per split pair by prompt_id; a recipe's `exclude` step removes it.
"""

from __future__ import annotations

from typing import Any

import duckdb

from warehouse import snapshots


def prompt_overlap(
    con: duckdb.DuckDBPyConnection, ref_a: str, ref_b: str
) -> tuple[str, str, list[dict[str, Any]]]:
    a, b = snapshots.resolve(con, ref_a), snapshots.resolve(con, ref_b)
    cur = con.execute(
        """WITH pa AS (SELECT DISTINCT split, prompt_id FROM snapshot_rows WHERE snapshot_id = $a),
                pb AS (SELECT DISTINCT split, prompt_id FROM snapshot_rows WHERE snapshot_id = $b)
           SELECT pa.split AS split_a, pb.split AS split_b, count(*) AS shared_prompts
           FROM pa JOIN pb USING (prompt_id) GROUP BY ALL ORDER BY ALL""",
        {"a": a, "b": b},
    )
    names = [d[0] for d in cur.description or []]
    return a, b, [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
