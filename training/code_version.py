"""A short hash of the code that trains, recorded with every run.

It covers training/, warehouse/ and filters/ (what decides how snapshot rows become trainer
input), so two runs with the same code version and config differ only by chance.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
_PACKAGES = ("training", "warehouse", "filters")


@cache
def code_version() -> str:
    digest = hashlib.sha256()
    for package in _PACKAGES:
        for path in sorted((_ROOT / package).rglob("*.py")):
            digest.update(str(path.relative_to(_ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]
