"""Recipes: typed configs that read from YAML and can be built in Python.

A recipe names its inputs (warehouse tables or earlier snapshots), ordered steps, the kind of
output (SFT dialogues or preference pairs) and a seed. Each step is one of:

- `filter`: a filter by built-in name or `module:Class`, with params (and optionally a
  threshold override); drops rows.
- `transform`: a filter that rewrites turns (truecasing); drops nothing by default.
- `dedup`: a whole-column filter (exact, MinHash, semantic); the same as `filter` otherwise.
- `binarize`: UltraFeedback completions -> preference pairs (H4 or Argilla policy).
- `exclude`: drop rows whose prompt occurs in another snapshot (cross-set overlap).
- `select`: keep a seeded sample of n rows (or a fraction).
- `split`: the final split policy (ultrachat_200k, h4_prefs).

`canonical_text` is the JSON the snapshot id hashes: two YAML files that differ only in
comments or key order give the same id.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    model_validator,
)

from curation.binarize import BinarizeConfig
from warehouse.errors import BadInputError

RECIPES_DIR = Path(__file__).parent / "recipes"

INPUT_TABLES = ("dialogues", "uf_prompts", "preference_pairs")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TableInput(_Model):
    """Rows of a warehouse table, optionally narrowed by a SQL predicate."""

    table: Literal["dialogues", "uf_prompts", "preference_pairs"]
    where: str | None = None


class SnapshotInput(_Model):
    """Rows of earlier snapshot splits (default: the non-gen splits)."""

    snapshot: str
    splits: list[str] | None = None


InputSpec = TableInput | SnapshotInput


class EmbedderConfig(_Model):
    """The sentence-transformers model a step embeds with (default: bundled all-MiniLM-L6-v2)."""

    model: str | None = None
    backend: Literal["torch", "torch-int8"] = "torch"
    max_seq_length: int | None = None
    batch_size: int = 64


class FilterStep(_Model):
    filter: str
    name: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    threshold: float | None = None
    embedder: EmbedderConfig | None = None


class TransformStep(_Model):
    transform: str
    name: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)


class DedupStep(_Model):
    dedup: str
    name: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    threshold: float | None = None
    embedder: EmbedderConfig | None = None


class BinarizeStep(_Model):
    binarize: BinarizeConfig
    name: str | None = None


class ExcludeConfig(_Model):
    snapshot: str
    by: Literal["prompt_id"] = "prompt_id"


class ExcludeStep(_Model):
    exclude: ExcludeConfig
    name: str | None = None


class SelectConfig(_Model):
    n: int | None = Field(default=None, ge=0)
    fraction: float | None = Field(default=None, gt=0, le=1)

    @model_validator(mode="after")
    def _one(self) -> SelectConfig:
        if (self.n is None) == (self.fraction is None):
            raise ValueError("select needs exactly one of n and fraction")
        return self


class SelectStep(_Model):
    select: SelectConfig
    name: str | None = None


class SplitConfig(_Model):
    policy: Literal["ultrachat_200k", "h4_prefs"]
    sizes: dict[str, int] | None = None
    test_size: int | None = None


class SplitStep(_Model):
    split: SplitConfig
    name: str | None = None


STEP_KEYS = ("filter", "transform", "dedup", "binarize", "exclude", "select", "split")


def _step_key(data: Any) -> str | None:
    """Which step type a mapping is: the one step key it has."""
    if not isinstance(data, dict):
        return next((k for k in STEP_KEYS if hasattr(data, k)), None)
    keys = [k for k in STEP_KEYS if k in data]
    return keys[0] if len(keys) == 1 else None


Step = Annotated[
    Annotated[FilterStep, Tag("filter")]
    | Annotated[TransformStep, Tag("transform")]
    | Annotated[DedupStep, Tag("dedup")]
    | Annotated[BinarizeStep, Tag("binarize")]
    | Annotated[ExcludeStep, Tag("exclude")]
    | Annotated[SelectStep, Tag("select")]
    | Annotated[SplitStep, Tag("split")],
    Discriminator(
        _step_key,
        custom_error_type="step_kind",
        custom_error_message=f"a step has exactly one of the keys {', '.join(STEP_KEYS)}",
    ),
]

STEP_KINDS: dict[type[Any], str] = {
    FilterStep: "filter",
    TransformStep: "transform",
    DedupStep: "dedup",
    BinarizeStep: "binarize",
    ExcludeStep: "exclude",
    SelectStep: "select",
    SplitStep: "split",
}


def step_kind(step: Any) -> str:
    return STEP_KINDS[type(step)]


def step_name(step: Any) -> str:
    """The given name, else what the step runs (`persona`, `binarize`, ...)."""
    if step.name:
        return str(step.name)
    for attr in ("filter", "transform", "dedup"):
        if hasattr(step, attr):
            return str(getattr(step, attr)).rsplit(":", 1)[-1]
    return step_kind(step)


class Recipe(_Model):
    name: str
    description: str = ""
    output: Literal["sft", "preferences"]
    seed: int = 42
    inputs: list[InputSpec] = Field(min_length=1)
    steps: list[Step] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> Recipe:
        names = [step_name(s) for s in self.steps]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"step names must be unique; repeated: {', '.join(dup)} (set name:)")
        kinds = [step_kind(s) for s in self.steps]
        if kinds.count("split") > 1 or ("split" in kinds and kinds[-1] != "split"):
            raise ValueError("a recipe has at most one split step, and it comes last")
        tables = {i.table for i in self.inputs if isinstance(i, TableInput)}
        if len(tables) > 1:
            raise ValueError(f"inputs mix tables {sorted(tables)}: use one kind of input")
        if "binarize" in kinds:
            if self.output != "preferences":
                raise ValueError("a binarize step makes preference pairs: set output: preferences")
            if tables != {"uf_prompts"}:
                raise ValueError("binarize reads UltraFeedback: the input must be uf_prompts")
        elif self.output == "preferences" and tables == {"uf_prompts"}:
            raise ValueError("uf_prompts input needs a binarize step to make preference pairs")
        if self.output == "sft" and tables & {"uf_prompts", "preference_pairs"}:
            raise ValueError("an sft recipe reads dialogues (or an sft snapshot)")
        return self

    def step_names(self) -> list[str]:
        return [step_name(s) for s in self.steps]

    def step(self, name: str) -> Any:
        for s in self.steps:
            if step_name(s) == name:
                return s
        raise BadInputError(
            f"recipe {self.name} has no step {name!r}; steps: {', '.join(self.step_names())}"
        )

    def canonical_text(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


def _format_validation(source: str, exc: ValidationError) -> str:
    lines = [f"{source}: not a valid recipe:"]
    for err in exc.errors()[:8]:
        loc = ".".join(str(p) for p in err["loc"])
        lines.append(f"  {loc or '(top)'}: {err['msg']}")
    return "\n".join(lines)


def recipe_from_dict(data: Any, source: str = "recipe") -> Recipe:
    if not isinstance(data, dict):
        raise BadInputError(f"{source}: a recipe is a mapping (name, output, inputs, steps)")
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        raise BadInputError(_format_validation(source, exc)) from exc


def builtin_recipes() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def load_recipe(ref: str | Path) -> Recipe:
    """A YAML path, or the name of a built-in recipe (`ultrachat_200k`)."""
    path = Path(ref)
    if not path.exists() and (RECIPES_DIR / f"{ref}.yaml").exists():
        path = RECIPES_DIR / f"{ref}.yaml"
    if not path.exists():
        raise BadInputError(
            f"no recipe {str(ref)!r}: give a YAML path or a built-in name "
            f"({', '.join(builtin_recipes())})"
        )
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise BadInputError(f"{path}: not valid YAML: {exc}") from exc
    return recipe_from_dict(data, str(path))
