"""`curate train sft|dpo` and `curate runs` through the real entry point and its exit codes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from curate import cli
from curate.cli_train import runs_command, train_app
from tests.conftest import ROOT, CliResult
from training.sample_snapshots import PREFS_SAMPLE, SFT_SAMPLE, commit_sample


def _ensure_registered() -> None:
    """curate/cli.py registers these; until it does, register them the same way here."""
    if not any(g.name == "train" for g in cli.app.registered_groups):
        cli.app.add_typer(train_app, name="train")
    if not any(c.name == "runs" for c in cli.app.registered_commands):
        cli.app.command("runs")(runs_command)


@pytest.fixture
def snaps(wh_path: Path) -> tuple[str, str]:
    _ensure_registered()
    sft = commit_sample(wh_path, SFT_SAMPLE, "sft", tag="chat")
    prefs = commit_sample(wh_path, PREFS_SAMPLE, "preferences", tag="prefs")
    return sft, prefs


def test_dry_run_prints_the_plan_and_loads_nothing(
    cli: Callable[..., CliResult], snaps: tuple[str, str], tmp_path: Path
) -> None:
    res = cli(
        "train",
        "dpo",
        "--snapshot",
        "prefs",
        "--config",
        str(ROOT / "configs" / "zephyr-7b-beta" / "dpo.yaml"),
        "--set",
        "model_name_or_path=builtin:tiny-random-llama",
        "--output-dir",
        str(tmp_path / "o"),
        "--dry-run",
        "--json",
    )
    assert res.code == 0, res.err
    plan: Any = res.json()
    assert plan["snapshot_id"] == snaps[1]
    assert plan["train_split"] == "train_prefs" and plan["eval_split"] == "test_prefs"
    assert plan["config"]["trainer_args"]["beta"] == 0.01
    assert any("max_prompt_length=512 ignored" in n for n in plan["notices"])
    assert "note: dataset_mixture ignored" in res.err
    assert not (tmp_path / "o").exists()
    assert cli("runs", "--json").json() == []


def test_errors_map_to_exit_code_3(cli: Callable[..., CliResult], snaps: tuple[str, str]) -> None:
    wrong_kind = cli("train", "sft", "--snapshot", "prefs", "--dry-run")
    assert wrong_kind.code == 3
    assert "holds preferences data, but `curate train sft` needs a sft snapshot" in wrong_kind.err
    bad_key = cli("train", "sft", "--snapshot", "chat", "--set", "max_seq_lenght=10", "--dry-run")
    assert bad_key.code == 3 and "unknown key 'max_seq_lenght'" in bad_key.err
    missing = cli("train", "dpo", "--snapshot", "prefs", "--set", "train_split=train_gen")
    assert missing.code == 3 and "no split 'train_gen'" in missing.err


def test_train_then_runs_lists_it(
    cli: Callable[..., CliResult], snaps: tuple[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "sft-model"
    res = cli(
        "train",
        "sft",
        "-s",
        "chat",
        "-c",
        str(ROOT / "configs" / "tiny" / "sft.yaml"),
        "--set",
        "max_steps=2",
        "-o",
        str(out),
        "--json",
    )
    assert res.code == 0, res.err
    result: Any = res.json()
    assert result["status"] == "completed" and result["metrics"]["global_step"] == 2
    listed: Any = cli("runs", "--snapshot", "chat", "--json").json()
    assert [r["run_id"] for r in listed] == [result["run_id"]]
    assert listed[0]["output_dir"] == str(out.resolve())
    assert cli("runs", "--snapshot", "prefs", "--json").json() == []
    table = cli("runs")
    assert result["run_id"] in table.out and "completed" in table.out
