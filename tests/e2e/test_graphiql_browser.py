"""GraphiQL in a real browser (Debian's chromium, driven by Playwright), with no network but loopback.

Every request the page makes goes through a route that lets only 127.0.0.1/localhost through and aborts
(and records) anything else, so the test proves the page needs nothing from the internet: it loads
its bundles from the gateway, runs the example query, shows the demo tenant's leads, and pages on with
the returned cursor set in the variables editor. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from gateway.demo.data import DEMO_TOKEN, dataset_for_token
from gateway.http.graphiql.page import EXAMPLE_QUERY
from gateway.http.graphiql.assets import ASSETS, local_assets_available
from tests.conftest import skip_or_fail

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
TIMEOUT_MS = 20_000

QUERY_EDITOR = ".graphiql-query-editor .CodeMirror"
RESULT = ".graphiql-response .result-window .CodeMirror"
TOOL_EDITOR = "section.graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror"


def chromium_path() -> str:
    found = os.environ.get("GATEWAY_TEST_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found or not Path(found).exists():
        skip_or_fail("chromium is not installed (apt-get install chromium)")
    return found


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("playwright is not installed (pip install -e '.[test]')")
    executable = chromium_path()
    if not local_assets_available():
        skip_or_fail("GraphiQL's bundles are not built (npm ci --prefix graphiql && node graphiql/build.mjs)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, timeout=TIMEOUT_MS)
        yield browser
        browser.close()


class Offline:
    """A page whose requests may only reach loopback; the rest are aborted and remembered."""

    def __init__(self, browser) -> None:
        self.context = browser.new_context(viewport={"width": 1440, "height": 1100}, service_workers="block")
        self.context.set_default_timeout(TIMEOUT_MS)
        self.blocked: list[str] = []
        self.requested: list[str] = []
        self.failed: list[str] = []
        self.errors: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("response", lambda r: r.status >= 400 and self.failed.append(f"{r.status} {r.url}"))

    def _route(self, route) -> None:
        url = route.request.url
        self.requested.append(url)
        if urlsplit(url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort("internetdisconnected")

    def editor_value(self, selector: str) -> str:
        self.page.wait_for_selector(selector)
        return self.page.eval_on_selector(selector, "el => el.CodeMirror.getValue()")

    def open(self, url: str) -> None:
        probe = httpx.head(f"{url}/graphql/assets/{ASSETS[0].name}")
        assert probe.status_code == 200, "no /graphql/assets/ on the gateway (asset_routes in gateway/app.py)"
        self.page.goto(f"{url}/graphql")
        self.page.wait_for_selector(QUERY_EDITOR)

    def show_tool(self, name: str) -> str:
        """Open the Variables or Headers tab under the query editor; its editor's text."""
        self.page.click(f".graphiql-editor-tools button[data-name={name.lower()}]")
        self.page.wait_for_selector(f"section.graphiql-editor-tool[aria-label={name}]")
        return self.editor_value(TOOL_EDITOR)

    def run(self, previous: str = "") -> dict:
        """Press the run button; the result pane's JSON once it changed from ``previous``."""
        self.page.click(".graphiql-execute-button")
        self.page.wait_for_function(
            """([sel, previous]) => { const el = document.querySelector(sel);
                 const text = el && el.CodeMirror.getValue();
                 return text && text !== previous && text.trim().startsWith("{") && text.includes('"data"'); }""",
            arg=[RESULT, previous])
        return json.loads(self.editor_value(RESULT))

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        self.page.screenshot(path=str(path))
        return path

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def offline(browser):
    o = Offline(browser)
    yield o
    o.close()


def completed(token: str) -> list[dict]:
    """The demo rows the example query asks for (filter: status COMPLETED), in list order."""
    return [r for r in dataset_for_token(token) if r["status"] == "completed"]


def customer_name(row: dict) -> str | None:
    return (row["variables"] or {}).get("customer_name")


def test_example_query_and_paging_offline(make_gateway, fresh_upstream, offline):
    gw = make_gateway(demo_token=DEMO_TOKEN, cache_ttl=30)
    offline.open(gw.url)
    page = offline.page

    # The page opens on the example query; demo mode needs no token, so the headers editor is empty.
    assert offline.editor_value(QUERY_EDITOR) == EXAMPLE_QUERY
    assert json.loads(offline.show_tool("Headers")) == {}

    # Page 1: the first five completed leads of the demo tenant.
    rows = completed(DEMO_TOKEN)
    first = offline.run()
    assert "errors" not in first, first
    leads = first["data"]["leads"]
    assert leads["totalCount"] == len(rows)
    assert [n["databaseId"] for n in leads["nodes"]] == [r["id"] for r in rows[:5]]
    assert [n["customerName"] for n in leads["nodes"]] == [customer_name(r) for r in rows[:5]]
    assert leads["pageInfo"]["hasNextPage"] is True
    result_pane = page.locator(".graphiql-response")
    shown = next(customer_name(r) for r in rows[:5] if customer_name(r))
    assert shown in result_pane.inner_text()  # rendered in the result pane, not only in the editor's model
    offline.screenshot("graphiql-page-1.png")

    # Page 2: the endCursor typed into the variables editor as `after`, and run again.
    cursor = leads["pageInfo"]["endCursor"]
    offline.show_tool("Variables")
    page.click(TOOL_EDITOR)
    page.keyboard.press("ControlOrMeta+A")
    page.keyboard.insert_text(json.dumps({"after": cursor}))
    assert json.loads(offline.editor_value(TOOL_EDITOR)) == {"after": cursor}
    second = offline.run(previous=json.dumps(first, indent=2))
    assert "errors" not in second, second
    nodes = second["data"]["leads"]["nodes"]
    assert [n["databaseId"] for n in nodes] == [r["id"] for r in rows[5:10]]
    assert second["data"]["leads"]["pageInfo"]["hasPreviousPage"] is True
    assert str(rows[5]["id"]) in result_pane.inner_text()
    offline.screenshot("graphiql-page-2.png")

    # Everything came from the gateway: nothing tried to leave the machine, nothing failed.
    assert offline.blocked == [], offline.blocked
    assert offline.failed == [] and offline.errors == [], (offline.failed, offline.errors)
    assets = [u for u in offline.requested if "/graphql/assets/" in u]
    assert len(assets) == 6 and all(u.startswith(gw.url) for u in assets), offline.requested
    # The upstream saw only the demo tenant (the page sent no token).
    assert {c.token for c in fresh_upstream.calls()} == {DEMO_TOKEN}


def test_the_network_fence_holds(gateway, offline, monkeypatch, tmp_path):
    """Control: without the built bundles the page falls back to the CDN, which the fence blocks."""
    monkeypatch.setattr("gateway.http.graphiql.assets.STATIC_DIR", tmp_path / "absent")
    offline.page.goto(f"{gateway.url}/graphql")
    offline.page.wait_for_load_state("load")
    assert {urlsplit(u).hostname for u in offline.blocked} == {"unpkg.com"} and len(offline.blocked) == 6
    assert offline.page.locator(QUERY_EDITOR).count() == 0  # no GraphiQL without its bundles


def test_headers_editor_shows_the_token_placeholder_outside_demo_mode(gateway, offline):
    offline.open(gateway.url)
    assert json.loads(offline.show_tool("Headers")) == {"Authorization": "Bearer YOUR_API_TOKEN"}
    offline.screenshot("graphiql-headers.png")
    assert offline.blocked == [] and offline.errors == [], (offline.blocked, offline.errors)
