"""Slice-query benchmark on the warehouse the ingest benchmark built.

    python -m bench.query_bench --dialogues 1470000 [--threads 2]

Reuses bench/out/bench.duckdb when it holds `--dialogues` dialogues (else builds it with our
ingest). Each query runs once to warm up, then 5 times; the median and min wall time are
reported. Several formulations of each slice are timed: the naive one (through the views a
user would reach for first) and faster ones, which must return the same answer unless the
table says otherwise. Writes bench/results/queries.md.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from bench.common import (
    DEFAULT_DIALOGUES,
    Timings,
    fmt_int,
    log,
    machine_info,
    machine_line,
    md_table,
    met,
    time_repeated,
    write_result,
)
from bench.ingest_bench import BENCH_DB, ensure_warehouse

GOAL_S = 1.0
DEFAULT_PHRASE = "as an ai language model"
DEFAULT_WORD = "history"


@dataclass(frozen=True)
class Query:
    name: str
    sql: str
    note: str = ""
    same_answer: bool = True  # must agree with the group's naive query


@dataclass
class Group:
    title: str
    queries: list[Query]


@dataclass
class Outcome:
    query: Query
    timings: Timings
    answer: str
    agrees: bool = True


def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _re_escape(s: str) -> str:
    """Escape RE2 metacharacters (not spaces: RE2 rejects `\\ `)."""
    return "".join("\\" + c if c in r".^$*+?()[]{}|\\" else c for c in s)


def groups(phrase: str, word: str) -> list[Group]:
    p = phrase.lower()
    like = _lit(f"%{p}%")
    lit = _lit(p)
    w_like = _lit(f"%{word.lower()}%")
    w_re = _lit(rf"\b{_re_escape(word.lower())}\b")
    return [
        Group(
            f"Assistant turns containing {phrase!r}",
            [
                Query(
                    "naive: assistant_turns + ILIKE",
                    f"SELECT count(*) FROM assistant_turns WHERE content ILIKE {like}",
                ),
                Query(
                    "assistant_turns + contains(lower())",
                    f"SELECT count(*) FROM assistant_turns WHERE contains(lower(content), {lit})",
                ),
                Query(
                    "assistant_turns + regexp_matches(, 'i')",
                    f"SELECT count(*) FROM assistant_turns "
                    f"WHERE regexp_matches(content, {_lit(_re_escape(p))}, 'i')",
                ),
                Query(
                    "unnest(messages) + ILIKE",
                    "SELECT count(*) FROM (SELECT unnest(messages) AS m FROM dialogues) "
                    f"WHERE m.role = 'assistant' AND m.content ILIKE {like}",
                ),
                Query(
                    "unnest(messages) + contains(lower())",
                    "SELECT count(*) FROM (SELECT unnest(messages) AS m FROM dialogues) "
                    f"WHERE m.role = 'assistant' AND contains(lower(m.content), {lit})",
                ),
                Query(
                    "turns-view rewrite (generate_subscripts) + contains(lower())",
                    "SELECT count(*) FROM (SELECT dialogue_id, "
                    "generate_subscripts(messages, 1) - 1 AS turn_index, unnest(messages) AS m "
                    "FROM dialogues) "
                    f"WHERE m.role = 'assistant' AND contains(lower(m.content), {lit})",
                    "what `assistant_turns` would cost if `turns` were defined with "
                    "unnest + generate_subscripts instead of a LATERAL generate_series",
                ),
                Query(
                    "dialogues + list_filter + ILIKE",
                    "SELECT sum(len(list_filter(messages, m -> m.role = 'assistant' "
                    f"AND m.content ILIKE {like}))) FROM dialogues",
                ),
                Query(
                    "dialogues + list_filter + contains(lower())",
                    "SELECT sum(len(list_filter(messages, m -> m.role = 'assistant' "
                    f"AND contains(lower(m.content), {lit})))) FROM dialogues",
                ),
            ],
        ),
        Group(
            f"Dialogues with 6+ turns whose first user turn mentions {word!r}",
            [
                Query(
                    "naive: first_user_turns + ILIKE",
                    f"SELECT count(*) FROM first_user_turns WHERE n_turns >= 6 "
                    f"AND content ILIKE {w_like}",
                ),
                Query(
                    "first_user_turns + contains(lower())",
                    f"SELECT count(*) FROM first_user_turns WHERE n_turns >= 6 "
                    f"AND contains(lower(content), {_lit(word.lower())})",
                ),
                Query(
                    "dialogues.prompt + ILIKE",
                    f"SELECT count(*) FROM dialogues WHERE n_turns >= 6 AND prompt ILIKE {w_like}",
                    "`prompt` is the first user turn for UltraChat rows (raw: data[1])",
                ),
                Query(
                    "dialogues.prompt + contains(lower())",
                    f"SELECT count(*) FROM dialogues WHERE n_turns >= 6 "
                    f"AND contains(lower(prompt), {_lit(word.lower())})",
                    "`prompt` is the first user turn for UltraChat rows (raw: data[1])",
                ),
                Query(
                    "whole word: first_user_turns + regexp_matches(\\b..\\b, 'i')",
                    f"SELECT count(*) FROM first_user_turns WHERE n_turns >= 6 "
                    f"AND regexp_matches(content, {w_re}, 'i')",
                    "whole-word match: a different (stricter) answer",
                    same_answer=False,
                ),
            ],
        ),
        Group(
            "Length percentiles (p50, p90, p99 of dialogue characters) per turn count",
            [
                Query(
                    "naive: quantile_cont over dialogues",
                    "SELECT n_turns, quantile_cont(n_chars, [0.5, 0.9, 0.99]) AS q, count(*) AS n "
                    "FROM dialogues GROUP BY n_turns ORDER BY n_turns",
                ),
                Query(
                    "approx_quantile over dialogues",
                    "SELECT n_turns, approx_quantile(n_chars, [0.5, 0.9, 0.99]) AS q, count(*) AS n "
                    "FROM dialogues GROUP BY n_turns ORDER BY n_turns",
                    "approximate (t-digest): a slightly different answer",
                    same_answer=False,
                ),
                Query(
                    "per-turn lengths: quantile_cont over turns",
                    "SELECT n_turns, quantile_cont(n_chars, [0.5, 0.9, 0.99]) AS q, count(*) AS n "
                    "FROM turns GROUP BY n_turns ORDER BY n_turns",
                    "another question (length of each message, not of the dialogue)",
                    same_answer=False,
                ),
            ],
        ),
    ]


def _short(rows: list[tuple[object, ...]]) -> str:
    if len(rows) == 1 and len(rows[0]) == 1:
        v = rows[0][0]
        return fmt_int(v) if isinstance(v, int | float) else str(v)
    return f"{len(rows)} rows"


def run_groups(
    db: Path, threads: int, phrase: str, word: str, repeats: int
) -> list[tuple[str, list[Outcome]]]:
    from warehouse import Warehouse

    out: list[tuple[str, list[Outcome]]] = []
    with Warehouse(db).read(config={"threads": threads}) as con:
        for g in groups(phrase, word):
            log(f"group: {g.title}")
            results: list[Outcome] = []
            baseline: list[tuple[object, ...]] | None = None
            for q in g.queries:
                answer: list[list[tuple[object, ...]]] = []

                def once(sql: str = q.sql, sink: list[list[tuple[object, ...]]] = answer) -> None:
                    sink.append(con.execute(sql).fetchall())

                t = time_repeated(once, repeats=repeats, warmup=1)
                rows = answer[-1]
                if baseline is None:
                    baseline = rows
                agrees = rows == baseline
                if q.same_answer and not agrees:
                    log(f"  WARNING: {q.name} disagrees with the naive query")
                results.append(Outcome(q, t, _short(rows), agrees))
                log(f"  {q.name}: median {t.median:.3f}s, min {t.min:.3f}s -> {_short(rows)}")
            out.append((g.title, results))
    return out


# -- what-if: layouts that need a schema or ingest change -------------------------------------

WHATIF_LAYOUTS = {
    "fsst": "flat tables, FSST on",
    "nofsst": "flat tables, FSST off",
}
WHATIF_NOTE = (
    "Each layout holds `turns_flat` (one row per message: dialogue_id, turn_index, role, "
    "content, n_chars, n_turns; a table, not the unnest view) and a copy of `dialogues`. "
    '"FSST on" is DuckDB\'s default compression; "FSST off" was written with '
    "`SET disabled_compression_methods = 'fsst'` (strings stored with dictionary/uncompressed "
    "encodings: larger file, no FSST decoding in scans)."
)


def whatif_path(layout: str) -> Path:
    return BENCH_DB.with_name(f"whatif-{layout}.duckdb")


def build_whatif(src: Path, layout: str, n_dialogues: int) -> Path:
    """A copy of the benchmark data in another layout (not a warehouse: plain DuckDB)."""
    import duckdb

    dest = whatif_path(layout)
    if dest.exists():
        try:
            with duckdb.connect(str(dest), read_only=True) as con:
                row = con.execute("SELECT count(*) FROM dialogues").fetchone()
            if row and int(row[0]) == n_dialogues:
                log(f"reusing {dest}")
                return dest
        except duckdb.Error:
            pass
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.unlink(missing_ok=True)
    log(f"building {dest.name}: {WHATIF_LAYOUTS[layout]} ...")
    with duckdb.connect(str(tmp)) as con:
        if layout == "nofsst":
            con.execute("SET disabled_compression_methods = 'fsst'")
        con.execute(f"ATTACH '{src}' AS w (READ_ONLY)")
        con.execute(
            "CREATE TABLE turns_flat AS SELECT dialogue_id, turn_index, role, content, n_chars, "
            "n_turns FROM w.turns"
        )
        con.execute(
            "CREATE TABLE dialogues AS SELECT dialogue_id, n_turns, prompt, messages, n_chars "
            "FROM w.dialogues"
        )
    tmp.replace(dest)
    return dest


def whatif_queries(phrase: str) -> list[Query]:
    p = phrase.lower()
    return [
        Query(
            "turns_flat + contains(lower())",
            f"SELECT count(*) FROM turns_flat WHERE role = 'assistant' "
            f"AND contains(lower(content), {_lit(p)})",
        ),
        Query(
            "turns_flat + ILIKE",
            f"SELECT count(*) FROM turns_flat WHERE role = 'assistant' "
            f"AND content ILIKE {_lit(f'%{p}%')}",
        ),
        Query(
            "dialogues unnest(messages) + contains(lower())",
            "SELECT count(*) FROM (SELECT unnest(messages) AS m FROM dialogues) "
            f"WHERE m.role = 'assistant' AND contains(lower(m.content), {_lit(p)})",
        ),
    ]


def run_whatif(
    src: Path, n_dialogues: int, threads: int, phrase: str, repeats: int, expected: str
) -> list[tuple[str, str, list[Outcome]]]:
    import duckdb

    out = []
    for layout, desc in WHATIF_LAYOUTS.items():
        path = build_whatif(src, layout, n_dialogues)
        size = f"{path.stat().st_size / (1 << 20):,.0f} MiB"
        log(f"what-if {layout}: {desc}")
        results = []
        with duckdb.connect(str(path), read_only=True, config={"threads": threads}) as con:
            for q in whatif_queries(phrase):
                answer: list[list[tuple[object, ...]]] = []

                def once(sql: str = q.sql, sink: list[list[tuple[object, ...]]] = answer) -> None:
                    sink.append(con.execute(sql).fetchall())

                t = time_repeated(once, repeats=repeats, warmup=1)
                short = _short(answer[-1])
                results.append(Outcome(q, t, short, short == expected))
                log(f"  {q.name}: median {t.median:.3f}s, min {t.min:.3f}s -> {short}")
        out.append((desc, size, results))
    return out


def render_whatif(whatif: list[tuple[str, str, list[Outcome]]]) -> list[str]:
    lines = [
        "## What-if: the phrase search on other layouts (needs a schema / ingest change)",
        "",
        "Not the current schema: copies of the same data in `bench/out/whatif-*.duckdb`, to size "
        "what a schema or ingest change would buy. " + WHATIF_NOTE,
        "",
    ]
    rows = []
    for desc, size, results in whatif:
        for o in results:
            rows.append(
                [
                    desc,
                    size,
                    o.query.name,
                    f"{o.timings.median:.3f}",
                    f"{o.timings.min:.3f}",
                    met(o.timings.median < GOAL_S),
                    o.answer,
                    "yes" if o.agrees else "NO",
                ]
            )
    lines += [
        md_table(
            [
                "layout",
                "file",
                "formulation",
                "median s",
                "min s",
                f"< {GOAL_S:g} s",
                "answer",
                "same answer",
            ],
            rows,
            "lrlrrlrl",
        ),
        "",
    ]
    return lines


def render(
    outcomes: list[tuple[str, list[Outcome]]],
    n_dialogues: int,
    n_turns: int,
    threads: int,
    repeats: int,
    info: dict[str, str],
    whatif: list[tuple[str, str, list[Outcome]]] | None = None,
) -> str:
    lines = [
        "# Slice-query benchmark",
        "",
        f"Warehouse: {n_dialogues:,} synthetic raw UltraChat dialogues ({n_turns:,} turns) "
        "built by `bench.ingest_bench`; DuckDB read-only connection with "
        f"`threads={threads}`. Each query: 1 warm-up, then {repeats} timed runs "
        "(`fetchall`); seconds are wall time.",
        "",
        machine_line(info),
        "",
        f"Goal: every slice < {GOAL_S:g} s on 2 cores.",
        "",
    ]
    for title, g in outcomes:
        naive = g[0]
        best = min((o for o in g if o.query.same_answer), key=lambda o: o.timings.median)
        lines += [
            f"## {title}",
            "",
            f"Naive: {naive.timings.median:.3f} s median ({met(naive.timings.median < GOAL_S)}); "
            f"best equivalent formulation: **{best.query.name}**, {best.timings.median:.3f} s "
            f"median ({met(best.timings.median < GOAL_S)}).",
            "",
        ]
        rows = []
        for o in g:
            same = "yes" if o.agrees else ("no (expected)" if not o.query.same_answer else "NO")
            rows.append(
                [
                    o.query.name,
                    f"{o.timings.median:.3f}",
                    f"{o.timings.min:.3f}",
                    met(o.timings.median < GOAL_S),
                    o.answer,
                    same,
                ]
            )
        lines += [
            md_table(
                ["formulation", "median s", "min s", f"< {GOAL_S:g} s", "answer", "same answer"],
                rows,
                "lrrlrl",
            ),
            "",
        ]
        for o in g:
            note = f" — {o.query.note}" if o.query.note else ""
            lines += [f"- {o.query.name}{note}:", "", "  ```sql", f"  {o.query.sql}", "  ```", ""]
    if whatif:
        lines += render_whatif(whatif)
    lines.append(f"Reproduce: `python -m bench.query_bench --dialogues {n_dialogues}`.")
    return "\n".join(lines)


def run(
    n_dialogues: int,
    threads: int = 2,
    phrase: str = DEFAULT_PHRASE,
    word: str = DEFAULT_WORD,
    repeats: int = 5,
    db: Path = BENCH_DB,
    what_if: bool = True,
) -> Path:
    info = machine_info()
    ensure_warehouse(n_dialogues, db)
    outcomes = run_groups(db, threads, phrase, word, repeats)
    whatif = None
    if what_if:
        expected = outcomes[0][1][0].answer
        whatif = run_whatif(db, n_dialogues, threads, phrase, repeats, expected)
    from warehouse import Warehouse

    with Warehouse(db).read() as con:
        row = con.execute("SELECT sum(n_turns) FROM dialogues").fetchone()
    n_turns = int(row[0]) if row and row[0] is not None else 0
    return write_result(
        "queries.md", render(outcomes, n_dialogues, n_turns, threads, repeats, info, whatif)
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dialogues", type=int, default=DEFAULT_DIALOGUES)
    ap.add_argument("--threads", type=int, default=2, help="DuckDB threads (goal: 2 cores)")
    ap.add_argument("--phrase", default=DEFAULT_PHRASE, help="phrase searched in assistant turns")
    ap.add_argument("--word", default=DEFAULT_WORD, help="word searched in first user turns")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument(
        "--no-what-if",
        action="store_true",
        help="skip timing the phrase search on other layouts (copies in bench/out/)",
    )
    a = ap.parse_args(argv)
    run(a.dialogues, a.threads, a.phrase, a.word, a.repeats, what_if=not a.no_what_if)


if __name__ == "__main__":
    main()
