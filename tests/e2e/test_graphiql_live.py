"""GraphiQL running a subscription in a real browser (Debian's chromium, driven by Playwright), offline.

The page gives GraphiQL's fetcher a ``subscriptionUrl`` (``ws://host/graphql``): a subscription runs over
graphql-ws (subprotocol ``graphql-transport-ws``), with the headers editor's ``Authorization`` in
``connection_init``'s payload, or, in demo mode, the demo tenant's token. The test types a subscription, runs
it, sees the window in the result pane, changes a lead through the demo upstream's control call and sees the
new status appear; pressing stop ends the subscription (the gateway stops polling for it). The same network
fence as tests/e2e/test_graphiql_browser.py: only loopback is reachable. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import json
import time
import uuid

import httpx

from gateway.demo.data import DEMO_TOKEN, dataset_for_token
from tests.e2e.test_graphiql_browser import (  # noqa: F401  (browser, offline: fixtures used here)
    QUERY_EDITOR,
    RESULT,
    TIMEOUT_MS,
    TOOL_EDITOR,
    browser,
    offline,
)

LIVE_INTERVAL = 1.0
FIRST = 5
SUBSCRIPTION = """\
subscription LiveLeads {
  leads(first: 5) {
    totalCount
    nodes { databaseId customerName status }
  }
}"""
LEAD_SUBSCRIPTION = """\
subscription LiveLead($id: Int!) {
  lead(databaseId: $id) { databaseId status }
}"""


def status_enum(status: str) -> str:
    return status.upper().replace("-", "_")


class LiveOffline:
    """The fenced page, with what its WebSockets sent and received."""

    def __init__(self, offline) -> None:
        self.o = offline
        self.page = offline.page
        self.sockets: list[dict] = []
        self.posted: list[str] = []  # bodies of the page's POSTs (introspection, queries)
        self.page.on("websocket", self._socket)
        self.page.on("request", lambda r: r.method == "POST" and self.posted.append(r.post_data or ""))

    def _socket(self, ws) -> None:
        entry = {"url": ws.url, "sent": [], "received": [], "closed": False}
        self.sockets.append(entry)
        ws.on("framesent", lambda payload: entry["sent"].append(payload))
        ws.on("framereceived", lambda payload: entry["received"].append(payload))
        ws.on("close", lambda _ws: entry.__setitem__("closed", True))

    def replace(self, selector: str, text: str) -> None:
        """Select everything in a CodeMirror editor and type ``text`` over it, as a user pastes."""
        self.page.click(selector)
        self.page.keyboard.press("ControlOrMeta+A")
        self.page.keyboard.insert_text(text)
        # GraphiQL parses an edited query (and picks its operation name) a moment after the edit.
        self.page.wait_for_timeout(500)

    def result(self) -> str:
        return self.o.editor_value(RESULT)

    def wait_result(self, predicate_js: str) -> dict:
        """Wait until the result pane's JSON satisfies ``predicate_js`` (a function of the parsed value)."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            self.page.wait_for_function(
                """([sel, body]) => { const el = document.querySelector(sel);
                     const text = el && el.CodeMirror.getValue();
                     if (!text || !text.trim().startsWith("{")) return false;
                     let value; try { value = JSON.parse(text); } catch (e) { return false; }
                     return new Function("value", body)(value); }""",
                arg=[RESULT, predicate_js], timeout=TIMEOUT_MS)
        except PlaywrightTimeout:
            shown = self.page.eval_on_selector(RESULT, "el => el.CodeMirror.getValue()")
            raise AssertionError(f"the result pane never satisfied {predicate_js!r}: {shown!r}; sockets "
                                 f"{self.sockets}; page errors {self.o.errors}; failed {self.o.failed}") from None
        return json.loads(self.result())

    def init_payloads(self) -> list:
        return [json.loads(f)["payload"] for s in self.sockets for f in s["sent"]
                if json.loads(f).get("type") == "connection_init"]


def control(upstream, token: str, lead_id: int, body: dict) -> httpx.Response:
    return httpx.post(f"{upstream.url}/_demo/leads/{lead_id}", json=body,
                      headers={"Authorization": f"Bearer {token}"}, timeout=10)


def fresh_live_tenant() -> tuple[str, list[dict], dict]:
    """A tenant of its own (the control call changes its leads) whose window has a lead not yet COMPLETED."""
    while True:
        token = f"live-{uuid.uuid4()}"
        rows = dataset_for_token(token)
        target = next((r for r in rows[:FIRST] if r["status"] != "completed"), None)
        if target is not None:
            return token, rows, target


def test_subscription_with_the_headers_editor_token(make_gateway, upstream, offline):
    """Outside demo mode: the token typed into the headers editor goes into connection_init."""
    gw = make_gateway(cache_ttl=0, live_interval=LIVE_INTERVAL)
    token, rows, target = fresh_live_tenant()
    live = LiveOffline(offline)
    offline.open(gw.url)
    page = offline.page

    offline.show_tool("Headers")
    live.replace(TOOL_EDITOR, json.dumps({"Authorization": f"Bearer {token}"}))
    assert json.loads(offline.editor_value(TOOL_EDITOR)) == {"Authorization": f"Bearer {token}"}
    live.replace(QUERY_EDITOR, SUBSCRIPTION)
    assert offline.editor_value(QUERY_EDITOR) == SUBSCRIPTION

    # Run: the first result is the tenant's window, as the demo upstream has it.
    page.click(".graphiql-execute-button")
    first = live.wait_result("return Boolean(value.data && value.data.leads);")
    assert "errors" not in first, first
    window = rows[:FIRST]
    assert first["data"]["leads"]["totalCount"] == len(rows)
    assert [(n["databaseId"], n["status"]) for n in first["data"]["leads"]["nodes"]] == [
        (r["id"], status_enum(r["status"])) for r in window]
    assert str(window[0]["id"]) in page.locator(".graphiql-response").inner_text()
    offline.screenshot("graphiql-live-1.png")

    # Over a WebSocket at /graphql, with the typed token in connection_init's payload; not over HTTP.
    assert [s["url"] for s in live.sockets] == [gw.url.replace("http", "ws", 1) + "/graphql"]
    assert live.init_payloads() == [{"Authorization": f"Bearer {token}"}]
    assert not [b for b in live.posted if "LiveLeads" in b], live.posted

    # A lead changes upstream: the new status appears in the result pane, the rest as it was.
    assert control(upstream, token, target["id"], {"status": "completed"}).status_code == 200
    changed = live.wait_result(
        f"return value.data && value.data.leads.nodes.some(n => n.databaseId === {target['id']} "
        "&& n.status === 'COMPLETED');")
    assert [(n["databaseId"], n["status"]) for n in changed["data"]["leads"]["nodes"]] == [
        (r["id"], "COMPLETED" if r is target else status_enum(r["status"])) for r in window]
    offline.screenshot("graphiql-live-2.png")

    # Stop (the run button became a stop button): the socket closes and the gateway stops polling.
    page.click(".graphiql-execute-button")
    deadline = time.monotonic() + 5
    while not all(s["closed"] for s in live.sockets) and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert all(s["closed"] for s in live.sockets), live.sockets
    page.wait_for_timeout(1500 * LIVE_INTERVAL)  # a poll in flight finishes
    settled = len(upstream.calls(token))
    page.wait_for_timeout(2500 * LIVE_INTERVAL)
    assert len(upstream.calls(token)) == settled

    assert offline.blocked == [], offline.blocked
    assert offline.failed == [] and offline.errors == [], (offline.failed, offline.errors)


def test_subscription_in_demo_mode_needs_no_token(make_gateway, offline):
    """Demo mode: the headers editor is empty; the page puts the demo tenant's token in connection_init."""
    gw = make_gateway(demo_token=DEMO_TOKEN, cache_ttl=0, live_interval=LIVE_INTERVAL)
    row = dataset_for_token(DEMO_TOKEN)[0]
    live = LiveOffline(offline)
    offline.open(gw.url)
    assert json.loads(offline.show_tool("Headers")) == {}

    live.replace(QUERY_EDITOR, LEAD_SUBSCRIPTION)
    offline.show_tool("Variables")
    live.replace(TOOL_EDITOR, json.dumps({"id": row["id"]}))
    offline.page.click(".graphiql-execute-button")
    shown = live.wait_result("return Boolean(value.data && value.data.lead);")
    assert shown == {"data": {"lead": {"databaseId": row["id"], "status": status_enum(row["status"])}}}
    assert live.init_payloads() == [{"Authorization": f"Bearer {DEMO_TOKEN}"}]
    offline.page.click(".graphiql-execute-button")  # stop
    assert offline.blocked == [] and offline.errors == [], (offline.blocked, offline.errors)
