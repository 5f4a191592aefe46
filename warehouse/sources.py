"""Where records come from: local files, folders, globs, `datasets` folders and hub ids.

`resolve` turns what the user typed into a list of `Source`s, and fails before anything is
written when a path is missing. Each source is one ingest batch (one file, or one split).
"""

from __future__ import annotations

import glob as globlib
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from warehouse.errors import BadInputError

JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
PARQUET_SUFFIXES = (".parquet",)
ARROW_SUFFIXES = (".arrow",)
_SPLIT_RE = re.compile(
    r"(?:^|[^a-z])((?:train|test)_(?:sft|gen|prefs)|train|test|validation)(?:[^a-z]|$)"
)
_HUB_RE = re.compile(r"^(?:hf://)?[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class Source:
    """One unit of ingest: a file, a split of a datasets folder, or a split of a hub dataset."""

    given: str
    kind: str  # jsonl | json | parquet | arrow | hub
    path: Path | None = None
    files: tuple[Path, ...] = ()
    split: str | None = None
    hub_id: str | None = None
    revision: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        if self.hub_id:
            return f"{self.hub_id}[{self.split}]"
        base = str(self.path)
        return f"{base}[{self.split}]" if self.kind == "arrow" and self.split else base

    def checksum(self) -> str:
        """sha256 of the bytes (hub: of id, revision and split)."""
        if self.kind == "hub":
            key = f"hub:{self.hub_id}@{self.revision}:{self.split}"
            return hashlib.sha256(key.encode()).hexdigest()
        h = hashlib.sha256()
        for f in self.files or ((self.path,) if self.path else ()):
            with open(f, "rb") as fh:
                while block := fh.read(8 << 20):
                    h.update(block)
        return h.hexdigest()

    def size_bytes(self) -> int:
        return sum(f.stat().st_size for f in (self.files or ((self.path,) if self.path else ())))


def split_from_name(name: str) -> str | None:
    """`train_sft-00000-of-00003.parquet` -> train_sft; None when the name says nothing."""
    m = _SPLIT_RE.search(Path(name).name.lower())
    return m.group(1) if m else None


def _file_source(given: str, path: Path, split: str | None) -> Source:
    suffix = path.suffix.lower()
    if suffix in JSON_SUFFIXES:
        kind = "jsonl"
        with open(path, "rb") as fh:
            head = fh.read(4096).lstrip()
        if head.startswith(b"["):
            kind = "json"
    elif suffix in PARQUET_SUFFIXES:
        kind = "parquet"
    elif suffix in ARROW_SUFFIXES:
        kind = "arrow"
    else:
        raise BadInputError(
            f"{path}: unsupported file type {suffix or '(none)'}; expected one of "
            f"{', '.join(JSON_SUFFIXES + PARQUET_SUFFIXES + ARROW_SUFFIXES)}"
        )
    return Source(given, kind, path=path.resolve(), split=split or split_from_name(path.name))


def _datasets_folder(given: str, path: Path, split: str | None) -> list[Source]:
    """A folder written by `save_to_disk`: a DatasetDict (one subfolder per split) or a Dataset."""
    dict_file = path / "dataset_dict.json"
    if dict_file.exists():
        splits = json.loads(dict_file.read_text())["splits"]
        out: list[Source] = []
        for s in splits:
            if split and s != split:
                continue
            out.extend(_datasets_folder(given, path / s, s))
        return out
    files = tuple(sorted(path.glob("data-*.arrow")))
    state = json.loads((path / "state.json").read_text())
    fingerprint = state.get("_fingerprint")
    name = split or state.get("_split") or path.name
    return [
        Source(
            given,
            "arrow",
            path=path.resolve(),
            files=tuple(f.resolve() for f in files),
            split=name,
            revision=fingerprint,
        )
    ]


def _expand_path(given: str, path: Path, split: str | None) -> list[Source]:
    if path.is_dir():
        if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
            return _datasets_folder(given, path, split)
        files = sorted(
            p
            for p in path.rglob("*")
            if p.is_file() and p.suffix.lower() in JSON_SUFFIXES + PARQUET_SUFFIXES
        )
        if not files:
            raise BadInputError(f"{path}: folder holds no .jsonl, .json or .parquet file")
        return [_file_source(given, f, split) for f in files]
    return [_file_source(given, path, split)]


def resolve(inputs: list[str], split: str | None = None) -> list[Source]:
    """Expand paths, folders and globs; recognise hub ids. Raises before any write."""
    sources: list[Source] = []
    for given in inputs:
        path = Path(given).expanduser()
        if any(ch in given for ch in "*?["):
            matches = sorted(Path(p) for p in globlib.glob(str(path), recursive=True))
            if not matches:
                raise BadInputError(f"{given}: the glob matches no file")
            for m in matches:
                sources.extend(_expand_path(given, m, split))
        elif path.exists():
            sources.extend(_expand_path(given, path, split))
        elif _HUB_RE.match(given) and not Path(given).suffix:
            sources.append(Source(given, "hub", hub_id=given.removeprefix("hf://"), split=split))
        else:
            raise BadInputError(f"{given}: no such file or folder")
    return sources
