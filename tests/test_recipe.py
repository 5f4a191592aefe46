"""Recipes: YAML and Python give the same typed config; bad recipes fail naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from curation.recipe import (
    BinarizeStep,
    FilterStep,
    Recipe,
    SplitStep,
    TransformStep,
    builtin_recipes,
    load_recipe,
    recipe_from_dict,
    step_name,
)
from warehouse.errors import BadInputError

MINIMAL = {
    "name": "tiny",
    "output": "sft",
    "inputs": [{"table": "dialogues"}],
    "steps": [{"filter": "persona"}, {"split": {"policy": "ultrachat_200k"}}],
}


def test_builtin_recipes_load_with_the_published_policies() -> None:
    assert {"ultrachat_200k", "ultrafeedback_binarized", "ultrafeedback_binarized_cleaned"} <= set(
        builtin_recipes()
    )
    uc = load_recipe("ultrachat_200k")
    assert uc.output == "sft"
    assert isinstance(uc.steps[0], TransformStep) and uc.steps[0].transform == "truecase"
    assert isinstance(uc.steps[-1], SplitStep) and uc.steps[-1].split.policy == "ultrachat_200k"
    kinds = [type(s).__name__ for s in uc.steps]
    assert kinds.count("DedupStep") == 3  # exact, near, semantic
    h4 = load_recipe("ultrafeedback_binarized")
    (b,) = [s for s in h4.steps if isinstance(s, BinarizeStep)]
    assert b.binarize.policy == "h4" and b.binarize.seed == 42
    argilla = load_recipe("ultrafeedback_binarized_cleaned")
    (b2,) = [s for s in argilla.steps if isinstance(s, BinarizeStep)]
    assert b2.binarize.policy == "argilla"


def test_yaml_and_python_build_the_same_recipe(tmp_path: Path) -> None:
    text = """# a comment that must not change the id
name: tiny
output: sft
inputs:
  - table: dialogues
steps:
  - filter: persona
  - split: {policy: ultrachat_200k}
"""
    path = tmp_path / "r.yaml"
    path.write_text(text)
    from_yaml = load_recipe(path)
    from_python = Recipe.model_validate(MINIMAL)
    assert from_yaml == from_python
    assert from_yaml.canonical_text() == from_python.canonical_text()
    changed = Recipe.model_validate({**MINIMAL, "seed": 7})
    assert changed.canonical_text() != from_python.canonical_text()


def test_step_names_default_to_what_they_run() -> None:
    r = recipe_from_dict(
        {**MINIMAL, "steps": [{"filter": "my_pkg.filters:TooShort"}, {"filter": "persona"}]}
    )
    assert r.step_names() == ["TooShort", "persona"]
    assert step_name(FilterStep(filter="persona", name="no_ai")) == "no_ai"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"steps": [{"filter": "persona", "transform": "truecase"}]}, "exactly one of the keys"),
        ({"steps": [{"filter": "persona", "colour": 1}]}, "colour"),
        ({"steps": [{"filter": "persona"}, {"filter": "persona"}]}, "repeated: persona"),
        (
            {"steps": [{"split": {"policy": "ultrachat_200k"}}, {"filter": "persona"}]},
            "comes last",
        ),
        ({"output": "pairs"}, "output"),
        ({"inputs": []}, "inputs"),
        ({"inputs": [{"table": "nope"}]}, "inputs.0"),
        ({"steps": [{"select": {"n": 5, "fraction": 0.5}}]}, "exactly one of n and fraction"),
        ({"steps": [{"binarize": {"policy": "h4"}}]}, "set output: preferences"),
        ({"output": "preferences", "inputs": [{"table": "uf_prompts"}], "steps": []}, "binarize"),
    ],
)
def test_bad_recipes_name_the_problem(change: dict[str, object], message: str) -> None:
    with pytest.raises(BadInputError) as err:
        recipe_from_dict({**MINIMAL, **change}, "r.yaml")
    assert "r.yaml" in str(err.value)
    assert message in str(err.value)


def test_unknown_recipe_lists_the_builtins(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="ultrachat_200k"):
        load_recipe(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(BadInputError, match="not valid YAML"):
        load_recipe(bad)
