"""Raw UltraChat (stingning/ultrachat): `{"id": str, "data": [user, assistant, ...]}`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from warehouse.formats import sqlchecks as chk
from warehouse.formats.base import LINEAGE_SQL, ROW_KEY, Insert, RecordFormat

# Roles are implicit: even positions are the user, odd positions the assistant.
_MESSAGES = (
    "list_transform(data, (x, i) -> {'role': CASE WHEN i % 2 = 1 THEN 'user' "
    "ELSE 'assistant' END, 'content': x})"
)


def _matches(rec: Mapping[str, Any]) -> bool:
    return "data" in rec and "id" in rec and isinstance(rec["data"], list)


ULTRACHAT_RAW = RecordFormat(
    name="ultrachat_raw",
    description='raw UltraChat: {"id", "data": [utterances alternating user/assistant]}',
    target="dialogues",
    raw_schema=pa.schema([("id", pa.string()), ("data", pa.list_(pa.string()))]),
    matches=_matches,
    reason_sql=chk.first(
        (chk.blank("id"), "'id: missing or empty'"),
        *chk.text_list_checks("data", "data"),
    ),
    inserts=(
        Insert(
            "dialogues",
            f"""SELECT {ROW_KEY} AS dialogue_id, 'ultrachat_raw' AS source_format,
       id AS source_id, $split AS split, data[1] AS prompt, sha256(data[1]) AS prompt_id,
       {_MESSAGES} AS messages, data[1] AS first_user_turn,
       len(data)::INTEGER AS n_turns,
       ((len(data) + 1) // 2)::INTEGER AS n_user_turns,
       (len(data) // 2)::INTEGER AS n_assistant_turns,
       CASE WHEN len(data) % 2 = 1 THEN 'user' ELSE 'assistant' END AS last_role,
       list_sum(list_transform(data, x -> length(x)))::BIGINT AS n_chars,
       length(data[1])::INTEGER AS prompt_chars,
       list_max(list_transform(data, x -> length(x)))::INTEGER AS max_turn_chars,
       {LINEAGE_SQL}
FROM ok""",
        ),
    ),
)
