"""What a record format is: how to recognise it, parse it, check it and map it to tables."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

# Lineage and id columns every insert appends. `$checksum`, `$split`, `$batch_id` and
# `$source_file` are bound per batch; `_line` comes with each staged row.
ROW_KEY = "left(sha256($checksum || ':' || coalesce($split, '') || ':' || _line), 24)"
LINEAGE_SQL = "$batch_id AS batch_id, $source_file AS source_file, _line AS source_line"


@dataclass(frozen=True)
class Insert:
    """One INSERT of accepted rows: `select_sql` reads the relation `ok` (staged, valid rows)."""

    table: str
    select_sql: str


@dataclass(frozen=True)
class RecordFormat:
    name: str
    description: str
    target: str
    raw_schema: pa.Schema
    matches: Callable[[Mapping[str, Any]], bool]
    reason_sql: str
    inserts: tuple[Insert, ...]

    @property
    def key_names(self) -> list[str]:
        return [f.name for f in self.raw_schema]


def msg_struct(role: str = "role", content: str = "content") -> pa.DataType:
    return pa.struct([(content, pa.string()), (role, pa.string())])


def is_message_list(value: Any, role_key: str = "role") -> bool:
    return (
        isinstance(value, list)
        and len(value) > 0
        and isinstance(value[0], Mapping)
        and role_key in value[0]
    )
