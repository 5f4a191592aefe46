"""The pages, through FastAPI's TestClient, on a real warehouse built from the bundled records.

The warehouse holds the UltraChat and UltraFeedback fixtures, a few exact copies of fixture
dialogues (so dedup has clusters) and one dialogue whose text is HTML (to prove it is shown as
text). Three snapshots: UltraFeedback binarized (tag uf), a light SFT recipe (tag sft) and the
same with a stricter min_chars (tag sft2), plus one finished training run.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from curation.recipe import Recipe, load_recipe
from curation.runner import RunOptions, run_recipe
from dashboards.app import create_app
from dashboards.pages import plotly_js_path
from dashboards.settings import ServiceSettings
from warehouse.ingest import IngestOptions, ingest
from warehouse.runs import RunStart, finish_run, start_run
from warehouse.store import Warehouse

ROOT = Path(__file__).resolve().parents[1]
UC_RAW = ROOT / "data" / "samples" / "ultrachat_raw_fixture.jsonl"
UF_RAW = ROOT / "data" / "samples" / "ultrafeedback_raw_fixture.jsonl"
XSS = "<script>window.__xss = 1</script><b>bold?</b>"
PAGE_SIZE = 5


def _sft_recipe(name: str, min_chars: int) -> Recipe:
    """Like LIGHT_SFT in test_curation_runner: no embedding steps, a few seconds."""
    return Recipe.model_validate(
        {
            "name": name,
            "output": "sft",
            "seed": 42,
            "inputs": [{"table": "dialogues"}],
            "steps": [
                {"transform": "truecase"},
                {"filter": "persona"},
                {"filter": "min_chars", "params": {"threshold": min_chars}},
                {"filter": "max_turns", "params": {"threshold": 7}},
                {"dedup": "exact_dedup"},
                {"filter": "decontam", "params": {"use_embeddings": False}},
                {
                    "split": {
                        "policy": "ultrachat_200k",
                        "sizes": {"train_sft": 60, "test_sft": 10, "train_gen": 80, "test_gen": 12},
                    }
                },
            ],
        }
    )


@dataclass(frozen=True)
class PagesWarehouse:
    path: Path
    uf: str
    sft: str
    sft2: str
    xss_row: str
    run_id: str


def _extra_dialogues(wh: Warehouse, out: Path) -> Path:
    """Exact copies of four long fixture dialogues, and one dialogue written in HTML."""
    with wh.read() as con:
        lines = [
            int(r[0])
            for r in con.execute(
                "SELECT source_line FROM dialogues WHERE n_chars BETWEEN 1700 AND 2400 "
                "AND n_turns <= 6 ORDER BY source_line LIMIT 4"
            ).fetchall()
        ]
    raw = UC_RAW.read_text(encoding="utf-8").splitlines()
    records = []
    for i, line in enumerate(lines):
        rec = json.loads(raw[line - 1])
        rec["id"] = f"copy-{i}"
        records.append(rec)
    long_text = " ".join(["A plain sentence about gardening and tomatoes."] * 60)
    records.append(
        {
            "id": "html-in-text",
            "data": [f"{XSS} Tell me about tomatoes. {long_text}", f"Sure. {XSS} {long_text}"],
        }
    )
    out.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return out


def build_warehouse(tmp: Path) -> PagesWarehouse:
    """Ingest, run three recipes and record a training run (about 10 s)."""
    path = tmp / "pages.duckdb"
    wh = Warehouse(path, wait_s=30)
    quiet = IngestOptions(progress=False)
    ingest(wh, [str(UC_RAW), str(UF_RAW)], quiet, log=lambda m: None)
    ingest(wh, [str(_extra_dialogues(wh, tmp / "extra.jsonl"))], quiet, log=lambda m: None)

    def run(recipe: Recipe, tag: str) -> str:
        res = run_recipe(recipe, wh, RunOptions(progress=False, tags=[tag]), log=lambda m: None)
        assert res.snapshot_id
        return res.snapshot_id

    uf = run(load_recipe("ultrafeedback_binarized"), "uf")
    sft = run(_sft_recipe("pages_sft", 1500), "sft")
    sft2 = run(_sft_recipe("pages_sft_strict", 2500), "sft2")
    run_id = start_run(
        wh, RunStart(sft, "sft", "train_sft", "test_sft", "tiny-model", {"lr": 1e-4}, "c0", "/x")
    )
    finish_run(wh, run_id, "completed", {"train_loss": 1.25})
    with wh.read() as con:
        got = con.execute(
            "SELECT dialogue_id FROM dialogues WHERE source_id = 'html-in-text'"
        ).fetchone()
    assert got
    return PagesWarehouse(path, uf, sft, sft2, str(got[0]), run_id)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> PagesWarehouse:
    return build_warehouse(tmp_path_factory.mktemp("pages"))


@pytest.fixture(scope="module")
def client(built: PagesWarehouse) -> Iterator[TestClient]:
    settings = ServiceSettings(warehouse=built.path, page_size=PAGE_SIZE, token=None)
    with TestClient(create_app(settings)) as c:
        yield c


def _q(built: PagesWarehouse, sql: str, params: list[Any] | None = None) -> list[Any]:
    with Warehouse(built.path).read() as con:
        return con.execute(sql, params or []).fetchall()


def _testids(html: str, testid: str) -> int:
    return len(re.findall(rf'data-testid="{re.escape(testid)}"', html))


# -- overview and static files ---------------------------------------------------------------
def test_overview_lists_tables_batches_and_snapshot_links(
    client: TestClient, built: PagesWarehouse
) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert f'href="/snapshots/{built.uf}"' in r.text
    assert f'href="/snapshots/{built.sft}"' in r.text
    n = _q(built, "SELECT count(*) FROM dialogues")[0][0]
    assert f'data-testid="count-dialogues">{n:,}<' in r.text
    assert _testids(r.text, "snapshot-row") == 3
    data = client.get("/?format=json").json()
    assert {t["table"]: t["rows"] for t in data["tables"]}["dialogues"] == n
    assert len(data["batches"]) == 3


def test_plotly_is_served_from_the_package_not_a_cdn(client: TestClient) -> None:
    r = client.get("/static/plotly.min.js")
    assert r.status_code == 200
    assert len(r.content) == plotly_js_path().stat().st_size
    assert client.get("/static/charts.js").status_code == 200
    page = client.get("/snapshots/sft").text
    assert '<script src="/static/plotly.min.js">' in page
    assert "cdn" not in page.lower()


# -- snapshot page -----------------------------------------------------------------------------
def test_snapshot_page_shows_funnel_linked_to_the_drop_explorer(
    client: TestClient, built: PagesWarehouse
) -> None:
    r = client.get("/snapshots/sft")  # a tag resolves like an id
    assert r.status_code == 200
    steps = _q(
        built,
        "SELECT step_name, n_dropped FROM snapshot_steps WHERE snapshot_id = ? ORDER BY 1",
        [built.sft],
    )
    assert _testids(r.text, "funnel-step") == len(steps)
    for name, dropped in steps:
        assert f'data-testid="dropped-{name}">{dropped:,}<' in r.text
        if dropped:
            assert f'href="/snapshots/{built.sft}/drops?step={name}"' in r.text
    assert f'href="/snapshots/{built.sft}/clusters?step=exact_dedup"' in r.text
    assert 'data-testid="funnel-chart"' in r.text and 'id="funnel-spec"' in r.text
    assert 'data-testid="overlap"' in r.text and 'data-testid="length-chart"' in r.text


def test_snapshot_json_twin_aggregates_match_the_rows(
    client: TestClient, built: PagesWarehouse
) -> None:
    data = client.get(f"/snapshots/{built.sft}?format=json").json()
    n_rows = _q(built, "SELECT count(*) FROM snapshot_rows WHERE snapshot_id = ?", [built.sft])
    assert sum(b["n"] for b in data["shape"]["turns"]) == n_rows[0][0]
    assert sum(b["n"] for b in data["shape"]["chars"]) == n_rows[0][0]
    assert sum(s["n"] for s in data["sources"]) == n_rows[0][0]
    assert data["catalog"]["tags"] == ["sft"] and "recipe_text" not in data["catalog"]
    scored = {s["step"]: sum(b["n"] for b in s["bins"]) for s in data["drop_scores"]}
    ledger = dict(
        _q(
            built,
            "SELECT step_name, count(*) FROM drop_ledger WHERE snapshot_id = ? "
            "AND score IS NOT NULL GROUP BY 1",
            [built.sft],
        )
    )
    assert scored == ledger
    grid = data["overlap"]
    for i, name in enumerate(grid["steps"]):
        step = next(s for s in data["funnel"] if s["step"] == name)
        assert grid["grid"][i][i] == step["would_drop"]
    assert data["runs"][0]["run_id"] == built.run_id


def test_preference_snapshot_shows_score_distributions_and_sources(
    client: TestClient, built: PagesWarehouse
) -> None:
    data = client.get("/snapshots/uf?format=json").json()
    assert data["catalog"]["kind"] == "preferences"
    n = _q(built, "SELECT count(*) FROM snapshot_rows WHERE snapshot_id = ?", [built.uf])[0][0]
    assert sum(p["chosen"] for p in data["pair_scores"]) == n
    assert {s["source"] for s in data["sources"]} <= {
        "evol_instruct",
        "false_qa",
        "flan",
        "sharegpt",
        "ultrachat",
    }
    assert 'data-testid="pair-scores-chart"' in client.get("/snapshots/uf").text


def test_unknown_snapshot_is_a_404_page(client: TestClient) -> None:
    r = client.get("/snapshots/no-such-tag")
    assert r.status_code == 404
    assert 'data-testid="error"' in r.text and "no-such-tag" in r.text


# -- drop explorer and clusters ----------------------------------------------------------------
def test_drop_explorer_pages_by_row_id_with_reasons(
    client: TestClient, built: PagesWarehouse
) -> None:
    expected = [
        r[0]
        for r in _q(
            built,
            "SELECT row_id FROM drop_ledger WHERE snapshot_id = ? AND step_name = 'min_chars' "
            "ORDER BY row_id",
            [built.sft],
        )
    ]
    assert len(expected) > 2 * PAGE_SIZE
    seen: list[str] = []
    url = "/snapshots/sft/drops?step=min_chars"
    while url:
        page = client.get(url + "&format=json").json()
        assert len(page["rows"]) <= PAGE_SIZE
        assert all(r["reason"].startswith("min_chars") for r in page["rows"])
        seen += [r["row_id"] for r in page["rows"]]
        url = f"/snapshots/sft/drops?step=min_chars&after={page['next']}" if page["next"] else ""
    assert seen == expected
    page_html = client.get("/snapshots/sft/drops?step=min_chars").text
    assert _testids(page_html, "drop-row") == PAGE_SIZE
    assert f'href="/rows/{expected[0]}?snapshot={built.sft}"' in page_html
    assert f"after={expected[PAGE_SIZE - 1]}" in page_html


def test_drop_explorer_rejects_an_unknown_step(client: TestClient) -> None:
    assert client.get("/snapshots/sft/drops?step=nope").status_code == 404


def test_dedup_clusters_show_representative_and_members(
    client: TestClient, built: PagesWarehouse
) -> None:
    data = client.get("/snapshots/sft/clusters?step=exact_dedup&format=json").json()
    ledger = _q(
        built,
        "SELECT representative, row_id, similarity FROM drop_ledger WHERE snapshot_id = ? "
        "AND step_name = 'exact_dedup'",
        [built.sft],
    )
    assert ledger, "the copied fixture dialogues should be exact duplicates"
    got = {(c["representative"], m["row_id"]) for c in data["clusters"] for m in c["members"]}
    assert got == {(rep, row) for rep, row, _ in ledger}
    assert all(m["similarity"] == 1.0 for c in data["clusters"] for m in c["members"])
    page_html = client.get("/snapshots/sft/clusters?step=exact_dedup").text
    assert _testids(page_html, "cluster") == len(data["clusters"])


# -- conversation viewer -----------------------------------------------------------------------
def test_conversation_text_is_escaped(client: TestClient, built: PagesWarehouse) -> None:
    for url in (f"/rows/{built.xss_row}", f"/rows/{built.xss_row}?snapshot=sft"):
        r = client.get(url)
        assert r.status_code == 200
        assert "<script>window.__xss" not in r.text
        assert "&lt;script&gt;window.__xss = 1&lt;/script&gt;&lt;b&gt;bold?&lt;/b&gt;" in r.text
        assert 'data-role="user"' in r.text and 'data-role="assistant"' in r.text


def test_preference_pair_is_shown_side_by_side(client: TestClient, built: PagesWarehouse) -> None:
    row_id, split = _q(
        built,
        "SELECT row_id, split FROM snapshot_rows WHERE snapshot_id = ? AND split = 'train_prefs' "
        "ORDER BY ordinal LIMIT 1",
        [built.uf],
    )[0]
    r = client.get(f"/rows/{row_id}?snapshot=uf")
    assert r.status_code == 200
    assert 'data-testid="chosen"' in r.text and 'data-testid="rejected"' in r.text
    data = client.get(f"/rows/{row_id}?snapshot=uf&format=json").json()
    version = next(v for v in data["versions"] if v["split"] == split)
    assert version["chosen"][-1]["role"] == "assistant"
    assert version["rejected"][-1]["role"] == "assistant"
    assert data["source"]["table"] == "uf_prompts" and len(data["source"]["completions"]) >= 2


def test_dropped_row_shows_why(client: TestClient, built: PagesWarehouse) -> None:
    row_id, reason = _q(
        built,
        "SELECT row_id, reason FROM drop_ledger WHERE snapshot_id = ? AND step_name = 'min_chars' "
        "LIMIT 1",
        [built.sft],
    )[0]
    r = client.get(f"/rows/{row_id}?snapshot={built.sft}")
    assert r.status_code == 200 and html.escape(reason) in r.text
    assert client.get("/rows/not-a-row").status_code == 404


def test_snapshot_rows_page_pages_by_ordinal(client: TestClient) -> None:
    first = client.get("/snapshots/uf/rows?split=train_prefs&format=json").json()
    assert [r["ordinal"] for r in first["rows"]] == list(range(PAGE_SIZE))
    second = client.get(f"/snapshots/uf/rows?split=train_prefs&after={first['next']}&format=json")
    assert second.json()["rows"][0]["ordinal"] == PAGE_SIZE


# -- SQL console -------------------------------------------------------------------------------
def test_sql_console_renders_a_table_and_a_chart(client: TestClient) -> None:
    q = "SELECT step_name, count(*) AS n FROM drop_ledger GROUP BY 1 ORDER BY 2 DESC"
    r = client.get("/sql", params={"q": q})
    assert r.status_code == 200
    assert 'data-testid="sql-result"' in r.text and 'data-testid="sql-chart"' in r.text
    data = client.get("/sql", params={"q": q, "format": "json"}).json()
    assert data["result"]["columns"] == ["step_name", "n"]
    assert data["result"]["chart"]["y_name"] == "n"


@pytest.mark.parametrize(
    "q, kind",
    [
        ("DROP TABLE dialogues", "refused"),
        ("SELECT 1; SELECT 2", "refused"),
        ("SELECT * FROM read_csv('/etc/passwd')", "refused"),
        ("SELECT nope FROM nowhere", "refused"),
    ],
)
def test_sql_console_shows_refusals_as_messages(client: TestClient, q: str, kind: str) -> None:
    r = client.get("/sql", params={"q": q})
    assert r.status_code == 400
    assert f'data-testid="sql-error" data-kind="{kind}"' in r.text
    assert "Traceback" not in r.text


def test_sql_console_shows_the_time_limit(built: PagesWarehouse) -> None:
    settings = ServiceSettings(warehouse=built.path, sql_time_limit_s=0.2)
    with TestClient(create_app(settings)) as c:
        slow = "SELECT count(*) FROM range(100000000000) a"
        r = c.get("/sql", params={"q": slow})
    assert r.status_code == 504
    assert 'data-kind="timeout"' in r.text and "time limit" in r.text


def test_sql_console_marks_truncation(built: PagesWarehouse) -> None:
    with TestClient(create_app(ServiceSettings(warehouse=built.path, sql_max_rows=3))) as c:
        r = c.get("/sql", params={"q": "SELECT * FROM range(10)"})
    assert 'data-testid="sql-truncated"' in r.text
    assert _testids(r.text, "sql-row") == 3


# -- diff and runs -----------------------------------------------------------------------------
def test_diff_page_counts_changes_with_their_cause(
    client: TestClient, built: PagesWarehouse
) -> None:
    data = client.get("/diff?a=sft&b=sft2&format=json").json()["diff"]
    assert data["a"] == built.sft and data["b"] == built.sft2
    assert data["n_removed"] > 0
    assert sum(s["n"] for s in data["summary"]) == (
        data["n_added"] + data["n_removed"] + data["n_changed"]
    )
    assert any("min_chars" in s["cause"] for s in data["summary"])
    groups = {(s["split"], s["change"], s["cause"]) for s in data["summary"]}
    assert {(r["split"], r["change"], r["cause"]) for r in data["rows"]} == groups
    page_html = client.get("/diff?a=sft&b=sft2").text
    assert 'data-testid="diff-summary"' in page_html and 'data-testid="diff-row"' in page_html
    same = client.get("/diff?a=sft&b=sft&format=json").json()["diff"]
    assert same["identical"]
    assert client.get("/diff?a=sft&b=missing").status_code == 404


def test_runs_page_links_runs_to_their_snapshot(client: TestClient, built: PagesWarehouse) -> None:
    r = client.get("/runs")
    assert r.status_code == 200
    assert built.run_id in r.text
    assert f'href="/snapshots/{built.sft}" data-testid="run-snapshot"' in r.text
    assert client.get("/runs?format=json").json()["runs"][0]["status"] == "completed"


# -- protected reads -----------------------------------------------------------------------------
def test_protected_reads_need_the_token_header_or_the_login_cookie(built: PagesWarehouse) -> None:
    settings = ServiceSettings(warehouse=built.path, token="s3cret", protect_reads=True)
    with TestClient(create_app(settings)) as c:
        r = c.get("/snapshots/sft?format=json", follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"] == "/login?next=%2Fsnapshots%2Fsft%3Fformat%3Djson"
        assert c.get("/", headers={"Authorization": "Bearer wrong"}).status_code == 403
        assert c.get("/", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/static/app.css").status_code == 200  # no data in static files
        bad = c.post("/login", content=b"token=nope&next=%2Fruns")
        assert bad.status_code == 403 and 'data-testid="login-error"' in bad.text
        off_site = c.post(
            "/login",
            content=b"token=s3cret&next=https%3A%2F%2Fevil.example%2F",
            follow_redirects=False,
        )
        assert off_site.status_code == 303 and off_site.headers["location"] == "/"
        ok = c.post("/login", content=b"token=s3cret&next=%2Fruns", follow_redirects=False)
        assert ok.status_code == 303 and ok.headers["location"] == "/runs"
        assert "httponly" in ok.headers["set-cookie"].lower()
        assert built.run_id in c.get("/runs").text  # the client kept the cookie
