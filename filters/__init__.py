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

# Built-in filters by name, resolved lazily so that importing `filters` does not load torch
# or faiss. Any other filter loads by import path ("my_pkg.filters:TooShort").
BUILTIN: dict[str, str] = {
    "persona": "filters.persona:PersonaFilter",
    "sql": "filters.sql:SqlFilter",
    "truecase": "filters.truecase:TruecaseFilter",
    "empty_turn": "filters.quality:EmptyTurnFilter",
    "truncated": "filters.quality:TruncatedFilter",
    "role_order": "filters.quality:RoleOrderFilter",
    "min_turns": "filters.quality:MinTurnsFilter",
    "max_turns": "filters.quality:MaxTurnsFilter",
    "min_chars": "filters.quality:MinCharsFilter",
    "max_chars": "filters.quality:MaxCharsFilter",
    "min_tokens": "filters.quality:MinTokensFilter",
    "max_tokens": "filters.quality:MaxTokensFilter",
    "repetition": "filters.quality:RepetitionFilter",
    "non_english": "filters.language:NonEnglishFilter",
    "exact_dedup": "filters.exact_dedup:ExactDedupFilter",
    "minhash_dedup": "filters.minhash:MinHashFilter",
    "cross_dedup": "filters.cross_dedup:CrossDedupFilter",
    "semantic_dedup": "filters.semantic_dedup:SemanticDedupFilter",
    "decontam": "filters.decontam:DecontamFilter",
    "exact_match": "filters.exact_match:ExactMatchFilter",
}


def load_filter(ref: str) -> type[Filter]:
    """A built-in name (`persona`) or an import path (`my_pkg.filters:TooShort`)."""
    path = BUILTIN.get(ref, ref)
    module_name, _, attr = path.partition(":")
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
