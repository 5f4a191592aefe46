"""The end of `make demo`: a short SFT then DPO with SmolLM2-135M-Instruct on curated snapshots.

It is the Zephyr recipe in miniature: supervised fine-tuning on the SFT snapshot, then DPO on
the preference snapshot starting from the SFT model (which is also the DPO reference). A few
steps each keep it to minutes on a CPU; the point is the lineage (snapshot -> run -> model
folder), not the model.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from training.runner import TrainRequest, TrainResult, run_training

DEMO_STEPS = 2
_COMMON = [
    f"max_steps={DEMO_STEPS}",
    f"save_steps={DEMO_STEPS}",
    "max_length=256",
    "per_device_train_batch_size=2",
    "max_train_samples=16",
    "max_eval_samples=2",
    "warmup_steps=0",
]


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_demo(
    warehouse_path: str | Path,
    sft_snapshot: str,
    dpo_snapshot: str,
    out_dir: str | Path,
    log: Callable[[str], None] = _log,
) -> dict[str, Any]:
    """Train SFT then DPO (a few steps each); returns the model folders and run records."""
    out = Path(out_dir)
    sft = run_training(
        TrainRequest(
            "sft",
            sft_snapshot,
            warehouse_path,
            overrides=list(_COMMON),
            output_dir=out / "smollm2-sft",
            fresh=True,
        ),
        log=log,
    )
    dpo = run_training(
        TrainRequest(
            "dpo",
            dpo_snapshot,
            warehouse_path,
            overrides=[*_COMMON, f"model_name_or_path={sft.output_dir}"],
            output_dir=out / "smollm2-dpo",
            fresh=True,
        ),
        log=log,
    )
    return {
        "warehouse": str(Path(warehouse_path).resolve()),
        "sft": _describe(sft),
        "dpo": _describe(dpo),
        "query": "SELECT run_id, trainer, snapshot_id, status, output_dir FROM training_runs "
        f"WHERE run_id IN ('{sft.run_id}', '{dpo.run_id}')",
    }


def _describe(result: TrainResult) -> dict[str, Any]:
    keep = ("global_step", "first_loss", "last_loss", "eval_loss", "train_runtime")
    return {
        "run_id": result.run_id,
        "snapshot_id": result.snapshot_id,
        "status": result.status,
        "model_dir": result.output_dir,
        "model_card": result.model_card,
        "metrics": {k: result.metrics[k] for k in keep if k in result.metrics},
    }
