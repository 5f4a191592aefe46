"""End to end: curate the bundled raw samples, SFT then DPO with SmolLM2; kill and resume."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLES, CliResult
from training.runner import TrainRequest, last_checkpoint, run_training
from training.sample_snapshots import SFT_SAMPLE, commit_sample
from warehouse.runs import get_run, list_runs
from warehouse.store import Warehouse

pytestmark = pytest.mark.slow

# Runs `curate` in a child process, registering the training commands if curate/cli.py does not.
_CHILD = """
import sys
from curate import cli
from curate.cli_train import runs_command, train_app
if not any(g.name == "train" for g in cli.app.registered_groups):
    cli.app.add_typer(train_app, name="train")
    cli.app.command("runs")(runs_command)
sys.exit(cli.main(sys.argv[1:]))
"""


def _curate_child(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, *args],
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_curate_then_sft_then_dpo_with_smollm2(
    cli: Callable[..., CliResult], wh_path: Path, tmp_path: Path
) -> None:
    ingest = cli(
        "ingest",
        str(SAMPLES / "ultrachat_raw_fixture.jsonl"),
        str(SAMPLES / "ultrafeedback_raw_fixture.jsonl"),
    )
    assert ingest.code == 0, ingest.err
    for recipe, tag in (("ultrachat_200k", "chat"), ("ultrafeedback_binarized", "prefs")):
        made = cli("run", recipe, "--tag", tag, "--no-progress")
        assert made.code == 0, made.err
    small = ["max_steps=1", "save_steps=1", "max_length=192", "max_eval_samples=1"]
    small += ["per_device_train_batch_size=1", "per_device_eval_batch_size=1"]
    sft = run_training(
        TrainRequest("sft", "chat", wh_path, overrides=small, output_dir=tmp_path / "sft")
    )
    assert sft.status == "completed" and sft.model == "builtin:smollm2-135m-instruct"
    assert math.isfinite(sft.metrics["last_loss"]) and math.isfinite(sft.metrics["eval_loss"])
    assert (tmp_path / "sft" / "model.safetensors").exists()
    dpo = run_training(
        TrainRequest(
            "dpo",
            "prefs",
            wh_path,
            overrides=[*small, f"model_name_or_path={sft.output_dir}"],
            output_dir=tmp_path / "dpo",
        )
    )
    assert dpo.status == "completed"
    # The reference is the starting policy, so the first DPO loss is log(2).
    assert dpo.metrics["first_loss"] == pytest.approx(math.log(2), abs=1e-3)
    card = (tmp_path / "dpo" / "README.md").read_text()
    assert dpo.snapshot_id in card and sft.output_dir in card
    runs = list_runs(Warehouse(wh_path))
    assert {(r["trainer"], r["snapshot_id"], r["status"]) for r in runs} == {
        ("sft", sft.snapshot_id, "completed"),
        ("dpo", dpo.snapshot_id, "completed"),
    }


def _wait_for_checkpoint(out: Path, proc: subprocess.Popen[str], timeout: float) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ckpt = last_checkpoint(out)
        if ckpt is not None:
            return ckpt
        if proc.poll() is not None:
            raise AssertionError(f"training exited early: {proc.communicate()[1][-2000:]}")
        time.sleep(0.2)
    raise AssertionError("no checkpoint appeared")


def test_killed_run_resumes_from_its_last_checkpoint(tmp_path: Path) -> None:
    wh = tmp_path / "wh.duckdb"
    commit_sample(wh, SFT_SAMPLE, "sft", tag="chat")
    out = tmp_path / "model"
    args = ["--warehouse", str(wh), "train", "sft", "--snapshot", "chat"]
    args += ["--config", str(ROOT / "configs" / "tiny" / "sft.yaml"), "--output-dir", str(out)]
    proc = _curate_child(*args, "--set", "max_steps=500", "--set", "save_steps=2")
    try:
        _wait_for_checkpoint(out, proc, timeout=180)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    killed = list_runs(Warehouse(wh))
    assert [r["status"] for r in killed] == ["running"]  # SIGKILL: no chance to finish the row
    ckpt = last_checkpoint(out)
    assert ckpt is not None
    step = int(ckpt.name.split("-")[1])
    resumed = run_training(
        TrainRequest(
            "sft",
            "chat",
            wh,
            config=ROOT / "configs" / "tiny" / "sft.yaml",
            overrides=[f"max_steps={step + 2}"],
            output_dir=out,
        )
    )
    assert resumed.resumed_from == str(ckpt.resolve())
    assert resumed.metrics["global_step"] == step + 2
    state = json.loads((out / f"checkpoint-{step + 2}" / "trainer_state.json").read_text())
    assert state["global_step"] == step + 2
    assert get_run(Warehouse(wh), killed[0]["run_id"])["status"] == "interrupted"
    assert get_run(Warehouse(wh), resumed.run_id)["config"]["resumed_from"] == str(ckpt.resolve())


def test_sigterm_records_the_run_as_interrupted(tmp_path: Path) -> None:
    wh = tmp_path / "wh.duckdb"
    commit_sample(wh, SFT_SAMPLE, "sft", tag="chat")
    out = tmp_path / "model"
    args = ["--warehouse", str(wh), "train", "sft", "--snapshot", "chat"]
    args += ["--config", str(ROOT / "configs" / "tiny" / "sft.yaml"), "--output-dir", str(out)]
    proc = _curate_child(*args, "--set", "max_steps=500", "--set", "save_steps=2")
    _wait_for_checkpoint(out, proc, timeout=180)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    (row,) = list_runs(Warehouse(wh))
    assert row["status"] == "interrupted" and "signal" in row["error"]
