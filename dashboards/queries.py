"""The DuckDB queries behind the pages: aggregates and keyset pages, never whole tables.

Every function takes an open read-only connection and returns plain dicts and lists, so a
page can render them or hand them out as JSON unchanged. Anything per snapshot that scans
its rows (histograms, sources) is memoised by snapshot id: snapshots are immutable, so the
answer never goes stale, and the 1.47M-dialogue warehouse pays for the scan once per process.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
from collections.abc import Callable
from typing import Any

import duckdb

from curation import report
from warehouse import snapshots

TABLES = (
    "dialogues",
    "uf_prompts",
    "uf_completions",
    "preference_pairs",
    "quarantine",
    "ingest_batches",
    "embedding_cache",
    "snapshots",
    "snapshot_steps",
    "snapshot_rows",
    "drop_ledger",
    "drop_overlap",
    "snapshot_tags",
    "training_runs",
)
SCORE_BINS = 20
MAX_TURN_BUCKET = 20  # turn counts above this share one bar
MEMO_MAX = 2_000


def _dicts(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


# -- memo for immutable per-snapshot aggregates ---------------------------------------------
_memo: dict[tuple[str, str, str], Any] = {}
_memo_locks: dict[tuple[str, str, str], threading.Lock] = {}
_memo_guard = threading.Lock()


def memoised(db: str, snapshot_id: str, name: str, compute: Callable[[], Any]) -> Any:
    """Compute once per (warehouse file, snapshot, aggregate); concurrent callers wait for
    the first instead of all scanning at once. `snapshot_id` may name a pair ("a|b")."""
    key = (db, snapshot_id, name)
    if key in _memo:
        return _memo[key]
    with _memo_guard:
        if len(_memo) > MEMO_MAX:  # bounded: diffs of arbitrary pairs could pile up
            _memo.clear()
            _memo_locks.clear()
        lock = _memo_locks.setdefault(key, threading.Lock())
    with lock:
        if key not in _memo:
            _memo[key] = compute()
    return _memo[key]


def clear_memo() -> None:
    with _memo_guard:
        _memo.clear()
        _memo_locks.clear()


# -- overview ---------------------------------------------------------------------------------
def table_counts(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Row counts of the warehouse tables that exist (count(*) is metadata-fast in DuckDB)."""
    have = {
        str(r[0])
        for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'"
        ).fetchall()
    }
    present = [t for t in TABLES if t in have]
    if not present:
        return []
    sql = " UNION ALL ".join(
        f"SELECT '{t}' AS table_name, count(*) AS n_rows FROM {t}" for t in present
    )
    counts = {str(r[0]): int(r[1]) for r in con.execute(sql).fetchall()}
    return [{"table": t, "rows": counts[t]} for t in present]


def ingest_batches(con: duckdb.DuckDBPyConnection, limit: int = 200) -> list[dict[str, Any]]:
    rows = _dicts(
        con.execute(
            "SELECT batch_id, source, format, split, target_table, n_in, n_accepted, "
            "n_quarantined, finished_at, round(seconds, 2) AS seconds FROM ingest_batches "
            "ORDER BY finished_at DESC, batch_id LIMIT ?",
            [limit],
        )
    )
    for r in rows:
        r["finished_at"] = str(r["finished_at"])
    return rows


def snapshot_list(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    return snapshots.list_snapshots(con)


# -- one snapshot -----------------------------------------------------------------------------
def catalog(con: duckdb.DuckDBPyConnection, snapshot_id: str) -> dict[str, Any]:
    """The catalog row without the bulky recipe text, plus the recipe as parsed JSON."""
    row = snapshots.catalog_row(con, snapshot_id)
    try:
        row["recipe"] = json.loads(row.pop("recipe_text") or "null")
    except ValueError:
        row["recipe"] = None
    return row


def funnel(con: duckdb.DuckDBPyConnection, snapshot_id: str) -> list[dict[str, Any]]:
    steps = snapshots.steps_of(con, snapshot_id)
    out = []
    for s in steps:
        out.append(
            {
                "index": s["step_index"],
                "step": s["step_name"],
                "kind": s["step_kind"],
                "filter": s["filter"],
                "in": s["n_in"],
                "out": s["n_out"],
                "dropped": s["n_dropped"],
                "changed": s["n_changed"],
                "would_drop": s["n_would_drop"],
                "exclusive": s["n_exclusive"],
                "seconds": round(float(s["seconds"] or 0.0), 2),
                "cached": bool(s["cached"]),
                "note": s["note"] or "",
            }
        )
    return out


def overlap(con: duckdb.DuckDBPyConnection, snapshot_id: str) -> dict[str, Any]:
    """The drop_overlap matrix for steps that drop anything: names and an n x n grid."""
    rows = report.overlap_matrix(report.stored_overlap(con, snapshot_id))
    names = [str(r["step"]) for r in rows]
    grid = [[int(r.get(b, 0) or 0) for b in names] for r in rows]
    return {"steps": names, "grid": grid}


def _log_bin_edges(k: int) -> tuple[int, int]:
    lo = 0 if k < 0 else math.ceil(10 ** (k / 10))
    hi = math.ceil(10 ** ((k + 1) / 10)) - 1 if k >= 0 else 0
    return lo, max(lo, hi)


def shape(con: duckdb.DuckDBPyConnection, db: str, snapshot_id: str) -> dict[str, Any]:
    """Length (characters, log-spaced bins) and turn-count histograms of a snapshot's rows,
    from one pass over snapshot_rows; memoised because snapshots never change."""

    def compute() -> dict[str, Any]:
        rows = con.execute(
            """WITH r AS (
                 SELECT len(messages) AS t,
                        list_sum(list_transform(messages, m -> length(m.content))) AS c
                 FROM snapshot_rows WHERE snapshot_id = ?)
               SELECT least(coalesce(t, 0), ?) AS t,
                      CASE WHEN coalesce(c, 0) < 1 THEN -1
                           ELSE floor(log10(c) * 10)::INTEGER END AS k,
                      count(*) AS n
               FROM r GROUP BY ALL""",
            [snapshot_id, MAX_TURN_BUCKET],
        ).fetchall()
        turns: dict[int, int] = {}
        chars: dict[int, int] = {}
        for t, k, n in rows:
            turns[int(t)] = turns.get(int(t), 0) + int(n)
            chars[int(k)] = chars.get(int(k), 0) + int(n)
        char_bins = []
        if chars:
            for k in range(min(chars), max(chars) + 1):
                lo, hi = _log_bin_edges(k)
                char_bins.append({"lo": lo, "hi": hi, "n": chars.get(k, 0)})
        turn_bins = [
            {"turns": f"{t}+" if t == MAX_TURN_BUCKET else str(t), "n": n}
            for t, n in sorted(turns.items())
        ]
        return {"chars": char_bins, "turns": turn_bins}

    result: dict[str, Any] = memoised(db, snapshot_id, "shape", compute)
    return result


def pair_scores(con: duckdb.DuckDBPyConnection, db: str, snapshot_id: str) -> list[dict[str, Any]]:
    """score_chosen / score_rejected counts (rounded to 0.5) for preference snapshots."""

    def compute() -> list[dict[str, Any]]:
        return _dicts(
            con.execute(
                """SELECT round(s * 2) / 2 AS score, count(*) FILTER (WHERE w = 'chosen') AS chosen,
                          count(*) FILTER (WHERE w = 'rejected') AS rejected
                   FROM (SELECT score_chosen AS s, 'chosen' AS w FROM snapshot_rows
                         WHERE snapshot_id = $s AND score_chosen IS NOT NULL
                         UNION ALL
                         SELECT score_rejected, 'rejected' FROM snapshot_rows
                         WHERE snapshot_id = $s AND score_rejected IS NOT NULL)
                   GROUP BY 1 ORDER BY 1""",
                {"s": snapshot_id},
            )
        )

    result: list[dict[str, Any]] = memoised(db, snapshot_id, "pair_scores", compute)
    return result


def drop_scores(con: duckdb.DuckDBPyConnection, snapshot_id: str) -> list[dict[str, Any]]:
    """Per step with scores in the ledger: SCORE_BINS equal-width bins between min and max."""
    rows = con.execute(
        """WITH d AS (SELECT step_index, step_name, score FROM drop_ledger
                      WHERE snapshot_id = ? AND score IS NOT NULL AND isfinite(score)),
                r AS (SELECT step_index, min(score) AS lo, max(score) AS hi FROM d GROUP BY 1)
           SELECT d.step_index, any_value(d.step_name), r.lo, r.hi,
                  CASE WHEN r.hi = r.lo THEN 0
                       ELSE least(floor((d.score - r.lo) / (r.hi - r.lo) * ?)::INTEGER, ? - 1)
                  END AS b,
                  count(*)
           FROM d JOIN r USING (step_index) GROUP BY d.step_index, r.lo, r.hi, b
           ORDER BY d.step_index, b""",
        [snapshot_id, SCORE_BINS, SCORE_BINS],
    ).fetchall()
    steps: dict[int, dict[str, Any]] = {}
    for idx, name, lo, hi, b, n in rows:
        s = steps.setdefault(
            int(idx), {"index": int(idx), "step": str(name), "lo": lo, "hi": hi, "bins": []}
        )
        width = (hi - lo) / SCORE_BINS if hi != lo else 0.0
        s["bins"].append({"x": round(lo + (int(b) + 0.5) * width, 4), "n": int(n)})
    return list(steps.values())


def sources(
    con: duckdb.DuckDBPyConnection, db: str, snapshot_id: str, kind: str
) -> list[dict[str, Any]]:
    """Where the rows came from: the UltraFeedback source subset for preference rows, the
    ingest batch (joined on dialogue_id) for dialogue rows."""

    def compute() -> list[dict[str, Any]]:
        if kind == "preferences":
            sql = """SELECT coalesce(source, '(unknown)') AS source, count(*) AS n
                     FROM snapshot_rows WHERE snapshot_id = ? GROUP BY 1 ORDER BY n DESC"""
        else:
            sql = """SELECT coalesce(d.source_format || ' · ' || d.batch_id, '(not a dialogue)')
                       AS source, count(*) AS n
                     FROM snapshot_rows r LEFT JOIN dialogues d ON d.dialogue_id = r.row_id
                     WHERE r.snapshot_id = ? GROUP BY 1 ORDER BY n DESC"""
        return _dicts(con.execute(sql, [snapshot_id]))

    result: list[dict[str, Any]] = memoised(db, snapshot_id, "sources", compute)
    return result


def split_counts(con: duckdb.DuckDBPyConnection, snapshot_id: str) -> dict[str, int]:
    row = con.execute("SELECT splits FROM snapshots WHERE snapshot_id = ?", [snapshot_id])
    got = row.fetchone()
    return {str(k): int(v) for k, v in json.loads((got[0] if got else None) or "{}").items()}


# -- drops, clusters, rows (keyset pages) ---------------------------------------------------
def step_index(con: duckdb.DuckDBPyConnection, snapshot_id: str, step: str) -> int | None:
    """A step by name (or by its index given as digits)."""
    got = con.execute(
        "SELECT step_index FROM snapshot_steps WHERE snapshot_id = ? "
        "AND (step_name = ? OR step_index::VARCHAR = ?)",
        [snapshot_id, step, step],
    ).fetchone()
    return int(got[0]) if got else None


def drops_page(
    con: duckdb.DuckDBPyConnection, snapshot_id: str, step_idx: int, after: str, size: int
) -> tuple[list[dict[str, Any]], str | None]:
    """Rows one step dropped, ordered by row_id, starting after `after`; the next cursor."""
    rows = _dicts(
        con.execute(
            "SELECT row_id, reason, score, turn_index, matched, representative, similarity "
            "FROM drop_ledger WHERE snapshot_id = ? AND step_index = ? AND row_id > ? "
            "ORDER BY row_id LIMIT ?",
            [snapshot_id, step_idx, after, size + 1],
        )
    )
    nxt = rows[size - 1]["row_id"] if len(rows) > size else None
    rows = rows[:size]
    previews = row_previews(con, [r["row_id"] for r in rows])
    for r in rows:
        r["preview"] = previews.get(r["row_id"], "")
    return rows, nxt


def row_previews(
    con: duckdb.DuckDBPyConnection, ids: list[str], chars: int = 160
) -> dict[str, str]:
    """First user turn (or prompt) of a few rows, from whichever source table holds them.

    Dialogues go in two steps: find the rowids by id (scans one column), then fetch each row
    by rowid. A plain `IN` filter made DuckDB read the text column of all 1.47M rows."""
    if not ids:
        return {}
    out: dict[str, str] = {}
    rowids = [
        int(r[0])
        for r in con.execute(
            "SELECT rowid FROM dialogues WHERE dialogue_id IN (SELECT unnest(?::VARCHAR[]))",
            [ids],
        ).fetchall()
    ]
    if rowids:
        sql = " UNION ALL ".join(
            f"SELECT dialogue_id, left(first_user_turn, {int(chars)}) FROM dialogues "
            f"WHERE rowid = {r}"
            for r in rowids
        )
        out.update({str(i): str(t or "") for i, t in con.execute(sql).fetchall()})
    for sql in (
        "SELECT prompt_uid, left(prompt, ?) FROM uf_prompts "
        "WHERE prompt_uid IN (SELECT unnest(?::VARCHAR[]))",
        "SELECT pair_id, left(prompt, ?) FROM preference_pairs "
        "WHERE pair_id IN (SELECT unnest(?::VARCHAR[]))",
    ):
        missing = [i for i in ids if i not in out]
        if not missing:
            break
        for rid, text in con.execute(sql, [chars, missing]).fetchall():
            out[str(rid)] = str(text or "")
    return out


def clusters_page(
    con: duckdb.DuckDBPyConnection, snapshot_id: str, step_idx: int, after: str, size: int
) -> tuple[list[dict[str, Any]], str | None]:
    """Dedup clusters of one step: the kept representative and the members it replaced."""
    rows = _dicts(
        con.execute(
            """SELECT representative, min(cluster_id) AS cluster_id, count(*) AS n_members,
                      list({'row_id': row_id, 'similarity': similarity}
                           ORDER BY similarity DESC NULLS LAST, row_id) AS members
               FROM drop_ledger
               WHERE snapshot_id = ? AND step_index = ? AND representative IS NOT NULL
                 AND representative > ?
               GROUP BY representative ORDER BY representative LIMIT ?""",
            [snapshot_id, step_idx, after, size + 1],
        )
    )
    nxt = rows[size - 1]["representative"] if len(rows) > size else None
    rows = rows[:size]
    ids = [r["representative"] for r in rows] + [m["row_id"] for r in rows for m in r["members"]]
    previews = row_previews(con, ids, chars=120)
    for r in rows:
        r["preview"] = previews.get(r["representative"], "")
        for m in r["members"]:
            m["preview"] = previews.get(m["row_id"], "")
    return rows, nxt


def snapshot_rows_page(
    con: duckdb.DuckDBPyConnection, snapshot_id: str, split: str, after: int, size: int
) -> tuple[list[dict[str, Any]], int | None]:
    """A page of one split in snapshot order (keyset on ordinal)."""
    rows = _dicts(
        con.execute(
            "SELECT ordinal, row_id, left(prompt, 160) AS prompt, score_chosen, score_rejected, "
            "source FROM snapshot_rows WHERE snapshot_id = ? AND split = ? AND ordinal > ? "
            "ORDER BY ordinal LIMIT ?",
            [snapshot_id, split, after, size + 1],
        )
    )
    nxt = int(rows[size - 1]["ordinal"]) if len(rows) > size else None
    return rows[:size], nxt


# -- the conversation viewer ----------------------------------------------------------------
def _turns(messages: Any) -> list[dict[str, str]]:
    return [
        {"role": str(m.get("role") or ""), "content": str(m.get("content") or "")}
        for m in messages or []
    ]


def snapshot_versions(
    con: duckdb.DuckDBPyConnection, snapshot_id: str, row_id: str
) -> list[dict[str, Any]]:
    """The row as a snapshot stores it (one entry per split it is in)."""
    rows = _dicts(
        con.execute(
            "SELECT split, ordinal, prompt, messages, chosen, rejected, score_chosen, "
            "score_rejected, chosen_model, rejected_model, source FROM snapshot_rows "
            "WHERE snapshot_id = ? AND row_id = ? ORDER BY split",
            [snapshot_id, row_id],
        )
    )
    for r in rows:
        for k in ("messages", "chosen", "rejected"):
            r[k] = _turns(r[k]) if r[k] is not None else None
    return rows


def ledger_entries(
    con: duckdb.DuckDBPyConnection, row_id: str, snapshot_id: str | None
) -> list[dict[str, Any]]:
    """Why snapshots dropped this row (all snapshots, or one)."""
    sql = (
        "SELECT snapshot_id, step_name, reason, score, matched, representative "
        "FROM drop_ledger WHERE row_id = ?"
    )
    params: list[Any] = [row_id]
    if snapshot_id:
        sql += " AND snapshot_id = ?"
        params.append(snapshot_id)
    return _dicts(con.execute(sql + " ORDER BY snapshot_id, step_index LIMIT 50", params))


def source_row(con: duckdb.DuckDBPyConnection, row_id: str) -> dict[str, Any] | None:
    """The row as ingested: a dialogue, a preference pair, or a raw UltraFeedback prompt
    with its completions."""
    got = _dicts(
        con.execute(
            "SELECT dialogue_id AS row_id, source_format, split, messages, n_turns, n_chars, "
            "batch_id, source_file, source_line FROM dialogues WHERE dialogue_id = ?",
            [row_id],
        )
    )
    if got:
        d = got[0]
        d["table"] = "dialogues"
        d["messages"] = _turns(d["messages"])
        return d
    got = _dicts(
        con.execute(
            "SELECT pair_id AS row_id, source_format, source, split, prompt, chosen, rejected, "
            "score_chosen, score_rejected, chosen_model, rejected_model, batch_id, source_file, "
            "source_line FROM preference_pairs WHERE pair_id = ?",
            [row_id],
        )
    )
    if got:
        d = got[0]
        d["table"] = "preference_pairs"
        d["chosen"] = _turns(d["chosen"])
        d["rejected"] = _turns(d["rejected"])
        return d
    got = _dicts(
        con.execute(
            "SELECT prompt_uid AS row_id, source, prompt, batch_id, source_file, source_line "
            "FROM uf_prompts WHERE prompt_uid = ?",
            [row_id],
        )
    )
    if got:
        d = got[0]
        d["table"] = "uf_prompts"
        d["completions"] = _dicts(
            con.execute(
                "SELECT completion_index, model, overall_score, fine_grained_score, response "
                "FROM uf_completions WHERE prompt_uid = ? ORDER BY completion_index",
                [row_id],
            )
        )
        return d
    return None


# -- training runs ----------------------------------------------------------------------------
def training_runs(con: duckdb.DuckDBPyConnection, limit: int = 200) -> list[dict[str, Any]]:
    have = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'training_runs'"
    ).fetchone()
    if not (have and have[0]):
        return []
    rows = _dicts(
        con.execute(
            """SELECT r.run_id, r.snapshot_id, r.trainer, r.train_split, r.eval_split, r.model,
                      r.status, r.started_at, r.ended_at, r.metrics, r.output_dir, r.error,
                      s.recipe_name
               FROM training_runs r LEFT JOIN snapshots s USING (snapshot_id)
               ORDER BY r.started_at DESC, r.run_id DESC LIMIT ?""",
            [limit],
        )
    )
    for r in rows:
        r["started_at"] = None if r["started_at"] is None else str(r["started_at"])
        r["ended_at"] = None if r["ended_at"] is None else str(r["ended_at"])
        with contextlib.suppress(ValueError):
            r["metrics"] = json.loads(r["metrics"]) if r["metrics"] else None
    return rows
