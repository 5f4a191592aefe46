"""Where each alignment-handbook recipe key goes today, and which names moved or vanished.

Handbook recipes were written against TRL 0.x and transformers 4.x. Since then TRL renamed
SFT `max_seq_length` to `max_length` and dropped DPO `max_prompt_length`; transformers 5 folded
`warmup_ratio` into `warmup_steps` (a float below 1 is a ratio), renamed gradient
checkpointing to activation checkpointing and dropped `overwrite_output_dir`. Keeping the
table in one place makes every mapping visible, testable and reported to the user.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

TrainerKind = Literal["sft", "dpo"]
TRAINERS: tuple[TrainerKind, ...] = ("sft", "dpo")


@dataclass(frozen=True)
class Rename:
    """An old key that now has a new name (and maybe a value conversion)."""

    new: str
    why: str
    only_for: TrainerKind | None = None


@dataclass(frozen=True)
class Removal:
    """A key with no current equivalent: dropped, with the reason shown to the user."""

    why: str
    only_for: TrainerKind | None = None


RENAMED: dict[str, Rename] = {
    "max_seq_length": Rename(
        "max_length", "TRL renamed SFTConfig.max_seq_length to max_length (2025)", "sft"
    ),
    "warmup_ratio": Rename(
        "warmup_steps",
        "transformers 5 removed warmup_ratio; warmup_steps below 1 is read as a ratio",
    ),
    "gradient_checkpointing": Rename(
        "activation_checkpointing",
        "transformers 5 renamed gradient_checkpointing to activation_checkpointing",
    ),
    "gradient_checkpointing_kwargs": Rename(
        "activation_checkpointing_kwargs",
        "transformers 5 renamed gradient_checkpointing_kwargs to activation_checkpointing_kwargs",
    ),
    "evaluation_strategy": Rename("eval_strategy", "transformers renamed it to eval_strategy"),
    "use_liger": Rename("use_liger_kernel", "TRL now uses the transformers name"),
    "torch_dtype": Rename("dtype", "transformers 5 renamed torch_dtype to dtype"),
    "preprocessing_num_workers": Rename(
        "dataset_num_proc", "the handbook's data workers are TRL's dataset_num_proc"
    ),
    "dataset_train_split": Rename("train_split", "the split is read from the snapshot"),
    "dataset_test_split": Rename("eval_split", "the split is read from the snapshot"),
    "use_flash_attention_2": Rename(
        "attn_implementation", "old handbook flag; true means attn_implementation=flash_attention_2"
    ),
}

REMOVED: dict[str, Removal] = {
    "max_prompt_length": Removal(
        "TRL removed DPOConfig.max_prompt_length (2026): prompts are no longer cut on their "
        "own; the whole prompt+answer is cut at max_length, keeping the start",
        "dpo",
    ),
    "max_completion_length": Removal(
        "TRL removed DPOConfig.max_completion_length: only max_length limits a sequence", "dpo"
    ),
    "max_target_length": Removal("an old TRL DPO setting; only max_length remains", "dpo"),
    "overwrite_output_dir": Removal(
        "transformers 5 removed overwrite_output_dir; curate resumes from the last checkpoint "
        "in output_dir, or starts over with --fresh"
    ),
    "logging_dir": Removal("transformers 5 removed logging_dir; loggers pick their own folder"),
    "save_safetensors": Removal("transformers 5 always saves safetensors"),
    "truncation_side": Removal("an old handbook setting; TRL truncates with truncation_mode"),
    "text_column": Removal("snapshots have fixed columns (messages, chosen, rejected)"),
    "auto_set_chat_template": Removal("the chat template is chosen with chat_template"),
}

# Dataset selection in a recipe: the snapshot given with --snapshot replaces all of it.
DATASET_KEYS: frozenset[str] = frozenset(
    {
        "dataset_mixture",
        "dataset_mixer",
        "dataset_splits",
        "dataset_configs",
        "dataset_name",
        "dataset_config",
        "dataset_streaming",
        "dataset_id_or_path",
    }
)


def rename_for(key: str, trainer: TrainerKind) -> Rename | None:
    r = RENAMED.get(key)
    return r if r is not None and r.only_for in (None, trainer) else None


def removal_for(key: str, trainer: TrainerKind) -> Removal | None:
    r = REMOVED.get(key)
    return r if r is not None and r.only_for in (None, trainer) else None
