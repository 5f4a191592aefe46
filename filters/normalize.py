"""Text normalisation for dedup: copies that differ only in case, width, punctuation or spacing
should hash alike.

All steps are Arrow compute kernels (no Python loop over rows): Unicode NFKC (full-width and
ligature forms fold to ASCII), lower case, every run of Unicode punctuation/symbols
(``\\p{P}``, ``\\p{S}``) becomes a space, whitespace runs become one space, ends trimmed.
NFKC can be switched off: it is the slowest step and a no-op on ASCII text.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

_PUNCT = r"[\p{P}\p{S}]+"
_SPACE = r"[\s\p{Z}]+"


def normalize(
    text: pa.Array | pa.ChunkedArray, nfkc: bool = True, collapse_space: bool = True
) -> pa.Array | pa.ChunkedArray:
    """Dedup-normalised text; NULL stays NULL. `collapse_space=False` skips the whitespace
    pass (the slowest regex) for callers that split on whitespace anyway."""
    out = pc.utf8_normalize(text, "NFKC") if nfkc else text
    out = pc.utf8_lower(out)
    out = pc.replace_substring_regex(out, _PUNCT, " ")
    if not collapse_space:
        return out
    out = pc.replace_substring_regex(out, _SPACE, " ")
    return pc.utf8_trim(out, " ")
