"""`curate run / snapshots / show / diff / verify / tag / sweep / overlap` from the command line,
and a kill during the commit leaves no partial snapshot."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import CliResult, curate_subprocess

ROOT = Path(__file__).resolve().parents[1]
UC_RAW = ROOT / "data" / "samples" / "ultrachat_raw_fixture.jsonl"
UF_RAW = ROOT / "data" / "samples" / "ultrafeedback_raw_fixture.jsonl"

Cli = Callable[..., CliResult]


@pytest.fixture
def loaded(cli: Cli) -> Cli:
    res = cli("ingest", str(UC_RAW), str(UF_RAW), "--no-progress")
    assert res.code == 0, res.err
    return cli


def test_run_show_snapshots_verify_round_trip(loaded: Cli) -> None:
    run = loaded("run", "ultrafeedback_binarized", "--json", "--tag", "uf-v1", "-m", "first cut")
    assert run.code == 0, run.err
    data = run.json()
    assert isinstance(data, dict) and data["committed"] is True
    sid = data["snapshot_id"]
    assert [s["step_name"] for s in data["steps"]][-2:] == ["binarize", "split"]
    listed = loaded("snapshots", "--json").json()
    assert isinstance(listed, list)
    assert listed[0]["snapshot_id"] == sid and listed[0]["tags"] == ["uf-v1"]
    assert listed[0]["message"] == "first cut"
    shown = loaded("show", "uf-v1", "--json").json()
    assert isinstance(shown, dict)
    assert shown["snapshot_id"] == sid and shown["funnel"][0]["dropped"] == 20
    assert shown["ingest_batches"] and shown["inputs"][0]["table"] == "uf_prompts"
    ok = loaded("verify", "uf-v1", "--json")
    assert ok.code == 0 and ok.json()["ok"] is True  # type: ignore[index]
    again = loaded("run", "ultrafeedback_binarized", "--tag", "uf-again")
    assert again.code == 0 and "already existed" in again.err
    assert again.out.strip() == sid
    tags = loaded("snapshots", "--json").json()[0]["tags"]  # type: ignore[index]
    assert tags == ["uf-again", "uf-v1"]


def test_dry_run_prints_funnel_overlap_and_samples(loaded: Cli) -> None:
    res = loaded("run", "ultrafeedback_binarized", "--dry-run", "--no-progress")
    assert res.code == 0, res.err
    assert "no_truthful_qa_source" in res.out and "sample drops" in res.out
    assert "truthful_qa" in res.out  # the reason names the predicate
    assert "nothing written" in res.err
    listed = loaded("snapshots", "--json").json()
    assert listed == []


def test_verify_fails_with_exit_6_after_tampering(loaded: Cli, wh_path: Path) -> None:
    import duckdb

    sid = loaded("run", "ultrafeedback_binarized", "--json").json()["snapshot_id"]  # type: ignore[index]
    con = duckdb.connect(str(wh_path))
    con.execute("DELETE FROM snapshot_rows WHERE snapshot_id = ? AND ordinal = 0", [sid])
    con.close()
    res = loaded("verify", sid)
    assert res.code == 6
    assert "FAILED" in res.out and "does not match" in res.err


def test_tag_diff_overlap_and_sweep(loaded: Cli) -> None:
    a = loaded("run", "ultrafeedback_binarized", "--json").json()["snapshot_id"]  # type: ignore[index]
    b = loaded("run", "ultrafeedback_binarized_cleaned", "--json").json()["snapshot_id"]  # type: ignore[index]
    assert loaded("tag", a, "h4").code == 0
    clash = loaded("tag", b, "h4")
    assert clash.code == 3 and "--force" in clash.err
    assert loaded("tag", b, "h4", "--force").code == 0
    d = loaded("diff", a, "h4", "--json").json()
    assert isinstance(d, dict) and d["b"] == b
    assert d["removed"] > 0
    causes = {r["cause"] for r in d["rows"] if r["change"] == "removed"}
    assert any("binarize" in c or "moved" in c for c in causes)
    ov = loaded("overlap", a, b, "--json").json()
    assert isinstance(ov, dict) and ov["overlap"], "both sets come from the same prompts"
    sw = loaded(
        "sweep",
        "ultrafeedback_binarized",
        "--step",
        "no_truthful_qa_source",
        "--values",
        "0.5",
        "--values",
        "2",
        "--json",
    )
    assert sw.code == 0, sw.err
    rows = sw.json()["rows"]  # type: ignore[index]
    assert [r["dropped"] for r in rows] == [20, 120]
    bad = loaded("sweep", "ultrafeedback_binarized", "--step", "nope", "--values", "1")
    assert bad.code == 3 and "no step" in bad.err


def test_bad_recipe_is_a_clear_error(loaded: Cli, tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "name: x\noutput: sft\ninputs: [{table: dialogues}]\nsteps:\n  - filter: persona\n"
        "    params: {treshold: 2}\n"
    )
    res = loaded("run", str(recipe))
    assert res.code == 3
    assert "step persona" in res.err and "treshold" in res.err
    missing = loaded("show", "nope")
    assert missing.code == 3 and "no snapshot or tag" in missing.err


@pytest.mark.slow
def test_kill_during_commit_leaves_no_partial_snapshot(tmp_path: Path) -> None:
    wh = tmp_path / "wh.duckdb"
    ing = curate_subprocess("-w", str(wh), "ingest", str(UF_RAW), "--no-progress")
    assert ing.wait(timeout=120) == 0
    proc = curate_subprocess(
        "-w",
        str(wh),
        "run",
        "ultrafeedback_binarized",
        "--no-progress",
        env={"CURATE_DEBUG_PAUSE_IN_COMMIT": "60"},
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 120
    seen = ""
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        seen += line
        if "commit paused" in line or not line:
            break
    assert "commit paused" in seen, seen
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    import duckdb

    con = duckdb.connect(str(wh), read_only=True)
    counts = [
        con.execute(f"SELECT count(*) FROM {t}").fetchone()
        for t in ("snapshots", "snapshot_rows", "snapshot_steps", "drop_ledger", "snapshot_tags")
    ]
    con.close()
    assert counts == [(0,)] * 5
    # the rerun commits, reusing the step results cached before the kill
    rerun = curate_subprocess("-w", str(wh), "run", "ultrafeedback_binarized", "--json")
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    data = json.loads(out)
    assert data["committed"] is True
    cached = {s["step_name"]: s["cached"] for s in data["steps"]}
    assert cached["no_truthful_qa_source"] and cached["binarize"]
    verify = curate_subprocess("-w", str(wh), "verify", data["snapshot_id"])
    assert verify.wait(timeout=120) == 0
