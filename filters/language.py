"""A cheap "is this English?" heuristic, columnar, with no language-ID model.

English-likeness of a dialogue = (1 - share of its characters that are non-ASCII) x
min(1, stopword share / `expected_stopword_share`), where the stopword share is matches of
common English function words per word (space-separated). The score is 1 - English-likeness:
about 0 for English, near 1 for text in another script or without English function words.
Each turn is read up to `prefix_chars` characters to bound the cost.

Limits: this is not language ID. The non-ASCII share is counted from UTF-8 byte and
character lengths (a 3-byte CJK character counts twice, so non-Latin scripts reach 1 fast);
Latin-script languages (Spanish, German, ...) pass the ASCII test and fail only the
stopword test; emoji, curly quotes and accented names add a little; code, tables and bare
lists have few stopwords and can score 0.3-0.6; texts under ~10 words are noisy; a dialogue
mixing English and another language gets an average.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from filters.base import Filter, FilterParams
from filters.quality import dialogue_scores, turns_of

STOPWORDS = [
    "the",
    "of",
    "and",
    "to",
    "a",
    "in",
    "is",
    "that",
    "for",
    "it",
    "with",
    "as",
    "on",
    "be",
    "are",
    "this",
    "by",
    "from",
    "or",
    "can",
    "an",
    "at",
    "which",
    "have",
    "will",
    "you",
    "your",
    "not",
    "but",
    "was",
    "we",
    "they",
    "their",
    "has",
    "more",
    "also",
    "these",
    "i",
    "do",
    "if",
    "so",
    "what",
    "how",
]
STOP_PATTERN = r"(?i)\b(?:" + "|".join(STOPWORDS) + r")\b"


class NonEnglishParams(FilterParams):
    threshold: float | None = 0.5
    expected_stopword_share: float = 0.25  # English prose: ~0.35-0.5 of words
    prefix_chars: int = 2000


class NonEnglishFilter(Filter):
    """Score = 1 - English-likeness of all turns of the dialogue (see the module doc)."""

    name = "non_english"
    Params = NonEnglishParams
    drop_when = "above"

    def score(self, rows: pa.Table) -> pa.Table:
        assert isinstance(self.params, NonEnglishParams)
        t = turns_of(rows)
        n = t.n_rows
        text = t.content
        if len(text) and pc.max(pc.binary_length(text)).as_py() > self.params.prefix_chars:
            text = pc.utf8_slice_codeunits(text, 0, self.params.prefix_chars)
        chars = pc.utf8_length(text).to_numpy().astype(np.float64)
        extra_bytes = pc.binary_length(text).to_numpy() - chars
        s = pl.Series("t", text)
        words = s.str.count_matches(" ", literal=True).to_numpy() + (chars > 0)
        stops = s.str.count_matches(STOP_PATTERN).to_numpy()

        def per_dialogue(per_turn: np.ndarray) -> np.ndarray:
            return np.bincount(t.parents, weights=per_turn, minlength=n)[:n]

        n_chars, n_words = per_dialogue(chars), per_dialogue(words)
        non_ascii = np.divide(
            per_dialogue(extra_bytes), n_chars, out=np.zeros(n), where=n_chars > 0
        )
        stop_share = np.divide(per_dialogue(stops), n_words, out=np.ones(n), where=n_words > 0)
        expected = self.params.expected_stopword_share
        english = (1.0 - np.minimum(non_ascii, 1.0)) * np.minimum(1.0, stop_share / expected)
        return dialogue_scores(rows, 1.0 - english)
