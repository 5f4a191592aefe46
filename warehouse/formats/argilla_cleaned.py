"""argilla/ultrafeedback-binarized-preferences-cleaned: ShareGPT turns and mean ratings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from warehouse.formats import sqlchecks as chk
from warehouse.formats.base import LINEAGE_SQL, ROW_KEY, Insert, RecordFormat, is_message_list

_SHAREGPT = pa.list_(pa.struct([("from", pa.string()), ("value", pa.string())]))
_ROLE = "CASE m.\"from\" WHEN 'human' THEN 'user' WHEN 'gpt' THEN 'assistant' ELSE m.\"from\" END"


def _msgs(col: str) -> str:
    return f"list_transform({col}, m -> {{'role': {_ROLE}, 'content': m.value}})"


def _matches(rec: Mapping[str, Any]) -> bool:
    return is_message_list(rec.get("chosen"), "from") and "chosen-rating" in rec


def _checks(col: str) -> list[tuple[str, str]]:
    # Roles are mapped first (human -> user, gpt -> assistant) so the shared checks apply.
    return chk.messages_checks(_msgs(col), col)


ARGILLA_CLEANED = RecordFormat(
    name="argilla_cleaned",
    description="Argilla cleaned: {source, prompt, chosen/rejected as [{from, value}], "
    "chosen-rating, chosen-model, rejected-rating, rejected-model}",
    target="preference_pairs",
    raw_schema=pa.schema(
        [
            ("source", pa.string()),
            ("prompt", pa.string()),
            ("chosen", _SHAREGPT),
            ("chosen-rating", pa.float64()),
            ("chosen-model", pa.string()),
            ("rejected", _SHAREGPT),
            ("rejected-rating", pa.float64()),
            ("rejected-model", pa.string()),
        ]
    ),
    matches=_matches,
    reason_sql=chk.first(
        chk.required_text("prompt", "prompt"),
        *_checks("chosen"),
        *_checks("rejected"),
    ),
    inserts=(
        Insert(
            "preference_pairs",
            f"""SELECT {ROW_KEY} AS pair_id, 'argilla_cleaned' AS source_format, source,
       $split AS split, prompt, sha256(prompt) AS prompt_id,
       {_msgs("chosen")} AS chosen, {_msgs("rejected")} AS rejected,
       {_msgs("chosen")} AS messages,
       "chosen-rating" AS score_chosen, "rejected-rating" AS score_rejected,
       "chosen-model" AS chosen_model, "rejected-model" AS rejected_model,
       NULL AS source_index, "chosen-rating" = "rejected-rating" AS is_tie,
       length(chosen[-1].value)::INTEGER AS chosen_chars,
       length(rejected[-1].value)::INTEGER AS rejected_chars,
       {LINEAGE_SQL}
FROM ok""",
        ),
    ),
)
