"""Tests of the synthetic data generator: format, determinism, and exact ground truth."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest

from warehouse.synth import (
    PERSONA_PHRASES,
    PROFILE_PATH,
    UF_MODELS,
    UF_PRINCIPLES,
    UF_SOURCE_MIX,
    UF_SOURCES,
    SynthConfig,
    SynthResult,
    build_profile,
    generate,
    jaccard5,
    main,
)

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "data" / "benchmarks"
SAMPLE = REPO / "data" / "samples" / "ultrachat_200k_sample.jsonl"

CFG = SynthConfig(
    n_dialogues=4000,
    n_prompts=400,
    seed=7,
    benchmark_rate=0.01,
    score_bug_rate=0.02,
    truthfulqa_leak_rate=0.02,
    block_size=1500,
)
CANONICAL = [p.lower().replace("’", "'") for p in PERSONA_PHRASES]
LOWER_START = re.compile(r"[.?!] [a-z]")
STANDALONE_I = re.compile(r"(?<![A-Za-z'’])i(?![A-Za-z'’])")
CODE = re.compile(r"```.*?```", re.S)


def _norm(text: str) -> str:
    return text.lower().replace("’", "'")


def _prose(text: str) -> str:
    return CODE.sub("", text)


def _has_persona(text: str) -> bool:
    return any(p in _norm(text) for p in CANONICAL)


class Synth:
    """One generated data set, parsed once for all tests of this module."""

    def __init__(self, result: SynthResult) -> None:
        self.result = result
        self.uc_lines = result.ultrachat_path.read_bytes().splitlines(keepends=True)
        self.uc = [orjson.loads(line) for line in self.uc_lines]
        self.uf = [
            orjson.loads(line) for line in result.ultrafeedback_path.read_bytes().splitlines()
        ]
        self.gt = pq.read_table(result.ground_truth_path).to_pylist()
        for row in self.gt:
            row["info"] = json.loads(row["detail"])
        self.rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in self.gt:
            self.rows[row["plant"]].append(row)
        self.uc_planted = {r["record_id"] for r in self.gt if r["dataset"] == "ultrachat"}

    def data(self, record_id: str) -> list[str]:
        data: list[str] = self.uc[int(record_id)]["data"]
        return data


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return Synth(generate(tmp_path_factory.mktemp("synth"), CFG, progress=False))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_deterministic(tmp_path: Path) -> None:
    cfg = SynthConfig(n_dialogues=1200, n_prompts=100, block_size=500, benchmark_rate=0.01)
    a = generate(tmp_path / "a", cfg, progress=False)
    b = generate(tmp_path / "b", cfg, progress=False)
    c = generate(tmp_path / "c", SynthConfig(**{**cfg.__dict__, "seed": 1}), progress=False)
    for name in ("ultrachat_path", "ultrafeedback_path", "ground_truth_path"):
        assert _sha(getattr(a, name)) == _sha(getattr(b, name))
        assert _sha(getattr(a, name)) != _sha(getattr(c, name))
    manifest = json.loads(a.manifest_path.read_text())
    assert manifest["sha256"]["ultrachat_raw.jsonl"] == _sha(a.ultrachat_path)
    assert manifest["counts"] == a.counts


def test_ultrachat_lines(synth: Synth) -> None:
    assert len(synth.uc) == CFG.n_dialogues
    for n, (line, rec) in enumerate(zip(synth.uc_lines, synth.uc, strict=True)):
        assert list(rec) == ["id", "data"]
        assert rec["id"] == str(n)  # string ids, unique: the line number
        data = rec["data"]
        assert len(data) >= 2 and len(data) % 2 == 0
        assert all(isinstance(t, str) and t.strip() for t in data)
        assert line == orjson.dumps(rec) + b"\n"  # one encoding for bulk and planted lines


def test_ultrafeedback_schema(synth: Synth) -> None:
    assert len(synth.uf) == CFG.n_prompts
    aspects = ["instruction_following", "honesty", "truthfulness", "helpfulness"]
    sources = Counter(rec["source"] for rec in synth.uf)
    assert set(sources) == set(UF_SOURCES)
    mix = dict(zip(UF_SOURCES, UF_SOURCE_MIX, strict=True))
    for name, count in sources.items():
        assert abs(count - mix[name] / sum(UF_SOURCE_MIX) * CFG.n_prompts) < 1
    for rec in synth.uf:
        assert list(rec) == [
            "source",
            "instruction",
            "models",
            "correct_answers",
            "incorrect_answers",
            "completions",
        ]
        assert isinstance(rec["instruction"], str) and rec["instruction"]
        assert len(rec["models"]) == 4 and len(set(rec["models"])) == 4
        assert set(rec["models"]) <= set(UF_MODELS)
        if rec["source"] in ("truthful_qa", "flan"):
            assert rec["correct_answers"] != ["None"]
        else:
            assert rec["correct_answers"] == ["None"] and rec["incorrect_answers"] == ["None"]
        assert [c["model"] for c in rec["completions"]] == rec["models"]
        for comp in rec["completions"]:
            assert list(comp) == [
                "model",
                "principle",
                "custom_system_prompt",
                "response",
                "annotations",
                "critique",
                "overall_score",
                "fine-grained_score",
            ]
            assert comp["principle"] in UF_PRINCIPLES
            ann = comp["annotations"]
            assert list(ann) == aspects
            assert list(ann["truthfulness"]) == [
                "Type",
                "Rationale",
                "Rating",
                "Rationale For Rating",
            ]
            assert list(ann["helpfulness"]) == [
                "Type",
                "Rationale",
                "Rating",
                "Rationale For Rating",
            ]
            values = []
            for aspect in aspects:
                rating = ann[aspect]["Rating"]
                assert isinstance(rating, str)
                if rating == "N/A":
                    assert aspect in ("truthfulness", "helpfulness")
                else:
                    assert rating in {"1", "2", "3", "4", "5"}
                    values.append(int(rating))
                assert isinstance(ann[aspect]["Rationale"], str)
            assert isinstance(comp["overall_score"], float) and 1.0 <= comp["overall_score"] <= 10.0
            assert isinstance(comp["fine-grained_score"], float)
            assert comp["fine-grained_score"] == pytest.approx(sum(values) / len(values))


def test_counts_match_rates(synth: Synth) -> None:
    n = CFG.n_dialogues
    expected = {
        "exact_dup": CFG.exact_dup_rate * n,
        "near_dup": CFG.near_dup_rate * n,
        "persona": CFG.persona_rate * n,
        "persona_negative": CFG.persona_negative_rate * n,
        "lowercase": CFG.lowercase_rate * n,
        "benchmark": CFG.benchmark_rate * n,
        "score_bug": CFG.score_bug_rate * 4 * CFG.n_prompts,
    }
    for plant, want in expected.items():
        assert abs(synth.result.counts[plant] - want) <= 0.5, plant
        assert len(synth.rows[plant]) == synth.result.counts[plant]
    per_record = Counter(
        (r["dataset"], r["record_id"]) for r in synth.gt if r["plant"] != "score_bug"
    )
    assert max(per_record.values()) == 1  # plants never overlap on one record


def test_exact_dups(synth: Synth) -> None:
    for row in synth.rows["exact_dup"]:
        tgt = row["target_id"]
        assert int(tgt) < int(row["record_id"])
        assert tgt not in synth.uc_planted
        assert synth.data(row["record_id"]) == synth.data(tgt)


def test_near_dups(synth: Synth) -> None:
    for row in synth.rows["near_dup"]:
        tgt, info = row["target_id"], row["info"]
        assert int(tgt) < int(row["record_id"]) and tgt not in synth.uc_planted
        new, old = synth.data(row["record_id"]), synth.data(tgt)
        assert new != old and len(new) == len(old)
        changed = [i for i, (a, b) in enumerate(zip(new, old, strict=True)) if a != b]
        assert 1 <= len(changed) <= 2 and set(changed) <= set(info["turns"])
        assert row["turn_index"] == info["turns"][0]
        assert 1 <= info["n_edits"] <= 5
        assert 0.7 <= jaccard5(new, old) <= 0.95
        assert jaccard5(new, old) == pytest.approx(info["jaccard5"], abs=1e-4)


def test_persona(synth: Synth) -> None:
    for row in synth.rows["persona"]:
        t, info = row["turn_index"], row["info"]
        data = synth.data(row["record_id"])
        assert t % 2 == 1
        assert info["surface"] in data[t]
        assert _norm(info["phrase"]) in _norm(data[t])
    surfaces = {r["info"]["surface"] for r in synth.rows["persona"]}
    assert any("’" in s for s in surfaces) and any(s.startswith("as ") for s in surfaces)


def test_persona_negatives(synth: Synth) -> None:
    kinds = Counter(r["info"]["kind"] for r in synth.rows["persona_negative"])
    assert kinds["user_phrase"] > 0 and kinds["assistant_discussion"] > 0
    for row in synth.rows["persona_negative"]:
        t, info = row["turn_index"], row["info"]
        data = synth.data(row["record_id"])
        assert info["text"] in data[t]
        if info["kind"] == "user_phrase":
            assert t % 2 == 0 and _norm(info["phrase"]) in _norm(data[t])
        else:
            assert t % 2 == 1
        # Never in the persona position: no assistant turn carries a persona phrase.
        assert not any(_has_persona(x) for x in data[1::2])


def test_no_persona_outside_plants(synth: Synth) -> None:
    persona = {r["record_id"] for r in synth.rows["persona"]}
    for rec in synth.uc:
        if rec["id"] not in persona:
            assert not any(_has_persona(x) for x in rec["data"][1::2]), rec["id"]


def test_lowercase(synth: Synth) -> None:
    for row in synth.rows["lowercase"]:
        info = row["info"]
        prose = _prose(synth.data(row["record_id"])[row["turn_index"]])
        assert len(LOWER_START.findall(prose)) == info["n_starts"] >= 1
        assert len(STANDALONE_I.findall(prose)) == info["n_i"]
    assert any(r["info"]["n_i"] for r in synth.rows["lowercase"])
    # Everything else is correctly cased (code blocks excepted).
    lowercase = {r["record_id"] for r in synth.rows["lowercase"]}
    for rec in synth.uc:
        if rec["id"] not in lowercase:
            for text in rec["data"]:
                prose = _prose(text)
                assert not LOWER_START.search(prose) and not STANDALONE_I.search(prose), rec["id"]


def _benchmark_text(name: str, item_id: int, turn: int | None) -> str:
    if name in ("mt_bench", "vicuna"):
        fname = "mt_bench_question.jsonl" if name == "mt_bench" else "vicuna_bench_question.jsonl"
        for line in (BENCH / fname).read_text().splitlines():
            rec = json.loads(line)
            if rec["question_id"] == item_id:
                assert turn is not None
                text: str = rec["turns"][turn - 1]
                return text
        raise KeyError(item_id)
    if name == "alpaca_eval":
        lines = (BENCH / "alpaca_eval_instructions.jsonl").read_text().splitlines()
        text = json.loads(lines[item_id])["instruction"]
        return text
    with (BENCH / "truthfulqa.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))[item_id]["Question"]


def test_benchmark(synth: Synth) -> None:
    assert synth.rows["benchmark"]
    for row in synth.rows["benchmark"]:
        info = row["info"]
        first = synth.data(row["record_id"])[0]
        item = _benchmark_text(info["benchmark"], info["item_id"], info["turn"])
        assert row["turn_index"] == 0 and info["verbatim"] == (info["edit"] is None)
        if info["verbatim"]:
            assert first == item
            continue
        assert first != item
        if info["edit"] == "case":
            assert first.lower() == item.lower()
        elif info["edit"] == "punct":
            assert first.startswith(item.rstrip()) and not first[len(item.rstrip()) :].strip("?!. ")
        else:
            a, b = first.split(" "), item.split(" ")
            assert len(a) == len(b) and sum(x != y for x, y in zip(a, b, strict=True)) == 1


def test_no_accidental_duplicates(synth: Synth) -> None:
    exact = {r["record_id"] for r in synth.rows["exact_dup"]}
    seen: dict[bytes, str] = {}
    for rec in synth.uc:
        key = orjson.dumps(rec["data"])
        if key in seen:
            assert rec["id"] in exact
        else:
            assert rec["id"] not in exact
            seen[key] = rec["id"]
    clean_first = Counter(r["data"][0] for r in synth.uc if r["id"] not in synth.uc_planted)
    assert clean_first.most_common(1)[0][1] == 1


def test_ultrafeedback_plants(synth: Synth) -> None:
    with (BENCH / "truthfulqa.csv").open(newline="") as fh:
        questions = [r["Question"] for r in csv.DictReader(fh)]
    bugs = {(r["record_id"], r["turn_index"]) for r in synth.rows["score_bug"]}
    found = set()
    for i, rec in enumerate(synth.uf):
        for j, comp in enumerate(rec["completions"]):
            if comp["overall_score"] == 10.0 and comp["fine-grained_score"] <= 2.0:
                found.add((str(i), j))
                assert comp["critique"].startswith("Your answer misses the point")
    assert found == bugs and bugs
    leaks = synth.rows["truthfulqa_leak"] + synth.rows["truthfulqa_source"]
    assert synth.rows["truthfulqa_leak"] and synth.rows["truthfulqa_source"]
    for row in leaks:
        rec = synth.uf[int(row["record_id"])]
        assert rec["instruction"] == questions[row["info"]["item_id"]]
        assert (rec["source"] == "truthful_qa") == (row["plant"] == "truthfulqa_source")
    in_gt = {r["record_id"] for r in leaks}
    question_set = set(questions)
    assert {str(i) for i, r in enumerate(synth.uf) if r["instruction"] in question_set} == in_gt


def test_build_profile_matches_committed_file() -> None:
    profile = build_profile(SAMPLE)
    assert profile["records"] == 400
    for key in ("first_user_chars", "user_chars", "assistant_chars", "sentence_words"):
        assert len(profile[key]) == 101 and profile[key] == sorted(profile[key])
    assert PROFILE_PATH.stat().st_size < 50_000
    assert json.loads(PROFILE_PATH.read_text()) == profile


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [str(tmp_path), "--dialogues", "300", "--prompts", "20", "--seed", "3", "--no-progress"]
    assert main(argv) == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["records"] == {"ultrachat": 300, "ultrafeedback": 20}
    assert "counts" in capsys.readouterr().out


def test_empty_and_tiny_configs(tmp_path: Path) -> None:
    empty = generate(tmp_path / "e", SynthConfig(n_dialogues=0, n_prompts=0), progress=False)
    assert empty.ultrachat_path.read_bytes() == b"" and sum(empty.counts.values()) == 0
    tiny = generate(
        tmp_path / "t", SynthConfig(n_dialogues=7, n_prompts=1, exact_dup_rate=0.2), progress=False
    )
    lines = tiny.ultrachat_path.read_bytes().splitlines()
    assert len(lines) == 7 and tiny.counts["exact_dup"] == 1
