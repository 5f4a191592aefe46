"""One training run, start to finish: plan (no model), record, train, save, card, finish.

`plan_run` does everything that can fail cheaply: the recipe, the snapshot's kind and splits,
the trainer rows, the model location and the TRL config. Only then does `execute` record the
run as `running`, load the model and train, so a wrong snapshot or key never costs a model
load and never leaves a run row behind. The finished row carries the final metrics; a failure
or Ctrl-C / SIGTERM finishes it as failed / interrupted; a SIGKILL leaves it `running` until the
next run on the same folder marks it interrupted and resumes from the last checkpoint.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training import model_card, model_loading, snapshot_data
from training.chat_template import apply_template, check_setting, is_zephyr
from training.code_version import code_version
from training.handbook_keys import TrainerKind
from training.model_source import ModelSource, resolve_model
from training.recipe import TrainRecipe, load_recipe
from training.step_timer import StepTimer
from training.trl_args import (
    adapt_to_environment,
    build_trainer_config,
    check_quantization,
    detect_environment,
)
from warehouse import runs
from warehouse.errors import BadInputError
from warehouse.snapshots import Snapshot, open_snapshot
from warehouse.store import Warehouse

Log = Callable[[str], None]
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def is_main_process() -> bool:
    """Rank 0 of an `accelerate launch` (or a plain single process) owns the run record."""
    return os.environ.get("RANK", "0") == "0"


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass
class TrainRequest:
    """What the user asked for (the CLI's arguments)."""

    trainer: TrainerKind
    snapshot: str
    warehouse: Path | str
    config: Path | None = None
    overrides: list[str] = field(default_factory=list)
    output_dir: Path | None = None
    fresh: bool = False
    dry_run: bool = False


@dataclass
class TrainPlan:
    """Everything decided before the model loads."""

    request: TrainRequest
    recipe: TrainRecipe
    snapshot: Snapshot
    splits: snapshot_data.SplitChoice
    train_rows: Any
    eval_rows: Any
    source: ModelSource
    output_dir: Path
    resume_from: str | None
    trl_config: Any
    data_load_s: float

    def summary(self) -> dict[str, Any]:
        return {
            "trainer": self.recipe.trainer,
            "snapshot_id": self.snapshot.snapshot_id,
            "train_split": self.splits.train,
            "train_rows": len(self.train_rows),
            "eval_split": self.splits.eval,
            "eval_rows": 0 if self.eval_rows is None else len(self.eval_rows),
            "model": self.source.label,
            "output_dir": str(self.output_dir),
            "resume_from": self.resume_from,
            "config": self.recipe.as_dict(),
            "notices": list(self.recipe.notices),
            "data_load_s": round(self.data_load_s, 4),
        }


@dataclass
class TrainResult:
    """What a finished (or refused) run produced."""

    run_id: str
    status: str
    snapshot_id: str
    trainer: str
    model: str
    output_dir: str
    metrics: dict[str, Any]
    notices: list[str]
    resumed_from: str | None
    model_card: str | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text.split(":")[-1].split("/")[-1]).strip("-")[:40]


def default_output_dir(wh: Warehouse, trainer: str, snapshot_id: str, model: str) -> Path:
    """Beside the warehouse: runs/<trainer>-<snapshot>-<model>."""
    return wh.path.resolve().parent / "runs" / f"{trainer}-{snapshot_id}-{_slug(model)}"


def last_checkpoint(folder: Path) -> Path | None:
    """The newest checkpoint that was written completely (a kill can leave a partial one)."""
    if not folder.is_dir():
        return None
    found = []
    for child in folder.iterdir():
        m = _CHECKPOINT.match(child.name)
        if m and child.is_dir() and (child / "trainer_state.json").exists():
            found.append((int(m.group(1)), child))
    return max(found)[1] if found else None


def remove_checkpoints(output_dir: Path) -> None:
    """--fresh: drop earlier checkpoints so none of them is mistaken for this run's."""
    if output_dir.is_dir():
        for child in output_dir.iterdir():
            if _CHECKPOINT.match(child.name) and child.is_dir():
                shutil.rmtree(child)


def _resume_point(
    output_dir: Path, trainer: str, snapshot_id: str, fresh: bool, explicit: Any
) -> str | None:
    if fresh:
        return None
    if isinstance(explicit, str) and explicit:
        if not Path(explicit).is_dir():
            raise BadInputError(f"resume_from_checkpoint {explicit!r}: no such folder")
        return explicit
    ckpt = last_checkpoint(output_dir)
    if ckpt is None:
        return None
    marker = model_card.read_marker(output_dir)
    if marker is None:
        raise BadInputError(
            f"{output_dir} holds checkpoints that curate did not make: pass --fresh to start "
            "over there, or choose another --output-dir"
        )
    if marker.get("snapshot_id") != snapshot_id or marker.get("trainer") != trainer:
        raise BadInputError(
            f"{output_dir} holds a {marker.get('trainer')} run on snapshot "
            f"{marker.get('snapshot_id')}; it cannot resume as {trainer} on {snapshot_id}. "
            "Pass --fresh to start over there, or choose another --output-dir"
        )
    return str(ckpt)


def plan_run(req: TrainRequest, log: Log = _stderr) -> TrainPlan:
    """Check and prepare everything short of loading the model."""
    recipe = load_recipe(req.trainer, req.config, req.overrides)
    check_setting(recipe.data.chat_template, recipe.source)
    env = detect_environment()
    adapt_to_environment(recipe, env)
    check_quantization(recipe, env)
    if recipe.model.use_peft:
        import importlib.util

        if importlib.util.find_spec("peft") is None:
            raise BadInputError(f"{recipe.source}: use_peft needs the peft package")

    wh = Warehouse(req.warehouse)
    t0 = time.perf_counter()
    snapshot = open_snapshot(wh, req.snapshot)
    splits = snapshot_data.choose_splits(
        snapshot, req.trainer, recipe.data.train_split, recipe.data.eval_split
    )
    if splits.notice:
        recipe.notices.append(splits.notice)
    insert_system = recipe.data.auto_insert_empty_system_msg
    if insert_system is None:
        insert_system = is_zephyr(recipe.data.chat_template)
    train_raw = snapshot_data.head(
        snapshot.split_dataset(splits.train), recipe.data.max_train_samples
    )
    train_rows = snapshot_data.trainer_rows(train_raw, req.trainer, insert_system, splits.train)
    eval_rows = None
    if splits.eval is not None:
        eval_raw = snapshot_data.head(
            snapshot.split_dataset(splits.eval), recipe.data.max_eval_samples
        )
        eval_rows = snapshot_data.trainer_rows(eval_raw, req.trainer, insert_system, splits.eval)
    data_load_s = time.perf_counter() - t0
    args = recipe.trainer_args
    if eval_rows is None and args.get("eval_strategy", "no") != "no":
        recipe.notices.append(f"eval_strategy {args['eval_strategy']} -> no: no evaluation split")
        args["eval_strategy"] = "no"
        args.pop("do_eval", None)
    if eval_rows is None and args.get("load_best_model_at_end"):
        raise BadInputError(f"{recipe.source}: load_best_model_at_end needs an evaluation split")

    source = resolve_model(
        recipe.model.model_name_or_path, recipe.model.model_revision, recipe.model.gguf_file
    )
    if source.note:
        recipe.notices.append(source.note)
    if req.output_dir is not None:
        output_dir = Path(req.output_dir)
    elif recipe.trainer_args.get("output_dir") and req.config is not None:
        output_dir = Path(str(recipe.trainer_args["output_dir"]))
    else:
        output_dir = default_output_dir(wh, req.trainer, snapshot.snapshot_id, source.spec)
    output_dir = output_dir.resolve()
    resume_from = _resume_point(
        output_dir,
        req.trainer,
        snapshot.snapshot_id,
        req.fresh,
        recipe.trainer_args.pop("resume_from_checkpoint", None),
    )
    trl_config = build_trainer_config(recipe, str(output_dir))
    return TrainPlan(
        req,
        recipe,
        snapshot,
        splits,
        train_rows,
        eval_rows,
        source,
        output_dir,
        resume_from,
        trl_config,
        data_load_s,
    )


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a scheduler stopping the job) ends the run like Ctrl-C: recorded, not lost."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def build_trainer(plan: TrainPlan, model: Any, tokenizer: Any, timer: StepTimer) -> Any:
    """The TRL trainer for the plan (SFTTrainer or DPOTrainer)."""
    from trl import DPOTrainer, SFTTrainer

    peft_config = model_loading.lora_config(plan.recipe.model)
    common: dict[str, Any] = {
        "model": model,
        "args": plan.trl_config,
        "train_dataset": plan.train_rows,
        "eval_dataset": plan.eval_rows,
        "processing_class": tokenizer,
        "peft_config": peft_config,
        "callbacks": [timer],
    }
    if plan.recipe.trainer == "sft":
        return SFTTrainer(**common)
    ref = None
    if peft_config is None and not plan.trl_config.precompute_ref_log_probs:
        distributed = plan.trl_config.distributed_state.distributed_type not in ("NO", "MULTI_CPU")
        if not distributed:
            ref = model_loading.reference_copy(model)
    if ref is None and peft_config is None:
        # Multi-GPU: let TRL load (and shard) the reference from the same place as the policy.
        plan.trl_config.model_init_kwargs = model_loading.model_init_kwargs(
            plan.source, plan.recipe.model
        )
        model.config._name_or_path = plan.source.path
    return DPOTrainer(ref_model=ref, **common)


def _check_kept_rows(plan: TrainPlan, trainer: Any, log: Log) -> None:
    """TRL silently drops rows whose prompt alone fills max_length; say so, and stop at none."""
    kept, given = len(trainer.train_dataset), len(plan.train_rows)
    limit = plan.trl_config.max_length
    if kept == 0:
        raise BadInputError(
            f"all {given} rows of {plan.splits.train!r} were dropped by the trainer: their "
            f"prompts fill max_length={limit} tokens; raise max_length (--set max_length=N)"
        )
    if kept < given:
        log(f"note: {given - kept} of {given} rows dropped: prompt longer than max_length={limit}")


def _final_metrics(trainer: Any, train_metrics: dict[str, Any], timer: StepTimer) -> dict[str, Any]:
    history = trainer.state.log_history
    losses = [h["loss"] for h in history if "loss" in h]
    counted = [
        (h["step"], float(h["num_tokens"])) for h in history if "num_tokens" in h and "loss" in h
    ]
    out: dict[str, Any] = {k: v for k, v in train_metrics.items() if isinstance(v, int | float)}
    out["global_step"] = int(trainer.state.global_step)
    if losses:
        out["first_loss"] = float(losses[0])
        out["last_loss"] = float(losses[-1])
    out.update(timer.summary())
    if counted:
        out["num_tokens"] = counted[-1][1]
    if "step_time_s_median" in out and len(counted) > 1 and counted[-1][0] > counted[0][0]:
        per_step = (counted[-1][1] - counted[0][1]) / (counted[-1][0] - counted[0][0])
        out["tokens_per_step"] = per_step
        out["tokens_per_s"] = per_step / out["step_time_s_median"]
    return out


def execute(plan: TrainPlan, log: Log = _stderr) -> TrainResult:
    """Record the run, load the model, train, save, write the card, finish the record."""
    wh = Warehouse(plan.request.warehouse)
    recipe = plan.recipe
    out = plan.output_dir
    main = is_main_process()
    if main:
        stale = runs.mark_interrupted(wh, str(out), "killed before it could finish (found later)")
        if stale:
            log(f"marked interrupted: {', '.join(stale)} (an earlier run here was killed)")
    config_record = {
        **plan.summary()["config"],
        "resolved_trainer_args": plan.trl_config.to_dict(),
        "resumed_from": plan.resume_from,
        "notices": recipe.notices,
    }
    start = runs.RunStart(
        snapshot_id=plan.snapshot.snapshot_id,
        trainer=recipe.trainer,
        train_split=plan.splits.train,
        eval_split=plan.splits.eval,
        model=plan.source.label,
        config=config_record,
        code_version=code_version(),
        output_dir=str(out),
    )
    run_id = runs.new_run_id()
    plan.trl_config.run_name = run_id
    if main:
        if plan.request.fresh:
            remove_checkpoints(out)
        model_card.write_marker(
            out,
            {
                "run_id": run_id,
                "snapshot_id": plan.snapshot.snapshot_id,
                "trainer": recipe.trainer,
                "warehouse": str(wh.path.resolve()),
            },
        )
        runs.start_run(wh, start, run_id)
    log(
        f"run {run_id}: {recipe.trainer} on {plan.snapshot.snapshot_id}:{plan.splits.train} -> {out}"
    )
    status, error = "failed", None
    metrics: dict[str, Any] = {}
    try:
        # Library progress lines go to stderr: stdout carries only the result (--json).
        with _sigterm_as_interrupt(), redirect_stdout(sys.stderr):
            tokenizer = model_loading.load_tokenizer(plan.source, recipe.model)
            apply_template(tokenizer, recipe.data.chat_template, plan.source.label)
            model = model_loading.load_model(plan.source, recipe.model)
            timer = StepTimer()
            trainer = build_trainer(plan, model, tokenizer, timer)
            _check_kept_rows(plan, trainer, log)
            if plan.resume_from:
                log(f"resuming from {plan.resume_from}")
            result = trainer.train(resume_from_checkpoint=plan.resume_from)
            metrics = _final_metrics(trainer, dict(result.metrics), timer)
            metrics["data_load_s"] = plan.data_load_s
            if plan.eval_rows is not None:
                metrics.update(
                    {k: v for k, v in trainer.evaluate().items() if isinstance(v, int | float)}
                )
            trainer.save_model(str(out))
            tokenizer.save_pretrained(str(out))
        status = "completed"
    except KeyboardInterrupt as exc:
        status, error = "interrupted", f"interrupted ({exc or 'Ctrl-C'})"
        raise
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        if main:
            runs.finish_run(wh, run_id, status, metrics, error)
    if not main:  # other ranks of a multi-GPU run: rank 0 records and writes the card
        return TrainResult(
            run_id,
            status,
            plan.snapshot.snapshot_id,
            recipe.trainer,
            plan.source.label,
            str(out),
            metrics,
            list(recipe.notices),
            plan.resume_from,
            None,
        )
    card = model_card.write_card(
        out,
        model_card.CardFacts(
            run_id=run_id,
            trainer=recipe.trainer,
            snapshot_id=plan.snapshot.snapshot_id,
            recipe_name=plan.snapshot.recipe_name,
            content_hash=plan.snapshot.content_hash,
            train_split=plan.splits.train,
            eval_split=plan.splits.eval,
            base_model=plan.source.label,
            warehouse=str(wh.path.resolve()),
            code_version=code_version(),
            config_source=recipe.source,
            metrics=metrics,
            resumed_from=plan.resume_from,
        ),
    )
    return TrainResult(
        run_id=run_id,
        status=status,
        snapshot_id=plan.snapshot.snapshot_id,
        trainer=recipe.trainer,
        model=plan.source.label,
        output_dir=str(out),
        metrics=metrics,
        notices=list(recipe.notices),
        resumed_from=plan.resume_from,
        model_card=str(card),
    )


def _planned(req: TrainRequest, log: Log) -> TrainPlan:
    plan = plan_run(req, log)
    for notice in plan.recipe.notices:
        log(f"note: {notice}")
    return plan


def run_training(req: TrainRequest, log: Log = _stderr) -> TrainResult:
    """Plan and execute (dry_run is ignored): the call for code that wants a model."""
    return execute(_planned(req, log), log)


def train(req: TrainRequest, log: Log = _stderr) -> TrainResult | TrainPlan:
    """Plan, then (unless dry_run) execute. Notices are logged as they are found."""
    plan = _planned(req, log)
    if req.dry_run:
        return plan
    return execute(plan, log)
