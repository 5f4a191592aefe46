"""The JSON API over a real warehouse: SQL sandbox, tokens, snapshots, ledger, diff, export."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from curation.recipe import Recipe, load_recipe
from curation.runner import RunOptions, run_recipe
from dashboards.app import create_app
from dashboards.settings import ServiceSettings
from warehouse.ingest import IngestOptions, ingest
from warehouse.store import Warehouse

ROOT = Path(__file__).resolve().parents[1]
UC_RAW = ROOT / "data" / "samples" / "ultrachat_raw_fixture.jsonl"
UF_RAW = ROOT / "data" / "samples" / "ultrafeedback_raw_fixture.jsonl"
TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

# An SFT recipe without embedding steps (fast); `min_chars` differs between the two snapshots
LIGHT_SFT: dict[str, Any] = {
    "name": "light_sft",
    "output": "sft",
    "seed": 42,
    "inputs": [{"table": "dialogues"}],
    "steps": [
        {"filter": "persona"},
        {"filter": "min_chars", "params": {"threshold": 1500}},
        {"filter": "max_turns", "params": {"threshold": 7}},
        {"dedup": "exact_dedup"},
        {
            "split": {
                "policy": "ultrachat_200k",
                "sizes": {"train_sft": 60, "test_sft": 10, "train_gen": 80, "test_gen": 12},
            }
        },
    ],
}


def light_sft(min_chars: int) -> dict[str, Any]:
    recipe = copy.deepcopy(LIGHT_SFT)
    recipe["steps"][1]["params"]["threshold"] = min_chars
    return recipe


def build_warehouse(path: Path, snapshots: bool = True) -> Warehouse:
    """Ingest the bundled records; optionally commit `uf`, `sft-a` and `sft-b`."""
    wh = Warehouse(path, wait_s=0)
    ingest(wh, [str(UC_RAW), str(UF_RAW)], IngestOptions(progress=False), log=lambda m: None)
    if snapshots:
        quiet: dict[str, Any] = {"log": lambda m: None}
        run_recipe(
            load_recipe("ultrafeedback_binarized"),
            wh,
            RunOptions(progress=False, tags=["uf"]),
            **quiet,
        )
        for tag, chars in (("sft-a", 1500), ("sft-b", 1000)):
            recipe = Recipe.model_validate(light_sft(chars))
            run_recipe(recipe, wh, RunOptions(progress=False, tags=[tag]), **quiet)
    return wh


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("svc") / "wh.duckdb"
    build_warehouse(path)
    return path


@pytest.fixture(scope="module")
def client(warehouse: Path) -> Iterator[TestClient]:
    settings = ServiceSettings(warehouse=warehouse, token=TOKEN, read_wait_s=2.0)
    with TestClient(create_app(settings)) as c:
        yield c


def _sql(client: TestClient, sql: str, **extra: Any) -> Any:
    return client.post("/api/sql", json={"sql": sql, **extra})


# -- service ------------------------------------------------------------------------------
def test_health_and_openapi(client: TestClient) -> None:
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and health["warehouse_exists"] and health["token_configured"]
    paths = client.get("/openapi.json").json()["paths"]
    for p in ("/api/sql", "/api/snapshots/{ref}/ledger", "/api/runs", "/api/jobs/{job_id}/cancel"):
        assert p in paths
    assert client.get("/docs").status_code == 404  # Swagger UI needs a CDN: off


# -- SQL ----------------------------------------------------------------------------------
def test_sql_answers_with_columns_rows_and_timing(client: TestClient) -> None:
    r = _sql(client, "SELECT split, count(*) AS n FROM snapshot_rows GROUP BY 1 ORDER BY 1")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["columns"] == ["split", "n"] and body["truncated"] is False
    assert body["rows"] and all(len(row) == 2 for row in body["rows"])
    assert body["seconds"] >= 0


def test_sql_row_cap_sets_truncated_and_limits_only_go_down(client: TestClient) -> None:
    body = _sql(client, "SELECT * FROM turns", max_rows=5).json()
    assert body["row_count"] == 5 and body["truncated"] is True and body["truncated_by"] == "rows"
    body = _sql(client, "SELECT 1 AS x", max_rows=10**9, time_limit_s=10**6).json()
    assert body["limits"] == {"max_rows": 1000, "time_limit_s": 10.0}
    nested = _sql(client, "SELECT messages FROM dialogues LIMIT 1").json()
    assert nested["rows"][0][0][0]["role"] in ("user", "system")


@pytest.mark.parametrize(
    ("sql", "needle"),
    [
        ("SELECT 1; SELECT 2", "exactly one statement"),
        ("INSERT INTO warehouse_meta VALUES ('k', 'v')", "INSERT"),
        ("ATTACH 'other.duckdb' AS o", "ATTACH"),
        ("COPY dialogues TO 'out.csv'", "COPY"),
        ("SELECT * FROM read_csv('/etc/passwd')", "not files"),
        ("SELECT * FROM '/etc/passwd'", "does not exist"),  # no file scan: a missing table
        ("PRAGMA version", "PRAGMA"),
        ("SET threads = 1", "SET"),
        ("DROP TABLE dialogues", "DROP"),
    ],
)
def test_sql_refusals_are_400_with_the_reason(client: TestClient, sql: str, needle: str) -> None:
    r = _sql(client, sql)
    assert r.status_code == 400, r.text
    assert r.json()["error"] in ("refused", "bad_input") and needle in r.json()["detail"]


def test_sql_bad_syntax_is_400(client: TestClient) -> None:
    r = _sql(client, "SELEC 1")
    assert r.status_code == 400 and r.json()["error"] == "bad_input"


def test_sql_time_limit_is_504(client: TestClient) -> None:
    slow = (
        "SELECT count(*) FROM range(100000000) a, range(100000) b WHERE a.range * b.range % 7 = 3"
    )
    r = _sql(client, slow, time_limit_s=0.5)
    assert r.status_code == 504, r.text
    assert r.json()["error"] == "time_limit" and "time limit" in r.json()["detail"]


# -- auth ---------------------------------------------------------------------------------
MUTATIONS: list[tuple[str, dict[str, Any]]] = [
    ("/api/runs", {"recipe": "ultrafeedback_binarized", "dry_run": True}),
    ("/api/training", {"trainer": "sft", "snapshot": "sft-a"}),
    ("/api/snapshots/uf/export", {"format": "jsonl", "out": "x"}),
    ("/api/snapshots/uf/tags", {"tag": "t1"}),
    ("/api/jobs/j_nope/cancel", {}),
]


@pytest.mark.parametrize(("path", "body"), MUTATIONS)
def test_every_mutation_needs_the_token(
    client: TestClient, path: str, body: dict[str, Any]
) -> None:
    missing = client.post(path, json=body)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    wrong = client.post(path, json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403
    basic = client.post(path, json=body, headers={"Authorization": f"Basic {TOKEN}"})
    assert basic.status_code == 401


def test_without_a_configured_token_mutations_are_refused(warehouse: Path) -> None:
    app = create_app(ServiceSettings(warehouse=warehouse, token=None))
    with TestClient(app) as c:
        for path, body in MUTATIONS:
            r = c.post(path, json=body, headers=AUTH)
            assert r.status_code == 403 and "CURATE_TOKEN" in r.json()["detail"], path
        assert c.get("/api/snapshots").status_code == 200  # reads stay open


def test_protected_reads_need_the_token(warehouse: Path) -> None:
    app = create_app(ServiceSettings(warehouse=warehouse, token=TOKEN, protect_reads=True))
    with TestClient(app) as c:
        for path in ("/api/snapshots", "/api/tables", "/api/jobs", "/api/snapshots/uf/rows"):
            assert c.get(path).status_code == 401, path
            assert c.get(path, headers={"Authorization": "Bearer x"}).status_code == 403
            assert c.get(path, headers=AUTH).status_code == 200, path
        assert _sql(c, "SELECT 1").status_code == 401
        assert c.get("/api/health").status_code == 200  # liveness stays open


# -- warehouse and snapshots --------------------------------------------------------------
def test_tables_with_row_counts(client: TestClient) -> None:
    body = client.get("/api/tables").json()
    counts = {t["table"]: t["rows"] for t in body["tables"]}
    assert counts["dialogues"] > 0 and counts["snapshots"] == 3
    assert "turns" in {v["view"] for v in body["views"]}


def test_snapshot_list_and_show(client: TestClient) -> None:
    listed = client.get("/api/snapshots").json()
    assert {t for s in listed for t in s["tags"]} >= {"uf", "sft-a", "sft-b"}
    show = client.get("/api/snapshots/sft-a").json()
    assert show["kind"] == "sft" and show["recipe"]["name"] == "light_sft"
    assert [s["step_name"] for s in show["funnel"]][:2] == ["persona", "min_chars"]
    assert all(s["n_in"] == s["n_out"] + s["n_dropped"] for s in show["funnel"])
    assert show["overlap"] and "recipe_text" not in show and show["samples"] == []
    sampled = client.get("/api/snapshots/sft-a", params={"samples": 2}).json()["samples"]
    assert sampled and all(s["reason"] for s in sampled)
    prefix = client.get(f"/api/snapshots/{show['snapshot_id'][:10]}").json()
    assert prefix["snapshot_id"] == show["snapshot_id"]
    missing = client.get("/api/snapshots/no-such-tag")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def test_rows_page_by_ordinal_to_the_end(client: TestClient) -> None:
    seen: list[int] = []
    after = -1
    while True:
        page = client.get(
            "/api/snapshots/sft-a/rows", params={"split": "train_sft", "after": after, "limit": 25}
        ).json()
        seen += [r["ordinal"] for r in page["rows"]]
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert seen == list(range(page["total"])) and page["total"] == 60
    first = client.get("/api/snapshots/sft-a/rows", params={"limit": 1}).json()
    assert first["split"] == "train_sft" and first["rows"][0]["messages"]
    bad = client.get("/api/snapshots/sft-a/rows", params={"split": "train_prefs"})
    assert bad.status_code == 404


def test_ledger_pages_match_the_funnel(client: TestClient) -> None:
    show = client.get("/api/snapshots/sft-a").json()
    dropped = {s["step_name"]: s["n_dropped"] for s in show["funnel"] if s["n_dropped"]}
    assert dropped
    for step, n in dropped.items():
        ids: list[str] = []
        after = None
        while True:
            params: dict[str, Any] = {"step": step, "limit": 7}
            if after:
                params["after"] = after
            page = client.get("/api/snapshots/sft-a/ledger", params=params).json()
            assert all(r["step_name"] == step and r["reason"] for r in page["rows"])
            ids += [r["row_id"] for r in page["rows"]]
            after = page["next_after"]
            if after is None:
                break
        assert len(ids) == len(set(ids)) == n == page["total"], step
    everything = client.get("/api/snapshots/sft-a/ledger", params={"limit": 500}).json()
    assert everything["total"] == sum(dropped.values())
    by_index = client.get("/api/snapshots/sft-a/ledger", params={"step": "1"}).json()
    assert by_index["total"] == dropped["min_chars"]


def test_diff_between_snapshots(client: TestClient) -> None:
    body = client.get("/api/diff", params={"a": "sft-a", "b": "sft-b", "limit": 5}).json()
    assert body["added"] + body["removed"] + body["changed"] > 0
    assert len(body["rows"]) <= 5 and body["summary"]
    same = client.get("/api/diff", params={"a": "sft-a", "b": "sft-a"}).json()
    assert same["added"] == same["removed"] == same["changed"] == 0
    assert client.get("/api/diff", params={"a": "sft-a", "b": "nope"}).status_code == 404


def test_export_inside_the_root_and_refused_outside(client: TestClient, warehouse: Path) -> None:
    r = client.post(
        "/api/snapshots/uf/export", json={"format": "jsonl", "out": "uf-jsonl"}, headers=AUTH
    )
    assert r.status_code == 200, r.text
    root = warehouse.with_name(warehouse.name + ".exports")
    assert (root / "uf-jsonl" / "snapshot.json").exists()
    assert "train_prefs.jsonl" in r.json()["files"]
    for out in ("../escape", "/tmp/escape", "a/../../escape", ""):
        bad = client.post(
            "/api/snapshots/uf/export", json={"format": "jsonl", "out": out}, headers=AUTH
        )
        assert bad.status_code == 400, out
    assert not (warehouse.parent / "escape").exists()
    again = client.post(
        "/api/snapshots/uf/export", json={"format": "jsonl", "out": "uf-jsonl"}, headers=AUTH
    )
    assert again.status_code == 400  # exists; overwrite not asked
    missing = client.post(
        "/api/snapshots/nope/export", json={"format": "jsonl", "out": "n"}, headers=AUTH
    )
    assert missing.status_code == 404


def test_tag_a_snapshot(client: TestClient) -> None:
    r = client.post("/api/snapshots/uf/tags", json={"tag": "prefs-v1"}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert client.get("/api/snapshots/prefs-v1").json()["snapshot_id"] == r.json()["snapshot_id"]
    taken = client.post("/api/snapshots/sft-a/tags", json={"tag": "prefs-v1"}, headers=AUTH)
    assert taken.status_code == 400 and "force" in taken.json()["detail"]
    for bad in ("--force", "s_abc", "has space"):
        assert (
            client.post("/api/snapshots/uf/tags", json={"tag": bad}, headers=AUTH).status_code
            == 400
        )
    assert (
        client.post("/api/snapshots/nope/tags", json={"tag": "x"}, headers=AUTH).status_code == 404
    )


def test_recipe_and_config_paths_are_confined(client: TestClient) -> None:
    for recipe in ("/etc/passwd.yaml", "../recipes/x.yaml", "not_a_builtin"):
        r = client.post("/api/runs", json={"recipe": recipe}, headers=AUTH)
        assert r.status_code == 400, recipe
    r = client.post(
        "/api/training",
        json={"trainer": "sft", "snapshot": "sft-a", "config": "../../etc/x.yaml"},
        headers=AUTH,
    )
    assert r.status_code == 400
    r = client.post(
        "/api/training",
        json={"trainer": "sft", "snapshot": "sft-a", "set": ["output_dir=/tmp/x"]},
        headers=AUTH,
    )
    assert r.status_code == 400
    r = client.post("/api/training", json={"trainer": "sft", "snapshot": "nope"}, headers=AUTH)
    assert r.status_code == 404


def test_training_runs_and_unknown_job(client: TestClient) -> None:
    assert client.get("/api/training/runs").json() == []
    assert client.get("/api/training/runs", params={"snapshot": "sft-a"}).json() == []
    assert client.get("/api/training/runs", params={"snapshot": "nope"}).status_code == 404
    assert client.get("/api/jobs/j_nope").status_code == 404
    assert client.post("/api/jobs/j_nope/cancel", headers=AUTH).status_code == 404


def test_once_cache_computes_once_under_concurrency() -> None:
    import threading

    from dashboards.memo import OnceCache
    from warehouse.errors import QueryTimeoutError

    cache = OnceCache(size=2)
    calls: list[int] = []

    def slow() -> int:
        calls.append(1)
        threading.Event().wait(0.2)
        return 42

    got: list[int] = []
    threads = [threading.Thread(target=lambda: got.append(cache.get("k", slow))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == [42] * 8 and len(calls) == 1

    def boom() -> int:
        calls.append(1)
        raise QueryTimeoutError("too slow")

    for _ in range(3):
        with pytest.raises(QueryTimeoutError):
            cache.get("bad", boom)
    assert len(calls) == 2  # the failure is remembered for a while


def test_serve_command_options_and_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    import typer
    from typer.testing import CliRunner

    from curate.cli import UsageProblem
    from curate.cli_serve import serve_command

    app = typer.Typer()
    app.command("serve")(serve_command)
    app.command("noop")(lambda: None)  # two commands, so `serve` is a subcommand
    runner = CliRunner()
    help_text = runner.invoke(app, ["serve", "--help"]).output
    for option in ("--host", "--port", "--token", "--protect-reads", "--recipes-root"):
        assert option in help_text
    monkeypatch.delenv("CURATE_TOKEN", raising=False)
    refused = runner.invoke(app, ["serve", "--protect-reads"])
    assert isinstance(refused.exception, UsageProblem)
