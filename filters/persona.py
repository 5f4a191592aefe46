"""Persona and refusal phrases in assistant turns ("As an AI language model, ...").

The ultrachat_200k card removed dialogues where the assistant says things like "I do not have
emotions" or "I don't have opinions"; the phrase list was never published. This list is ours,
documented and configurable. Every pattern is first person or a self-description at a
sentence start, so text that merely discusses AI ("whether an AI language model can have
emotions") does not fire, and the scope keeps user turns out.

Text is normalised before matching (lower case, curly and backtick apostrophes to "'", runs
of whitespace to one space), so case, apostrophe and spacing variants match the same pattern.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from filters.base import MATCHED, SCORE, Filter, FilterParams
from filters.scope import ROW_ID, TURN_INDEX, Scope

_NEG = r"(?:do not|don'?t|dont|cannot|can'?t|can not|am not able to|am unable to)"
_SELF = r"(?:an? )?(?:ai|a\.i\.|artificial intelligence|language model|ai language model|ai model|ai assistant|virtual assistant|chatbot|computer program|machine)"

DEFAULT_PATTERNS: dict[str, str] = {
    # "As an AI language model, I ..." / "As an artificial intelligence, ..." at a sentence start
    "as_an_ai": r"(?:^|[.!?:]\s|\n)\s*as (?:an? )?(?:ai|a\.i\.|artificial intelligence|language model)\b",
    # "Honestly, as an AI language model, I ..." / "To be clear, as an AI language model: ..."
    # anywhere, when followed by the first person or set off by punctuation as an aside
    # ("He wrote as an AI language model would" does not match)
    "as_an_ai_aside": (
        r"\bas (?:an? )?(?:ai|a\.i\.|artificial intelligence|language model)"
        r"(?: language model| model| assistant| chatbot)?(?:,? (?:i|i'm|my)\b|\s*[,:;.!?"
        "\u2013\u2014-])"
    ),
    # "I do not have emotions / personal opinions / feelings / personal experiences ..."
    "no_inner_life": (
        r"\bi " + _NEG + r" (?:have|possess|experience|hold|form) (?:any |real |my own |the )?"
        r"(?:personal |human |subjective )?(?:emotions?|feelings?|opinions?|beliefs?|"
        r"preferences?|experiences?|consciousness|a physical (?:body|form)|a body|likes)\b"
    ),
    # "I'm just an AI", "I am only a language model"
    "just_an_ai": r"\bi(?:'m| am) (?:just|only|merely|simply|not a human,? but) " + _SELF + r"\b",
    # "I cannot browse the internet", "I don't have access to the internet / real-time data"
    "no_browsing": (
        r"\bi " + _NEG + r" (?:browse|access|search|surf) (?:the )?(?:internet|web|online)\b"
        r"|\bi " + _NEG + r" have (?:access to )?(?:the internet|real-time|internet access|"
        r"browsing)"
    ),
}


class PersonaParams(FilterParams):
    threshold: float | None = 1.0
    patterns: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_PATTERNS))
    extra_phrases: list[str] = Field(default_factory=list)


def normalise(text: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Lower case, one kind of apostrophe, single spaces."""
    out = pc.utf8_lower(text)
    out = pc.replace_substring_regex(out, "[\u2018\u2019\u02bc`\u00b4]", "'")
    return pc.replace_substring_regex(out, r"[ \t\r\f\v]+", " ")


def _escape(phrase: str) -> str:
    special = set(r"\.^$|?*+()[]{}")
    return "".join("\\" + c if c in special else c for c in phrase.lower())


class PersonaFilter(Filter):
    """Score = how many persona patterns an assistant turn matches; a dialogue is dropped
    when any assistant turn matches at least `threshold` patterns (default 1)."""

    name = "persona"
    scope = Scope.ASSISTANT_TURNS
    Params = PersonaParams
    drop_when = "above"
    aggregate = "max"

    def _patterns(self) -> dict[str, str]:
        assert isinstance(self.params, PersonaParams)
        pats = dict(self.params.patterns)
        for i, phrase in enumerate(self.params.extra_phrases):
            pats[f"phrase_{i}"] = _escape(phrase)
        return pats

    def score(self, rows: pa.Table) -> pa.Table:
        text = normalise(rows.column("content"))
        count = pa.array(np.zeros(rows.num_rows))
        matched: pa.Array = pa.nulls(rows.num_rows, pa.string())
        # later patterns first, so `matched` ends up naming the first matching pattern
        for name, pattern in reversed(list(self._patterns().items())):
            hit = pc.match_substring_regex(text, pattern)
            count = pc.add(count, pc.cast(hit, pa.float64()))
            matched = pc.if_else(hit, pa.scalar(name), matched)
        return pa.table(
            {
                ROW_ID: rows.column(ROW_ID),
                TURN_INDEX: rows.column(TURN_INDEX),
                SCORE: count,
                MATCHED: matched,
            }
        )
