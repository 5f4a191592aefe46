"""Quality heuristics: cheap, columnar checks that catch broken or junk dialogues.

Each heuristic is its own small filter so it can be run, swept and reported on alone:

* `empty_turn`: a turn with fewer than 2 non-blank characters (score: the shortest turn).
* `truncated`: the dialogue ends with a user turn, or its last assistant turn stops
  mid-sentence (on a comma or a function word, or prose without terminal punctuation).
* `role_order`: roles do not go (system?) user, assistant, user, ... (score: violations).
* `min_turns` / `max_turns`: message count outside [2, 64].
* `min_chars` / `max_chars`: whole-dialogue characters outside [50, 100 000).
* `min_tokens` / `max_tokens`: whole-dialogue tokens outside [16, 8192); tokens are a cheap
  proxy (runs of letters/digits, and single punctuation marks) unless a Hugging Face
  tokenizer path is given.
* `repetition`: share of word n-grams (n=5) in an assistant turn that repeat an earlier
  n-gram of the same turn (Gopher's duplicate n-gram idea, by word count).

The language heuristic (`non_english`) is in `filters.language`.

All of them read the `messages` column of the dialogue batch directly (a zero-copy flatten)
and fold per-turn values into one score per dialogue in numpy (messages of a dialogue are
contiguous), which is much cheaper than per-turn score tables grouped by row id. Thresholds follow
the base contract: "above" drops score >= threshold, "below" drops
score < threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from filters.base import MATCHED, SCORE, Filter, FilterParams
from filters.scope import CONTENT, ROW_ID

# -- shared columnar helpers ----------------------------------------------------------------


@dataclass
class Turns:
    """The messages of a dialogue batch, flattened without copying text."""

    parents: np.ndarray  # dialogue (row position) of each message
    turn_index: np.ndarray  # position of each message in its dialogue
    role: pa.Array
    content: pa.Array
    n_rows: int


def _messages(rows: pa.Table) -> pa.ListArray:
    messages = rows.column("messages").combine_chunks()
    if isinstance(messages, pa.ChunkedArray):  # pragma: no cover - one chunk after combine
        messages = messages.chunk(0)
    assert isinstance(messages, pa.ListArray)
    return messages


def turns_of(rows: pa.Table) -> Turns:
    """Every message of the batch with its dialogue and position (Arrow views, no copy)."""
    messages = _messages(rows)
    flat = pc.list_flatten(messages)
    parents = pc.list_parent_indices(messages).to_numpy().astype(np.int64)
    offsets = messages.offsets.to_numpy().astype(np.int64)
    turn_index = np.arange(len(parents), dtype=np.int64) - (offsets[parents] - offsets[0])
    content = pc.fill_null(pc.struct_field(flat, CONTENT), "")
    return Turns(parents, turn_index, pc.struct_field(flat, "role"), content, len(messages))


def reduce_turns(t: Turns, ufunc: np.ufunc, values: Any, empty: float) -> np.ndarray:
    """One value per dialogue from per-turn values (e.g. np.minimum for the worst turn);
    `empty` for dialogues without messages. Messages of a dialogue are contiguous, so this is
    one `reduceat`, cheaper than a group-by on row ids."""
    v = np.asarray(values, dtype=np.float64)
    out = np.full(t.n_rows, empty, dtype=np.float64)
    starts = np.flatnonzero(t.turn_index == 0)
    if len(starts):
        out[t.parents[starts]] = ufunc.reduceat(v, starts)
    return out


def _per_dialogue(parents: np.ndarray, values: Any, n: int) -> np.ndarray:
    """Sum of per-message values for each dialogue (0 for a dialogue without messages)."""
    v = np.asarray(values, dtype=np.float64)
    return np.bincount(parents, weights=v, minlength=n)[:n]


def dialogue_scores(rows: pa.Table, scores: Any, matched: pa.Array | None = None) -> pa.Table:
    cols: dict[str, Any] = {ROW_ID: rows.column(ROW_ID), SCORE: pa.array(scores, pa.float64())}
    if matched is not None:
        cols[MATCHED] = matched
    return pa.table(cols)


# Tokens (proxy): runs of letters, digits or "_", and single other non-space marks; close to
# a BPE count divided by ~1.3 for English prose.
TOKEN_PATTERN = r"[\p{L}\p{N}_]+|[^\p{L}\p{N}_\s]"


def as_polars(content: pa.Array | pa.ChunkedArray) -> pl.Series:
    """A string column as a polars Series (polars' regex kernels use both cores)."""
    arr = content.combine_chunks() if isinstance(content, pa.ChunkedArray) else content
    return pl.Series("t", arr)


# -- empty turns -----------------------------------------------------------------------------


class EmptyTurnParams(FilterParams):
    threshold: float | None = 2.0


class EmptyTurnFilter(Filter):
    """Score = non-blank characters of the dialogue's shortest turn; a dialogue with a turn
    shorter than the threshold is dropped (an empty answer or question teaches nothing)."""

    name = "empty_turn"
    Params = EmptyTurnParams
    drop_when = "below"
    aggregate = "min"

    def score(self, rows: pa.Table) -> pa.Table:
        t = turns_of(rows)
        chars = pc.utf8_length(pc.utf8_trim_whitespace(t.content)).to_numpy()
        return dialogue_scores(rows, reduce_turns(t, np.minimum, chars, 0.0))


# -- truncation ------------------------------------------------------------------------------

# A reply cut off mid-sentence: it ends on a comma, colon, dash or open bracket, or on a
# function word ("... and the"), or its last line is prose of 10+ words ending on a letter or
# digit (lists, poems, URLs and short lines often end without a period and are fine).
DANGLING = (
    r"(?:[,:;(\-\x{2013}\x{2014}]|\b(?:and|or|the|a|an|of|to|with|for|in|that|but|because|"
    r"which|is|are|was|were)\b)\s*$"
)
PROSE_CUT = r"(?:^|\n)[ \t]*[\p{L}\"'\x{201c}][^\n]*?(?:[ \t]+[^\s]+){9,}[\p{L}\p{N}]\s*$"
URL_END = r"(?:://|www\.|@|#)\S*\s*$"
TAIL_CHARS = 2000  # only the end of the last turn is read


class TruncatedParams(FilterParams):
    threshold: float | None = 1.0


class TruncatedFilter(Filter):
    """Score 1 when the dialogue looks cut off: no messages, a user turn last, or a last
    assistant turn that stops mid-sentence (DANGLING, PROSE_CUT); `matched` says which."""

    name = "truncated"
    Params = TruncatedParams
    drop_when = "above"

    def score(self, rows: pa.Table) -> pa.Table:
        messages = _messages(rows)
        n = len(messages)
        offsets = messages.offsets.to_numpy().astype(np.int64)
        has_msgs = offsets[1:] > offsets[:-1]
        flat = pc.list_flatten(messages)
        if len(flat) == 0:
            return dialogue_scores(rows, np.ones(n), pa.array(["no_messages"] * n, pa.string()))
        last = np.clip(offsets[1:] - offsets[0] - 1, 0, len(flat) - 1)
        last_msg = pc.take(flat, pa.array(last))
        role = pc.struct_field(last_msg, "role")
        content = pc.fill_null(pc.struct_field(last_msg, CONTENT), "")
        tail = pc.utf8_slice_codeunits(content, -TAIL_CHARS)
        user_last = pc.fill_null(pc.not_equal(role, "assistant"), True)
        open_end = pc.or_(
            pc.match_substring_regex(tail, DANGLING),
            pc.and_not(
                pc.match_substring_regex(tail, PROSE_CUT),
                pc.match_substring_regex(tail, URL_END),
            ),
        )
        none = pa.scalar(None, pa.string())
        reason = pc.if_else(
            pa.array(~has_msgs),
            "no_messages",
            pc.if_else(user_last, "last_turn_not_assistant", pc.if_else(open_end, "no_end", none)),
        )
        return dialogue_scores(rows, pc.cast(pc.is_valid(reason), pa.float64()), reason)


# -- role order ------------------------------------------------------------------------------


class RoleOrderParams(FilterParams):
    threshold: float | None = 1.0


class RoleOrderFilter(Filter):
    """Score = role-order violations: an unknown role, a system message after the first,
    a first non-system message that is not the user's, or two turns in a row by one role."""

    name = "role_order"
    Params = RoleOrderParams
    drop_when = "above"

    def score(self, rows: pa.Table) -> pa.Table:
        t = turns_of(rows)
        if len(t.parents) == 0:
            return dialogue_scores(rows, np.zeros(t.n_rows))
        roles = pa.array(["system", "user", "assistant"])
        code = pc.fill_null(pc.index_in(t.role, roles), -1).to_numpy()
        first = t.turn_index == 0
        system = code == 0
        after_lead = np.zeros(len(code), dtype=bool)  # right after a leading system message
        after_lead[1:] = (first & system)[:-1] & ~first[1:]
        opener = (first | after_lead) & ~system
        same = np.zeros(len(code), dtype=bool)
        same[1:] = (code[1:] == code[:-1]) & ~first[1:] & ~system[1:]
        bad = (code < 0).astype(np.int64) + (system & ~first) + (opener & (code != 1)) + same
        return dialogue_scores(rows, _per_dialogue(t.parents, bad, t.n_rows))


# -- turn count and length bounds ----------------------------------------------------------


def _n_turns(rows: pa.Table) -> np.ndarray:
    offsets = _messages(rows).offsets.to_numpy()
    return np.diff(offsets).astype(np.float64)


def _n_chars(rows: pa.Table) -> np.ndarray:
    t = turns_of(rows)
    return _per_dialogue(t.parents, pc.utf8_length(t.content).to_numpy(), t.n_rows)


@lru_cache(maxsize=4)
def _hf_tokenizer(path: str) -> Any:
    from transformers import AutoTokenizer  # optional, heavy: imported only when asked for

    return AutoTokenizer.from_pretrained(path)


def count_tokens(content: pa.Array | pa.ChunkedArray, tokenizer: str | None = None) -> np.ndarray:
    """Tokens per text: TOKEN_PATTERN matches, or a Hugging Face tokenizer (batched, Rust)."""
    if tokenizer is None:
        counts = as_polars(content).str.count_matches(TOKEN_PATTERN).fill_null(0)
        return counts.to_numpy()
    texts = pc.fill_null(content, "").to_pylist()
    enc = _hf_tokenizer(tokenizer)(texts, add_special_tokens=False)["input_ids"]
    return np.array([len(ids) for ids in enc], dtype=np.int64)


class TokensParams(FilterParams):
    tokenizer: str | None = None  # a local Hugging Face tokenizer directory; None: the proxy


class _LastCounts:
    """The token counts of the last content column seen, so `min_tokens` and `max_tokens` on
    one batch count once. The cache holds the column itself, so its buffer cannot be freed
    and its address reused: equal (address, offset, length) means the same text."""

    def __init__(self) -> None:
        self.content: pa.Array | None = None
        self.key: tuple[tuple[int, ...], int, int, str | None] | None = None
        self.counts: np.ndarray | None = None

    def get(self, content: pa.Array, tokenizer: str | None) -> np.ndarray:
        bufs = content.buffers()
        addr = tuple(b.address if b is not None else 0 for b in bufs[1:3])
        key = (addr, content.offset, len(content), tokenizer)
        if key != self.key or self.counts is None:
            self.content, self.key = content, key
            self.counts = count_tokens(content, tokenizer)
        return self.counts


_LAST_COUNTS = _LastCounts()


class _TokenCount(Filter):
    """Score = tokens of the whole dialogue (all turns)."""

    def score(self, rows: pa.Table) -> pa.Table:
        assert isinstance(self.params, TokensParams)
        t = turns_of(rows)
        counts = _LAST_COUNTS.get(t.content, self.params.tokenizer)
        return dialogue_scores(rows, _per_dialogue(t.parents, counts, t.n_rows))


class MinTurnsParams(FilterParams):
    threshold: float | None = 2.0


class _TurnCount(Filter):
    """Score = messages in the dialogue."""

    def score(self, rows: pa.Table) -> pa.Table:
        return dialogue_scores(rows, _n_turns(rows))


class MinTurnsFilter(_TurnCount):
    """Score = messages in the dialogue; fewer than 2 is not a dialogue."""

    name = "min_turns"
    Params = MinTurnsParams
    drop_when = "below"


class MaxTurnsParams(FilterParams):
    threshold: float | None = 65.0


class MaxTurnsFilter(_TurnCount):
    """Score = messages in the dialogue; 65 or more is a runaway generation."""

    name = "max_turns"
    Params = MaxTurnsParams
    drop_when = "above"


class MinCharsParams(FilterParams):
    threshold: float | None = 50.0


class _CharCount(Filter):
    """Score = characters in all turns."""

    def score(self, rows: pa.Table) -> pa.Table:
        return dialogue_scores(rows, _n_chars(rows))


class MinCharsFilter(_CharCount):
    """Score = characters in all turns; under 50 is too short to teach anything."""

    name = "min_chars"
    Params = MinCharsParams
    drop_when = "below"


class MaxCharsParams(FilterParams):
    threshold: float | None = 100_000.0


class MaxCharsFilter(_CharCount):
    """Score = characters in all turns; 100k or more is pasted junk or a loop."""

    name = "max_chars"
    Params = MaxCharsParams
    drop_when = "above"


class MinTokensParams(TokensParams):
    threshold: float | None = 16.0


class MinTokensFilter(_TokenCount):
    """Score = tokens in all turns; under 16 is too short."""

    name = "min_tokens"
    Params = MinTokensParams
    drop_when = "below"


class MaxTokensParams(TokensParams):
    threshold: float | None = 8192.0


class MaxTokensFilter(_TokenCount):
    """Score = tokens in all turns; 8192 or more does not fit a usual training context."""

    name = "max_tokens"
    Params = MaxTokensParams
    drop_when = "above"


# -- repetition ------------------------------------------------------------------------------


_MIX = np.uint64(0x9E3779B97F4A7C15)
_GRAM_BITS = np.uint64(40)  # low bits: n-gram hash; high 24 bits: the text it belongs to


def dup_ngram_frac(texts: pl.Series, n: int = 5) -> np.ndarray:
    """Per text: share of its word n-grams (split on spaces) that repeat an earlier n-gram
    of the same text (0 for texts with fewer than n words).

    Columnar: polars splits and hashes the words; numpy combines n consecutive word hashes
    into an n-gram hash, puts the text's position in the high bits, and sorts once, so
    repeats within a text are equal neighbours (a 40-bit n-gram hash: chance collisions
    within one text are negligible)."""
    m = len(texts)
    if m >= 1 << 24:
        raise ValueError("at most 2**24 texts per call")
    lists = texts.fill_null("").str.split(" ")
    lengths = lists.list.len().to_numpy()
    words = lists.explode()
    nonempty = (words.str.len_bytes() > 0).to_numpy()  # runs of spaces split into ""
    h = words.hash(seed=7).to_numpy()[nonempty]
    owner = np.repeat(np.arange(m, dtype=np.int32), lengths.astype(np.int64))[nonempty]
    if len(h) < n:
        return np.zeros(m)
    k = len(h) - n + 1
    gram = h[:k].copy()
    with np.errstate(over="ignore"):
        for j in range(1, n):
            gram *= _MIX
            gram += h[j : j + k]
    valid = owner[:k] == owner[n - 1 :]
    owner_v = owner[:k][valid]
    gram = gram[valid]
    gram >>= np.uint64(64) - _GRAM_BITS
    gram |= owner_v.astype(np.uint64) << _GRAM_BITS
    gram.sort()
    repeated = gram[1:][gram[1:] == gram[:-1]] >> _GRAM_BITS
    total = np.bincount(owner_v, minlength=m)
    repeats = np.bincount(repeated.astype(np.int64), minlength=m)
    return np.divide(repeats, total, out=np.zeros(m), where=total > 0)


class RepetitionParams(FilterParams):
    threshold: float | None = 0.3
    n: int = 5


class RepetitionFilter(Filter):
    """Score = duplicate word n-gram share of the dialogue's most repetitive assistant turn
    (a looping generation repeats itself; Gopher's duplicate n-gram idea, counted in
    n-grams rather than characters)."""

    name = "repetition"
    Params = RepetitionParams
    drop_when = "above"
    aggregate = "max"

    def score(self, rows: pa.Table) -> pa.Table:
        assert isinstance(self.params, RepetitionParams)
        t = turns_of(rows)
        assistant = pc.fill_null(pc.equal(t.role, "assistant"), False).to_numpy(
            zero_copy_only=False
        )
        frac = np.zeros(len(t.parents))
        texts = as_polars(t.content).filter(pl.Series(assistant))  # views: no text copied
        frac[assistant] = dup_ngram_frac(texts, self.params.n)
        return dialogue_scores(rows, reduce_turns(t, np.maximum, frac, 0.0))


QUALITY_FILTERS: tuple[type[Filter], ...] = (
    EmptyTurnFilter,
    TruncatedFilter,
    RoleOrderFilter,
    MinTurnsFilter,
    MaxTurnsFilter,
    MinCharsFilter,
    MaxCharsFilter,
    MinTokensFilter,
    MaxTokensFilter,
    RepetitionFilter,
)
