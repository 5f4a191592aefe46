"""Reading an alignment-handbook recipe YAML (plus --set overrides) into a typed TrainRecipe.

Every key ends up in exactly one place: model settings, data settings, or the arguments of
TRL's SFTConfig / DPOConfig. Old names are mapped (handbook_keys.RENAMED), removed ones are
dropped with their reason, the dataset mixture is replaced by the snapshot, and anything else
is an error naming the file and the key, with the closest valid names. Nothing here loads a
model or touches the warehouse, so a bad recipe fails in seconds.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from training.handbook_keys import (
    DATASET_KEYS,
    TRAINERS,
    TrainerKind,
    removal_for,
    rename_for,
)
from training.settings import DATA_KEYS, MODEL_KEYS, SMOLLM2, DataSettings, ModelSettings
from warehouse.errors import BadInputError

# Small CPU defaults used when no --config is given (mirrored by configs/smollm2-135m/*.yaml).
_COMMON_DEFAULTS: dict[str, Any] = {
    "model_name_or_path": SMOLLM2,
    "dtype": "float32",
    "chat_template": "zephyr",
    "max_eval_samples": 16,
    "bf16": False,
    "activation_checkpointing": False,
    "lr_scheduler_type": "cosine",
    "warmup_steps": 0.1,
    "num_train_epochs": 1,
    "max_steps": 20,
    "per_device_train_batch_size": 2,
    "per_device_eval_batch_size": 2,
    "gradient_accumulation_steps": 1,
    "logging_steps": 1,
    "save_strategy": "steps",
    "save_steps": 10,
    "save_total_limit": 2,
    "eval_strategy": "no",
    "report_to": "none",
    "seed": 42,
}
DEFAULTS: dict[TrainerKind, dict[str, Any]] = {
    "sft": {**_COMMON_DEFAULTS, "learning_rate": 5.0e-5, "max_length": 512},
    "dpo": {**_COMMON_DEFAULTS, "learning_rate": 5.0e-6, "beta": 0.1, "max_length": 512},
}


class _RecipeLoader(yaml.SafeLoader):
    """YAML 1.2 scalars: PyYAML follows YAML 1.1, where `1e-5` (no dot) is a string and `no`
    is False, but `eval_strategy: no` means the string and `1e-5` a number."""


_RecipeLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_RecipeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)
_RecipeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$|"
        r"^[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?$|^[-+]?\.[0-9_]+$"
    ),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_RecipeLoader)  # a SafeLoader subclass


@dataclass
class TrainRecipe:
    """A resolved recipe: typed model/data settings plus TRL trainer arguments."""

    trainer: TrainerKind
    source: str
    model: ModelSettings
    data: DataSettings
    trainer_args: dict[str, Any]
    notices: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The resolved recipe as plain data (recorded with the run)."""
        return {
            "trainer": self.trainer,
            "source": self.source,
            "model": self.model.model_dump(exclude_defaults=True),
            "data": self.data.model_dump(exclude_defaults=True),
            "trainer_args": dict(self.trainer_args),
        }


@cache
def trainer_fields(trainer: TrainerKind) -> frozenset[str]:
    """Field names of TRL's config class for `trainer` (imports TRL once)."""
    from trl import DPOConfig, SFTConfig

    cls = SFTConfig if trainer == "sft" else DPOConfig
    return frozenset(f.name for f in dataclasses.fields(cls) if f.init)


def parse_override(item: str) -> tuple[str, Any]:
    """`key=value` with a YAML value (numbers, booleans, lists); dotted keys reach into dicts."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise BadInputError(f"--set {item!r}: expected key=value, e.g. --set learning_rate=1e-5")
    try:
        value = load_yaml(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise BadInputError(f"--set {item!r}: the value is not valid YAML ({exc})") from exc
    return key, value


def _canonical(key: str, trainer: TrainerKind) -> str:
    rename = rename_for(key, trainer)
    return rename.new if rename is not None else key


def apply_overrides(
    raw: dict[str, Any], overrides: list[str], trainer: TrainerKind
) -> dict[str, Any]:
    """Apply `--set` items; an override under an old or new name replaces the other spelling."""
    out = dict(raw)
    for item in overrides:
        key, value = parse_override(item)
        parts = key.split(".")
        top = _canonical(parts[0], trainer)
        for other in [k for k in out if k != parts[0] and _canonical(k, trainer) == top]:
            if len(parts) == 1:
                del out[other]
            else:  # a nested override of a renamed mapping: carry the mapping over
                out.setdefault(parts[0], out.pop(other))
        target = out
        for part in parts[:-1]:
            nxt = target.get(part)
            if not isinstance(nxt, dict):
                nxt = {}
                target[part] = nxt
            else:
                nxt = dict(nxt)
                target[part] = nxt
            target = nxt
        target[parts[-1]] = value
    return out


def read_recipe_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise BadInputError(f"{path}: no such config file")
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise BadInputError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BadInputError(f"{path}: expected a mapping of keys to values at the top level")
    return {str(k): v for k, v in data.items()}


def _suggest(key: str, known: set[str]) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.75)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def _check_value(where: str, key: str, value: Any) -> None:
    """The one value rule TRL would not explain well: warmup as a ratio or a step count."""
    if key == "warmup_steps" and isinstance(value, float) and value >= 1 and value != int(value):
        raise BadInputError(
            f"{where}: warmup_steps={value}: use an integer step count or a ratio in [0, 1)"
        )


def route_keys(
    trainer: TrainerKind, raw: dict[str, Any], where: str
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], list[str]]:
    """Split raw recipe keys into (model, data, trainer_args, notices)."""
    own = trainer_fields(trainer)
    other_trainer: TrainerKind = "dpo" if trainer == "sft" else "sft"
    other = trainer_fields(other_trainer) - own
    model: dict[str, Any] = {}
    data: dict[str, Any] = {}
    args: dict[str, Any] = {}
    notices: list[str] = []
    seen_as: dict[str, str] = {}
    for key, value in raw.items():
        name = key
        rename = rename_for(key, trainer)
        if rename is not None:
            name = rename.new
            if key == "use_flash_attention_2":
                if not value:
                    notices.append(f"{key}: false: ignored (old handbook flag)")
                    continue
                value = "flash_attention_2"
            notices.append(f"{key} -> {name}: {rename.why}")
        if name in seen_as:
            raise BadInputError(
                f"{where}: {seen_as[name]!r} and {key!r} both set {name}; keep one of them"
            )
        seen_as[name] = key
        removal = removal_for(key, trainer)
        if removal is not None:
            notices.append(f"{key}={value!r} ignored: {removal.why}")
            continue
        if key in DATASET_KEYS:
            notices.append(
                f"{key} ignored: the data comes from the snapshot given with --snapshot, "
                "not from the hub"
            )
            continue
        if name in MODEL_KEYS:
            model[name] = value
        elif name in DATA_KEYS:
            data[name] = value
        elif name in own:
            _check_value(where, name, value)
            args[name] = value
        elif name in other:
            raise BadInputError(
                f"{where}: {key!r} is a {other_trainer.upper()} setting; "
                f"`curate train {trainer}` does not use it"
            )
        else:
            known = set(own) | set(MODEL_KEYS) | set(DATA_KEYS) | set(DATASET_KEYS)
            raise BadInputError(f"{where}: unknown key {key!r}{_suggest(key, known)}")
    return model, data, args, notices


def _validated(cls: type[Any], values: dict[str, Any], where: str) -> Any:
    try:
        return cls(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise BadInputError(f"{where}: {problems}") from None


def load_recipe(
    trainer: TrainerKind,
    config: Path | None = None,
    overrides: list[str] | None = None,
) -> TrainRecipe:
    """Defaults, else the YAML file, then `--set` overrides; routed and validated."""
    if trainer not in TRAINERS:
        raise BadInputError(f"unknown trainer {trainer!r}: expected sft or dpo")
    if config is None:
        raw = dict(DEFAULTS[trainer])
        source = f"built-in {trainer} defaults (SmolLM2-135M-Instruct on CPU)"
    else:
        raw = read_recipe_file(config)
        source = str(config)
    raw = apply_overrides(raw, overrides or [], trainer)
    where = source if not overrides else f"{source} (with --set)"
    model, data, args, notices = route_keys(trainer, raw, where)
    return TrainRecipe(
        trainer=trainer,
        source=source,
        model=_validated(ModelSettings, model, where),
        data=_validated(DataSettings, data, where),
        trainer_args=args,
        notices=notices,
    )
