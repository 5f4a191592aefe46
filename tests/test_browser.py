"""The pages in headless Chromium (Debian's `chromium`, driven by Playwright, no download).

A real server runs in a subprocess on a free port for the module and is killed on teardown,
even when a test fails. Without a chromium binary every test here skips with a reason that
tests/conftest.py turns into a loud banner at the end of the run.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_pages import PAGE_SIZE, PagesWarehouse, build_warehouse

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ENV = "CURATE_CHROMIUM"
NOT_RUN = "BROWSER TESTS DID NOT RUN"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LAUNCHER = """
import sys
from pathlib import Path
import uvicorn
from dashboards.app import create_app
from dashboards.settings import ServiceSettings
settings = ServiceSettings(warehouse=Path(sys.argv[1]), page_size=int(sys.argv[3]), token=None)
uvicorn.run(create_app(settings), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


def chromium_path() -> str | None:
    """$CURATE_CHROMIUM, else Debian's chromium on PATH."""
    return os.environ.get(CHROMIUM_ENV) or shutil.which("chromium")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_until_up(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server did not answer {url} within {timeout_s:g}s")


@pytest.fixture(scope="module")
def chromium() -> str:
    path = chromium_path()
    if not path:
        pytest.skip(f"{NOT_RUN}: no chromium binary (apt-get install chromium, or ${CHROMIUM_ENV})")
    return path  # playwright itself is a pinned dependency: its absence is a broken install


@pytest.fixture(scope="module")
def built(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> PagesWarehouse:
    return build_warehouse(tmp_path_factory.mktemp("browser"))


@pytest.fixture(scope="module")
def server(built: PagesWarehouse) -> Iterator[str]:
    """The service in its own process; always killed, whatever the tests did."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(built.path), str(port), str(PAGE_SIZE)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the SQL workers it spawns go with it
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base + "/", proc)
        yield base
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server (a clean shutdown), then end whatever is left of its group."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)  # worker processes the server did not take down
        except ProcessLookupError:
            return
        time.sleep(0.5)


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any, server: str) -> Iterator[Any]:
    ctx = browser.new_context(base_url=server)
    pg = ctx.new_page()
    pg.set_default_timeout(20_000)
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield pg
        assert not errors, f"JavaScript errors on the page: {errors}"
    finally:
        ctx.close()


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def _chart_rendered(page: Any, testid: str) -> None:
    page.wait_for_selector(f'[data-testid="{testid}"][data-rendered="1"] .main-svg')


# -- flows ---------------------------------------------------------------------------------------
def test_snapshot_funnel_step_opens_its_dropped_rows(page: Any, built: PagesWarehouse) -> None:
    expect = _expect()
    page.goto("/")
    page.click(f'a[data-testid="snapshot-link"][href="/snapshots/{built.sft}"]')
    expect(page.get_by_test_id("page-title")).to_contain_text(built.sft)
    _chart_rendered(page, "funnel-chart")
    page.click('[data-testid="step-link-min_chars"]')
    page.wait_for_url("**/drops?step=min_chars")
    rows = page.get_by_test_id("drop-row")
    expect(rows).to_have_count(PAGE_SIZE)
    for reason in page.get_by_test_id("drop-reason").all_inner_texts():
        assert reason.startswith("min_chars: score")


def test_clicking_a_funnel_bar_opens_that_steps_drops(page: Any, built: PagesWarehouse) -> None:
    page.goto(f"/snapshots/{built.sft}")
    _chart_rendered(page, "funnel-chart")
    steps = page.get_by_test_id("funnel-step").all_inner_texts()
    index = next(i for i, s in enumerate(steps) if "max_turns" in s)
    # a real click on a bar depends on layout; emit the event Plotly fires for one instead
    page.evaluate(
        "i => document.querySelector('[data-testid=funnel-chart]')"
        ".emit('plotly_click', {points: [{pointIndex: i}]})",
        index,
    )
    page.wait_for_url("**/drops?step=max_turns")
    _expect()(page.get_by_test_id("drop-row").first).to_be_visible()


def test_drop_explorer_pages_and_opens_a_row(page: Any, built: PagesWarehouse) -> None:
    expect = _expect()
    page.goto(f"/snapshots/{built.sft}/drops?step=min_chars")
    first = page.get_by_test_id("row-link").all_inner_texts()
    page.click('[data-testid="next-page"]')
    page.wait_for_url("**after=*")
    second = page.get_by_test_id("row-link").all_inner_texts()
    assert second and not set(first) & set(second)
    assert sorted(first + second) == first + second  # keyset order on row_id
    expect(page.get_by_test_id("first-page")).to_be_visible()
    page.get_by_test_id("row-link").first.click()
    expect(page.get_by_test_id("ledger-reason").first).to_contain_text("min_chars")
    expect(page.get_by_test_id("turn").first).to_be_visible()


def test_sql_console_shows_a_table_a_chart_and_a_refusal(page: Any) -> None:
    expect = _expect()
    page.goto("/sql")
    page.fill(
        '[data-testid="sql-input"]',
        "SELECT split, count(*) AS n FROM snapshot_rows GROUP BY split ORDER BY split",
    )
    page.click('[data-testid="sql-run"]')
    expect(page.get_by_test_id("sql-result")).to_be_visible()
    assert page.get_by_test_id("sql-row").count() >= 4
    _chart_rendered(page, "sql-chart")
    assert "q=SELECT" in page.url  # the result has a shareable URL
    page.fill('[data-testid="sql-input"]', "DELETE FROM dialogues")
    page.click('[data-testid="sql-run"]')
    expect(page.get_by_test_id("sql-error")).to_contain_text("refused DELETE")
    expect(page.get_by_test_id("sql-result")).to_have_count(0)


def test_compare_two_snapshots(page: Any, built: PagesWarehouse) -> None:
    expect = _expect()
    page.goto(f"/snapshots/{built.sft}")
    page.click(f'a[href="/diff?a={built.sft}"]')
    page.select_option('[data-testid="diff-b"]', built.sft2)
    page.click('[data-testid="diff-run"]')
    page.wait_for_url(f"**/diff?a={built.sft}&b={built.sft2}")
    removed = int(page.get_by_test_id("n-removed").inner_text().replace(",", ""))
    assert removed > 0
    expect(page.get_by_test_id("diff-summary")).to_contain_text("B dropped it at step min_chars")
    expect(page.get_by_test_id("diff-row").first).to_be_visible()


def test_preference_pair_shows_chosen_and_rejected_side_by_side(
    page: Any, built: PagesWarehouse
) -> None:
    expect = _expect()
    page.goto(f"/snapshots/{built.uf}")
    _chart_rendered(page, "pair-scores-chart")
    page.click('[data-testid="split-link"]:text("train_prefs")')
    page.get_by_test_id("row-link").first.click()
    chosen = page.get_by_test_id("chosen").first
    rejected = page.get_by_test_id("rejected").first
    expect(chosen).to_contain_text("assistant")
    expect(rejected).to_contain_text("assistant")
    a, b = chosen.bounding_box(), rejected.bounding_box()
    assert a and b and a["x"] + a["width"] <= b["x"] + 1 and abs(a["y"] - b["y"]) < 5


def test_conversation_html_is_shown_as_text(page: Any, built: PagesWarehouse) -> None:
    page.goto(f"/rows/{built.xss_row}?snapshot={built.sft}")
    first = page.get_by_test_id("turn").first
    _expect()(first).to_contain_text("<script>window.__xss = 1</script><b>bold?</b>")
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page.locator("main b", has_text="bold?").count() == 0


def test_dedup_cluster_and_training_run_links(page: Any, built: PagesWarehouse) -> None:
    expect = _expect()
    page.goto(f"/snapshots/{built.sft}")
    page.click('[data-testid="clusters-link-exact_dedup"]')
    cluster = page.get_by_test_id("cluster").first
    expect(cluster.get_by_test_id("similarity").first).to_have_text("1.000")
    page.click('[data-testid="nav-runs"]')
    expect(page.get_by_test_id("run-status").first).to_have_text("completed")
    page.click('[data-testid="run-snapshot"]')
    expect(page.get_by_test_id("page-title")).to_contain_text(built.sft)
