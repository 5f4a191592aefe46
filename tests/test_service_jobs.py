"""Jobs through the API: recipe runs and dry runs in subprocesses, cancel, restart recovery."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml
from fastapi.testclient import TestClient

from dashboards.app import create_app
from dashboards.jobs import parse_json_output
from dashboards.settings import ServiceSettings
from tests.test_service_api import AUTH, TOKEN, build_warehouse, light_sft
from warehouse.jobs import RESTART_REASON, JobStore, new_job_id
from warehouse.snapshots import PAUSE_ENV

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def wh_path(tmp_path: Path) -> Path:
    path = tmp_path / "wh.duckdb"
    build_warehouse(path, snapshots=False)
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "light.yaml").write_text(yaml.safe_dump(light_sft(1500)))
    return path


def _settings(wh_path: Path, **kw: Any) -> ServiceSettings:
    return ServiceSettings(
        warehouse=wh_path, token=TOKEN, recipes_root=wh_path.parent / "recipes", **kw
    )


@pytest.fixture
def client(wh_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(wh_path))) as c:
        yield c


def _wait(
    client: TestClient, job_id: str, until: Callable[[dict[str, Any]], bool], s: float
) -> Any:
    deadline = time.monotonic() + s
    while True:
        job = client.get(f"/api/jobs/{job_id}").json()
        if until(job) or time.monotonic() > deadline:
            return job
        time.sleep(0.2)


def _ended(job: dict[str, Any]) -> bool:
    return job["status"] not in ("queued", "running")


def _log_has(client: TestClient, job_id: str, text: str, s: float) -> bool:
    deadline = time.monotonic() + s
    while time.monotonic() < deadline:
        if text in client.get(f"/api/jobs/{job_id}/log").json()["text"]:
            return True
        time.sleep(0.2)
    return False


@pytest.mark.slow
def test_dry_run_then_real_run_job(client: TestClient) -> None:
    dry = client.post("/api/runs", json={"recipe": "light.yaml", "dry_run": True}, headers=AUTH)
    assert dry.status_code == 202, dry.text
    assert dry.json()["status"] == "queued" and dry.json()["kind"] == "dry_run"
    run = client.post(
        "/api/runs",
        json={"recipe": "light.yaml", "tags": ["light-v1"], "message": "--from the API"},
        headers=AUTH,
    )
    done_dry = _wait(client, dry.json()["job_id"], _ended, 60)
    assert done_dry["status"] == "succeeded", done_dry
    assert done_dry["result"]["dry_run"] is True and not done_dry["result"]["committed"]
    assert client.get("/api/snapshots").json() == []  # a dry run writes nothing
    done = _wait(client, run.json()["job_id"], _ended, 60)
    assert done["status"] == "succeeded" and done["exit_code"] == 0, done
    sid = done["result"]["snapshot_id"]
    assert sid == done_dry["result"]["snapshot_id"]
    shown = client.get("/api/snapshots/light-v1").json()
    assert shown["snapshot_id"] == sid and shown["message"] == "--from the API"
    log = client.get(f"/api/jobs/{done['job_id']}/log", params={"tail": 50}).json()
    assert "committed snapshot" in log["text"] or "light_sft" in log["text"]
    listed = client.get("/api/jobs", params={"kind": "run"}).json()
    assert [j["job_id"] for j in listed] == [done["job_id"]]
    again = client.post(f"/api/jobs/{done['job_id']}/cancel", headers=AUTH)
    assert again.status_code == 409


@pytest.mark.slow
def test_training_job_on_the_tiny_model_is_recorded(client: TestClient, wh_path: Path) -> None:
    from curation.recipe import Recipe
    from curation.runner import RunOptions, run_recipe
    from warehouse.store import Warehouse

    recipe = Recipe.model_validate(light_sft(1500))
    opts = RunOptions(progress=False, tags=["chat"])
    sid = run_recipe(recipe, Warehouse(wh_path), opts, log=lambda m: None).snapshot_id
    job = client.post(
        "/api/training",
        json={
            "trainer": "sft",
            "snapshot": "chat",
            "config": "tiny/sft.yaml",
            "set": ["max_steps=2"],
        },
        headers=AUTH,
    )
    assert job.status_code == 202, job.text
    assert job.json()["args"]["snapshot_id"] == sid
    done = _wait(client, job.json()["job_id"], _ended, 240)
    assert done["status"] == "succeeded", (
        done,
        client.get(f"/api/jobs/{done['job_id']}/log").json(),
    )
    run_id = done["result"]["run_id"]
    runs = client.get("/api/training/runs", params={"snapshot": "chat"}).json()
    assert [r["run_id"] for r in runs] == [run_id] and runs[0]["status"] == "completed"


def test_failed_job_reports_the_error(client: TestClient, wh_path: Path) -> None:
    bad = light_sft(1500)
    bad["steps"].insert(0, {"exclude": {"snapshot": "no-such-snapshot"}})
    (wh_path.parent / "recipes" / "bad.yaml").write_text(yaml.safe_dump(bad))
    job = client.post("/api/runs", json={"recipe": "bad.yaml"}, headers=AUTH).json()
    done = _wait(client, job["job_id"], _ended, 60)
    assert done["status"] == "failed" and done["exit_code"] == 3, done
    assert "no-such-snapshot" in done["error"]


@pytest.mark.slow
def test_cancel_a_committing_job_and_reads_wait_then_503(wh_path: Path) -> None:
    """A run paused inside its commit holds the write lock: reads give 503 naming it; cancel
    kills it, the commit rolls back, a queued job is cancelled without running."""
    settings = _settings(wh_path, job_env={PAUSE_ENV: "120"}, read_wait_s=0.5)
    with TestClient(create_app(settings)) as c:
        first = c.post("/api/runs", json={"recipe": "light.yaml"}, headers=AUTH).json()
        queued = c.post("/api/runs", json={"recipe": "ultrafeedback_binarized"}, headers=AUTH)
        assert _log_has(c, first["job_id"], "commit paused", 60)
        running = c.get(f"/api/jobs/{first['job_id']}").json()
        assert running["status"] == "running" and psutil.pid_exists(running["pid"])
        busy = c.get("/api/snapshots")
        assert busy.status_code == 503, busy.text
        assert busy.headers["retry-after"] and "light.yaml" in busy.json()["detail"]
        assert "PID" in busy.json()["detail"]
        assert c.post("/api/sql", json={"sql": "SELECT 1"}).status_code == 503

        gone = c.post(f"/api/jobs/{queued.json()['job_id']}/cancel", headers=AUTH).json()
        assert gone["status"] == "cancelled"
        c.post(f"/api/jobs/{first['job_id']}/cancel", headers=AUTH)
        done = _wait(c, first["job_id"], _ended, 30)
        assert done["status"] == "cancelled", done
        assert (
            not psutil.pid_exists(done["pid"]) or psutil.Process(done["pid"]).status() == "zombie"
        )
        listed = c.get("/api/snapshots")
        assert listed.status_code == 200 and listed.json() == []  # rolled back
        time.sleep(0.5)
        assert c.get(f"/api/jobs/{queued.json()['job_id']}").json()["started_at"] is None


def test_restart_marks_left_jobs_interrupted(wh_path: Path) -> None:
    settings = _settings(wh_path)
    store = JobStore(settings.jobs_db)
    ids = [new_job_id() for _ in range(2)]
    store.create("run", {}, ["python", "-m", "curate", "run", "x"], Path("a.log"), ids[0])
    store.update(ids[0], status="running", pid=2**22 + 12345, started=True)
    store.create("run", {}, ["python", "-m", "curate", "run", "y"], Path("b.log"), ids[1])
    store.close()
    with TestClient(create_app(settings)) as c:
        for job_id in ids:
            job = c.get(f"/api/jobs/{job_id}").json()
            assert job["status"] == "interrupted" and job["error"] == RESTART_REASON
            assert job["ended_at"]


def test_jobs_survive_a_clean_restart(wh_path: Path) -> None:
    settings = _settings(wh_path)
    with TestClient(create_app(settings)) as c:
        job = c.post("/api/runs", json={"recipe": "light.yaml", "dry_run": True}, headers=AUTH)
        done = _wait(c, job.json()["job_id"], _ended, 60)
        assert done["status"] == "succeeded"
    with TestClient(create_app(settings)) as c:
        again = c.get(f"/api/jobs/{done['job_id']}").json()
        assert again["status"] == "succeeded" and again["result"] == done["result"]


def test_second_service_on_the_same_warehouse_is_refused(wh_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, duckdb; c = duckdb.connect(sys.argv[1]); print('ok', flush=True); "
            "time.sleep(60)",
            str(_settings(wh_path).jobs_db),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ok"
        with pytest.raises(Exception, match="another `curate serve`"):
            create_app(_settings(wh_path)).state.jobs.start()
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.slow
def test_service_killed_mid_job_then_restarted(wh_path: Path, tmp_path: Path) -> None:
    """A real `serve()` is SIGKILLed while its job commits; the next service kills the
    orphaned job and marks it interrupted."""
    import httpx

    port = _free_port()
    code = (
        "import sys; from pathlib import Path; from dashboards.serve import serve; "
        "from dashboards.settings import ServiceSettings; "
        "serve(ServiceSettings(warehouse=Path(sys.argv[1]), token=sys.argv[2], "
        "recipes_root=Path(sys.argv[3]), job_env={sys.argv[4]: '120'}), port=int(sys.argv[5]), "
        "log_level='warning')"
    )
    recipes = str(wh_path.parent / "recipes")
    server = subprocess.Popen(
        [sys.executable, "-c", code, str(wh_path), TOKEN, recipes, PAUSE_ENV, str(port)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        start_new_session=True,
    )
    orphan_pid = None
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_http(base + "/api/health", 60)
        job = httpx.post(
            base + "/api/runs", json={"recipe": "light.yaml"}, headers=AUTH, timeout=30
        ).json()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            log = httpx.get(base + f"/api/jobs/{job['job_id']}/log", timeout=30).json()
            if "commit paused" in log["text"]:
                break
            time.sleep(0.2)
        orphan_pid = httpx.get(base + f"/api/jobs/{job['job_id']}", timeout=30).json()["pid"]
        os.killpg(server.pid, signal.SIGKILL)  # the service only: the job has its own group
        server.wait(10)
        assert psutil.pid_exists(orphan_pid)
        with TestClient(create_app(_settings(wh_path, read_wait_s=10))) as c:
            after = c.get(f"/api/jobs/{job['job_id']}").json()
            assert after["status"] == "interrupted" and after["error"] == RESTART_REASON
            _gone(orphan_pid, 10)
            assert c.get("/api/snapshots").json() == []
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        if orphan_pid and psutil.pid_exists(orphan_pid):
            os.killpg(orphan_pid, signal.SIGKILL)


def test_parse_json_output_skips_stray_lines() -> None:
    assert parse_json_output('{"a": 1}') == {"a": 1}
    assert parse_json_output('loading...\n{\n  "run_id": "r_1"\n}\n') == {"run_id": "r_1"}
    assert parse_json_output("") is None
    assert json.loads(json.dumps(parse_json_output("[1, 2]"))) == [1, 2]


# -- helpers ------------------------------------------------------------------------------
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, s: float) -> None:
    import httpx

    deadline = time.monotonic() + s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer in {s}s")


def _gone(pid: int, s: float) -> None:
    deadline = time.monotonic() + s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.1)
    raise AssertionError(f"PID {pid} still runs")
