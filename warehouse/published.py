"""The published column layouts our snapshots export and load as.

ultrachat_200k: prompt, prompt_id, messages. ultrafeedback_binarized: prompt, prompt_id,
chosen, rejected, messages, score_chosen, score_rejected. Messages are lists of
{content, role} structs, in that field order, as the Hub's Parquet files have them (the
warehouse stores role first; `to_published` reorders in SQL so nothing is copied in Python).
"""

from __future__ import annotations

from typing import Any, Literal

import pyarrow as pa

SnapshotKind = Literal["sft", "preferences"]
KINDS: tuple[str, ...] = ("sft", "preferences")

PUBLISHED_MESSAGE = pa.struct([("content", pa.string()), ("role", pa.string())])
PUBLISHED_MESSAGES = pa.list_(PUBLISHED_MESSAGE)

SFT_SCHEMA = pa.schema(
    [("prompt", pa.string()), ("prompt_id", pa.string()), ("messages", PUBLISHED_MESSAGES)]
)
PREFERENCES_SCHEMA = pa.schema(
    [
        ("prompt", pa.string()),
        ("prompt_id", pa.string()),
        ("chosen", PUBLISHED_MESSAGES),
        ("rejected", PUBLISHED_MESSAGES),
        ("messages", PUBLISHED_MESSAGES),
        ("score_chosen", pa.float64()),
        ("score_rejected", pa.float64()),
    ]
)

# Splits each kind produces, in the published order.
SFT_SPLITS = ("train_sft", "test_sft", "train_gen", "test_gen")
PREFERENCE_SPLITS = ("train_prefs", "test_prefs", "train_sft", "test_sft", "train_gen", "test_gen")


def ordered_splits(kind: str, names: Any) -> list[str]:
    """Split names in the published order for the kind; others after, alphabetically."""
    order = SFT_SPLITS if kind == "sft" else PREFERENCE_SPLITS
    rank = {s: i for i, s in enumerate(order)}
    return sorted(names, key=lambda s: (rank.get(s, len(order)), s))


def schema_for(kind: str) -> pa.Schema:
    if kind == "sft":
        return SFT_SCHEMA
    if kind == "preferences":
        return PREFERENCES_SCHEMA
    raise ValueError(f"unknown snapshot kind {kind!r}: expected one of {', '.join(KINDS)}")


def _messages_sql(col: str) -> str:
    return f"list_transform({col}, m -> struct_pack(content := m.content, role := m.role)) AS {col}"


def select_sql(kind: str) -> str:
    """SELECT list over snapshot_rows giving the published columns, in order."""
    if kind == "sft":
        return f"prompt, prompt_id, {_messages_sql('messages')}"
    schema_for(kind)
    return (
        f"prompt, prompt_id, {_messages_sql('chosen')}, {_messages_sql('rejected')}, "
        f"{_messages_sql('messages')}, score_chosen, score_rejected"
    )


def features_for(kind: str) -> Any:
    """`datasets.Features` equal to the published dataset's (imported lazily: datasets is
    heavy and only the export and training paths need it)."""
    from datasets import Features

    return Features.from_arrow_schema(schema_for(kind))
