"""Binarize UltraFeedback: pick one chosen and one (or more) rejected completion per prompt.

Two published policies, both expressed as defaults of one config (see the recipe doc, §4.2
and §4.6):

* ``h4`` (HuggingFaceH4/ultrafeedback_binarized): score = ``overall_score``; chosen = the top
  score; rejected = a random draw among the *other* completions. Equal scores are allowed,
  exactly as H4's script allows them.
* ``argilla`` (argilla/ultrafeedback-binarized-preferences-cleaned): score = the mean of the
  non-N/A aspect ratings; rejected = a random draw among completions scored *strictly lower*;
  a prompt where nothing scores lower is dropped as a tie.

Everything runs as one DuckDB query over two relations visible in the caller's connection, so
there is no Python loop over prompts or completions.

Determinism: the chosen completion is the top score with ties going to the lowest
``completion_index`` (what Python's ``max`` returns on the original list). The random draw is
not a sequential RNG: each candidate gets the key ``md5(seed:prompt_uid:completion_index)``
and the lowest keys win. The draw is therefore reproducible, independent of input order and
of which other prompts are in the batch; it does not reproduce H4's exact ``random.choice``
sequence (which depended on the processing order of the whole dataset).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

ScoreColumn = Literal["overall_score", "mean_aspect_rating"]
RejectedMode = Literal["random", "random_lower", "worst"]

_POLICY_SCORE: dict[str, ScoreColumn] = {"h4": "overall_score", "argilla": "mean_aspect_rating"}
_POLICY_REJECTED: dict[str, RejectedMode] = {"h4": "random", "argilla": "random_lower"}

PAIR_COLUMNS = (
    "row_id",
    "prompt",
    "prompt_id",
    "chosen",
    "rejected",
    "messages",
    "score_chosen",
    "score_rejected",
    "chosen_model",
    "rejected_model",
    "source",
    "ord",
)
DROPPED_SCHEMA = pa.schema(
    [("row_id", pa.string()), ("score", pa.float64()), ("reason", pa.string())]
)

# A relation name: identifiers joined by dots (schema.table), nothing else.
_RELATION = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,2}$")


class BinarizeConfig(BaseModel):
    """How to turn scored completions into preference pairs.

    ``score`` and ``rejected`` left as None take the policy's value (h4: overall_score and a
    random other completion; argilla: mean_aspect_rating and a random strictly lower one).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: Literal["h4", "argilla"] = "h4"
    score: ScoreColumn | None = None
    rejected: RejectedMode | None = None
    # rejected must satisfy score_chosen - score_rejected >= min_margin
    min_margin: float = Field(default=0.0, ge=0.0)
    # up to this many distinct rejected completions per prompt, one pair each
    n_rejected: int = Field(default=1, ge=1)
    seed: int = 42

    @property
    def score_column(self) -> ScoreColumn:
        """The score actually used (explicit, else the policy's)."""
        return self.score if self.score is not None else _POLICY_SCORE[self.policy]

    @property
    def rejected_mode(self) -> RejectedMode:
        """The rejected draw actually used (explicit, else the policy's)."""
        return self.rejected if self.rejected is not None else _POLICY_REJECTED[self.policy]

    @property
    def strictly_lower(self) -> bool:
        """Whether a rejected completion must score strictly below the chosen one."""
        return self.rejected_mode == "random_lower"


@dataclass
class BinarizeResult:
    """Pairs (one row per chosen/rejected pair) and the prompts that produced none."""

    pairs: pa.Table
    dropped: pa.Table
    n_in: int
    n_rejected: int = 1

    def counts(self) -> tuple[int, int, int]:
        """(prompts in, prompts with at least one pair, prompts dropped)."""
        ids = self.pairs.column("row_id")
        if self.n_rejected > 1:  # row ids carry a ":k" suffix; count each prompt once
            ids = pc.replace_substring_regex(ids, r":[0-9]+$", "")
        n_kept = int(pc.count_distinct(ids).as_py()) if self.pairs.num_rows else 0
        return self.n_in, n_kept, self.dropped.num_rows

    @property
    def balanced(self) -> bool:
        """True when every input prompt is either kept or dropped, exactly once."""
        n_in, n_kept, n_dropped = self.counts()
        return n_in == n_kept + n_dropped


def _relation(name: str) -> str:
    if not _RELATION.match(name):
        raise ValueError(f"binarize: {name!r} is not a relation name (table, view or schema.table)")
    return name


def _sql(prompts: str, completions: str, cfg: BinarizeConfig) -> str:
    score = cfg.score_column
    lower = "AND o.score < o.chosen_score" if cfg.strictly_lower else ""
    draw = "score ASC, h, idx" if cfg.rejected_mode == "worst" else "h, idx"
    pair_id = "p.row_id" if cfg.n_rejected == 1 else "p.row_id || ':' || CAST(r.k AS VARCHAR)"
    tie_rule = "TRUE" if cfg.strictly_lower else "FALSE"
    margin_text = f"binarize: no rejected within min_margin {cfg.min_margin:g}"

    def turns(text: str) -> str:
        return (
            f"[{{'role': 'user', 'content': p.prompt}}, {{'role': 'assistant', 'content': {text}}}]"
        )

    return f"""
WITH p AS (
  SELECT CAST(row_id AS VARCHAR) AS row_id, CAST(prompt AS VARCHAR) AS prompt,
         CAST(prompt_id AS VARCHAR) AS prompt_id, CAST(source AS VARCHAR) AS source,
         CAST(ord AS BIGINT) AS ord
  FROM {prompts}
),
cand AS (
  SELECT CAST(c.prompt_uid AS VARCHAR) AS row_id, CAST(c.completion_index AS BIGINT) AS idx,
         CAST(c.model AS VARCHAR) AS model, CAST(c.response AS VARCHAR) AS response,
         CAST(c.{score} AS DOUBLE) AS score,
         md5_number_upper(concat_ws(':', CAST($seed AS VARCHAR), CAST(c.prompt_uid AS VARCHAR),
                                    CAST(c.completion_index AS VARCHAR))) AS h
  FROM {completions} c
  WHERE c.prompt_uid IN (SELECT row_id FROM p)
    AND c.{score} IS NOT NULL AND NOT isnan(CAST(c.{score} AS DOUBLE))
    AND c.response IS NOT NULL AND NOT regexp_full_match(c.response, '[\\s\\p{{Z}}]*')
),
ranked AS (
  SELECT *, row_number() OVER (PARTITION BY row_id ORDER BY score DESC, idx) AS pos,
         count(*) OVER (PARTITION BY row_id) AS n_cand
  FROM cand
),
chosen AS (SELECT * FROM ranked WHERE pos = 1),
others AS (
  SELECT o.*, ch.score AS chosen_score
  FROM ranked o JOIN chosen ch USING (row_id)
  WHERE o.pos > 1
),
lower_any AS (
  SELECT row_id, bool_or(score < chosen_score) AS any_lower FROM others GROUP BY row_id
),
picked AS (
  SELECT * FROM (
    SELECT o.*, row_number() OVER (PARTITION BY o.row_id ORDER BY {draw}) - 1 AS k
    FROM others o
    WHERE o.chosen_score - o.score >= $min_margin {lower}
  ) WHERE k < $n_rejected
)
SELECT
  CASE WHEN r.k IS NULL THEN p.row_id ELSE {pair_id} END AS row_id,
  p.prompt, p.prompt_id,
  {turns("ch.response")} AS chosen,
  {turns("r.response")} AS rejected,
  {turns("ch.response")} AS messages,
  ch.score AS score_chosen, r.score AS score_rejected,
  ch.model AS chosen_model, r.model AS rejected_model,
  p.source, p.ord,
  CASE
    WHEN r.k IS NOT NULL THEN NULL
    WHEN coalesce(ch.n_cand, 0) < 2 THEN
      'binarize: fewer than 2 scored completions (' || CAST(coalesce(ch.n_cand, 0) AS VARCHAR) || ')'
    WHEN {tie_rule} AND NOT coalesce(la.any_lower, FALSE) THEN
      'binarize: no completion scored below the chosen ' || printf('%g', ch.score) || ' (tie)'
    ELSE '{margin_text}'
  END AS reason
FROM p
LEFT JOIN chosen ch USING (row_id)
LEFT JOIN lower_any la USING (row_id)
LEFT JOIN picked r USING (row_id)
ORDER BY p.ord, p.row_id, r.k
"""


def binarize(
    con: duckdb.DuckDBPyConnection, prompts: str, completions: str, cfg: BinarizeConfig
) -> BinarizeResult:
    """Preference pairs from the prompts and completions relations visible in `con`.

    `prompts` has row_id (the prompt_uid), prompt, prompt_id, source and ord (input order);
    `completions` has the uf_completions columns. Completions with a NULL score or an empty
    response are not candidates. Every prompt ends up either in `pairs` (ordered by ord,
    then draw rank) or in `dropped` with a reason.
    """
    sql = _sql(_relation(prompts), _relation(completions), cfg)
    params = {"seed": cfg.seed, "min_margin": cfg.min_margin, "n_rejected": cfg.n_rejected}
    out = con.execute(sql, params).to_arrow_table()
    is_pair = pc.is_null(out.column("reason"))
    pairs = out.filter(is_pair).select(list(PAIR_COLUMNS))
    gone = out.filter(pc.invert(is_pair))
    dropped = pa.table(
        {
            "row_id": gone.column("row_id"),
            "score": gone.column("score_chosen"),
            "reason": gone.column("reason"),
        },
        schema=DROPPED_SCHEMA,
    )
    (n_in,) = con.execute(f"SELECT count(*) FROM {prompts}").fetchone() or (0,)
    return BinarizeResult(pairs, dropped, int(n_in), cfg.n_rejected)


__all__ = ["DROPPED_SCHEMA", "PAIR_COLUMNS", "BinarizeConfig", "BinarizeResult", "binarize"]
