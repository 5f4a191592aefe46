"""Training benchmark: SmolLM2-135M-Instruct SFT and DPO steps on CPU, and what data loading costs.

python -m bench.train_bench [--steps 5] [--rows 20000]

Figures:
- step time (median over the steps after the first) and tokens/s for SFT and DPO, taken from
  real `curate train` runs (training.runner.run_training) on snapshots of the bundled real
  ultrachat_200k / ultrafeedback_binarized records;
- the share of step time spent loading data from the snapshot, two ways: (1) the one-off read
  of a split from DuckDB into trainer rows, per row, against the training time per row, on a
  `--rows`-row snapshot; (2) the per-step cost of the trainer's dataloader (collating already
  tokenised rows) against the step time. Goal: under 5%.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from bench.common import OUT_DIR, RESULTS_DIR, log, machine_info, machine_line
from training import model_loading, snapshot_data
from training.chat_template import apply_template
from training.runner import TrainRequest, build_trainer, plan_run, run_training
from training.sample_snapshots import PREFS_SAMPLE, SFT_SAMPLE, commit_sample
from training.step_timer import StepTimer
from warehouse.snapshots import open_snapshot

SETTINGS = ["max_length=512", "per_device_train_batch_size=2", "max_eval_samples=2"]
SETTINGS += ["warmup_steps=0", "save_strategy=no", "eval_strategy=no"]


def _replicated(src: Path, rows: int, dest: Path) -> Path:
    """A `rows`-line file cycling through the sample's real records (ids made unique)."""
    records = [json.loads(line) for line in src.read_text().splitlines() if line.strip()]
    with dest.open("w") as fh:
        for i in range(rows):
            rec = dict(records[i % len(records)])
            rec["prompt_id"] = f"{rec['prompt_id']}-{i}"
            fh.write(json.dumps(rec) + "\n")
    return dest


def _read_cost(wh: Path, ref: str, trainer: str) -> dict[str, float]:
    """Seconds to read the train split from the warehouse and turn it into trainer rows."""
    t0 = time.perf_counter()
    snap = open_snapshot(wh, ref)
    split = "train_sft" if trainer == "sft" else "train_prefs"
    raw = snap.split_dataset(split)
    t1 = time.perf_counter()
    rows = snapshot_data.trainer_rows(raw, trainer, True, split)  # type: ignore[arg-type]
    t2 = time.perf_counter()
    return {"rows": float(len(rows)), "read_s": t1 - t0, "convert_s": t2 - t1, "total_s": t2 - t0}


def _dataloader_cost(wh: Path, ref: str, trainer: str, batches: int) -> dict[str, float]:
    """Per-batch seconds of the trainer's own dataloader (rows already tokenised)."""
    plan = plan_run(
        TrainRequest(trainer, ref, wh, overrides=[*SETTINGS, "max_steps=1"], dry_run=True),  # type: ignore[arg-type]
        log=lambda _m: None,
    )
    tokenizer = model_loading.load_tokenizer(plan.source, plan.recipe.model)
    apply_template(tokenizer, plan.recipe.data.chat_template, plan.source.label)
    model = model_loading.load_model(plan.source, plan.recipe.model)
    t0 = time.perf_counter()
    trainer_obj = build_trainer(plan, model, tokenizer, StepTimer())
    tokenise_s = time.perf_counter() - t0
    loader = trainer_obj.get_train_dataloader()
    times: list[float] = []
    it = iter(loader)
    for _ in range(batches):
        t = time.perf_counter()
        try:
            next(it)
        except StopIteration:
            it = iter(loader)
            next(it)
        times.append(time.perf_counter() - t)
    return {
        "batch_s_median": statistics.median(times[1:] if len(times) > 1 else times),
        "tokenise_s": tokenise_s,
        "rows": float(len(plan.train_rows)),
    }


def _has_cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def run(steps: int = 5, rows: int = 20_000) -> Path:
    out = OUT_DIR / "train"
    out.mkdir(parents=True, exist_ok=True)
    wh = out / "train_bench.duckdb"
    if wh.exists():
        wh.unlink()
    info = machine_info()
    commit_sample(wh, SFT_SAMPLE, "sft", tag="chat")
    commit_sample(wh, PREFS_SAMPLE, "preferences", tag="prefs")
    big_sft = commit_sample(
        wh, _replicated(SFT_SAMPLE, rows, out / "sft_big.jsonl"), "sft", tag="chat-big"
    )
    big_prefs = commit_sample(
        wh, _replicated(PREFS_SAMPLE, rows, out / "prefs_big.jsonl"), "preferences", tag="prefs-big"
    )
    log(f"snapshots ready ({rows:,}-row copies: {big_sft}, {big_prefs})")

    results: dict[str, dict[str, Any]] = {}
    sft_dir = out / "sft"
    for trainer, ref, big in (("sft", "chat", "chat-big"), ("dpo", "prefs", "prefs-big")):
        overrides = [*SETTINGS, f"max_steps={steps}"]
        if trainer == "dpo":
            overrides.append(f"model_name_or_path={sft_dir}")
        log(f"{trainer}: {steps} steps with SmolLM2")
        res = run_training(
            TrainRequest(
                trainer,  # type: ignore[arg-type]
                ref,
                wh,
                overrides=[*overrides, "save_strategy=no"],
                output_dir=out / trainer,
                fresh=True,
            ),
            log=log,
        )
        read = _read_cost(wh, big, trainer)
        log(f"{trainer}: dataloader timing")
        loader = _dataloader_cost(wh, ref, trainer, batches=20)
        results[trainer] = {"metrics": res.metrics, "read": read, "loader": loader}

    (out / "train_bench.json").write_text(
        json.dumps({"info": info, "steps": steps, "rows": rows, "results": results}, default=str)
    )
    return write_report(results, info, steps, rows)


def _shares(r: dict[str, Any]) -> tuple[float, float, float]:
    """(load ms per row, load share, dataloader share) for one trainer's results."""
    step = float(r["metrics"]["step_time_s_median"])
    per_row_train = step / 2
    per_row_load = r["read"]["total_s"] / r["read"]["rows"]
    per_row_load += r["loader"]["tokenise_s"] / r["loader"]["rows"]
    share_load = per_row_load / (per_row_train + per_row_load)
    share_loader = r["loader"]["batch_s_median"] / (step + r["loader"]["batch_s_median"])
    return per_row_load * 1e3, share_load, share_loader


def write_report(
    results: dict[str, dict[str, Any]], info: dict[str, str], steps: int, rows: int
) -> Path:
    lines = [
        "# Training benchmark (SmolLM2-135M-Instruct, CPU)",
        "",
        "Real `curate train` runs (TRL 1.16, transformers 5.24, torch 2.13 CPU, float32) on "
        "snapshots of the bundled real ultrachat_200k / ultrafeedback_binarized records; "
        f"batch 2 per step, max_length 512, {steps} steps, median over steps 2..{steps}. "
        "DPO starts from the SFT output and uses a frozen copy of it as the reference.",
        "",
        machine_line(info),
        "",
        "| trainer | step time, median (s) | first step (s) | tokens/step | tokens/s | "
        "load from snapshot, per row (ms) | training, per row (ms) | load share | "
        "dataloader, per batch (ms) | dataloader share |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    met = True
    for trainer, r in results.items():
        m = r["metrics"]
        step = float(m["step_time_s_median"])
        tokens_s = float(m.get("tokens_per_s", 0.0))
        load_ms, share_load, share_loader = _shares(r)
        met = met and share_load < 0.05 and share_loader < 0.05
        lines.append(
            f"| {trainer} | {step:.2f} | {float(m['step_time_s_first']):.2f} | "
            f"{tokens_s * step:.0f} | {tokens_s:.1f} | {load_ms:.3f} | {step / 2 * 1e3:.0f} | "
            f"{share_load * 100:.4f}% | {r['loader']['batch_s_median'] * 1e3:.2f} | "
            f"{share_loader * 100:.4f}% |"
        )
    lines += [
        "",
        "- *load from snapshot* happens once per run: `open_snapshot` + `split_dataset` "
        "(DuckDB -> Arrow -> `datasets`) + conversion to trainer rows, timed on a "
        f"{rows:,}-row copy of the sample ("
        + ", ".join(
            f"{t}: {r['read']['total_s']:.2f} s = {r['read']['read_s']:.2f} s read + "
            f"{r['read']['convert_s']:.2f} s convert"
            for t, r in results.items()
        )
        + "), plus TRL's tokenisation at start-up ("
        + ", ".join(
            f"{t}: {r['loader']['tokenise_s']:.1f} s for {r['loader']['rows']:.0f} rows"
            for t, r in results.items()
        )
        + "). Its share is its cost per row over (training + loading) cost per row, "
        "i.e. of the time each row takes to be trained on.",
        "- *dataloader*: one batch from the trainer's own DataLoader (collating tokenised rows), "
        "paid every step, over (step + batch) time.",
        "- Goal: data loading under 5% of step time: "
        + ("met for both trainers." if met else "NOT met for every trainer (see the table)."),
        (
            "- No GPU was available for this run; the same script gives the GPU figures there."
            if not _has_cuda()
            else "- Ran on a GPU."
        ),
        "- Steps are slow because the 2 cores were shared (see the load average); compare "
        "figures only within one run.",
        "",
    ]
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / "train.md"
    path.write_text("\n".join(lines))
    log(f"wrote {path}")
    return path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--steps", type=int, default=5, help="training steps per trainer")
    ap.add_argument("--rows", type=int, default=20_000, help="rows of the read-cost snapshot")
    ap.add_argument(
        "--render-only", action="store_true", help="rewrite train.md from the last run's JSON"
    )
    a = ap.parse_args(argv)
    if a.render_only:
        saved = json.loads((OUT_DIR / "train" / "train_bench.json").read_text())
        write_report(saved["results"], saved["info"], saved["steps"], saved["rows"])
        return
    run(steps=a.steps, rows=a.rows)


if __name__ == "__main__":
    main()
