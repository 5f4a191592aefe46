"""The record formats the warehouse ingests, and detection of a file's format."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from warehouse.errors import BadInputError
from warehouse.formats.argilla_cleaned import ARGILLA_CLEANED
from warehouse.formats.base import Insert, RecordFormat
from warehouse.formats.h4_binarized import H4_BINARIZED
from warehouse.formats.trl_flat import TRL_FLAT
from warehouse.formats.ultrachat_200k import ULTRACHAT_200K
from warehouse.formats.ultrachat_raw import ULTRACHAT_RAW
from warehouse.formats.ultrafeedback_raw import ULTRAFEEDBACK_RAW

FORMATS: dict[str, RecordFormat] = {
    f.name: f
    for f in (
        ULTRACHAT_RAW,
        ULTRACHAT_200K,
        ULTRAFEEDBACK_RAW,
        H4_BINARIZED,
        TRL_FLAT,
        ARGILLA_CLEANED,
    )
}


def get_format(name: str) -> RecordFormat:
    try:
        return FORMATS[name]
    except KeyError:
        raise BadInputError(
            f"unknown format {name!r}; choose one of: auto, {', '.join(FORMATS)}"
        ) from None


def detect(records: Sequence[Mapping[str, Any]], where: str) -> RecordFormat:
    """The format that every sampled record matches; a clear error when none or several do."""
    if not records:
        raise BadInputError(f"{where}: no record to detect the format from (empty input?)")
    # A majority vote, so one malformed record among the first few does not decide.
    votes = {name: sum(1 for r in records if fmt.matches(r)) for name, fmt in FORMATS.items()}
    best = max(votes, key=lambda n: votes[n])
    if votes[best] * 2 > len(records):
        return FORMATS[best]
    keys = sorted(records[0].keys())
    raise BadInputError(
        f"{where}: cannot place this file: its first record has keys {keys}, which match none "
        f"of the known formats ({', '.join(FORMATS)}). Pass --format to force one."
    )


__all__ = ["FORMATS", "Insert", "RecordFormat", "detect", "get_format"]
