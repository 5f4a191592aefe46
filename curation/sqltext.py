"""Small helpers to put values into SQL text safely (identifiers and string literals)."""

from __future__ import annotations

from collections.abc import Iterable


def lit(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def lit_list(values: Iterable[str]) -> str:
    """A parenthesised list of literals for IN (...); never empty."""
    items = [lit(v) for v in values]
    return "(" + (", ".join(items) if items else "NULL") + ")"
