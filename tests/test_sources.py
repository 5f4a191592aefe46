"""Files, folders, globs, Parquet, JSON arrays, `save_to_disk` folders, hub ids; re-ingest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from warehouse import BadInputError, Warehouse
from warehouse.ingest import IngestOptions, ingest

QUIET = IngestOptions(progress=False)


def _rows(wh: Warehouse, sql: str) -> list[tuple[object, ...]]:
    with wh.read() as con:
        return con.execute(sql).fetchall()


def test_parquet_and_json_array_match_jsonl(wh: Warehouse, samples: Path, tmp_path: Path) -> None:
    records = [json.loads(line) for line in open(samples / "ultrafeedback_binarized_sample.jsonl")][
        :50
    ]
    pq.write_table(pa.Table.from_pylist(records), tmp_path / "train_prefs-00000-of-00001.parquet")
    (tmp_path / "pairs.json").write_text(json.dumps(records))
    res = ingest(
        wh, [str(tmp_path / "*.parquet"), str(tmp_path / "pairs.json")], QUIET, log=lambda _: None
    )
    assert [(r.format, r.split, r.n_accepted) for r in res] == [
        ("h4_binarized", "train_prefs", 50),
        ("h4_binarized", None, 50),
    ]
    kinds = _rows(wh, "SELECT source_kind FROM ingest_batches ORDER BY finished_at")
    assert kinds == [("parquet",), ("json",)]
    diff = _rows(
        wh,
        """SELECT count(*) FROM preference_pairs a JOIN preference_pairs b USING (source_line)
           WHERE a.split = 'train_prefs' AND b.split IS NULL
             AND (a.chosen <> b.chosen OR a.prompt_id <> b.prompt_id OR a.score_rejected <> b.score_rejected)""",
    )
    assert diff == [(0,)]


def test_parquet_with_wrong_column_type_names_the_column(wh: Warehouse, tmp_path: Path) -> None:
    pq.write_table(pa.table({"id": ["1"], "data": [3]}), tmp_path / "x.parquet")
    with pytest.raises(BadInputError, match="column 'data' has type int64"):
        ingest(
            wh,
            [str(tmp_path / "x.parquet")],
            IngestOptions(format="ultrachat_raw", progress=False),
            log=lambda _: None,
        )


def test_datasets_save_to_disk_folder(wh: Warehouse, samples: Path, tmp_path: Path) -> None:
    records = [json.loads(line) for line in open(samples / "ultrachat_200k_sample.jsonl")]
    dd = datasets.DatasetDict(
        {
            "train_sft": datasets.Dataset.from_list(records[:30]),
            "test_sft": datasets.Dataset.from_list(records[30:40]),
        }
    )
    dd.save_to_disk(str(tmp_path / "uc200k"))
    res = ingest(wh, [str(tmp_path / "uc200k")], QUIET, log=lambda _: None)
    assert sorted((r.split, r.n_accepted) for r in res) == [("test_sft", 10), ("train_sft", 30)]
    assert _rows(wh, "SELECT split, count(*) FROM dialogues GROUP BY 1 ORDER BY 1") == [
        ("test_sft", 10),
        ("train_sft", 30),
    ]
    revs = _rows(wh, "SELECT count(*) FROM ingest_batches WHERE dataset_revision IS NOT NULL")
    assert revs == [(2,)]


def test_folder_ingests_every_data_file(wh: Warehouse, samples: Path) -> None:
    res = ingest(wh, [str(samples)], QUIET, log=lambda _: None)
    files = sorted(p.name for p in samples.glob("*.jsonl"))
    assert sorted(Path(r.source).name for r in res) == files
    assert all(r.n_quarantined == 0 for r in res)


def test_reingest_is_a_noop_that_says_so(wh: Warehouse, samples: Path, tmp_path: Path) -> None:
    src = samples / "trl_flat_sample.jsonl"
    [first] = ingest(wh, [str(src)], QUIET, log=lambda _: None)
    copy = tmp_path / "renamed.jsonl"
    shutil.copy(src, copy)
    messages: list[str] = []
    second = ingest(wh, [str(src), str(copy)], QUIET, log=messages.append)
    assert all(r.skipped for r in second)
    assert any("already ingested as batch" in m and first.batch_id in m for m in messages)
    assert _rows(wh, "SELECT count(*) FROM preference_pairs") == [(300,)]
    assert _rows(wh, "SELECT count(*) FROM ingest_batches") == [(1,)]


def test_row_ids_are_stable_across_warehouses(samples: Path, tmp_path: Path) -> None:
    ids = []
    for name in ("a.duckdb", "b.duckdb"):
        wh = Warehouse(tmp_path / name, wait_s=0)
        ingest(wh, [str(samples / "ultrachat_200k_sample.jsonl")], QUIET, log=lambda _: None)
        ids.append(_rows(wh, "SELECT dialogue_id FROM dialogues ORDER BY source_line"))
    assert ids[0] == ids[1]
    assert len({r[0] for r in ids[0]}) == 400


def test_hub_id_offline_is_a_clear_error(wh: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(
        BadInputError,
        match="HuggingFaceH4/ultrachat_200k: could not load it from the Hugging Face hub",
    ):
        ingest(wh, ["HuggingFaceH4/ultrachat_200k"], QUIET, log=lambda _: None)
    assert not wh.path.exists()


def test_glob_without_match(wh: Warehouse, tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="matches no file"):
        ingest(wh, [str(tmp_path / "*.jsonl")], QUIET, log=lambda _: None)


def test_queries_work_where_the_holders_registry_cannot_be_written(
    wh: Warehouse, samples: Path
) -> None:
    """A read-only folder (simulated: a file where the registry folder would go) still reads."""
    from warehouse.sandbox import run_query

    ingest(wh, [str(samples / "argilla_cleaned_sharegpt_sample.jsonl")], QUIET, log=lambda _: None)
    shutil.rmtree(wh.holders_dir)
    wh.holders_dir.write_text("not a folder")
    res = run_query(wh, "SELECT count(*) AS n FROM preference_pairs")
    assert res.table.column("n")[0].as_py() == 8
    assert wh.holders() == []
