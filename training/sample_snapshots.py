"""Commit published-format JSON Lines (the bundled ultrachat_200k / ultrafeedback_binarized
samples) as warehouse snapshots, so training can be tried, tested and benchmarked on real
records without running a curation recipe first.

Rows are split in file order: the first `test_fraction` go to the test split. The snapshot id
hashes the file's bytes and the split rule, so committing the same file twice is a no-op.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pyarrow as pa

from warehouse.errors import BadInputError
from warehouse.snapshots import SnapshotMeta, commit_snapshot, snapshot_id_for
from warehouse.store import Warehouse

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"
SFT_SAMPLE = SAMPLES / "ultrachat_200k_sample.jsonl"
PREFS_SAMPLE = SAMPLES / "ultrafeedback_binarized_sample.jsonl"

_MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
_ROWS = pa.schema(
    [
        ("split", pa.string()),
        ("ordinal", pa.int64()),
        ("row_id", pa.string()),
        ("prompt", pa.string()),
        ("prompt_id", pa.string()),
        ("messages", pa.list_(_MESSAGE)),
        ("chosen", pa.list_(_MESSAGE)),
        ("rejected", pa.list_(_MESSAGE)),
        ("score_chosen", pa.float64()),
        ("score_rejected", pa.float64()),
    ]
)


def _messages(value: Any) -> list[dict[str, str]] | None:
    if value is None:
        return None
    return [{"role": str(m["role"]), "content": str(m["content"])} for m in value]


def _rows(records: list[dict[str, Any]], kind: str, test_fraction: float) -> pa.Table:
    n_test = max(1, int(len(records) * test_fraction)) if len(records) > 1 else 0
    train, test = ("train_sft", "test_sft") if kind == "sft" else ("train_prefs", "test_prefs")
    out: list[dict[str, Any]] = []
    for i, rec in enumerate(records):
        split, ordinal = (test, i) if i < n_test else (train, i - n_test)
        out.append(
            {
                "split": split,
                "ordinal": ordinal,
                "row_id": f"{rec.get('prompt_id', '')}:{i}",
                "prompt": rec.get("prompt"),
                "prompt_id": rec.get("prompt_id"),
                "messages": _messages(rec.get("messages")),
                "chosen": _messages(rec.get("chosen")),
                "rejected": _messages(rec.get("rejected")),
                "score_chosen": rec.get("score_chosen"),
                "score_rejected": rec.get("score_rejected"),
            }
        )
    return pa.Table.from_pylist(out, schema=_ROWS)


def commit_sample(
    wh: Warehouse | str | Path,
    path: Path,
    kind: str,
    tag: str | None = None,
    test_fraction: float = 0.1,
    limit: int | None = None,
) -> str:
    """Commit the published-format file at `path` as a `kind` snapshot; returns its id."""
    warehouse = wh if isinstance(wh, Warehouse) else Warehouse(wh)
    if kind not in ("sft", "preferences"):
        raise BadInputError(f"kind {kind!r}: expected sft or preferences")
    data = path.read_bytes()
    records = [json.loads(line) for line in data.splitlines() if line.strip()]
    if limit is not None:
        records = records[:limit]
    recipe = json.dumps(
        {"sample": path.name, "test_fraction": test_fraction, "limit": limit}, sort_keys=True
    )
    inputs = [{"file": path.name, "sha256": hashlib.sha256(data).hexdigest()}]
    sid = snapshot_id_for(inputs, recipe, "sample-v1", {}, 0)
    meta = SnapshotMeta(
        snapshot_id=sid,
        kind=kind,
        recipe_name=f"sample:{path.stem}",
        recipe_text=recipe,
        inputs=inputs,
        code_version="sample-v1",
        message=f"bundled sample {path.name}",
    )
    with warehouse.write() as con:
        commit_snapshot(
            con, meta, rows=_rows(records, kind, test_fraction), tags=[tag] if tag else None
        )
    return sid
