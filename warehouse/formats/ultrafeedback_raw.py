"""Raw UltraFeedback (openbmb/UltraFeedback): an instruction with 4 rated completions.

One record becomes one `uf_prompts` row and one `uf_completions` row per completion, with
each aspect's rating ("1".."5", or "N/A" which becomes NULL) and rationale.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from warehouse.formats import sqlchecks as chk
from warehouse.formats.base import LINEAGE_SQL, ROW_KEY, Insert, RecordFormat

_S = pa.string()
_BASIC = pa.struct([("Rating", _S), ("Rationale", _S)])
_TYPED = pa.struct(
    [("Type", pa.list_(_S)), ("Rationale", _S), ("Rating", _S), ("Rationale For Rating", _S)]
)
_COMPLETION = pa.struct(
    [
        ("model", _S),
        ("principle", _S),
        ("custom_system_prompt", _S),
        ("response", _S),
        (
            "annotations",
            pa.struct(
                [
                    ("instruction_following", _BASIC),
                    ("honesty", _BASIC),
                    ("truthfulness", _TYPED),
                    ("helpfulness", _TYPED),
                ]
            ),
        ),
        ("critique", _S),
        ("overall_score", pa.float64()),
        ("fine-grained_score", pa.float64()),
    ]
)
_ASPECTS = ("instruction_following", "honesty", "truthfulness", "helpfulness")


def _rating(aspect: str, c: str = "c") -> str:
    return f"TRY_CAST({c}.annotations.{aspect}.Rating AS DOUBLE)"


def _bad_rating_check() -> tuple[str, str]:
    conds = " OR ".join(
        f"(c.annotations.{a}.Rating IS NOT NULL AND c.annotations.{a}.Rating <> 'N/A' "
        f"AND {_rating(a)} IS NULL)"
        for a in _ASPECTS
    )
    pos = f"list_position(list_transform(completions, c -> {conds}), true)"
    return (
        f"{pos} IS NOT NULL",
        f"'completions[' || ({pos} - 1) || '].annotations: a Rating is neither a number nor N/A'",
    )


def _empty_response_check() -> tuple[str, str]:
    pos = f"list_position(list_transform(completions, c -> {chk.blank('c.response')}), true)"
    return (f"{pos} IS NOT NULL", f"'completions[' || ({pos} - 1) || '].response: empty'")


def _matches(rec: Mapping[str, Any]) -> bool:
    return "instruction" in rec and "completions" in rec


_NUM = " + ".join(f"coalesce({_rating(a)}, 0)" for a in _ASPECTS)
_DEN = " + ".join(f"({_rating(a)} IS NOT NULL)::INT" for a in _ASPECTS)

ULTRAFEEDBACK_RAW = RecordFormat(
    name="ultrafeedback_raw",
    description='raw UltraFeedback: {"source", "instruction", "models", "completions": [...]}',
    target="uf_prompts",
    raw_schema=pa.schema(
        [
            ("source", _S),
            ("instruction", _S),
            ("models", pa.list_(_S)),
            ("correct_answers", pa.list_(_S)),
            ("incorrect_answers", pa.list_(_S)),
            ("completions", pa.list_(_COMPLETION)),
        ]
    ),
    matches=_matches,
    reason_sql=chk.first(
        chk.required_text("instruction", "instruction"),
        ("completions IS NULL", "'completions: missing'"),
        _empty_response_check(),
        _bad_rating_check(),
    ),
    inserts=(
        Insert(
            "uf_prompts",
            f"""SELECT {ROW_KEY} AS prompt_uid, source, instruction AS prompt,
       sha256(instruction) AS prompt_id, models, correct_answers, incorrect_answers,
       len(completions)::INTEGER AS n_completions, length(instruction)::INTEGER AS prompt_chars,
       {LINEAGE_SQL}
FROM ok""",
        ),
        Insert(
            "uf_completions",
            f"""WITH u AS (
  SELECT {ROW_KEY} AS prompt_uid, sha256(instruction) AS prompt_id, _line,
         unnest(generate_series(0, len(completions) - 1)) AS completion_index,
         unnest(completions) AS c
  FROM ok
)
SELECT prompt_uid || ':' || completion_index AS completion_id, prompt_uid, prompt_id,
       completion_index::INTEGER AS completion_index, c.model AS model,
       c.principle AS principle, c.custom_system_prompt AS custom_system_prompt,
       c.response AS response, length(c.response)::INTEGER AS response_chars,
       {_rating("instruction_following")} AS instruction_following_rating,
       c.annotations.instruction_following.Rationale AS instruction_following_rationale,
       {_rating("honesty")} AS honesty_rating,
       c.annotations.honesty.Rationale AS honesty_rationale,
       c.annotations.truthfulness.Type AS truthfulness_type,
       {_rating("truthfulness")} AS truthfulness_rating,
       c.annotations.truthfulness.Rationale AS truthfulness_rationale,
       c.annotations.truthfulness."Rationale For Rating" AS truthfulness_rating_rationale,
       c.annotations.helpfulness.Type AS helpfulness_type,
       {_rating("helpfulness")} AS helpfulness_rating,
       c.annotations.helpfulness.Rationale AS helpfulness_rationale,
       c.annotations.helpfulness."Rationale For Rating" AS helpfulness_rating_rationale,
       (4 - ({_DEN}))::INTEGER AS n_na_ratings,
       c.critique AS critique, c.overall_score AS overall_score,
       c."fine-grained_score" AS fine_grained_score,
       CASE WHEN ({_DEN}) > 0 THEN ({_NUM}) / ({_DEN}) END AS mean_aspect_rating,
       $batch_id AS batch_id, $source_file AS source_file, _line AS source_line
FROM u""",
        ),
    ),
)
