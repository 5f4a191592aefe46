"""Turning a TrainRecipe into TRL's SFTConfig / DPOConfig on the machine at hand.

The zephyr-7b-beta recipes ask for tf32, bf16, FlashAttention-2, Weights & Biases and a push to
the hub. On a CPU-only, offline machine those would fail deep inside TRL, so they are adapted
here, each with a notice, and the config is built before any model is loaded: a wrong value
surfaces as an error naming the recipe file.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import Any

from training.recipe import TrainRecipe
from warehouse.errors import BadInputError


@dataclass(frozen=True)
class Environment:
    """What this machine offers, as far as the recipe cares."""

    cuda: bool
    hub_offline: bool
    cpu_count: int
    reporters: frozenset[str]
    flash_attn: bool
    bitsandbytes: bool


def detect_environment() -> Environment:
    import torch
    from transformers.integrations import get_available_reporting_integrations

    return Environment(
        cuda=torch.cuda.is_available(),
        hub_offline=os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"),
        cpu_count=os.cpu_count() or 1,
        reporters=frozenset(get_available_reporting_integrations()),
        flash_attn=importlib.util.find_spec("flash_attn") is not None,
        bitsandbytes=importlib.util.find_spec("bitsandbytes") is not None,
    )


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def adapt_to_environment(recipe: TrainRecipe, env: Environment) -> None:
    """Change what cannot work here (in place), adding one notice per change."""
    args = recipe.trainer_args
    note = recipe.notices.append
    if args.get("tf32") and not env.cuda:
        args.pop("tf32")
        note("tf32: true dropped: TF32 needs an NVIDIA Ampere or newer GPU")
    if "bf16" not in args and not env.cuda:
        args["bf16"] = False
        note("bf16 off (TRL's default is on): no GPU here, so training runs in float32")
    if args.get("push_to_hub") and env.hub_offline:
        args["push_to_hub"] = False
        note("push_to_hub: true turned off: HF_HUB_OFFLINE=1 (the model stays in output_dir)")
    reporters = _as_list(args.get("report_to", "none"))
    wanted = [r for r in reporters if r not in ("none", "all")]
    missing = [r for r in wanted if r not in env.reporters]
    if missing:
        kept = [r for r in wanted if r in env.reporters]
        args["report_to"] = kept or "none"
        note(f"report_to {', '.join(missing)} dropped: not installed here")
    elif "report_to" not in args:
        args["report_to"] = "none"
    if not env.cuda:
        args.setdefault("dataloader_pin_memory", False)  # pinning needs an accelerator
        args.setdefault("use_cpu", True)  # transformers wants it said, e.g. for bf16 on CPU
    num_proc = args.get("dataset_num_proc")
    if isinstance(num_proc, int) and num_proc > env.cpu_count:
        args["dataset_num_proc"] = env.cpu_count
        note(f"dataset_num_proc {num_proc} -> {env.cpu_count}: this machine has that many CPUs")
    # Gradient checkpointing: TRL turns it on by default; say so explicitly to pin the new name.
    args.setdefault("activation_checkpointing", True)
    model = recipe.model
    attn = model.attn_implementation or ""
    if attn.startswith("flash_attention") and not (env.cuda and env.flash_attn):
        note(f"attn_implementation {attn} -> sdpa: needs a GPU and flash-attn")
        model.attn_implementation = "sdpa"
    if model.dtype in ("bfloat16", "float16") and not env.cuda:
        note(f"dtype {model.dtype} kept on CPU: slower than float32 and less exact")


def check_quantization(recipe: TrainRecipe, env: Environment) -> None:
    """QLoRA needs bitsandbytes and a GPU: say so before any model is loaded."""
    model = recipe.model
    if not (model.load_in_4bit or model.load_in_8bit):
        return
    if not env.bitsandbytes or not env.cuda:
        raise BadInputError(
            f"{recipe.source}: load_in_4bit/load_in_8bit (QLoRA) needs bitsandbytes and an "
            "NVIDIA GPU; use plain LoRA (use_peft: true) on this machine"
        )
    if not model.use_peft:
        raise BadInputError(
            f"{recipe.source}: a 4/8-bit model cannot be trained in full: set use_peft: true"
        )


def build_trainer_config(recipe: TrainRecipe, output_dir: str, run_name: str | None = None) -> Any:
    """SFTConfig or DPOConfig from the recipe; TRL's own checks are reported with the file."""
    from trl import DPOConfig, SFTConfig

    cls = SFTConfig if recipe.trainer == "sft" else DPOConfig
    values = {**recipe.trainer_args, "output_dir": output_dir}
    if run_name is not None:
        values["run_name"] = run_name
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise BadInputError(f"{recipe.source}: TRL refused the trainer settings: {exc}") from exc
