"""Truecasing: capitalise sentence starts and a standalone "i" (H4 saw ~5% of dialogues).

What is edited: the first letter of a turn, and of a sentence after ".", "!" or "?" followed
by spaces or a line break (an optional list marker such as "- " or "1. " is skipped); and "i",
"i'm", "i've", "i'd", "i'll" as whole words. A line break alone does not start a sentence:
poems and lists with lower-case lines are a style, and unpunctuated lines are often code.
What is left alone: fenced code blocks (an unclosed fence runs to the end of the turn),
inline `code`, URLs, e-mail addresses, identifier-like words (snake_case, camelCase,
dotted.names, words with digits, paths, calls like `foo()`), and whole turns that look like
unfenced code (3+ lines ending in ";", "{" or "}").

Abbreviations: a lower-case word after "e.g.", "i.e.", "etc.", "vs.", "cf.", a title ("Mr.",
"Dr.", ...) or an ellipsis continues the sentence, so "e.g. this" and "Mr. smith" stay as they
are: we capitalise sentence starts only, never names, and after a title the next word is not
a sentence start. After a closing quote or bracket ('"Stop!" he said') the sentence goes on.
"i.e." and "(i)" are not the pronoun.

Columnar where it matters: one RE2 pass over all turns (Arrow compute) finds the turns that
may need an edit (a few percent); only those go through the exact Python rules below.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from filters.base import SCORE, FilterParams
from filters.scope import CONTENT, ROW_ID, TURN_INDEX
from filters.transform import Transform, TransformResult, change_records

# Lower-case words after these (with their final dot) continue the sentence.
ABBREVIATIONS = frozenset(
    "e.g i.e etc vs cf al approx incl esp ca viz mr mrs ms dr prof st sr jr no fig eq vol ch".split()  # noqa: SIM905
)

# Superset of the exact rules in RE2 syntax: a lower-case letter at a turn or sentence start,
# or an "i" that is not inside a word.
CANDIDATE = (
    r"(?:^|[.!?][\"')\]\x{201d}\x{2019}]*\s)\s*(?:(?:[-*+\x{2022}]|\d{1,3}[.)])\s+)?[a-z]"
    r"|(?:^|[^\w'\x{2019}.\-/@])i(?:$|[^\w\-])"
)

_PROTECTED = re.compile(
    r"```.*?(?:```|\Z)"  # fenced code, an unclosed fence runs to the end
    r"|`[^`\n]+`"  # inline code
    r"|(?:https?://|ftp://|www\.)\S+"  # URLs
    r"|[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+",  # e-mail addresses
    re.S,
)
_START = re.compile(
    r"(?:\A|(?P<end>[.!?])(?:[ \t]+|[ \t]*\n\s*))[ \t]*"
    r"(?:(?:[-*+\u2022]|\d{1,3}[.)])[ \t]+)?(?=[a-z])"
)
_FENCED = re.compile(r"```.*?(?:```|\Z)", re.S)
# Unfenced code: several lines ending in ; { or } (such a turn is left alone).
_CODE_LINES = re.compile(r"[;{}][ \t]*$", re.M)
_WORD = re.compile(r"\S*")
_INITIALS = re.compile(r"(?![ai]\Z)[a-z](?:\.[a-z])*")
_I = re.compile(r"(?<![\w'\u2019.\-/@])i(?=['\u2019](?:m|ve|d|ll)\b|(?![\w'\u2019\-)]|\.\w))")
_IDENT = re.compile(r"[_\d/\\=(@#<>{}\[]|[a-z][A-Z]|\w\.\w")
_TRAIL = "\"'.,;:!?)]}\u2019\u201d"


class TruecaseParams(FilterParams):
    threshold: float | None = None  # a transform: never drops unless asked to


def _protected_spans(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in _PROTECTED.finditer(text)]


def _inside(pos: int, spans: list[tuple[int, int]]) -> bool:
    return any(a <= pos < b for a, b in spans)


def _previous_token(text: str, end: int) -> str:
    """The whitespace-delimited token that ends just before position `end`."""
    start = max(text.rfind(" ", 0, end), text.rfind("\n", 0, end), text.rfind("\t", 0, end))
    return text[start + 1 : end]


def _is_sentence_start(text: str, m: re.Match[str]) -> bool:
    """False after an abbreviation, initial or ellipsis, and for identifier-like words."""
    if m.group("end") is not None:
        prev = _previous_token(text, m.start("end")).lstrip("(\"'").lower()
        if m.group("end") == "." and (
            prev in ABBREVIATIONS or _INITIALS.fullmatch(prev) or prev.endswith(".")
        ):
            return False  # "e.g. x", "Mr. smith", "U.S. law", "J. smith", "wait... no"
    word = _WORD.match(text, m.end())
    core = word.group(0).rstrip(_TRAIL) if word else ""
    return not _IDENT.search(core)


def truecase_text(text: str) -> tuple[str, int]:
    """One turn's truecased text and its number of edits (the exact rules, in Python)."""
    if len(_CODE_LINES.findall(_FENCED.sub("", text[:4000]))) >= 3:
        return text, 0  # unfenced code
    spans = _protected_spans(text)
    edits: list[int] = []
    for m in _START.finditer(text):
        pos = m.end()
        if not _inside(pos, spans) and _is_sentence_start(text, m):
            edits.append(pos)
    for m in _I.finditer(text):
        if not _inside(m.start(), spans):
            edits.append(m.start())
    if not edits:
        return text, 0
    chars = list(text)
    for p in set(edits):
        chars[p] = chars[p].upper()
    return "".join(chars), len(set(edits))


def _candidates(content: pa.Array) -> np.ndarray:
    """Positions of the turns the RE2 superset pattern says may need an edit."""
    cand = pc.fill_null(pc.match_substring_regex(content, CANDIDATE), False)
    return pc.indices_nonzero(cand).to_numpy()


def truecase(content: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, pa.Array]:
    """Truecased contents and edits per row: an RE2 pass picks the candidate rows, and only
    those (a few percent) are edited in Python."""
    if isinstance(content, pa.ChunkedArray):
        content = content.combine_chunks()
    idx = _candidates(content)
    n_edits = np.zeros(len(content), dtype=np.int64)
    if len(idx) == 0:
        return content, pa.array(n_edits)
    results = [truecase_text(t) for t in pc.take(content, pa.array(idx)).to_pylist()]
    n_edits[idx] = [r[1] for r in results]
    # scatter the rewritten candidates back over the unchanged rows
    take_from = np.zeros(len(content), dtype=np.int64)
    take_from[idx] = np.arange(len(idx))
    mask = np.zeros(len(content), dtype=bool)
    mask[idx] = True
    replaced = pc.take(pa.array([r[0] for r in results], content.type), pa.array(take_from))
    return pc.if_else(pa.array(mask), replaced, content), pa.array(n_edits)


def count_edits(content: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Edits truecasing would make per row, without building the new column (scoring)."""
    if isinstance(content, pa.ChunkedArray):
        content = content.combine_chunks()
    idx = _candidates(content)
    n_edits = np.zeros(len(content), dtype=np.int64)
    texts = pc.take(content, pa.array(idx)).to_pylist()
    n_edits[idx] = [truecase_text(t)[1] for t in texts]
    return n_edits


class TruecaseFilter(Transform):
    """Score = edits truecasing makes in a turn (summed per dialogue); drops nothing by
    default. `apply_transform(batch)` returns the truecased batch and what changed."""

    name = "truecase"
    Params = TruecaseParams
    drop_when = "above"

    def score(self, rows: pa.Table) -> pa.Table:
        n_edits = count_edits(rows.column(CONTENT))
        return pa.table(
            {
                ROW_ID: rows.column(ROW_ID),
                TURN_INDEX: rows.column(TURN_INDEX),
                SCORE: pa.array(n_edits, pa.float64()),
            }
        )

    def transform(self, rows: pa.Table) -> TransformResult:
        before = rows.column(CONTENT).combine_chunks()
        after, n_edits = truecase(before)
        changed = pc.greater(n_edits, 0)
        return TransformResult(
            after, changed, n_edits, change_records(rows, before, after, n_edits)
        )
