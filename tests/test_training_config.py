"""Recipe YAML -> TRL config: handbook names mapped, removed ones reported, bad keys refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from training.recipe import DEFAULTS, TrainRecipe, load_recipe, parse_override
from training.trl_args import (
    Environment,
    adapt_to_environment,
    build_trainer_config,
    check_quantization,
)
from warehouse.errors import BadInputError

CONFIGS = ROOT / "configs"
CPU_OFFLINE = Environment(
    cuda=False,
    hub_offline=True,
    cpu_count=2,
    reporters=frozenset(),
    flash_attn=False,
    bitsandbytes=False,
)


def _mapped(trainer: str, path: Path, *overrides: str) -> tuple[TrainRecipe, Any]:
    recipe = load_recipe(trainer, path, list(overrides))  # type: ignore[arg-type]
    adapt_to_environment(recipe, CPU_OFFLINE)
    return recipe, build_trainer_config(recipe, "/tmp/unused-output")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


def test_zephyr_sft_recipe_maps_to_current_trl() -> None:
    recipe, cfg = _mapped("sft", CONFIGS / "zephyr-7b-beta" / "sft.yaml")
    assert type(cfg).__name__ == "SFTConfig"
    assert cfg.learning_rate == 2.0e-5
    assert cfg.max_length == 2048  # from max_seq_length
    assert cfg.warmup_steps == 0.1  # from warmup_ratio
    assert cfg.activation_checkpointing is True
    assert cfg.activation_checkpointing_kwargs == {"use_reentrant": False}
    assert cfg.per_device_train_batch_size == 16
    assert cfg.gradient_accumulation_steps == 1
    assert str(cfg.lr_scheduler_type.value) == "cosine"
    assert cfg.num_train_epochs == 1
    assert cfg.push_to_hub is False  # offline
    assert recipe.model.model_name_or_path == "mistralai/Mistral-7B-v0.1"
    assert recipe.model.dtype == "bfloat16"  # from torch_dtype
    assert recipe.model.attn_implementation == "sdpa"  # no GPU here
    assert "{{ '<|assistant|>\n'  + message['content'] + eos_token }}" in recipe.data.chat_template
    text = "\n".join(recipe.notices)
    for expected in (
        "dataset_mixture ignored",
        "max_seq_length -> max_length",
        "warmup_ratio -> warmup_steps",
        "gradient_checkpointing -> activation_checkpointing",
        "overwrite_output_dir=True ignored",
        "report_to wandb dropped",
    ):
        assert expected in text


def test_zephyr_dpo_recipe_maps_and_reports_max_prompt_length() -> None:
    recipe, cfg = _mapped("dpo", CONFIGS / "zephyr-7b-beta" / "dpo.yaml")
    assert type(cfg).__name__ == "DPOConfig"
    assert cfg.beta == 0.01
    assert cfg.learning_rate == 5.0e-7
    assert cfg.max_length == 1024
    assert cfg.gradient_accumulation_steps == 2
    assert cfg.per_device_train_batch_size == 8
    assert cfg.num_train_epochs == 1
    assert str(cfg.optim.value) == "adamw_torch"
    assert not hasattr(cfg, "max_prompt_length")
    assert any(n.startswith("max_prompt_length=512 ignored") for n in recipe.notices)


def test_original_zephyr_dpo_recipe_with_old_names() -> None:
    recipe, cfg = _mapped("dpo", CONFIGS / "zephyr-7b-beta" / "dpo_original.yaml")
    assert cfg.beta == 0.1
    assert cfg.num_train_epochs == 3
    assert str(cfg.lr_scheduler_type.value) == "linear"
    assert str(cfg.optim.value) == "rmsprop"
    assert str(cfg.eval_strategy.value) == "steps"  # from evaluation_strategy
    assert cfg.dataset_num_proc == 2  # preprocessing_num_workers 12, capped to the CPUs
    assert any("dataset_mixer ignored" in n for n in recipe.notices)
    assert any("dataset_splits ignored" in n for n in recipe.notices)


def test_qlora_recipe_maps_but_is_refused_on_cpu_before_loading() -> None:
    recipe, _ = _mapped("sft", CONFIGS / "zephyr-7b-beta" / "sft_qlora.yaml")
    assert recipe.model.use_peft and recipe.model.load_in_4bit
    assert recipe.model.lora_target_modules == [
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    ]
    with pytest.raises(BadInputError, match="bitsandbytes and an NVIDIA GPU"):
        check_quantization(recipe, CPU_OFFLINE)


@pytest.mark.parametrize("trainer", ["sft", "dpo"])
def test_shipped_smollm2_config_equals_the_builtin_default(trainer: str) -> None:
    shipped = load_recipe(trainer, CONFIGS / "smollm2-135m" / f"{trainer}.yaml")  # type: ignore[arg-type]
    builtin = load_recipe(trainer)  # type: ignore[arg-type]
    assert shipped.trainer_args == builtin.trainer_args
    assert shipped.model == builtin.model
    assert shipped.data == builtin.data
    assert set(DEFAULTS[trainer]) >= {"learning_rate", "max_steps", "max_length"}  # type: ignore[index]


def test_unknown_key_names_the_file_and_suggests(tmp_path: Path) -> None:
    path = _write(tmp_path, "learnin_rate: 1.0e-5\n")
    with pytest.raises(BadInputError) as err:
        load_recipe("sft", path)
    assert str(path) in str(err.value)
    assert "unknown key 'learnin_rate'" in str(err.value)
    assert "learning_rate" in str(err.value)


def test_dpo_key_in_an_sft_recipe_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="'beta' is a DPO setting"):
        load_recipe("sft", _write(tmp_path, "beta: 0.1\n"))


def test_old_and_new_name_together_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "max_seq_length: 512\nmax_length: 1024\n")
    with pytest.raises(BadInputError, match="'max_seq_length' and 'max_length' both set"):
        load_recipe("sft", path)


def test_wrong_type_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="lora_r"):
        load_recipe("sft", _write(tmp_path, "use_peft: true\nlora_r: lots\n"))


def test_trl_refusal_is_reported_with_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "lr_scheduler_type: sometimes\n")
    recipe = load_recipe("sft", path)
    adapt_to_environment(recipe, CPU_OFFLINE)
    with pytest.raises(BadInputError, match=r"recipe.yaml: TRL refused the trainer settings"):
        build_trainer_config(recipe, str(tmp_path / "out"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n- b\n", "expected a mapping"),
        ("key: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_yaml_files(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(BadInputError, match=message):
        load_recipe("sft", _write(tmp_path, text))


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="no such config file"):
        load_recipe("dpo", tmp_path / "nope.yaml")


def test_set_overrides_parse_yaml_values_and_apply_renames() -> None:
    assert parse_override("learning_rate=1e-5") == ("learning_rate", 1e-5)
    assert parse_override("packing=true") == ("packing", True)
    assert parse_override("report_to=[none]") == ("report_to", ["none"])
    recipe = load_recipe(
        "sft",
        None,
        [
            "max_seq_length=128",
            "learning_rate=3e-4",
            "gradient_checkpointing_kwargs.use_reentrant=false",
        ],
    )
    assert recipe.trainer_args["max_length"] == 128
    assert recipe.trainer_args["learning_rate"] == 3e-4
    assert recipe.trainer_args["activation_checkpointing_kwargs"] == {"use_reentrant": False}
    with pytest.raises(BadInputError, match="expected key=value"):
        parse_override("learning_rate")


def test_yaml_scalars_read_as_recipes_mean_them(tmp_path: Path) -> None:
    recipe = load_recipe("sft", _write(tmp_path, "learning_rate: 1e-4\nsave_strategy: no\n"))
    assert recipe.trainer_args["learning_rate"] == pytest.approx(1e-4)  # YAML 1.1: a string
    assert recipe.trainer_args["save_strategy"] == "no"  # YAML 1.1: False
    recipe = load_recipe("sft", None, ["eval_strategy=no", "packing=false"])
    assert recipe.trainer_args["eval_strategy"] == "no"
    assert recipe.trainer_args["packing"] is False


def test_bf16_default_off_and_pin_memory_off_on_cpu() -> None:
    recipe = load_recipe("sft", None, [])
    recipe.trainer_args.pop("bf16")
    adapt_to_environment(recipe, CPU_OFFLINE)
    cfg = build_trainer_config(recipe, "/tmp/unused-output")
    assert cfg.bf16 is False
    assert cfg.dataloader_pin_memory is False
    assert any(n.startswith("bf16 off") for n in recipe.notices)
