"""Real TRL SFT and DPO runs, a few steps each, with the tiny random model on real snapshots."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.conftest import ROOT
from training.runner import TrainRequest, TrainResult, train
from training.sample_snapshots import PREFS_SAMPLE, SFT_SAMPLE, commit_sample
from warehouse.errors import BadInputError
from warehouse.runs import get_run, list_runs
from warehouse.store import Warehouse

TINY = ROOT / "configs" / "tiny"


@pytest.fixture(scope="module")
def wh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("train") / "wh.duckdb"
    commit_sample(path, SFT_SAMPLE, "sft", tag="chat")
    commit_sample(path, PREFS_SAMPLE, "preferences", tag="prefs")
    return path


def _run(wh: Path, trainer: str, out: Path, *overrides: str, fresh: bool = False) -> TrainResult:
    result = train(
        TrainRequest(
            trainer,  # type: ignore[arg-type]
            "chat" if trainer == "sft" else "prefs",
            wh,
            config=TINY / f"{trainer}.yaml",
            overrides=list(overrides),
            output_dir=out,
            fresh=fresh,
        )
    )
    assert isinstance(result, TrainResult)
    return result


def _check_run(wh: Path, result: TrainResult, out: Path, steps: int) -> None:
    m = result.metrics
    assert result.status == "completed"
    assert m["global_step"] == steps
    assert math.isfinite(m["first_loss"]) and math.isfinite(m["last_loss"])
    # One batch (max_train_samples == batch size) seen again and again: the loss must fall.
    assert m["last_loss"] < m["first_loss"]
    assert math.isfinite(m["eval_loss"])
    assert (out / f"checkpoint-{steps}" / "trainer_state.json").exists()
    assert (out / "config.json").exists() and (out / "tokenizer.json").exists()
    card = (out / "README.md").read_text()
    assert result.snapshot_id in card and result.run_id in card
    row = get_run(Warehouse(wh), result.run_id)
    assert row["status"] == "completed"
    assert row["snapshot_id"] == result.snapshot_id
    assert row["output_dir"] == str(out.resolve())
    assert row["metrics"]["global_step"] == steps
    assert row["config"]["trainer_args"]["learning_rate"] == 1e-3
    assert row["code_version"]


def test_sft_learns_a_repeated_batch_and_is_recorded(wh: Path, tmp_path: Path) -> None:
    out = tmp_path / "sft"
    result = _run(wh, "sft", out, "max_train_samples=2")
    _check_run(wh, result, out, steps=6)
    tok = json.loads((out / "tokenizer_config.json").read_text())
    assert "<|assistant|>" in tok.get("chat_template", "") or (out / "chat_template.jinja").exists()


def test_dpo_learns_a_repeated_batch_and_is_recorded(wh: Path, tmp_path: Path) -> None:
    out = tmp_path / "dpo"
    result = _run(wh, "dpo", out, "max_train_samples=2")
    _check_run(wh, result, out, steps=6)
    assert result.metrics["first_loss"] == pytest.approx(math.log(2), rel=1e-3)  # policy == ref


def test_rerun_resumes_from_the_last_checkpoint(wh: Path, tmp_path: Path) -> None:
    out = tmp_path / "resume"
    first = _run(wh, "sft", out, "max_steps=3")
    assert first.metrics["global_step"] == 3 and first.resumed_from is None
    second = _run(wh, "sft", out, "max_steps=6")
    assert second.resumed_from == str(out.resolve() / "checkpoint-3")
    assert second.metrics["global_step"] == 6
    assert "resumed from" in (out / "README.md").read_text()
    fresh = _run(wh, "sft", out, "max_steps=2", fresh=True)
    assert fresh.resumed_from is None and fresh.metrics["global_step"] == 2
    assert not (out / "checkpoint-6").exists()


def test_a_folder_of_another_snapshot_is_not_resumed(wh: Path, tmp_path: Path) -> None:
    out = tmp_path / "mixed"
    _run(wh, "sft", out, "max_steps=3")
    with pytest.raises(BadInputError, match=r"holds a sft run on snapshot .* cannot resume as dpo"):
        _run(wh, "dpo", out, "max_steps=3")


def test_lora_trains_only_an_adapter(wh: Path, tmp_path: Path) -> None:
    out = tmp_path / "lora"
    result = _run(
        wh, "sft", out, "use_peft=true", "lora_r=4", "lora_alpha=8", "max_train_samples=2"
    )
    assert result.status == "completed"
    assert (out / "adapter_config.json").exists()
    assert (out / "adapter_model.safetensors").exists()
    assert result.metrics["last_loss"] < result.metrics["first_loss"]


def test_prompts_longer_than_max_length_are_a_clear_error(wh: Path, tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="raise max_length"):
        _run(wh, "dpo", tmp_path / "short", "max_length=8")
    failed = list_runs(Warehouse(wh), status="failed")
    assert failed and "max_length" in failed[0]["error"]


def test_dpo_with_lora_uses_the_base_model_as_reference(wh: Path, tmp_path: Path) -> None:
    out = tmp_path / "dpo-lora"
    result = _run(
        wh, "dpo", out, "use_peft=true", "lora_r=4", "lora_alpha=8", "max_train_samples=2"
    )
    assert (out / "adapter_model.safetensors").exists()
    # A fresh adapter changes nothing at first, so policy == reference and the loss is log 2.
    assert result.metrics["first_loss"] == pytest.approx(math.log(2), rel=1e-3)
    assert result.metrics["last_loss"] < result.metrics["first_loss"]
