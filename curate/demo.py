"""`make demo`: ingest the bundled real records into the embedded warehouse and query them.

Runs the same CLI commands a user would type, so what it shows is what `curate` does.
Idempotent: a second run finds every file already ingested and says so.
"""

from __future__ import annotations

import sys
from pathlib import Path

from curate.cli import main as curate

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data" / "samples"
DEMO = ROOT / "data" / "demo"

SLICES: list[tuple[str, str]] = [
    (
        "Assistant turns with a persona phrase (what the ultrachat_200k filter removes)",
        """SELECT dialogue_id, turn_index, left(content, 90) AS excerpt
FROM assistant_turns
WHERE regexp_matches(content, '(?i)as an ai|i (do not|don''t) have (personal|emotions|feelings|opinions)')
LIMIT 5""",
    ),
    (
        "Dialogues with 6+ turns whose first user turn mentions 'story'",
        """SELECT f.dialogue_id, f.n_turns, left(f.content, 80) AS first_user_turn
FROM first_user_turns f
WHERE f.n_turns >= 6 AND f.content ILIKE '%story%'
LIMIT 5""",
    ),
    (
        "Turn-length percentiles per dialogue length",
        """SELECT n_turns, count(DISTINCT dialogue_id) AS dialogues,
       quantile_cont(n_chars, 0.5)::INT AS p50_chars, quantile_cont(n_chars, 0.9)::INT AS p90_chars
FROM turns GROUP BY n_turns ORDER BY n_turns""",
    ),
    (
        "UltraFeedback completions: mean scores per model (overall vs mean of aspect ratings)",
        """SELECT model, count(*) AS completions, round(avg(overall_score), 2) AS overall,
       round(avg(mean_aspect_rating), 2) AS aspects, sum(n_na_ratings) AS na_ratings
FROM completions_rated GROUP BY model ORDER BY overall DESC""",
    ),
    (
        "Preference pairs already binarized: ties per source format",
        """SELECT source_format, count(*) AS pairs, sum(is_tie::INT) AS ties,
       round(avg(score_chosen - score_rejected), 2) AS mean_margin
FROM preference_pairs GROUP BY source_format ORDER BY pairs DESC""",
    ),
    (
        "Why records were quarantined",
        """SELECT source_line, reason, left(raw_text, 60) AS raw
FROM quarantine ORDER BY source_file, source_line""",
    ),
]


def _step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def run() -> int:
    _step("Ingest the bundled real records (every public format) and a file with defects")
    code = curate(["ingest", str(SAMPLES), str(DEMO), "--no-progress"])
    if code:
        return code
    _step("What the warehouse holds")
    if code := curate(["status"]):
        return code
    for title, sql in SLICES:
        _step(title)
        print(sql, flush=True)
        if code := curate(["sql", sql]):
            return code
    _step("User SQL is sandboxed: reading a file is refused (exit code 3)")
    refused = curate(["sql", "SELECT * FROM read_csv('/etc/passwd')"])
    print(f"exit code {refused}", flush=True)
    print('\nNext: curate sql "SELECT * FROM turns LIMIT 10"  |  curate schema  |  curate --help')
    return 0 if refused == 3 else 1


if __name__ == "__main__":
    sys.exit(run())
