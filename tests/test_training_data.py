"""Chat template, snapshot checks and trainer rows, on the bundled real records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from datasets import Dataset

from training import snapshot_data
from training.chat_template import (
    ZEPHYR_CHAT_TEMPLATE,
    apply_template,
    check_setting,
    with_system_turn,
)
from training.runner import TrainRequest, plan_run
from training.sample_snapshots import PREFS_SAMPLE, SFT_SAMPLE, commit_sample
from training.tiny_model import ensure_tiny_model
from warehouse.errors import BadInputError
from warehouse.runs import list_runs
from warehouse.snapshots import Snapshot, open_snapshot
from warehouse.store import Warehouse

# zephyr-data-recipe.md section 5.5, "as a single YAML/JSON string".
DOC_TEMPLATE = json.loads(
    r'''"{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}"'''
)


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(ensure_tiny_model())


@pytest.fixture(scope="module")
def snaps(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    wh = tmp_path_factory.mktemp("wh") / "wh.duckdb"
    sft = commit_sample(wh, SFT_SAMPLE, "sft", tag="chat")
    prefs = commit_sample(wh, PREFS_SAMPLE, "preferences", tag="prefs")
    return wh, sft, prefs


def test_zephyr_template_is_the_published_string() -> None:
    assert ZEPHYR_CHAT_TEMPLATE == DOC_TEMPLATE


def test_zephyr_template_renders_like_zephyr(tokenizer: Any) -> None:
    apply_template(tokenizer, "zephyr", "tiny")
    messages = with_system_turn([{"role": "user", "content": "Hi there"}])
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == "<|system|>\n</s>\n<|user|>\nHi there</s>\n<|assistant|>\n"
    full = tokenizer.apply_chat_template(
        [*messages, {"role": "assistant", "content": "Hello"}], tokenize=False
    )
    assert full.endswith("<|assistant|>\nHello</s>\n")


def test_model_template_needs_one(tokenizer: Any) -> None:
    tokenizer.chat_template = None
    with pytest.raises(BadInputError, match="has no chat template of its own"):
        apply_template(tokenizer, "model", "tiny")
    with pytest.raises(BadInputError, match="expected 'zephyr', 'model'"):
        check_setting("chatml please", "recipe.yaml")


def test_system_turn_inserted_once() -> None:
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "x"}]
    assert with_system_turn(msgs) == msgs
    assert with_system_turn(msgs[1:])[0] == {"role": "system", "content": ""}


def test_sft_rows_keep_messages_only() -> None:
    ds = Dataset.from_list(_records(SFT_SAMPLE)[:5])
    rows = snapshot_data.sft_rows(ds, insert_system=True, split="train_sft")
    assert rows.column_names == ["messages"]
    first = rows[0]["messages"]
    assert first[0] == {"role": "system", "content": ""}
    assert first[1]["role"] == "user" and first[-1]["role"] == "assistant"


def test_dpo_rows_split_the_shared_prompt() -> None:
    records = _records(PREFS_SAMPLE)[:5]
    rows = snapshot_data.dpo_rows(Dataset.from_list(records), insert_system=False, split="p")
    assert rows.column_names == ["prompt", "chosen", "rejected"]
    r = rows[0]
    assert [m["role"] for m in r["prompt"]] == ["user"]
    assert r["prompt"][0]["content"] == records[0]["chosen"][0]["content"]
    assert r["chosen"] == [records[0]["chosen"][-1]]
    assert r["rejected"] == [records[0]["rejected"][-1]]


def test_dpo_rows_refuse_pairs_with_different_prompts() -> None:
    rec = _records(PREFS_SAMPLE)[0]
    rec["rejected"] = [{"role": "user", "content": "another question"}, rec["rejected"][-1]]
    with pytest.raises(BadInputError, match=r"row 0 .* do not share the same prompt"):
        snapshot_data.dpo_rows(Dataset.from_list([rec]), insert_system=False, split="train")


def test_wrong_kind_is_refused(snaps: tuple[Path, str, str]) -> None:
    wh, sft, prefs = snaps
    with pytest.raises(BadInputError, match="holds preferences data, but `curate train sft`"):
        snapshot_data.choose_splits(open_snapshot(wh, prefs), "sft", None, None)
    with pytest.raises(BadInputError, match="holds sft data, but `curate train dpo`"):
        snapshot_data.choose_splits(open_snapshot(wh, sft), "dpo", None, None)


def test_missing_and_empty_splits_are_refused(snaps: tuple[Path, str, str]) -> None:
    wh, sft, _ = snaps
    snap = open_snapshot(wh, sft)
    with pytest.raises(BadInputError, match=r"no split 'train_gen'; it has: .*train_sft"):
        snapshot_data.choose_splits(snap, "sft", "train_gen", None)
    with pytest.raises(BadInputError, match="no split 'test_gen' \\(eval_split\\)"):
        snapshot_data.choose_splits(snap, "sft", None, "test_gen")
    empty = Snapshot(Warehouse(wh), "s_empty", "sft", "r", {"train_sft": 0}, "", "")
    with pytest.raises(BadInputError, match="split 'train_sft' is empty"):
        snapshot_data.choose_splits(empty, "sft", None, None)
    choice = snapshot_data.choose_splits(snap, "sft", None, "none")
    assert (choice.train, choice.eval) == ("train_sft", None)
    default = snapshot_data.choose_splits(snap, "sft", None, None)
    assert (default.train, default.eval) == ("train_sft", "test_sft")


def test_bad_snapshot_fails_before_any_model_is_resolved(snaps: tuple[Path, str, str]) -> None:
    wh, _, prefs = snaps
    # The model path does not exist either: the snapshot error must come first, and no run row.
    req = TrainRequest(
        "sft", prefs, wh, overrides=["model_name_or_path=/nonexistent/model"], dry_run=True
    )
    with pytest.raises(BadInputError, match="holds preferences data"):
        plan_run(req)
    with pytest.raises(BadInputError, match="no snapshot or tag 'nope'"):
        plan_run(TrainRequest("sft", "nope", wh, dry_run=True))
    assert list_runs(Warehouse(wh)) == []


def test_plan_reads_the_snapshot_and_reports_the_mixture(
    snaps: tuple[Path, str, str], tmp_path: Path
) -> None:
    wh, sft, _ = snaps
    cfg = tmp_path / "r.yaml"
    cfg.write_text(
        "model_name_or_path: builtin:tiny-random-llama\nmax_train_samples: 7\n"
        "dataset_mixer:\n  HuggingFaceH4/ultrachat_200k: 1.0\n"
    )
    plan = plan_run(TrainRequest("sft", "chat", wh, config=cfg, output_dir=tmp_path / "o"))
    assert plan.snapshot.snapshot_id == sft
    assert len(plan.train_rows) == 7
    assert plan.splits.eval == "test_sft"
    assert plan.resume_from is None
    assert any("dataset_mixer ignored" in n for n in plan.recipe.notices)
