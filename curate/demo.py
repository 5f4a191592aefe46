"""`make demo`: ingest the bundled real records into the embedded warehouse and query them.

Runs the same CLI commands a user would type, so what it shows is what `curate` does.
Idempotent: a second run finds every file already ingested and says so.
"""

from __future__ import annotations

import os
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
    if refused != 3:
        return 1
    if code := curate_recipes():
        return code
    if os.environ.get("CURATE_DEMO_SKIP_TRAINING") != "1" and (code := train_on_snapshots()):
        return code
    print(
        '\nNext: curate sql "SELECT * FROM drop_ledger LIMIT 10"  |  curate show zephyr-sft-demo'
        "  |  curate --help"
    )
    return 0


DEMO_OUT = Path(os.environ.get("CURATE_DEMO_OUT", "demo-out"))
EXPORT_DIR = DEMO_OUT / "ultrachat_200k-demo"
RUNS_DIR = DEMO_OUT / "models"

RECIPES = [
    ("ultrachat_200k", "zephyr-sft-demo"),
    ("ultrafeedback_binarized", "zephyr-dpo-demo"),
    ("ultrafeedback_binarized_cleaned", "argilla-dpo-demo"),
]


def curate_recipes() -> int:
    """Both recipes on the bundled samples: funnels, snapshot ids, the ledger, a diff."""
    for recipe, tag in RECIPES:
        _step(f"Recipe {recipe}: funnel, drop overlap, sample drops -> snapshot tagged {tag}")
        if code := curate(["run", recipe, "--tag", tag, "--no-progress"]):
            return code
    _step("Snapshots (immutable, content-addressed; same inputs give the same id)")
    if code := curate(["snapshots"]):
        return code
    _step("The drop ledger is SQL: why rows left the SFT snapshot, per step")
    sql = """SELECT l.step_name, count(*) AS dropped, any_value(l.reason) AS example_reason
FROM drop_ledger l JOIN snapshot_tags t USING (snapshot_id)
WHERE t.tag = 'zephyr-sft-demo' GROUP BY l.step_index, l.step_name ORDER BY l.step_index"""
    print(sql, flush=True)
    if code := curate(["sql", sql]):
        return code
    _step("H4 vs Argilla binarization: what changed, and which step caused it")
    if code := curate(["diff", "zephyr-dpo-demo", "argilla-dpo-demo", "--rows", "5"]):
        return code
    _step("Verify: recompute the content hash and id of the SFT snapshot")
    if code := curate(["verify", "zephyr-sft-demo"]):
        return code
    _step("Export the SFT snapshot as a datasets folder in the published ultrachat_200k schema")
    return curate(["export", "zephyr-sft-demo", str(EXPORT_DIR), "--format", "hf", "--overwrite"])


def train_on_snapshots() -> int:
    """The end of the demo: SFT then DPO with SmolLM2-135M-Instruct, a few steps each."""
    from training.demo import run_demo
    from warehouse import default_warehouse_path

    _step("Train: SmolLM2-135M-Instruct, SFT on zephyr-sft-demo then DPO on zephyr-dpo-demo")
    result = run_demo(default_warehouse_path(), "zephyr-sft-demo", "zephyr-dpo-demo", RUNS_DIR)
    for stage in ("sft", "dpo"):
        r = result[stage]
        print(
            f"{stage}: run {r['run_id']} on snapshot {r['snapshot_id']} -> {r['model_dir']} "
            f"({r['status']}; card {r['model_card']}; metrics {r['metrics']})",
            flush=True,
        )
    print(f'run records: curate sql "{result["query"]}"', flush=True)
    return curate(["runs"])


if __name__ == "__main__":
    sys.exit(run())
