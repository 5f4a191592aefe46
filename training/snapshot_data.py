"""From a warehouse snapshot to the dataset a TRL trainer takes, checked before any model loads.

SFT gets a `messages` column (TRL's conversational language-modelling format). DPO gets the
explicit-prompt conversational preference format: `prompt` is the dialogue up to the last user
turn, `chosen` / `rejected` are the final assistant answers. ultrafeedback_binarized stores
chosen/rejected as whole dialogues; splitting off the shared prefix here (instead of letting
TRL guess it) lets us check that both answers really share the prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from training.chat_template import Message, with_system_turn
from training.handbook_keys import TrainerKind
from warehouse.errors import BadInputError

NEEDED_KIND: dict[TrainerKind, str] = {"sft": "sft", "dpo": "preferences"}
DEFAULT_SPLITS: dict[TrainerKind, tuple[str, str]] = {
    "sft": ("train_sft", "test_sft"),
    "dpo": ("train_prefs", "test_prefs"),
}
NO_EVAL = ("none", "no", "")


@dataclass(frozen=True)
class SplitChoice:
    """Which snapshot splits a run reads, and any notice about the choice."""

    train: str
    eval: str | None
    notice: str | None = None


def choose_splits(
    snapshot: Any, trainer: TrainerKind, train_split: str | None, eval_split: str | None
) -> SplitChoice:
    """Check kind, presence and size of the splits; raise BadInputError naming what is wrong."""
    sid = snapshot.snapshot_id
    need = NEEDED_KIND[trainer]
    if snapshot.kind != need:
        other = "dpo" if trainer == "sft" else "sft"
        raise BadInputError(
            f"snapshot {sid} holds {snapshot.kind} data, but `curate train {trainer}` needs a "
            f"{need} snapshot (use `curate train {other}` for this one, or pick another snapshot)"
        )
    default_train, default_eval = DEFAULT_SPLITS[trainer]
    train = train_split or default_train
    have = ", ".join(f"{k} ({v} rows)" for k, v in snapshot.splits.items()) or "none"
    if train not in snapshot.splits:
        raise BadInputError(f"snapshot {sid} has no split {train!r}; it has: {have}")
    if snapshot.splits[train] == 0:
        raise BadInputError(
            f"snapshot {sid}: split {train!r} is empty (0 rows): nothing to train on"
        )
    if eval_split is not None and eval_split.strip().lower() in NO_EVAL:
        return SplitChoice(train, None)
    if eval_split is not None:
        if eval_split not in snapshot.splits:
            raise BadInputError(
                f"snapshot {sid} has no split {eval_split!r} (eval_split); it has: {have}"
            )
        if snapshot.splits[eval_split] == 0:
            raise BadInputError(f"snapshot {sid}: eval split {eval_split!r} is empty (0 rows)")
        return SplitChoice(train, eval_split)
    if snapshot.splits.get(default_eval, 0) > 0:
        return SplitChoice(train, default_eval)
    return SplitChoice(
        train, None, f"no evaluation: snapshot {sid} has no rows in {default_eval!r}"
    )


def _plain(messages: Any) -> list[Message]:
    return [{"role": str(m["role"]), "content": str(m["content"] or "")} for m in messages]


def sft_rows(dataset: Any, insert_system: bool, split: str) -> Any:
    """Keep `messages` only (a `prompt` column would make TRL read prompt-completion data)."""
    if "messages" not in dataset.column_names:
        raise BadInputError(f"split {split!r} has no messages column")

    def convert(row: dict[str, Any]) -> dict[str, Any]:
        messages = _plain(row["messages"] or [])
        return {"messages": with_system_turn(messages) if insert_system else messages}

    out = dataset.map(convert, remove_columns=dataset.column_names, desc=None)
    bad = [i for i, r in enumerate(out["messages"]) if not any(m["role"] == "assistant" for m in r)]
    if len(bad) == len(out):
        raise BadInputError(f"split {split!r}: no row has an assistant turn to learn from")
    return out


def split_preference(row: dict[str, Any], index: int, split: str) -> dict[str, list[Message]]:
    """(prompt, chosen, rejected) from H4-style whole dialogues; checks the shared prefix."""
    chosen = _plain(row["chosen"] or [])
    rejected = _plain(row["rejected"] or [])
    where = f"split {split!r} row {index} (prompt_id {row.get('prompt_id')})"
    if not chosen or not rejected:
        raise BadInputError(f"{where}: chosen or rejected is empty")
    if chosen[-1]["role"] != "assistant" or rejected[-1]["role"] != "assistant":
        raise BadInputError(f"{where}: chosen and rejected must end with an assistant answer")
    if chosen[:-1] != rejected[:-1]:
        raise BadInputError(f"{where}: chosen and rejected do not share the same prompt turns")
    prompt = chosen[:-1]
    if not prompt:
        prompt = [{"role": "user", "content": str(row.get("prompt") or "")}]
    return {"prompt": prompt, "chosen": chosen[-1:], "rejected": rejected[-1:]}


def dpo_rows(dataset: Any, insert_system: bool, split: str) -> Any:
    """Explicit-prompt conversational preference rows."""
    for col in ("chosen", "rejected"):
        if col not in dataset.column_names:
            raise BadInputError(f"split {split!r} has no {col} column")

    def convert(row: dict[str, Any], index: int) -> dict[str, Any]:
        out = split_preference(row, index, split)
        if insert_system:
            out["prompt"] = with_system_turn(out["prompt"])
        return out

    return dataset.map(convert, with_indices=True, remove_columns=dataset.column_names)


def trainer_rows(dataset: Any, trainer: TrainerKind, insert_system: bool, split: str) -> Any:
    if trainer == "sft":
        return sft_rows(dataset, insert_system, split)
    return dpo_rows(dataset, insert_system, split)


def head(dataset: Any, n: int | None) -> Any:
    """The first n rows (snapshot order), or all of them."""
    if n is None or n >= len(dataset):
        return dataset
    return dataset.select(range(n))
