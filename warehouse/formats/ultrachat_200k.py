"""HuggingFaceH4/ultrachat_200k: `{"prompt", "prompt_id", "messages": [{content, role}]}`."""

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

_MESSAGES = "list_transform(messages, m -> {'role': m.role, 'content': m.content})"


def _matches(rec: Mapping[str, Any]) -> bool:
    return "messages" in rec and "chosen" not in rec and is_message_list(rec["messages"])


ULTRACHAT_200K = RecordFormat(
    name="ultrachat_200k",
    description='ultrachat_200k: {"prompt", "prompt_id", "messages": [{"content", "role"}]}',
    target="dialogues",
    raw_schema=pa.schema(
        [
            ("prompt", pa.string()),
            ("prompt_id", pa.string()),
            ("messages", pa.list_(msg_struct())),
        ]
    ),
    matches=_matches,
    reason_sql=chk.first(
        *chk.messages_checks("messages", "messages"),
        chk.required_text("prompt", "prompt"),
        chk.prompt_id_check("prompt", "prompt_id"),
    ),
    inserts=(
        Insert(
            "dialogues",
            # The published prompt is kept as is: the messages were truecased afterwards, so it
            # can differ from messages[0]; prompt_id hashes the prompt.
            f"""SELECT {ROW_KEY} AS dialogue_id, 'ultrachat_200k' AS source_format,
       NULL AS source_id, $split AS split, prompt,
       coalesce(prompt_id, sha256(prompt)) AS prompt_id,
       {_MESSAGES} AS messages, {chk.first_user_content("messages")} AS first_user_turn,
       {chk.messages_stats(_MESSAGES)},
       length(prompt)::INTEGER AS prompt_chars,
       {LINEAGE_SQL}
FROM ok""",
        ),
    ),
)
