"""Filters: pure scoring and deciding over Arrow batches. No file or database I/O.

A filter has a name, typed params, `score(rows) -> scores` and `decide(scores) -> keep +
reason`; the base class handles scopes, per-dialogue aggregation, stats and the decision
records. Imports no other package of ours.
"""

from __future__ import annotations

import importlib

from filters.base import DECISION_SCHEMA, Filter, FilterParams, FilterResult, FilterStats
from filters.decorators import scorer
from filters.persona import PersonaFilter
from filters.scope import Scope, explode_turns, rows_for
from filters.sql import SqlFilter

BUILTIN: dict[str, type[Filter]] = {
    PersonaFilter.name: PersonaFilter,
    SqlFilter.name: SqlFilter,
}


def load_filter(ref: str) -> type[Filter]:
    """A built-in name (`persona`) or an import path (`my_pkg.filters:TooShort`)."""
    if ref in BUILTIN:
        return BUILTIN[ref]
    module_name, _, attr = ref.partition(":")
    if not attr:
        raise ValueError(f"unknown filter {ref!r}: use a built-in name or 'module:Class'")
    obj = getattr(importlib.import_module(module_name), attr)
    if not (isinstance(obj, type) and issubclass(obj, Filter)):
        raise TypeError(f"{ref} is not a Filter class")
    return obj


__all__ = [
    "BUILTIN",
    "DECISION_SCHEMA",
    "Filter",
    "FilterParams",
    "FilterResult",
    "FilterStats",
    "PersonaFilter",
    "Scope",
    "SqlFilter",
    "explode_turns",
    "load_filter",
    "rows_for",
    "scorer",
]
