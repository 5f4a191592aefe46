"""HuggingFaceH4/ultrafeedback_binarized: prompt, chosen/rejected dialogues and scores."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from warehouse.formats import sqlchecks as chk
from warehouse.formats.base import (
    LINEAGE_SQL,
    ROW_KEY,
    Insert,
    RecordFormat,
    is_message_list,
    msg_struct,
)


def _msgs(col: str) -> str:
    return f"list_transform({col}, m -> {{'role': m.role, 'content': m.content}})"


def _matches(rec: Mapping[str, Any]) -> bool:
    return is_message_list(rec.get("chosen")) and is_message_list(rec.get("rejected"))


H4_BINARIZED = RecordFormat(
    name="h4_binarized",
    description="H4 ultrafeedback_binarized: {prompt, prompt_id, chosen, rejected, messages, "
    "score_chosen, score_rejected}",
    target="preference_pairs",
    raw_schema=pa.schema(
        [
            ("prompt", pa.string()),
            ("prompt_id", pa.string()),
            ("chosen", pa.list_(msg_struct())),
            ("rejected", pa.list_(msg_struct())),
            ("messages", pa.list_(msg_struct())),
            ("score_chosen", pa.float64()),
            ("score_rejected", pa.float64()),
        ]
    ),
    matches=_matches,
    reason_sql=chk.first(
        chk.required_text("prompt", "prompt"),
        *chk.messages_checks("chosen", "chosen"),
        *chk.messages_checks("rejected", "rejected"),
        ("chosen[-1].role <> 'assistant'", "'chosen: does not end with an assistant turn'"),
        ("rejected[-1].role <> 'assistant'", "'rejected: does not end with an assistant turn'"),
        chk.prompt_id_check("prompt", "prompt_id"),
    ),
    inserts=(
        Insert(
            "preference_pairs",
            f"""SELECT {ROW_KEY} AS pair_id, 'h4_binarized' AS source_format, NULL AS source,
       $split AS split, prompt, coalesce(prompt_id, sha256(prompt)) AS prompt_id,
       {_msgs("chosen")} AS chosen, {_msgs("rejected")} AS rejected,
       {_msgs("coalesce(messages, chosen)")} AS messages,
       score_chosen, score_rejected, NULL AS chosen_model, NULL AS rejected_model,
       NULL AS source_index, score_chosen = score_rejected AS is_tie,
       length(chosen[-1].content)::INTEGER AS chosen_chars,
       length(rejected[-1].content)::INTEGER AS rejected_chars,
       {LINEAGE_SQL}
FROM ok""",
        ),
    ),
)
