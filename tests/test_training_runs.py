"""Run records in `training_runs`: start, finish, interrupted, and the queries people ask."""

from __future__ import annotations

import pytest

from warehouse.errors import BadInputError
from warehouse.runs import (
    RunStart,
    finish_run,
    get_run,
    list_runs,
    mark_interrupted,
    new_run_id,
    start_run,
)
from warehouse.store import Warehouse


def _start(snapshot: str, out: str, trainer: str = "sft") -> RunStart:
    return RunStart(
        snapshot_id=snapshot,
        trainer=trainer,
        train_split="train_sft",
        eval_split=None,
        model="builtin:tiny-random-llama",
        config={"trainer_args": {"learning_rate": 1e-3}},
        code_version="abc",
        output_dir=out,
    )


def test_run_lifecycle_and_queries(wh: Warehouse) -> None:
    a = start_run(wh, _start("s_aaa111", "/runs/a"))
    b = start_run(wh, _start("s_bbb222", "/runs/b", trainer="dpo"))
    assert a.startswith("r_") and a != b
    assert get_run(wh, a)["status"] == "running"
    finish_run(wh, a, "completed", {"last_loss": 1.5})
    finish_run(wh, b, "failed", error="RuntimeError: boom")
    done = get_run(wh, a)
    assert done["status"] == "completed"
    assert done["metrics"] == {"last_loss": 1.5}
    assert done["config"]["trainer_args"]["learning_rate"] == 1e-3
    assert done["ended_at"] is not None
    assert get_run(wh, b)["error"] == "RuntimeError: boom"
    assert [r["run_id"] for r in list_runs(wh, snapshot="s_aaa")] == [a]
    assert [r["run_id"] for r in list_runs(wh, status="failed")] == [b]
    # "Which models were trained on snapshot X" in SQL:
    with wh.read() as con:
        rows = con.execute(
            "SELECT output_dir FROM training_runs WHERE snapshot_id = ? AND status = 'completed'",
            ["s_aaa111"],
        ).fetchall()
    assert rows == [("/runs/a",)]


def test_killed_runs_are_marked_interrupted_by_the_next_run(wh: Warehouse) -> None:
    killed = start_run(wh, _start("s_x", "/runs/same"))
    other = start_run(wh, _start("s_x", "/runs/elsewhere"))
    assert mark_interrupted(wh, "/runs/same", "killed") == [killed]
    assert get_run(wh, killed)["status"] == "interrupted"
    assert get_run(wh, killed)["error"] == "killed"
    assert get_run(wh, other)["status"] == "running"
    assert mark_interrupted(wh, "/runs/same", "killed") == []


def test_bad_status_and_unknown_run(wh: Warehouse) -> None:
    start_run(wh, _start("s_x", "/r"))
    with pytest.raises(BadInputError, match="status 'done'"):
        list_runs(wh, status="done")
    with pytest.raises(BadInputError, match="no training run 'r_missing'"):
        get_run(wh, "r_missing")
    with pytest.raises(ValueError, match="not a final status"):
        finish_run(wh, "r_any", "running")


def test_run_ids_sort_by_time() -> None:
    from datetime import datetime

    early = new_run_id(datetime(2026, 1, 1, 0, 0, 0))
    late = new_run_id(datetime(2026, 1, 1, 0, 0, 1))
    assert early < late
