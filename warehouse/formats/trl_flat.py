"""TRL flat preference rows: `{"prompt": str, "chosen": str, "rejected": str}` (+ metadata)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from warehouse.formats import sqlchecks as chk
from warehouse.formats.base import LINEAGE_SQL, ROW_KEY, Insert, RecordFormat


def _pair(answer: str) -> str:
    return f"[{{'role': 'user', 'content': prompt}}, {{'role': 'assistant', 'content': {answer}}}]"


def _matches(rec: Mapping[str, Any]) -> bool:
    return isinstance(rec.get("chosen"), str) and isinstance(rec.get("rejected"), str)


TRL_FLAT = RecordFormat(
    name="trl_flat",
    description='TRL flat: {"prompt": str, "chosen": str, "rejected": str, "metadata"?}',
    target="preference_pairs",
    raw_schema=pa.schema(
        [
            ("prompt", pa.string()),
            ("chosen", pa.string()),
            ("rejected", pa.string()),
            ("source_index", pa.int64()),
            (
                "metadata",
                pa.struct([("score_chosen", pa.float64()), ("score_rejected", pa.float64())]),
            ),
        ]
    ),
    matches=_matches,
    reason_sql=chk.first(
        chk.required_text("prompt", "prompt"),
        chk.required_text("chosen", "chosen"),
        chk.required_text("rejected", "rejected"),
    ),
    inserts=(
        Insert(
            "preference_pairs",
            f"""SELECT {ROW_KEY} AS pair_id, 'trl_flat' AS source_format, NULL AS source,
       $split AS split, prompt, sha256(prompt) AS prompt_id,
       {_pair("chosen")} AS chosen, {_pair("rejected")} AS rejected,
       {_pair("chosen")} AS messages,
       metadata.score_chosen AS score_chosen, metadata.score_rejected AS score_rejected,
       NULL AS chosen_model, NULL AS rejected_model, source_index,
       metadata.score_chosen = metadata.score_rejected AS is_tie,
       length(chosen)::INTEGER AS chosen_chars, length(rejected)::INTEGER AS rejected_chars,
       {LINEAGE_SQL}
FROM ok""",
        ),
    ),
)
