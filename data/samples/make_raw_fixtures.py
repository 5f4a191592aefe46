"""Build the raw-format fixtures from the real records beside this file.

No public copy of the raw formats could be had offline, so these are rebuilt from real
published records following the documented schemas (../docs/schema.md, and the upstream
READMEs quoted in PROVENANCE.md):
- ultrachat_raw_fixture.jsonl: `{"id", "data"}` from ultrachat_200k_sample.jsonl (messages'
  contents in order; ids are the row numbers as strings);
- ultrafeedback_raw_fixture.jsonl: openbmb records from ultrafeedback_binarized_sample.jsonl.
  The binarized rows carry two of the four completions (chosen and rejected), so each record
  has those two; overall_score is the published score; aspect ratings are derived from it
  (round(score / 2), clipped to 1-5, every 7th truthfulness rating "N/A"), and
  fine-grained_score is their mean, as upstream computes it.
Run: python data/samples/make_raw_fixtures.py
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent
SOURCES = ["evol_instruct", "false_qa", "flan", "sharegpt", "truthful_qa", "ultrachat"]
MODELS = ["gpt-4", "llama-2-13b-chat", "wizardlm-70b", "alpaca-7b", "ultralm-65b", "starchat"]
PRINCIPLES = ["helpfulness", "honesty", "truthfulness", "verbalized_calibration"]


def ultrachat_raw(n: int = 200) -> None:
    out = HERE / "ultrachat_raw_fixture.jsonl"
    with open(HERE / "ultrachat_200k_sample.jsonl") as src, open(out, "w") as dst:
        for i, line in enumerate(src):
            if i >= n:
                break
            rec = json.loads(line)
            data = [m["content"] for m in rec["messages"]]
            dst.write(json.dumps({"id": str(i), "data": data}, ensure_ascii=False) + "\n")


def _completion(k: int, i: int, response: str, score: float) -> dict:
    r = int(min(5, max(1, round(score / 2))))
    truth = "N/A" if (i + k) % 7 == 0 else str(r)
    ratings = [r, r, r] + ([] if truth == "N/A" else [r])
    return {
        "model": MODELS[(i + k) % len(MODELS)],
        "principle": PRINCIPLES[(i + k) % len(PRINCIPLES)],
        "custom_system_prompt": "You are a helpful assistant.",
        "response": response,
        "annotations": {
            "instruction_following": {"Rating": str(r), "Rationale": "Follows the task."},
            "honesty": {"Rating": str(r), "Rationale": "Expresses uncertainty well."},
            "truthfulness": {
                "Type": ["0"],
                "Rationale": "No hallucination.",
                "Rating": truth,
                "Rationale For Rating": "Accurate.",
            },
            "helpfulness": {
                "Type": ["1", "2"],
                "Rationale": "Clear and relevant.",
                "Rating": str(r),
                "Rationale For Rating": "Helpful.",
            },
        },
        "critique": "The answer is reasonable.",
        "overall_score": float(score),
        "fine-grained_score": sum(ratings) / len(ratings),
    }


def ultrafeedback_raw(n: int = 120) -> None:
    out = HERE / "ultrafeedback_raw_fixture.jsonl"
    with open(HERE / "ultrafeedback_binarized_sample.jsonl") as src, open(out, "w") as dst:
        for i, line in enumerate(src):
            if i >= n:
                break
            rec = json.loads(line)
            comps = [
                _completion(0, i, rec["chosen"][-1]["content"], rec["score_chosen"]),
                _completion(1, i, rec["rejected"][-1]["content"], rec["score_rejected"]),
            ]
            source = SOURCES[i % len(SOURCES)]
            answers = ["None"] if source not in ("truthful_qa", "flan") else ["An answer."]
            raw = {
                "source": source,
                "instruction": rec["prompt"],
                "models": [c["model"] for c in comps],
                "correct_answers": answers,
                "incorrect_answers": answers,
                "completions": comps,
            }
            dst.write(json.dumps(raw, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    ultrachat_raw()
    ultrafeedback_raw()
