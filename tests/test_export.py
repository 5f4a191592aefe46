"""Snapshot export: every format loads with `datasets` in the published layout, the files are
byte-identical across exports, and a failed or killed export never leaves a half folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import Features, List, Value

from curate.cli import main
from curation import export
from curation.export import ExportResult, export_snapshot
from curation.recipe import load_recipe
from curation.runner import RunOptions, run_recipe
from warehouse import published
from warehouse.errors import BadInputError
from warehouse.snapshots import Snapshot, open_snapshot
from warehouse.store import Warehouse

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data" / "samples"

# Written out from the dataset cards of HuggingFaceH4/ultrachat_200k and
# HuggingFaceH4/ultrafeedback_binarized, not derived from our code.
_MESSAGES = List({"content": Value("string"), "role": Value("string")})
ULTRACHAT_200K_FEATURES = Features(
    {"prompt": Value("string"), "prompt_id": Value("string"), "messages": _MESSAGES}
)
ULTRAFEEDBACK_BINARIZED_FEATURES = Features(
    {
        "prompt": Value("string"),
        "prompt_id": Value("string"),
        "chosen": _MESSAGES,
        "rejected": _MESSAGES,
        "messages": _MESSAGES,
        "score_chosen": Value("float64"),
        "score_rejected": Value("float64"),
    }
)
UF_SPLITS = ["train_prefs", "test_prefs", "train_sft", "test_sft", "train_gen", "test_gen"]
UC_SPLITS = ["train_sft", "test_sft", "train_gen", "test_gen"]
FORMATS = ["hf", "parquet", "jsonl"]


# -- fixtures: real snapshots from the bundled raw records ------------------------------
@pytest.fixture(scope="module")
def wh(tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    path = tmp_path_factory.mktemp("export-wh") / "wh.duckdb"
    code = main(
        [
            "--warehouse",
            str(path),
            "--wait",
            "0",
            "ingest",
            str(SAMPLES / "ultrachat_raw_fixture.jsonl"),
            str(SAMPLES / "ultrafeedback_raw_fixture.jsonl"),
        ]
    )
    assert code == 0
    return Warehouse(path, wait_s=5)


@pytest.fixture(scope="module")
def uf(wh: Warehouse) -> Snapshot:
    """A preferences snapshot from the ultrafeedback_binarized recipe (about a second)."""
    run_recipe(load_recipe("ultrafeedback_binarized"), wh, RunOptions(progress=False, tags=["uf"]))
    return open_snapshot(wh, "uf")


@pytest.fixture(scope="module")
def uc(wh: Warehouse) -> Snapshot:
    """An sft snapshot from the ultrachat_200k recipe (loads an embedding model: slow tests)."""
    run_recipe(load_recipe("ultrachat_200k"), wh, RunOptions(progress=False, tags=["uc"]))
    return open_snapshot(wh, "uc")


# -- helpers ----------------------------------------------------------------------------
def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _leftovers(out: Path) -> list[str]:
    """Hidden siblings an export made next to OUT (temp or replaced folders)."""
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


def _rows_equal(got: pa.Table, snap: Snapshot, split: str) -> None:
    want = snap.split_arrow(split)
    assert got.column_names == want.column_names
    assert got.to_pylist() == want.to_pylist()


def _check_hf(snap: Snapshot, out: Path, literal: Features, splits: list[str]) -> None:
    dd = datasets.load_from_disk(str(out))
    assert isinstance(dd, datasets.DatasetDict)
    assert list(dd) == splits
    for split, ds in dd.items():
        assert ds.features == published.features_for(snap.kind)
        assert ds.features == literal
        assert list(ds.features) == list(literal)
        assert ds.split == split
        _rows_equal(ds.data.table, snap, split)


def _check_parquet(snap: Snapshot, out: Path, literal: Features, cache: Path) -> None:
    assert sorted(p.name for p in (out / "data").iterdir()) == sorted(
        f"{s}-00000-of-00001.parquet" for s in snap.splits
    )
    files = {s: str(out / "data" / f"{s}-00000-of-00001.parquet") for s in snap.splits}
    dd = datasets.load_dataset("parquet", data_files=files, cache_dir=str(cache))
    for split, ds in dd.items():
        assert ds.features == literal
        _rows_equal(ds.data.table, snap, split)
        _rows_equal(pq.read_table(files[split]), snap, split)


def _check_jsonl(snap: Snapshot, out: Path, literal: Features, cache: Path) -> None:
    files = {s: str(out / f"{s}.jsonl") for s in snap.splits}
    for split, path in files.items():
        lines = Path(path).read_bytes().splitlines()
        assert len(lines) == snap.splits[split]
        assert list(json.loads(lines[0])) == list(literal)
        assert [json.loads(line) for line in lines] == snap.split_arrow(split).to_pylist()
    dd = datasets.load_dataset("json", data_files=files, cache_dir=str(cache))
    for split, ds in dd.items():
        assert ds.features == literal
        assert ds.to_list() == snap.split_arrow(split).to_pylist()


def _fail_on_second_split(monkeypatch: pytest.MonkeyPatch, fmt: str) -> list[str]:
    """Make the format's split writer raise when it reaches the second split."""
    real = export._WRITERS[fmt]
    calls: list[str] = []

    def failing(snap: Snapshot, split: str, batches: Iterator[pa.RecordBatch], root: Path) -> int:
        calls.append(split)
        if len(calls) == 2:
            raise OSError("disk full (injected)")
        return real(snap, split, batches, root)

    monkeypatch.setitem(export._WRITERS, fmt, failing)
    return calls


# -- each format loads back in the published layout (preferences) -------------------------
def test_hf_export_loads_with_published_features(uf: Snapshot, wh: Warehouse, tmp_path: Path):
    res = export_snapshot(wh, "uf", tmp_path / "uf", "hf")
    assert isinstance(res, ExportResult)
    assert res.out == tmp_path / "uf"
    assert list(res.rows) == UF_SPLITS
    assert res.rows == uf.splits
    assert json.loads((res.out / "dataset_dict.json").read_text()) == {"splits": UF_SPLITS}
    assert res.files == sorted(_files(res.out))
    assert not _leftovers(res.out)
    _check_hf(uf, res.out, ULTRAFEEDBACK_BINARIZED_FEATURES, UF_SPLITS)


def test_parquet_export_has_hub_layout_and_rows(uf: Snapshot, wh: Warehouse, tmp_path: Path):
    res = export_snapshot(wh, uf.snapshot_id, tmp_path / "uf", "parquet")
    assert set(res.files) == {"snapshot.json"} | {
        f"data/{s}-00000-of-00001.parquet" for s in UF_SPLITS
    }
    _check_parquet(uf, res.out, ULTRAFEEDBACK_BINARIZED_FEATURES, tmp_path / "cache")


def test_jsonl_export_loads_with_datasets(uf: Snapshot, wh: Warehouse, tmp_path: Path):
    res = export_snapshot(wh, uf.snapshot_id[:8], tmp_path / "uf", "jsonl")
    assert set(res.files) == {"snapshot.json"} | {f"{s}.jsonl" for s in UF_SPLITS}
    _check_jsonl(uf, res.out, ULTRAFEEDBACK_BINARIZED_FEATURES, tmp_path / "cache")


def test_jsonl_keeps_non_ascii_text_unescaped(uf: Snapshot, wh: Warehouse, tmp_path: Path):
    res = export_snapshot(wh, "uf", tmp_path / "uf", "jsonl", splits=["train_prefs"])
    raw = (res.out / "train_prefs.jsonl").read_text(encoding="utf-8")
    rows = uf.split_arrow("train_prefs").to_pylist()
    chars = {c for r in rows for m in r["chosen"] for c in m["content"] if ord(c) > 127}
    assert chars, "the bundled records should contain some non-ASCII text"
    for c in chars:
        assert c in raw
        assert f"\\u{ord(c):04x}" not in raw


def test_manifest_says_where_the_export_came_from(uf: Snapshot, wh: Warehouse, tmp_path: Path):
    for fmt in FORMATS:
        res = export_snapshot(wh, "uf", tmp_path / fmt, fmt, splits=["test_prefs"])
        manifest = json.loads((res.out / "snapshot.json").read_text())
        assert manifest["snapshot_id"] == uf.snapshot_id
        assert manifest["kind"] == "preferences"
        assert manifest["recipe"] == "ultrafeedback_binarized"
        assert manifest["content_hash"] == uf.content_hash
        assert manifest["format"] == fmt
        assert manifest["splits"] == {"test_prefs": uf.splits["test_prefs"]}
        assert list(manifest["snapshot_splits"]) == UF_SPLITS
        assert manifest["columns"] == list(ULTRAFEEDBACK_BINARIZED_FEATURES)


def test_chosen_splits_come_in_published_order(uf: Snapshot, wh: Warehouse, tmp_path: Path):
    res = export_snapshot(wh, "uf", tmp_path / "uf", "hf", splits=["test_sft", "train_prefs"])
    assert list(res.rows) == ["train_prefs", "test_sft"]
    assert list(datasets.load_from_disk(str(res.out))) == ["train_prefs", "test_sft"]


# -- determinism ------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_exporting_twice_gives_identical_bytes(
    uf: Snapshot, wh: Warehouse, tmp_path: Path, fmt: str
):
    a = export_snapshot(wh, "uf", tmp_path / "a", fmt)
    b = export_snapshot(wh, uf.snapshot_id, tmp_path / "b", fmt)
    files_a, files_b = _files(a.out), _files(b.out)
    assert list(files_a) == list(files_b) == a.files
    differ = [name for name in files_a if files_a[name] != files_b[name]]
    assert differ == []


def test_hf_fingerprint_comes_from_the_content_hash(uf: Snapshot, wh: Warehouse, tmp_path: Path):
    res = export_snapshot(wh, "uf", tmp_path / "uf", "hf", splits=["train_prefs"])
    state = json.loads((res.out / "train_prefs" / "state.json").read_text())
    assert state["_fingerprint"].startswith(uf.content_hash[:32])


def test_small_batches_give_the_same_rows(
    uf: Snapshot, wh: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The fixture splits fit in one batch and one read range; tiny sizes exercise the
    re-batching across DuckDB batches and range queries."""
    default = export_snapshot(wh, "uf", tmp_path / "default", "jsonl")
    monkeypatch.setattr(export, "BATCH_ROWS", 7)
    monkeypatch.setattr(export, "RANGE_ROWS", 5)
    small = export_snapshot(wh, "uf", tmp_path / "small", "jsonl")
    assert _files(small.out) == _files(default.out)
    pq_out = export_snapshot(wh, "uf", tmp_path / "pq", "parquet", splits=["train_prefs"])
    meta = pq.ParquetFile(pq_out.out / "data" / "train_prefs-00000-of-00001.parquet").metadata
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert sum(sizes) == uf.splits["train_prefs"]
    assert set(sizes[:-1]) == {7} and 0 < sizes[-1] <= 7
    hf_out = export_snapshot(wh, "uf", tmp_path / "hf", "hf", splits=["train_prefs"])
    table = datasets.load_from_disk(str(hf_out.out))["train_prefs"].data.table
    _rows_equal(table, uf, "train_prefs")


# -- bad input --------------------------------------------------------------------------
def test_unknown_ref_format_and_split_are_clear_errors(wh: Warehouse, uf: Snapshot, tmp_path: Path):
    out = tmp_path / "x"
    with pytest.raises(BadInputError, match="no snapshot or tag 'nope'"):
        export_snapshot(wh, "nope", out, "hf")
    with pytest.raises(BadInputError, match=r"unknown export format 'csv'.*hf, parquet, jsonl"):
        export_snapshot(wh, "uf", out, "csv")
    with pytest.raises(BadInputError, match="no split 'train'; it has: train_prefs, test_prefs"):
        export_snapshot(wh, "uf", out, "hf", splits=["train", "train_prefs"])
    with pytest.raises(BadInputError, match="no splits asked for"):
        export_snapshot(wh, "uf", out, "hf", splits=[])
    assert not out.exists()
    assert not _leftovers(out)


# -- overwrite and atomicity ------------------------------------------------------------
def test_existing_out_is_refused_without_overwrite(uf: Snapshot, wh: Warehouse, tmp_path: Path):
    out = tmp_path / "out"
    export_snapshot(wh, "uf", out, "jsonl", splits=["test_prefs"])
    before = _files(out)
    with pytest.raises(BadInputError, match=f"{out} already exists"):
        export_snapshot(wh, "uf", out, "jsonl")
    assert _files(out) == before


def test_overwrite_replaces_an_earlier_export(uf: Snapshot, wh: Warehouse, tmp_path: Path):
    out = tmp_path / "out"
    export_snapshot(wh, "uf", out, "jsonl", splits=["test_prefs"])
    res = export_snapshot(wh, "uf", out, "parquet", overwrite=True)
    assert sorted(_files(out)) == res.files
    assert json.loads((out / "snapshot.json").read_text())["format"] == "parquet"
    assert not (out / "test_prefs.jsonl").exists()
    assert not _leftovers(out)


def test_overwrite_refuses_a_folder_that_is_not_an_export(
    wh: Warehouse, uf: Snapshot, tmp_path: Path
):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(BadInputError, match="not an earlier export"):
        export_snapshot(wh, "uf", out, "jsonl", overwrite=True)
    assert (out / "notes.txt").read_text() == "keep me"
    empty = tmp_path / "empty"
    empty.mkdir()
    export_snapshot(wh, "uf", empty, "jsonl", overwrite=True, splits=["test_sft"])
    assert (empty / "test_sft.jsonl").is_file()


@pytest.mark.parametrize("fmt", FORMATS)
def test_failure_mid_export_leaves_no_folder(
    uf: Snapshot, wh: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
):
    out = tmp_path / "nested" / "out"
    calls = _fail_on_second_split(monkeypatch, fmt)
    with pytest.raises(OSError, match="injected"):
        export_snapshot(wh, "uf", out, fmt)
    assert calls == UF_SPLITS[:2]
    assert not out.exists()
    assert not _leftovers(out)


def test_failed_overwrite_keeps_the_old_export(
    uf: Snapshot, wh: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    out = tmp_path / "out"
    export_snapshot(wh, "uf", out, "jsonl", splits=["test_prefs"])
    before = _files(out)
    _fail_on_second_split(monkeypatch, "hf")
    with pytest.raises(OSError, match="injected"):
        export_snapshot(wh, "uf", out, "hf", overwrite=True)
    assert _files(out) == before
    assert not _leftovers(out)


_KILLED_EXPORT = """
import sys, time
from pathlib import Path
from curation import export
from warehouse.store import Warehouse
real = export._WRITERS["parquet"]
calls = []
def slow(snap, split, batches, root):
    calls.append(split)
    if len(calls) == 2:
        Path(sys.argv[3]).write_text(split)
        time.sleep(120)
    return real(snap, split, batches, root)
export._WRITERS["parquet"] = slow
export.export_snapshot(Warehouse(sys.argv[1]), "uf", Path(sys.argv[2]), "parquet")
"""


@pytest.mark.slow
def test_killed_export_leaves_no_folder_and_is_cleaned_up_later(
    uf: Snapshot, wh: Warehouse, tmp_path: Path
):
    """A real SIGKILL in the middle of the second split: OUT never appears; the next export
    to the same OUT removes the dead process's temp folder."""
    out, marker = tmp_path / "out", tmp_path / "marker"
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_EXPORT, str(wh.path), str(out), str(marker)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert not out.exists()
    finally:
        proc.kill()
        proc.wait()
    assert not out.exists()
    assert len(_leftovers(out)) == 1
    assert (tmp_path / _leftovers(out)[0] / "data" / "train_prefs-00000-of-00001.parquet").exists()
    export_snapshot(wh, "uf", out, "parquet")
    assert not _leftovers(out)


# -- TRL reads the hf export (no training here) -------------------------------------------
def _is_conversational(example: dict[str, Any]) -> bool:
    from trl.data_utils import is_conversational

    return bool(is_conversational(example))


@pytest.mark.slow  # importing trl alone takes ~5 s of CPU
def test_trl_reads_the_preferences_export(uf: Snapshot, wh: Warehouse, tmp_path: Path):
    """The handbook's DPO recipes keep the chosen/rejected columns; TRL then finds them
    conversational and extracts the shared prompt itself.

    `is_conversational` on a whole published row is not asked: with `prompt` a string and the
    other columns conversations, TRL 1.16 answers by whichever key `set.pop()` returns, which
    depends on PYTHONHASHSEED (the same holds for the published dataset)."""
    from trl.data_utils import extract_prompt

    dd = datasets.load_from_disk(str(export_snapshot(wh, "uf", tmp_path / "uf", "hf").out))
    prefs = dd["train_prefs"].select_columns(["chosen", "rejected"])
    for row, full in zip(prefs, dd["train_prefs"], strict=True):
        assert _is_conversational(row)
        assert _is_conversational({"messages": full["messages"]})
        split = extract_prompt(row)
        assert split["prompt"] == [{"content": full["prompt"], "role": "user"}]
        assert split["chosen"][0]["role"] == split["rejected"][0]["role"] == "assistant"
    for row in dd["train_sft"].select_columns(["messages"]):
        assert _is_conversational(row)


def _check_sft_trl(out: Path) -> None:
    dd = datasets.load_from_disk(str(out))
    for split in UC_SPLITS:
        for row in dd[split].select_columns(["messages"]):
            assert _is_conversational(row)
            assert row["messages"][0]["role"] == "user"
    assert all(r["messages"][-1]["role"] == "assistant" for r in dd["train_sft"])
    assert all(r["messages"][-1]["role"] == "user" for r in dd["train_gen"])


# -- sft (ultrachat_200k recipe: loads an embedding model) ------------------------------
@pytest.mark.slow
def test_sft_exports_load_in_the_ultrachat_200k_layout(uc: Snapshot, wh: Warehouse, tmp_path: Path):
    assert uc.kind == "sft"
    results: dict[str, ExportResult] = {}
    for fmt in FORMATS:
        results[fmt] = export_snapshot(wh, "uc", tmp_path / fmt, fmt)
        assert list(results[fmt].rows) == UC_SPLITS
        again = export_snapshot(wh, uc.snapshot_id, tmp_path / f"{fmt}-again", fmt)
        assert _files(again.out) == _files(results[fmt].out)
    _check_hf(uc, results["hf"].out, ULTRACHAT_200K_FEATURES, UC_SPLITS)
    _check_parquet(uc, results["parquet"].out, ULTRACHAT_200K_FEATURES, tmp_path / "cache")
    _check_jsonl(uc, results["jsonl"].out, ULTRACHAT_200K_FEATURES, tmp_path / "cache")
    _check_sft_trl(results["hf"].out)
