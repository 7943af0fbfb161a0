"""Real frontend clients subscribed to the gateway's live data (``Subscription.leads`` / ``Subscription.lead``).

tests/frontend/ pins them (package.json + package-lock.json; `./dev test` runs `npm ci` there):

- Apollo Client 3 (tests/frontend/apollo-subscription.mjs), over both transports it has: ``GraphQLWsLink`` on a
  graphql-ws client (WebSocket, subprotocol ``graphql-transport-ws``, the token in ``connection_init``), and
  ``HttpLink``'s multipart subscriptions (``Accept: multipart/mixed;subscriptionSpec=1.0``, Node's streaming fetch);
- Relay (tests/frontend/relay-subscription.mjs): ``Network.create(fetchFn, subscribeFn)`` with subscribeFn on
  graphql-ws, and ``requestSubscription`` with LeadsLiveSubscription, compiled by relay-compiler from
  tests/frontend/relay/src/LeadsLive.js;
- graphql-sse (tests/frontend/sse-subscription.mjs): GraphQL over SSE, distinct connections mode.

Each run has a demo tenant of its own (``live-<uuid>``), so no other test sees the leads it changes, and the
gateway polls every second (``live_interval=1``) with page caching off, so that every poll is an upstream call
the demo upstream records. Each script subscribes to ``leads(first: 5)`` and takes the first event, waits 2.5
intervals with nothing changing, changes a lead through the demo upstream's control call
(``POST /_demo/leads/{id}``) and takes the next event, waits 2.5 intervals again, then unsubscribes, changes
another lead and waits 3.5 intervals. The checks: the first event is the window as the demo has it; the next
one shows the new status; nothing arrives while nothing changes (no repeated window); after the unsubscribe
nothing arrives and the gateway stops polling the upstream for it (WebSocket: with the socket still open).

The Node scripts print what they saw, as JSON (progress lines, then one object); every check is made here.
"""

from __future__ import annotations

import json
import subprocess
import threading
import uuid
from pathlib import Path

import pytest

from gateway.demo.data import dataset_for_token
from gateway.demo.live import is_final, next_status
from gateway.leads.ids import to_global_id
from tests.conftest import skip_or_fail
from tests.e2e.test_frontend_clients import FRONTEND, NODE_TIMEOUT, RELAY_SOURCES, compile_relay, node_binary, utc

LIVE_INTERVAL = 1.0  # seconds between the gateway's polls (the minimum GATEWAY_LIVE_INTERVAL allows)
FIRST = 5  # the window: leads(first: 5)
QUIET_MS = int(2.5 * LIVE_INTERVAL * 1000)  # a while with no change: no event may arrive in it
AFTER_UNSUBSCRIBE_MS = int(3.5 * LIVE_INTERVAL * 1000)
TIMEOUT_MS = 15_000  # longest wait for an event that should come (at most about 2 intervals)
PACKAGES = ("@apollo/client", "graphql-ws", "ws", "graphql-sse", "relay-runtime", "relay-compiler")


def status_enum(status: str) -> str:
    return status.upper().replace("-", "_")


def customer_name(row: dict) -> str | None:
    return (row["variables"] or {}).get("customer_name")


def live_node() -> str:
    node = node_binary()
    for package in PACKAGES:
        if not (FRONTEND / "node_modules" / package / "package.json").exists():
            skip_or_fail(f"the frontend npm packages are not installed (npm ci --prefix tests/frontend): {package}")
    return node


def live_plan() -> tuple[str, dict]:
    """A fresh tenant and what the script does to it: the window's first lead not yet COMPLETED is given
    that status; after the unsubscribe another lead of the window (not final) moves one status on (``{}``);
    for the SSE script, the window's last lead is removed."""
    while True:
        token = f"live-{uuid.uuid4()}"
        window = dataset_for_token(token)[:FIRST]
        changed = next((r for r in window if r["status"] != "completed"), None)
        if changed is None:
            continue
        later = next((r for r in window if r is not changed and not is_final(r["status"])
                      and r is not window[-1]), None)
        if later is None:
            continue
        return token, {
            "first": FIRST, "quietMs": QUIET_MS, "quietAfterUnsubscribeMs": AFTER_UNSUBSCRIBE_MS,
            "timeoutMs": TIMEOUT_MS,
            "change": {"id": changed["id"], "body": {"status": "completed"}},
            "afterUnsubscribe": {"id": later["id"], "body": {}},
            "remove": window[-1]["id"],
        }


def run_live(upstream, token: str, *args: str) -> dict:
    """Run a subscription script; count the upstream calls made for ``token`` at each phase it reports.

    ``polls``: calls at each phase line; ``settled``: one interval and a half after the unsubscribe (a poll
    in flight then has finished); ``end``: when the script's last quiet while is over."""
    proc = subprocess.Popen([live_node(), *args], cwd=FRONTEND, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    killer = threading.Timer(NODE_TIMEOUT, proc.kill)
    killer.start()
    polls: dict[str, int] = {}
    timers = []

    def snapshot(name: str) -> None:
        polls[name] = len(upstream.calls(token))

    lines = []
    try:
        for line in proc.stdout:
            if not line.strip():
                continue
            obj = json.loads(line)
            lines.append(obj)
            if "phase" in obj:
                snapshot(obj["phase"])
                if obj["phase"] == "unsubscribed":
                    timer = threading.Timer(1.5 * LIVE_INTERVAL, snapshot, ["settled"])
                    timer.start()
                    timers.append(timer)
        stderr = proc.stderr.read()
        proc.wait(NODE_TIMEOUT)
    finally:
        killer.cancel()
        for timer in timers:
            timer.cancel()
    assert proc.returncode == 0, f"node {args[0]} exited {proc.returncode}:\n{stderr}\n{lines}"
    assert lines and "phase" not in lines[-1], f"node {args[0]} printed no result:\n{stderr}\n{lines}"
    out = lines[-1]
    out["polls"] = polls
    return out


@pytest.fixture(scope="module")
def live_gateway(make_gateway):
    # Page caching off: each poll reaches the upstream, so the demo upstream's call log shows the polling.
    # Keep-alives every second: SSE and multipart heartbeats come in every quiet while, and must not reach the
    # clients as events.
    return make_gateway(cache_ttl=0, live_interval=LIVE_INTERVAL, live_keepalive=1.0)


def graphql_url(gw) -> str:
    return f"{gw.url}/graphql"


# ---------------------------------------------------------------------------------------------------
# What every client must have seen
# ---------------------------------------------------------------------------------------------------

def window_of(token: str) -> list[dict]:
    return list(dataset_for_token(token)[:FIRST])


def nodes_of(leads: dict) -> list[tuple[int, str]]:
    return [(n["databaseId"], n["status"]) for n in leads["nodes"]]


def check_first(leads: dict, token: str) -> None:
    """The first event: the window exactly as the demo upstream has it."""
    rows = dataset_for_token(token)
    window = window_of(token)
    assert nodes_of(leads) == [(r["id"], status_enum(r["status"])) for r in window]
    assert all(n["id"] == to_global_id("Lead", n["databaseId"]) for n in leads["nodes"])
    if "customerName" in leads["nodes"][0]:
        assert [n["customerName"] for n in leads["nodes"]] == [customer_name(r) for r in window]
    assert leads["totalCount"] == len(rows)
    assert leads["pageInfo"]["hasNextPage"] is True
    assert len(leads["cursors"]) == FIRST and leads["pageInfo"]["endCursor"] == leads["cursors"][-1]


def check_changed(first: dict, changed: dict, plan: dict) -> None:
    """The next event: the same window, the changed lead COMPLETED, the others as they were."""
    target = plan["change"]["id"]
    expected = [(i, "COMPLETED" if i == target else s) for i, s in nodes_of(first)]
    assert nodes_of(changed) == expected
    assert changed["totalCount"] == first["totalCount"]
    assert changed["cursors"] == first["cursors"]


def check_quiet_and_unsubscribe(out: dict, plan: dict, token: str, gw) -> None:
    assert out["change"]["status"] == 200, out["change"]
    # The change arrived with the next poll or so (an interval, plus the upstream call), not much later.
    assert out["changed"]["t"] - out["change"]["t"] <= 3000 * LIVE_INTERVAL, (out["change"], out["changed"]["t"])
    # Nothing changed for 2.5 intervals, before and after the change: no event (no window sent again).
    assert out["quietEvents"] == [], out["quietEvents"]
    assert out["quietAfterChangeEvents"] == [], out["quietAfterChangeEvents"]
    # After the unsubscribe: the other change happened (the gateway answers it over HTTP) yet no event came ...
    assert out["afterUnsubscribeChange"]["status"] == 200, out["afterUnsubscribeChange"]
    later = next(r for r in window_of(token) if r["id"] == plan["afterUnsubscribe"]["id"])
    body = gw.gql("query($id: Int!) { lead(databaseId: $id) { status } }", {"id": later["id"]}, token=token)
    assert body == {"data": {"lead": {"status": status_enum(next_status(later["status"]))}}}, body
    assert out["eventsAfterUnsubscribe"] == [], out["eventsAfterUnsubscribe"]
    # ... and the gateway stopped polling the upstream for it: it polled while subscribed (the two quiet
    # whiles are five intervals), then, once a poll in flight had finished, made no call for 2 intervals.
    polls = out["polls"]
    assert polls["unsubscribing"] - polls["first"] >= 3, polls
    assert polls["quiet-after-unsubscribe"] == polls["settled"], polls


def check_no_errors(out: dict, events: list[dict]) -> None:
    assert out["ended"]["error"] is None, out["ended"]
    assert all(e.get("errors") is None for e in events), events


# ---------------------------------------------------------------------------------------------------
# Apollo Client: GraphQLWsLink and HttpLink multipart subscriptions
# ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=["ws", "multipart"])
def apollo_live(request, live_gateway, upstream) -> dict:
    token, plan = live_plan()
    out = run_live(upstream, token, "apollo-subscription.mjs", request.param, graphql_url(live_gateway),
                   upstream.url, token, json.dumps(plan))
    return {"mode": request.param, "token": token, "plan": plan, "out": out}


def test_apollo_subscription_first_event_is_the_window(apollo_live):
    out, token = apollo_live["out"], apollo_live["token"]
    assert out["gotFirst"] is True, out
    check_no_errors(out, out["events"])
    check_first(out["first"]["leads"], token)


def test_apollo_subscription_sends_a_change_once(apollo_live, live_gateway):
    out, token, plan = apollo_live["out"], apollo_live["token"], apollo_live["plan"]
    assert out["gotChanged"] is True, out
    check_changed(out["first"]["leads"], out["changed"]["leads"], plan)
    # Written to Apollo's cache, on the lead's normalised entry.
    assert out["cachedChangedLead"]["status"] == "COMPLETED"
    assert out["cachedChangedLead"]["databaseId"] == plan["change"]["id"]
    check_quiet_and_unsubscribe(out, plan, token, live_gateway)
    assert out["closedAfterUnsubscribe"] is True
    assert out["ended"]["completed"] is False  # the client ended it, not the server
    assert len(out["events"]) == 2


def test_apollo_subscription_transport(apollo_live):
    out = apollo_live["out"]
    if apollo_live["mode"] == "ws":
        socket = out["socket"]
        assert socket["protocol"] == "graphql-transport-ws"
        # One connection, open from start to end: the unsubscribe ended the subscription, not the socket.
        assert socket["connected"] == 1 and socket["closed"] == [], socket
        # Without a token in connection_init (no payload, or one without Authorization) the gateway closes
        # the socket with 4401, before any event.
        for case in ("noToken", "emptyPayload"):
            seen = out[case]
            assert seen["next"] == [], (case, seen)
            assert (seen["closed"] or {}).get("code") == 4401, (case, seen)
            assert (seen["error"] or {}).get("code") == 4401, (case, seen)
    else:
        [http] = out["http"]
        assert http["status"] == 200
        assert "multipart/mixed" in http["accept"] and "subscriptionSpec=1.0" in http["accept"], http
        assert http["contentType"].startswith("multipart/mixed"), http


# ---------------------------------------------------------------------------------------------------
# Relay: requestSubscription with a compiled subscription, subscribeFn on graphql-ws
# ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def relay_live_generated(tmp_path_factory) -> Path:
    live_node()
    out = tmp_path_factory.mktemp("relay-live")
    proc = compile_relay(out, RELAY_SOURCES)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out / "__generated__"


@pytest.fixture(scope="module")
def relay_live(relay_live_generated, live_gateway, upstream) -> dict:
    token, plan = live_plan()
    out = run_live(upstream, token, "relay-subscription.mjs", str(relay_live_generated), graphql_url(live_gateway),
                   upstream.url, token, json.dumps(plan))
    return {"token": token, "plan": plan, "out": out}


def test_relay_compiler_generates_the_subscription(relay_live_generated):
    artifact = json.loads(subprocess.run(
        [live_node(), "-e", "process.stdout.write(JSON.stringify(require(process.argv[1])))",
         str(relay_live_generated / "LeadsLiveSubscription.graphql.js")], capture_output=True, text=True,
        check=True, timeout=NODE_TIMEOUT).stdout)
    assert artifact["kind"] == "Request"
    assert artifact["params"]["operationKind"] == "subscription"
    assert artifact["params"]["name"] == "LeadsLiveSubscription"
    text = artifact["params"]["text"]
    assert text.startswith("subscription LeadsLiveSubscription(\n  $first: Int\n  $filter: LeadFilter\n) {")
    assert "leads(first: $first, filter: $filter)" in text
    assert "fragment LeadDetails_lead on Lead" in text


def test_relay_subscription_first_event_is_the_window(relay_live):
    out, token = relay_live["out"], relay_live["token"]
    assert out["gotFirst"] is True, out
    check_no_errors(out, out["events"])
    check_first(out["first"]["leads"], token)
    # LeadDetails_lead read through the store, as a component would render it.
    for details, row in zip(out["first"]["details"], window_of(token), strict=True):
        assert details["databaseId"] == row["id"]
        assert details["customerName"] == customer_name(row)
        assert details["phoneNumber"] == row["phone_number"]
        assert details["status"] == status_enum(row["status"])
        assert details["createdAt"] == utc(row["created_at"])
    # The operation went to subscribeFn (graphql-ws), with the compiled text; nothing over fetchFn.
    [sent] = out["sent"]
    assert (sent["kind"], sent["name"], sent["operationKind"]) == ("subscribe", "LeadsLiveSubscription",
                                                                   "subscription")
    assert sent["variables"] == {"first": FIRST, "filter": None}
    assert out["socket"]["protocol"] == "graphql-transport-ws"
    assert out["socket"]["connected"] == 1 and out["socket"]["closed"] == []


def test_relay_subscription_updates_the_store(relay_live, live_gateway):
    out, token, plan = relay_live["out"], relay_live["token"], relay_live["plan"]
    assert out["gotChanged"] is True, out
    check_changed(out["first"]["leads"], out["changed"]["leads"], plan)
    target = plan["change"]["id"]
    # The record in the store has the new status, and the fragment reads it.
    assert out["storeRecord"] == {"id": to_global_id("Lead", target), "databaseId": target, "status": "COMPLETED"}
    details = next(d for d in out["changed"]["details"] if d["databaseId"] == target)
    assert details["status"] == "COMPLETED"
    check_quiet_and_unsubscribe(out, plan, token, live_gateway)
    assert len(out["events"]) == 2


# ---------------------------------------------------------------------------------------------------
# graphql-sse: GraphQL over SSE, distinct connections mode
# ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sse_live(live_gateway, upstream) -> dict:
    token, plan = live_plan()
    out = run_live(upstream, token, "sse-subscription.mjs", graphql_url(live_gateway), upstream.url, token,
                   json.dumps(plan))
    return {"token": token, "plan": plan, "out": out}


def sse_leads(event: dict) -> dict:
    leads = event["data"]["leads"]
    return {"totalCount": leads["totalCount"], "pageInfo": leads["pageInfo"],
            "cursors": [e["cursor"] for e in leads["edges"]],
            "nodes": [e["node"] for e in leads["edges"]]}


def test_sse_subscription_first_event_and_change(sse_live, live_gateway):
    out, token, plan = sse_live["out"], sse_live["token"], sse_live["plan"]
    o = out["leads"]
    assert o["gotFirst"] is True and o["gotChanged"] is True, o
    check_no_errors(o, o["events"])
    check_first(sse_leads(o["first"]), token)
    check_changed(sse_leads(o["first"]), sse_leads(o["changed"]), plan)
    o["polls"] = out["polls"]
    check_quiet_and_unsubscribe(o, plan, token, live_gateway)
    assert len(o["events"]) == 2
    # One POST per subscription, Accept: text/event-stream, the token in its header; answered as a stream.
    subscription = out["http"][0]
    assert subscription["method"] == "POST"
    assert subscription["accept"] == "text/event-stream"
    assert subscription["authorization"] == f"Bearer {token}"
    assert subscription["status"] == 200 and subscription["contentType"].startswith("text/event-stream")
    assert "abortedAt" in subscription  # the dispose aborted the request: the stream ended client-side


def test_sse_lead_subscription_is_null_once_the_lead_is_gone(sse_live):
    out, token, plan = sse_live["out"], sse_live["token"], sse_live["plan"]
    o = out["lead"]
    row = window_of(token)[-1]
    assert row["id"] == plan["remove"]
    assert o["gotFirst"] is True, o
    check_no_errors(o, o["events"])
    assert o["first"]["data"] == {"lead": {"id": to_global_id("Lead", row["id"]), "databaseId": row["id"],
                                           "status": status_enum(row["status"])}}
    assert o["remove"]["status"] == 200
    assert o["gotRemoved"] is True, o
    assert o["removed"]["data"] == {"lead": None}
    assert o["afterRemoved"] == []  # null is sent once
    assert [h["method"] for h in out["http"]] == ["POST", "POST"]
