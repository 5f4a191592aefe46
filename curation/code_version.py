"""The code version a snapshot id hashes: the source of everything that shapes its rows.

A hash of the files (not a release number), so any change to a filter, a bundled benchmark
list, the runner or the output layout gives new snapshot ids, and two clean checkouts of the
same commit agree.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = (
    "filters",
    "curation",
    "warehouse/published.py",
    "warehouse/snapshots.py",
)
SUFFIXES = {".py", ".jsonl", ".csv", ".json"}


@cache
def code_version() -> str:
    h = hashlib.sha256()
    for entry in SOURCES:
        base = ROOT / entry
        files = [base] if base.is_file() else sorted(base.rglob("*"))
        for f in files:
            if f.is_file() and f.suffix in SUFFIXES and "__pycache__" not in f.parts:
                h.update(f.relative_to(ROOT).as_posix().encode())
                h.update(b"\0")
                h.update(f.read_bytes().replace(b"\r\n", b"\n"))
                h.update(b"\0")
    return "c_" + h.hexdigest()[:16]
