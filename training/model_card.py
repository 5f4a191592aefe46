"""The model card (README.md) and the run marker written into a run's output folder.

The card names the snapshot, so a model folder copied anywhere still says what data it learned
from. The marker (curate_run.json) is machine-readable: a later run on the same folder checks
it before resuming, so a checkpoint is never continued on a different snapshot or trainer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MARKER = "curate_run.json"


@dataclass(frozen=True)
class CardFacts:
    """What the card states."""

    run_id: str
    trainer: str
    snapshot_id: str
    recipe_name: str
    content_hash: str
    train_split: str
    eval_split: str | None
    base_model: str
    warehouse: str
    code_version: str
    config_source: str
    metrics: dict[str, Any]
    resumed_from: str | None = None


def _yaml_str(text: str) -> str:
    return json.dumps(text)


def render_card(f: CardFacts) -> str:
    metric_lines = "\n".join(
        f"| {k} | {v:.6g} |" if isinstance(v, float) else f"| {k} | {v} |"
        for k, v in sorted(f.metrics.items())
    )
    lines = [
        "---",
        f"base_model: {_yaml_str(f.base_model)}",
        "library_name: transformers",
        f"tags: [curate, trl, {f.trainer}]",
        f"curate_snapshot_id: {f.snapshot_id}",
        f"curate_run_id: {f.run_id}",
        "---",
        "",
        f"# {f.trainer.upper()} model trained on snapshot {f.snapshot_id}",
        "",
        f"- **Snapshot**: `{f.snapshot_id}` (recipe `{f.recipe_name}`, content hash "
        f"`{f.content_hash[:16]}`), split `{f.train_split}`"
        + (f", evaluated on `{f.eval_split}`" if f.eval_split else ", no evaluation split"),
        f"- **Run**: `{f.run_id}` in warehouse `{f.warehouse}`"
        + (f" (resumed from `{f.resumed_from}`)" if f.resumed_from else ""),
        f"- **Base model**: `{f.base_model}`",
        f"- **Trainer**: TRL {f.trainer.upper()}, config `{f.config_source}`",
        f"- **Code version**: `{f.code_version}`",
        "",
        "Find the run: `curate runs --snapshot " + f.snapshot_id + "`, or in SQL:",
        "",
        "```sql",
        f"SELECT * FROM training_runs WHERE run_id = '{f.run_id}'",
        "```",
        "",
        "## Final metrics",
        "",
        "| metric | value |",
        "|---|---|",
        metric_lines or "| (none) | |",
        "",
    ]
    return "\n".join(lines)


def write_card(output_dir: Path, facts: CardFacts) -> Path:
    path = output_dir / "README.md"
    path.write_text(render_card(facts), encoding="utf-8")
    return path


def write_marker(output_dir: Path, data: dict[str, Any]) -> Path:
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / MARKER
    path.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
    return path


def read_marker(output_dir: Path) -> dict[str, Any] | None:
    path = output_dir / MARKER
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
