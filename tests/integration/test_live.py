"""Subscriptions (``Subscription.leads`` / ``Subscription.lead``) end to end, over real loopback HTTP: the
demo upstream and the gateways run in-process (uvicorn threads), the clients are real WebSocket
(``graphql-transport-ws``, aiohttp), SSE (distinct connections, httpx streaming) and Apollo multipart clients,
and the instances that share a cache share a real Redis.

Every test has tenants of its own (fresh tokens: each is a demo tenant with its own leads), so no test sees
another's changes nor counts another's polls; the gateways poll every second (``live_interval=1``) unless
a test needs otherwise. Polls are counted as the demo upstream's ``GET /user/leads`` calls for a token.
Changes are made with the demo upstream's control calls (``POST``/``DELETE /_demo/leads/{id}``).
Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import defaultdict

import aiohttp
import httpx
import pytest

from gateway.demo.data import campaigns_for_token, dataset_for_token
from gateway.demo.live import is_final

INTERVAL = 1.0
WAIT = 8.0  # the longest wait for something that should come (an event, a close, a metric)
LEADS = """subscription($first: Int, $after: String, $filter: LeadFilter) {
  leads(first: $first, after: $after, filter: $filter) {
    totalCount nodes { databaseId status } pageInfo { hasNextPage endCursor } } }"""
LEAD = "subscription($id: Int!) { lead(databaseId: $id) { databaseId status phoneNumber } }"
CREATE = """mutation($input: CreateLeadInput!) {
  createLead(input: $input) { lead { databaseId } userErrors { field message code } } }"""
SSE = "text/event-stream"
MULTIPART = "multipart/mixed;subscriptionSpec=1.0"
TRANSPORTS = ("ws", "sse", "multipart")


def new_token(prefix: str = "live") -> str:
    """A fresh demo tenant whose first five leads have one that can still be completed."""
    while True:
        token = f"{prefix}-{uuid.uuid4().hex[:12]}"
        if prefix != "live" or any(r["status"] != "completed" for r in dataset_for_token(token)[:5]):
            return token


def status_enum(status: str) -> str:
    return status.upper().replace("-", "_")


def expected_window(token: str, first: int = 5) -> dict:
    rows = dataset_for_token(token)
    return {"totalCount": len(rows),
            "nodes": [{"databaseId": r["id"], "status": status_enum(r["status"])} for r in rows[:first]]}


def window_of(payload: dict) -> dict:
    assert not payload.get("errors"), payload
    leads = payload["data"]["leads"]
    return {"totalCount": leads["totalCount"], "nodes": leads["nodes"]}


def changeable(token: str, first: int = 5) -> dict:
    """A lead of the first window that is not completed yet."""
    return next(r for r in dataset_for_token(token)[:first] if r["status"] != "completed")


# --- the upstream: calls made, control calls ----------------------------------------------------------

def calls(upstream, token: str) -> list:
    """The ``GET /user/leads`` calls made with ``token`` (the upstream's thread appends while we copy)."""
    for _ in range(100):
        try:
            snapshot = list(upstream.app.state.calls)
            break
        except RuntimeError:  # deque mutated during iteration
            continue
    return [c for c in snapshot if c.token == token]


def control(upstream, method: str, lead_id: int, token: str, body: dict | None = None) -> dict:
    response = httpx.request(method, f"{upstream.url}/_demo/leads/{lead_id}", json=body,
                             headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


async def acontrol(upstream, method: str, lead_id: int, token: str, body: dict | None = None) -> dict:
    return await asyncio.to_thread(control, upstream, method, lead_id, token, body)


async def polls_during(upstream, token: str, seconds: float) -> int:
    before = len(calls(upstream, token))
    await asyncio.sleep(seconds)
    return len(calls(upstream, token)) - before


# --- the gateway's metrics ------------------------------------------------------------------------------

def metric(gw, name: str) -> float:
    text = gw.client.get("/metrics").text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics")


async def until(condition, seconds: float = WAIT, what: str = "condition") -> float:
    """Wait until ``condition()`` holds; the seconds it took."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < seconds, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
    return time.monotonic() - start


async def no_live_left(gw) -> None:
    await until(lambda: metric(gw, "leads_gateway_live_subscriptions") == 0
                and metric(gw, "leads_gateway_live_groups") == 0
                and metric(gw, "leads_gateway_live_polling_groups") == 0, what="no subscription left")


# --- clients --------------------------------------------------------------------------------------------

class Closed(Exception):
    pass


class Events:
    """Received events (GraphQL responses) of one subscription, filled by a reader task."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue = asyncio.Queue()

    async def next(self, timeout: float = WAIT) -> dict:
        item = await asyncio.wait_for(self.queue.get(), timeout)
        if isinstance(item, Closed):
            self.queue.put_nowait(item)
            raise item
        return item

    async def quiet(self, seconds: float) -> None:
        """Nothing arrives for ``seconds``."""
        with contextlib.suppress(TimeoutError):
            item = await asyncio.wait_for(self.queue.get(), seconds)
            raise AssertionError(f"unexpected event: {item!r}")

    async def ended(self, timeout: float = WAIT) -> None:
        item = await asyncio.wait_for(self.queue.get(), timeout)
        assert isinstance(item, Closed), f"an event instead of the end: {item!r}"


class WSConnection:
    """One graphql-transport-ws connection; messages sorted by subscription id."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.subs: dict[str, Events] = defaultdict(Events)
        self.others: asyncio.Queue = asyncio.Queue()
        self.closed = asyncio.Event()
        self.task = asyncio.ensure_future(self._read())
        self._ids = 0

    @classmethod
    async def open(cls, session: aiohttp.ClientSession, gw, token: str | None) -> WSConnection:
        ws = await session.ws_connect(f"{gw.url}/graphql", protocols=["graphql-transport-ws"])
        assert ws.protocol == "graphql-transport-ws"
        await ws.send_json({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}
                            if token else {}})
        conn = cls(ws)
        ack = await asyncio.wait_for(conn.others.get(), WAIT)
        assert ack == {"type": "connection_ack"} or ack.get("type") == "connection_ack", ack
        return conn

    async def _read(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                message = json.loads(msg.data)
                kind = message.get("type")
                if kind == "ping":
                    await self.ws.send_json({"type": "pong"})
                elif kind in ("next", "error", "complete"):
                    events = self.subs[message["id"]]
                    if kind == "next":
                        events.queue.put_nowait(message["payload"])
                    elif kind == "error":
                        events.queue.put_nowait({"errors": message["payload"], "ws": "error"})
                        events.queue.put_nowait(Closed("error"))
                    else:
                        events.queue.put_nowait(Closed("complete"))
                elif kind != "pong":
                    self.others.put_nowait(message)
        finally:
            self.closed.set()
            for events in self.subs.values():
                events.queue.put_nowait(Closed("socket closed"))

    async def subscribe(self, query: str, variables: dict | None = None) -> tuple[str, Events]:
        self._ids += 1
        sid = str(self._ids)
        events = self.subs[sid]
        await self.ws.send_json({"id": sid, "type": "subscribe",
                                 "payload": {"query": query, "variables": variables or {}}})
        return sid, events

    async def complete(self, sid: str) -> None:
        await self.ws.send_json({"id": sid, "type": "complete"})

    async def close_code(self, timeout: float = WAIT) -> int | None:
        await asyncio.wait_for(self.closed.wait(), timeout)
        return self.ws.close_code

    async def close(self) -> None:
        await self.ws.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.task, 5)


class HTTPStream(Events):
    """One SSE or multipart subscription request: its events; ``status``, ``response_headers``, and ``json`` when
    it was answered as JSON rather than a stream."""

    def __init__(self, client: httpx.AsyncClient, gw, token: str | None, query: str, variables: dict | None,
                 accept: str) -> None:
        super().__init__()
        self.client, self.gw, self.accept = client, gw, accept
        self.headers = {"Accept": accept, "Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.body = {"query": query, "variables": variables or {}}
        self.status: int | None = None
        self.response_headers: dict[str, str] = {}
        self.json: dict | None = None
        self.heartbeats = 0
        self.started = asyncio.Event()
        self.task = asyncio.ensure_future(self._read())

    async def wait_started(self) -> HTTPStream:
        await asyncio.wait_for(self.started.wait(), WAIT)
        return self

    async def _read(self) -> None:
        try:
            async with self.client.stream("POST", f"{self.gw.url}/graphql", json=self.body,
                                          headers=self.headers) as response:
                self.status = response.status_code
                self.response_headers = {k.lower(): v for k, v in response.headers.items()}
                if not response.headers.get("content-type", "").startswith(("text/event-stream", "multipart")):
                    self.json = json.loads(await response.aread())
                    self.started.set()
                    return
                self.started.set()
                if self.accept == SSE:
                    await self._sse(response)
                else:
                    await self._multipart(response)
        finally:
            self.started.set()
            self.queue.put_nowait(Closed("stream ended"))

    async def _sse(self, response) -> None:
        event, data = None, []
        async for line in response.aiter_lines():
            if line.startswith(":"):
                self.heartbeats += 1
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
            elif line == "":
                if event == "next":
                    self.queue.put_nowait(json.loads("\n".join(data)))
                elif event == "complete":
                    return
                event, data = None, []

    async def _multipart(self, response) -> None:
        buffer = ""
        async for text in response.aiter_text():
            buffer += text
            while True:
                end = buffer.find("\r\n--graphql")
                if end < 0:
                    break
                part, buffer = buffer[:end], buffer[end + len("\r\n--graphql"):]
                if "\r\n\r\n" not in part:
                    continue
                body = json.loads(part.split("\r\n\r\n", 1)[1])
                if "payload" in body:
                    self.queue.put_nowait(body["payload"])
                else:
                    self.heartbeats += 1
            if buffer.startswith("--"):
                return  # the closing boundary

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(BaseException):
            await self.task


@contextlib.asynccontextmanager
async def clients():
    """An aiohttp session (WebSockets) and an httpx client (SSE, multipart), closed at the end."""
    async with aiohttp.ClientSession() as session, httpx.AsyncClient(
            timeout=httpx.Timeout(WAIT, read=None), limits=httpx.Limits(max_connections=200)) as client:
        yield session, client


class Subscriber:
    """One subscription over one transport, whichever: ``next``, ``quiet``, ``stop``."""

    def __init__(self, transport: str) -> None:
        self.transport = transport
        self.conn: WSConnection | None = None
        self.sid: str | None = None
        self.events: Events | None = None

    @classmethod
    async def start(cls, transport: str, session, client, gw, token, query=LEADS, variables=None) -> Subscriber:
        sub = cls(transport)
        if transport == "ws":
            sub.conn = await WSConnection.open(session, gw, token)
            sub.sid, sub.events = await sub.conn.subscribe(query, variables)
        else:
            sub.events = await HTTPStream(client, gw, token, query, variables,
                                          SSE if transport == "sse" else MULTIPART).wait_started()
            assert sub.events.status == 200, (sub.events.status, sub.events.json)
        return sub

    async def next(self, timeout: float = WAIT) -> dict:
        return await self.events.next(timeout)

    async def quiet(self, seconds: float) -> None:
        await self.events.quiet(seconds)

    async def stop(self) -> None:
        """Unsubscribe: ``complete`` on a WebSocket kept open, else the HTTP stream closed."""
        if self.transport == "ws":
            await self.conn.complete(self.sid)
        else:
            await self.events.close()

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()
        else:
            await self.events.close()


# --- gateways -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gw(make_gateway):
    # Page caching off: every read, hence every poll, reaches the upstream and the demo records it.
    return make_gateway(cache_ttl=0, live_interval=INTERVAL, live_keepalive=30)


@pytest.fixture(scope="module")
def limited(make_gateway):
    return make_gateway(cache_ttl=0, live_interval=INTERVAL, live_max_per_connection=2, live_max_per_caller=3)


# --- the first event, a change, nothing while unchanged ---------------------------------------------------

async def each_transport(check, transports=TRANSPORTS) -> None:
    """Run ``check(transport)`` for every transport at once (each with its own tenant): the waits overlap."""
    results = await asyncio.gather(*(check(t) for t in transports), return_exceptions=True)
    failed = [(t, r) for t, r in zip(transports, results) if isinstance(r, BaseException)]
    if failed:
        transport, error = failed[0]
        raise AssertionError(f"over {transport}: {error!r}") from error


async def test_the_first_event_is_the_window_as_the_demo_has_it(gw, upstream):
    async def check(transport: str) -> None:
        token = new_token()
        async with clients() as (session, client):
            t0 = time.monotonic()
            sub = await Subscriber.start(transport, session, client, gw, token, variables={"first": 5})
            first = await sub.next()
            assert time.monotonic() - t0 < 2.0
            assert window_of(first) == expected_window(token, 5)
            assert first["data"]["leads"]["pageInfo"]["hasNextPage"] is True
            await sub.close()

    await each_transport(check)


async def test_a_change_is_pushed_and_nothing_is_sent_while_unchanged(gw, upstream):
    async def check(transport: str) -> None:
        token = new_token()
        lead = changeable(token)
        async with clients() as (session, client):
            sub = await Subscriber.start(transport, session, client, gw, token, variables={"first": 5})
            assert window_of(await sub.next()) == expected_window(token, 5)
            # Unchanged for 2.5 intervals: no event, although the upstream was polled about once per interval.
            before = len(calls(upstream, token))
            await sub.quiet(2.5 * INTERVAL)
            polled = len(calls(upstream, token)) - before
            assert 2 <= polled <= 4, polled
            # A change upstream: the next event shows it within an interval (plus a second of slack).
            await acontrol(upstream, "POST", lead["id"], token, {"status": "completed"})
            t0 = time.monotonic()
            event = window_of(await sub.next(INTERVAL + 1.0))
            assert time.monotonic() - t0 < INTERVAL + 1.0
            expected = expected_window(token, 5)
            for node in expected["nodes"]:
                if node["databaseId"] == lead["id"]:
                    node["status"] = "COMPLETED"
            assert event == expected
            await sub.quiet(1.5 * INTERVAL)  # the change is sent once, not again on the next polls
            await sub.close()

    await each_transport(check)


async def test_graphql_cores_own_executor_serves_subscriptions_too(make_gateway, upstream):
    """GATEWAY_FAST_EXECUTION=false (or an unknown strawberry/graphql-core): every event on graphql-core's executor."""
    slow = make_gateway(cache_ttl=0, live_interval=INTERVAL, fast_execution=False)
    token = new_token()
    lead = changeable(token)
    async with clients() as (session, client):
        subs = [await Subscriber.start(t, session, client, slow, token, variables={"first": 5}) for t in TRANSPORTS]
        for sub in subs:
            assert window_of(await sub.next()) == expected_window(token, 5)
        await acontrol(upstream, "POST", lead["id"], token, {"status": "completed"})
        for sub in subs:
            event = window_of(await sub.next(INTERVAL + 1.5))
            assert {n["databaseId"]: n["status"] for n in event["nodes"]}[lead["id"]] == "COMPLETED"
            await sub.close()


async def test_a_window_after_a_cursor(gw, upstream):
    token = new_token()
    rows = dataset_for_token(token)
    async with clients() as (session, client):
        conn = await WSConnection.open(session, gw, token)
        _, head = await conn.subscribe(LEADS, {"first": 5})
        cursor = (await head.next())["data"]["leads"]["pageInfo"]["endCursor"]
        _, tail = await conn.subscribe(LEADS, {"first": 5, "after": cursor})
        window = window_of(await tail.next())
        assert [n["databaseId"] for n in window["nodes"]] == [r["id"] for r in rows[5:10]]
        assert metric(gw, "leads_gateway_live_groups") == 2  # another window, another group
        # A change in the second window reaches its subscribers only.
        lead = next(r for r in rows[5:10] if r["status"] != "completed")
        await acontrol(upstream, "POST", lead["id"], token, {"status": "completed"})
        changed = window_of(await tail.next(INTERVAL + 1.0))
        assert {n["databaseId"]: n["status"] for n in changed["nodes"]}[lead["id"]] == "COMPLETED"
        await head.quiet(1.5 * INTERVAL)
        await conn.close()
    await no_live_left(gw)


async def test_a_lead_leaving_a_filtered_window_is_pushed(gw, upstream):
    token = new_token()
    created = [r for r in dataset_for_token(token) if r["status"] == "created"]
    async with clients() as (session, client):
        sub = await Subscriber.start("sse", session, client, gw, token,
                                     variables={"first": 3, "filter": {"status": "CREATED"}})
        first = window_of(await sub.next())
        assert first["totalCount"] == len(created)
        assert [n["databaseId"] for n in first["nodes"]] == [r["id"] for r in created[:3]]
        await acontrol(upstream, "POST", created[0]["id"], token, {"status": "scheduled"})
        event = window_of(await sub.next(INTERVAL + 1.0))
        assert event["totalCount"] == len(created) - 1
        assert [n["databaseId"] for n in event["nodes"]] == [r["id"] for r in created[1:4]]
        await sub.close()


async def test_sse_and_multipart_send_heartbeats_while_nothing_changes(make_gateway, upstream):
    chatty = make_gateway(cache_ttl=0, live_interval=INTERVAL, live_keepalive=1)
    token = new_token()
    async with clients() as (_, client):
        streams = [await HTTPStream(client, chatty, token, LEADS, {"first": 5}, accept).wait_started()
                   for accept in (SSE, MULTIPART)]
        for stream in streams:
            assert window_of(await stream.next()) == expected_window(token, 5)
        await asyncio.gather(*(stream.quiet(2.6) for stream in streams))  # no event...
        for stream in streams:
            assert stream.heartbeats >= 2, stream.accept  # ...but the connection is kept alive
            await stream.close()


async def test_many_subscribers_of_one_window_share_one_poll(gw, upstream):
    token = new_token()
    lead = changeable(token)
    async with clients() as (session, client):
        subs = []
        for i in range(20):
            subs.append(await Subscriber.start("ws" if i % 2 == 0 else "sse", session, client, gw, token,
                                               variables={"first": 5}))
        firsts = await asyncio.gather(*(s.next() for s in subs))
        assert all(window_of(f) == expected_window(token, 5) for f in firsts)
        assert metric(gw, "leads_gateway_live_subscriptions") == 20
        assert metric(gw, "leads_gateway_live_groups") == 1
        assert metric(gw, "leads_gateway_live_polling_groups") == 1
        assert 2 <= await polls_during(upstream, token, 3 * INTERVAL) <= 4  # not 20 per interval
        await acontrol(upstream, "POST", lead["id"], token, {"status": "completed"})
        events = await asyncio.gather(*(s.next(INTERVAL + 1.5) for s in subs))
        assert len({json.dumps(e, sort_keys=True) for e in events}) == 1  # the same event for all
        assert {n["databaseId"]: n["status"] for n in window_of(events[0])["nodes"]}[lead["id"]] == "COMPLETED"
        await asyncio.gather(*(s.close() for s in subs))
    await no_live_left(gw)


async def test_subscribers_of_one_state_share_one_execution_per_document(gw, upstream):
    """Hasura's cohorts: one payload per state, executed once per (document, variables) whoever receives it."""
    from gateway.graphql.execution.fast import SHARED_RESULTS

    token = new_token()
    lead = changeable(token)
    other = "subscription($first: Int) { leads(first: $first) { totalCount } }"
    async with clients() as (session, client):
        subs = [await Subscriber.start(t, session, client, gw, token, variables={"first": 5})
                for t in ("ws", "ws", "sse", "multipart", "ws", "sse")]
        subs.append(await Subscriber.start("ws", session, client, gw, token, other, {"first": 5}))
        for sub in subs:
            await sub.next()
        await acontrol(upstream, "POST", lead["id"], token, {"status": "completed"})
        events = [await sub.next(INTERVAL + 1.5) for sub in subs]
        assert all(e == events[0] for e in events[:6]) and events[6]["data"]["leads"]["totalCount"] > 0
        [group] = hub_of(gw)._groups.values()
        payload = group.state.memo["payload"]
        shared = getattr(payload, SHARED_RESULTS)
        # Two documents, one execution each (with the fast path; graphql-core's own executor runs each event).
        assert len(shared) == (2 if gw.settings.fast_execution else 0)
        for sub in subs:
            await sub.close()
    await no_live_left(gw)


async def test_different_windows_are_polled_separately(gw, upstream):
    token = new_token()
    async with clients() as (session, client):
        conn = await WSConnection.open(session, gw, token)
        _, plain = await conn.subscribe(LEADS, {"first": 5})
        _, created = await conn.subscribe(LEADS, {"first": 5, "filter": {"status": "CREATED"}})
        _, second = await conn.subscribe(LEADS, {"first": 5, "after": None})  # the same window as `plain`
        for events in (plain, created, second):
            await events.next()
        assert metric(gw, "leads_gateway_live_groups") == 2
        before = calls(upstream, token)
        await asyncio.sleep(3 * INTERVAL)
        new = calls(upstream, token)[len(before):]
        filtered = [c for c in new if c.params.get("status") == "created"]
        unfiltered = [c for c in new if "status" not in c.params]
        assert 2 <= len(filtered) <= 4 and 2 <= len(unfiltered) <= 4, [c.params for c in new]
        await conn.close()
    await no_live_left(gw)


async def test_two_tokens_on_the_same_window_get_their_own_data_polls_and_changes(gw, upstream):
    a, b = new_token(), new_token()
    lead = changeable(a)
    async with clients() as (session, client):
        sub_a = await Subscriber.start("ws", session, client, gw, a, variables={"first": 5})
        sub_b = await Subscriber.start("sse", session, client, gw, b, variables={"first": 5})
        assert window_of(await sub_a.next()) == expected_window(a, 5)
        assert window_of(await sub_b.next()) == expected_window(b, 5)
        assert expected_window(a, 5) != expected_window(b, 5)
        assert metric(gw, "leads_gateway_live_groups") == 2
        before_a, before_b = len(calls(upstream, a)), len(calls(upstream, b))
        await acontrol(upstream, "POST", lead["id"], a, {"status": "completed"})
        changed = window_of(await sub_a.next(INTERVAL + 1.0))
        assert {n["databaseId"]: n["status"] for n in changed["nodes"]}[lead["id"]] == "COMPLETED"
        await sub_b.quiet(2.5 * INTERVAL)  # A's change never reaches B
        # Each token polled on its own, about once per interval (about three intervals have passed).
        assert 2 <= len(calls(upstream, a)) - before_a <= 5
        assert 2 <= len(calls(upstream, b)) - before_b <= 5
        await sub_a.close()
        await sub_b.close()


async def test_unsubscribing_stops_polling_and_empties_the_gauges(gw, upstream):
    async with clients() as (session, client):
        tokens = {t: new_token() for t in TRANSPORTS}
        subs = {t: await Subscriber.start(t, session, client, gw, tokens[t], variables={"first": 5})
                for t in TRANSPORTS}
        for sub in subs.values():
            await sub.next()
        await until(lambda: metric(gw, "leads_gateway_live_subscriptions") == 3, what="three subscriptions")
        assert metric(gw, "leads_gateway_live_groups") == 3 and metric(gw, "leads_gateway_live_polling_groups") == 3
        for sub in subs.values():  # WebSocket: `complete`, the socket kept open; SSE, multipart: closed
            await sub.stop()
        await no_live_left(gw)
        await asyncio.sleep(1.5 * INTERVAL)  # a poll in flight has finished
        before = {t: len(calls(upstream, tokens[t])) for t in TRANSPORTS}
        await asyncio.sleep(2.5 * INTERVAL)
        assert {t: len(calls(upstream, tokens[t])) - before[t] for t in TRANSPORTS} == dict.fromkeys(TRANSPORTS, 0)
        assert not subs["ws"].conn.ws.closed  # only the subscription ended
        await subs["ws"].events.quiet(0.1)  # and nothing more came for it
        for sub in subs.values():
            await sub.close()


async def test_one_of_two_subscriptions_of_a_window_ending_leaves_the_other_served(gw, upstream):
    token = new_token()
    lead = changeable(token)
    async with clients() as (session, _):
        conn = await WSConnection.open(session, gw, token)
        first_id, first = await conn.subscribe(LEADS, {"first": 5})
        _, second = await conn.subscribe(LEADS, {"first": 5})
        await first.next()
        await second.next()
        assert metric(gw, "leads_gateway_live_groups") == 1
        assert metric(gw, "leads_gateway_live_subscriptions") == 2
        await conn.complete(first_id)
        await until(lambda: metric(gw, "leads_gateway_live_subscriptions") == 1, what="one left")
        assert metric(gw, "leads_gateway_live_groups") == 1  # the group lives on for the other
        await acontrol(upstream, "POST", lead["id"], token, {"status": "completed"})
        event = window_of(await second.next(INTERVAL + 1.0))
        assert {n["databaseId"]: n["status"] for n in event["nodes"]}[lead["id"]] == "COMPLETED"
        await first.quiet(0.2)
        await conn.close()
    await no_live_left(gw)


async def test_closing_the_websocket_ends_all_its_subscriptions(gw, upstream):
    token = new_token()
    async with clients() as (session, client):
        conn = await WSConnection.open(session, gw, token)
        for first in (3, 4, 5):
            _, events = await conn.subscribe(LEADS, {"first": first})
            await events.next()
        assert metric(gw, "leads_gateway_live_groups") == 3
        await conn.close()
    await no_live_left(gw)
    await asyncio.sleep(1.5 * INTERVAL)
    assert await polls_during(upstream, token, 2 * INTERVAL) == 0


# --- writes poke the pollers ------------------------------------------------------------------------------

async def test_create_lead_pushes_the_new_total_well_before_the_next_tick(make_gateway, upstream):
    slow = make_gateway(cache_ttl=0, live_interval=5)
    token = new_token()
    total = len(dataset_for_token(token))
    async with clients() as (session, client):
        sub = await Subscriber.start("ws", session, client, slow, token, variables={"first": 5})
        assert window_of(await sub.next())["totalCount"] == total
        await asyncio.sleep(0.5)
        phone = "+1555" + str(uuid.uuid4().int)[:7]
        t0 = time.monotonic()
        body = await asyncio.to_thread(slow.gql, CREATE, {"input": {
            "phoneNumber": phone, "campaignId": campaigns_for_token(token)[0]["id"]}}, token)
        assert body["data"]["createLead"]["userErrors"] == [], body
        event = window_of(await sub.next(2.0))
        assert time.monotonic() - t0 < 2.0
        assert event["totalCount"] == total + 1
        await sub.close()


# --- Subscription.lead -------------------------------------------------------------------------------------

async def test_lead_subscription_first_event_change_and_null_once_deleted(gw, upstream):
    async def check(transport: str) -> None:
        token = new_token()
        rows = dataset_for_token(token)
        row = next(r for r in rows[len(rows) // 2:] if not is_final(r["status"]))  # deep in the list: found by a scan
        async with clients() as (session, client):
            sub = await Subscriber.start(transport, session, client, gw, token, LEAD, {"id": row["id"]})
            first = await sub.next()
            assert first == {"data": {"lead": {"databaseId": row["id"], "status": status_enum(row["status"]),
                                               "phoneNumber": row["phone_number"]}}}
            scanned = len(calls(upstream, token))
            await sub.quiet(2.5 * INTERVAL)
            polls = calls(upstream, token)[scanned:]
            assert 1 <= len(polls) <= 4
            day = row["created_at"][:10]
            for call in polls:  # one small page with the narrow filter, no scan of the list
                assert call.params.get("phone_number") == row["phone_number"], call.params
                assert call.params.get("campaign_id") == str(row["campaign_id"]), call.params
                assert call.params.get("date_from") == day and call.params.get("date_to") == day, call.params
            await acontrol(upstream, "POST", row["id"], token, {"status": "completed"})
            changed = await sub.next(INTERVAL + 1.0)
            assert changed["data"]["lead"]["status"] == "COMPLETED"
            await acontrol(upstream, "DELETE", row["id"], token)
            gone = await sub.next(INTERVAL + 2.0)
            assert gone == {"data": {"lead": None}}
            settled = len(calls(upstream, token))
            await sub.quiet(2.5 * INTERVAL)  # still gone: nothing more
            after = calls(upstream, token)[settled:]
            assert 1 <= len(after) <= 4  # still polled, with the narrow filter: no scan of the list each time
            assert all(c.params.get("phone_number") == row["phone_number"] for c in after), [c.params for c in after]
            await sub.close()

    await each_transport(check, ("ws", "sse"))
    await no_live_left(gw)


async def test_lead_subscription_of_an_unknown_lead_is_null(gw, upstream):
    token = new_token()
    async with clients() as (session, client):
        sub = await Subscriber.start("ws", session, client, gw, token, LEAD, {"id": 1})
        assert await sub.next() == {"data": {"lead": None}}
        await sub.close()


async def test_an_unknown_lead_is_not_rescanned_on_every_poll(gw, upstream):
    token = next(t for t in (new_token() for _ in range(100)) if len(dataset_for_token(t)) > 200)
    async with clients() as (session, client):
        sub = await Subscriber.start("ws", session, client, gw, token, LEAD, {"id": 1})
        assert await sub.next() == {"data": {"lead": None}}
        try:
            assert await polls_during(upstream, token, 3 * INTERVAL) <= 4  # about one call per interval
        finally:
            await sub.close()


# --- errors ---------------------------------------------------------------------------------------------------

async def test_websocket_without_a_token_is_closed_4401(gw):
    async with aiohttp.ClientSession() as session:
        for payload in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "}):
            ws = await session.ws_connect(f"{gw.url}/graphql", protocols=["graphql-transport-ws"])
            await ws.send_json({"type": "connection_init", "payload": payload})
            msg = await ws.receive(timeout=WAIT)
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), msg
            assert ws.close_code == 4401, (payload, ws.close_code)
            await ws.close()


@pytest.mark.parametrize("accept", [SSE, MULTIPART])
async def test_a_stream_without_a_token_is_400_unauthenticated(gw, accept):
    async with clients() as (_, client):
        stream = await HTTPStream(client, gw, None, LEADS, {"first": 5}, accept).wait_started()
        assert stream.status == 400
        assert stream.json["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", stream.json
        await stream.close()


async def test_first_1000_is_bad_user_input(gw):
    token = new_token()
    async with clients() as (session, client):
        conn = await WSConnection.open(session, gw, token)
        _, events = await conn.subscribe(LEADS, {"first": 1000})
        event = await events.next()
        assert event["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", event
        await events.ended()
        # The connection still serves good subscriptions.
        _, good = await conn.subscribe(LEADS, {"first": 5})
        assert window_of(await good.next()) == expected_window(token, 5)
        await conn.close()
        stream = await HTTPStream(client, gw, token, LEADS, {"first": 1000}, SSE).wait_started()
        assert stream.status == 400 and stream.json["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        await stream.close()
    await no_live_left(gw)


@pytest.mark.parametrize("accept", [SSE, MULTIPART])
@pytest.mark.parametrize("query", ["{ leads(first: 1) { totalCount } }",
                                   'mutation { createLead(input: {phoneNumber: "+15550000000", campaignId: 1}) '
                                   "{ userErrors { code } } }"])
async def test_a_query_or_mutation_as_a_stream_is_400(gw, upstream, accept, query):
    token = new_token()
    async with clients() as (_, client):
        stream = await HTTPStream(client, gw, token, query, None, accept).wait_started()
        assert stream.status == 400, stream.json
        assert stream.json["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        await stream.close()
    assert calls(upstream, token) == [] and upstream.writes(token) == []


async def test_a_query_or_mutation_over_the_websocket_is_refused(gw, upstream):
    token = new_token()
    async with clients() as (session, _):
        conn = await WSConnection.open(session, gw, token)
        for query in ("{ leads(first: 1) { totalCount } }",
                      f'mutation {{ createLead(input: {{phoneNumber: "+15550000000", '
                      f'campaignId: {campaigns_for_token(token)[0]["id"]}}}) {{ userErrors {{ code }} }} }}'):
            _, events = await conn.subscribe(query)
            event = await events.next()
            assert event["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED", event
            await events.ended()
        await conn.close()
    assert calls(upstream, token) == [] and upstream.writes(token) == []


@pytest.mark.parametrize("query, limit", [
    ("subscription { leads(first: 1) { " + " ".join(f"a{i}: totalCount" for i in range(31)) + " } }", "aliases"),
    ("subscription { leads(first: 100) { nodes { campaign { leads(first: 100) { nodes { campaign { "
     "leads(first: 100) { totalCount } } } } } } } }", "cost"),
    ("subscription { leads(first: 1) { " + "totalCount " * 2100 + "} }", "documentBytes"),
])
async def test_query_limits_apply_to_subscriptions_on_every_transport(gw, upstream, query, limit):
    token = new_token()
    async with clients() as (session, client):
        stream = await HTTPStream(client, gw, token, query, None, SSE).wait_started()
        assert stream.status == 400, stream.json
        assert stream.json["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
        assert stream.json["errors"][0]["extensions"]["limitName"] == limit
        await stream.close()
        conn = await WSConnection.open(session, gw, token)
        _, events = await conn.subscribe(query)
        refused = await events.next()
        assert refused["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX", refused
        assert refused["errors"][0]["extensions"]["limitName"] == limit
        await events.ended()
        await conn.close()
    assert calls(upstream, token) == []


async def test_the_per_connection_limit(limited, upstream):
    token = new_token()
    async with clients() as (session, client):
        conn = await WSConnection.open(session, limited, token)
        _, one = await conn.subscribe(LEADS, {"first": 1})
        _, two = await conn.subscribe(LEADS, {"first": 2})
        await one.next()
        await two.next()
        sid, three = await conn.subscribe(LEADS, {"first": 3})
        refused = await three.next()
        assert refused["errors"][0]["extensions"]["code"] == "RATE_LIMITED", refused
        assert refused["errors"][0]["extensions"].get("retryAfter") is not None
        await three.ended()
        # Another connection of the same caller may hold its own (the caller's bound is 3).
        other = await WSConnection.open(session, limited, token)
        _, four = await other.subscribe(LEADS, {"first": 4})
        assert window_of(await four.next())["nodes"]
        # Ending one frees a place on the first connection (once the gateway has let it go: see the next test).
        await conn.complete("1")
        await until(lambda: metric(limited, "leads_gateway_live_subscriptions") == 2, what="one ended")
        await asyncio.sleep(0.5)
        _, again = await conn.subscribe(LEADS, {"first": 3})
        assert window_of(await again.next())["nodes"]
        await conn.close()
        await other.close()
    await no_live_left(limited)


async def test_complete_then_subscribe_at_once_at_the_per_connection_limit(limited, upstream):
    token = new_token()
    async with clients() as (session, _):
        conn = await WSConnection.open(session, limited, token)
        _, one = await conn.subscribe(LEADS, {"first": 1})
        _, two = await conn.subscribe(LEADS, {"first": 2})
        await one.next()
        await two.next()
        # A client switching windows: unsubscribe one, subscribe another, in two back-to-back messages
        # (three times over: a race must not make it pass by chance).
        try:
            held = "1"
            for first in (3, 4, 5):
                await conn.complete(held)
                held, events = await conn.subscribe(LEADS, {"first": first})
                event = await events.next()
                assert not event.get("errors"), event
                assert len(window_of(event)["nodes"]) == first
        finally:
            await conn.close()


async def test_the_per_caller_limit_across_connections_and_transports(limited, upstream):
    token, other_token = new_token(), new_token()
    async with clients() as (session, client):
        c1 = await WSConnection.open(session, limited, token)
        c2 = await WSConnection.open(session, limited, token)
        _, e1 = await c1.subscribe(LEADS, {"first": 1})
        _, e2 = await c1.subscribe(LEADS, {"first": 2})
        _, e3 = await c2.subscribe(LEADS, {"first": 3})
        for events in (e1, e2, e3):
            await events.next()
        _, e4 = await c2.subscribe(LEADS, {"first": 4})
        refused = await e4.next()
        assert refused["errors"][0]["extensions"]["code"] == "RATE_LIMITED", refused
        stream = await HTTPStream(client, limited, token, LEADS, {"first": 5}, SSE).wait_started()
        if stream.status == 200:
            event = await stream.next()
        else:
            event = stream.json
        assert event["errors"][0]["extensions"]["code"] == "RATE_LIMITED", event
        await stream.close()
        # Another caller is not limited by this one.
        third = await WSConnection.open(session, limited, other_token)
        _, e5 = await third.subscribe(LEADS, {"first": 5})
        assert window_of(await e5.next()) == expected_window(other_token, 5)
        for conn in (c1, c2, third):
            await conn.close()
    await no_live_left(limited)


@pytest.mark.parametrize("accept", [SSE, MULTIPART])
async def test_a_stream_over_the_per_caller_limit_is_429_with_retry_after(limited, upstream, accept):
    token = new_token()
    async with clients() as (session, client):
        conn = await WSConnection.open(session, limited, token)
        other = await WSConnection.open(session, limited, token)
        held = [await conn.subscribe(LEADS, {"first": 1}), await conn.subscribe(LEADS, {"first": 2}),
                await other.subscribe(LEADS, {"first": 3})]
        for _, events in held:
            await events.next()
        try:
            stream = await HTTPStream(client, limited, token, LEADS, {"first": 5}, accept).wait_started()
            await stream.close()
            assert stream.json["errors"][0]["extensions"]["code"] == "RATE_LIMITED", stream.json
            assert stream.status == 429, stream.status
            assert int(stream.response_headers["retry-after"]) >= 1
        finally:
            await conn.close()
            await other.close()


@pytest.mark.parametrize("prefix, code, close", [("revoked", "UNAUTHENTICATED", 4401),
                                                 ("forbidden", "FORBIDDEN", 4403)])
async def test_a_token_the_upstream_refuses_gets_the_error_then_the_socket_closes(gw, upstream, prefix, code,
                                                                                  close):
    token = f"{prefix}-{uuid.uuid4().hex[:12]}"  # the demo answers 401 (revoked) or 403 (forbidden) for it
    async with clients() as (session, client):
        conn = await WSConnection.open(session, gw, token)
        _, events = await conn.subscribe(LEADS, {"first": 5})
        event = await events.next()
        assert event["data"] is None, event
        assert event["errors"][0]["extensions"]["code"] == code, event
        assert await conn.close_code() == close
        # Over SSE: the error is the one event, then the stream completes.
        stream = await HTTPStream(client, gw, token, LEADS, {"first": 5}, SSE).wait_started()
        assert stream.status == 200
        assert (await stream.next())["errors"][0]["extensions"]["code"] == code
        await stream.ended()
    await no_live_left(gw)


async def test_a_refused_token_logs_no_error(gw, upstream, caplog):
    token = f"revoked-{uuid.uuid4().hex[:12]}"
    with caplog.at_level(logging.ERROR):
        async with clients() as (session, _):
            conn = await WSConnection.open(session, gw, token)
            _, events = await conn.subscribe(LEADS, {"first": 5})
            assert (await events.next())["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
            assert await conn.close_code() == 4401
        await asyncio.sleep(0.3)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [f"{r.name}: {r.getMessage()} {r.exc_info[1]!r}" if r.exc_info else r.getMessage()
                        for r in errors]


async def test_a_passing_upstream_failure_keeps_the_subscription(gw, upstream):
    token = new_token()
    lead = changeable(token)
    async with clients() as (session, client):
        sub = await Subscriber.start("ws", session, client, gw, token, variables={"first": 5})
        await sub.next()
        upstream.options.token_faults[token] = "500"
        try:
            await sub.quiet(2.5 * INTERVAL)  # failed polls: nothing sent, the subscription stays
            assert any(c.status == 500 for c in calls(upstream, token))
        finally:
            upstream.options.token_faults.pop(token, None)
        await acontrol(upstream, "POST", lead["id"], token, {"status": "completed"})
        event = window_of(await sub.next(INTERVAL + 1.5))
        assert {n["databaseId"]: n["status"] for n in event["nodes"]}[lead["id"]] == "COMPLETED"
        await sub.close()


async def test_no_connection_init_in_time_closes_4408(make_gateway):
    impatient = make_gateway(cache_ttl=0, live_interval=INTERVAL, live_init_timeout=0.5)
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{impatient.url}/graphql", protocols=["graphql-transport-ws"])
        t0 = time.monotonic()
        msg = await ws.receive(timeout=WAIT)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), msg
        assert ws.close_code == 4408
        assert 0.3 < time.monotonic() - t0 < 3.0
        await ws.close()


# --- a slow consumer ------------------------------------------------------------------------------------------

def start_with_small_buffers(app) -> tuple:
    """Like ``serving.start_in_thread``, but the accepted sockets have a small send buffer (inherited from the
    listening socket), so that a client that does not read pushes back on the gateway within a few kB rather
    than after the megabytes of a loopback socket's autotuned buffer."""
    import socket
    import threading

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False,
                                           log_config=None))
    server.install_signal_handlers = lambda: None
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the gateway did not start"
        time.sleep(0.01)
    return server, thread, sock.getsockname()[1]


class RawWebSocket:
    """A blocking graphql-transport-ws client on a socket with a small receive buffer, which reads only when
    told to (websockets' sans-I/O protocol does the framing)."""

    def __init__(self, port: int) -> None:
        import socket

        from websockets.client import ClientProtocol
        from websockets.uri import parse_uri

        self.proto = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}/graphql"),
                                    subprotocols=["graphql-transport-ws"], max_size=None)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(WAIT)
        self.sock.connect(("127.0.0.1", port))
        self.proto.send_request(self.proto.connect())
        self._flush()
        while not self.proto.events_received():
            self.proto.receive_data(self.sock.recv(4096))

    def _flush(self) -> None:
        for data in self.proto.data_to_send():
            self.sock.sendall(data)

    def send(self, message: dict) -> None:
        self.proto.send_text(json.dumps(message).encode())
        self._flush()

    def receive(self, timeout: float, count: int | None = None) -> list[dict]:
        """Messages received until ``count`` of them, or nothing came for ``timeout`` seconds."""
        import socket

        from websockets.frames import Frame, Opcode

        self.sock.settimeout(timeout)
        out: list[dict] = []
        with contextlib.suppress(socket.timeout):
            while count is None or len(out) < count:
                data = self.sock.recv(65536)
                if not data:
                    break
                self.proto.receive_data(data)
                self._flush()
                out += [json.loads(e.data) for e in self.proto.events_received()
                        if isinstance(e, Frame) and e.opcode == Opcode.TEXT]
        return out

    def close(self) -> None:
        self.sock.close()


def test_a_slow_consumer_gets_the_latest_state_not_every_change(upstream):
    from gateway.app import create_app
    from gateway.config import Settings

    settings = Settings(upstream_url=upstream.url, upstream_retries=0, cache_ttl=0, live_interval=INTERVAL)
    server, thread, port = start_with_small_buffers(create_app(settings))
    token = new_token()
    watched = dataset_for_token(token)[0]["id"]
    # A big event (the first 100 leads four times over, ~170 kB), so that one fills every buffer on the way.
    edges = " ".join(f"e{i}: edges {{ cursor node {{ id databaseId phoneNumber variables status createdAt updatedAt "
                     f"campaign {{ databaseId name }} secondaryContacts {{ phoneNumber customerName status }} }} }}"
                     for i in range(4))
    client = RawWebSocket(port)
    try:
        client.send({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
        client.send({"id": "1", "type": "subscribe",
                     "payload": {"query": "subscription { leads(first: 100) { totalCount " + edges + " } }"}})
        ack, first = client.receive(WAIT, count=2)
        assert ack["type"] == "connection_ack" and first["type"] == "next", (ack, first)
        # Not reading: five changes, each more than an interval after the last (each polled and pushed on its own).
        for status in ("scheduled", "processing", "rescheduled", "scheduled", "completed"):
            control(upstream, "POST", watched, token, {"status": status})
            time.sleep(1.15 * INTERVAL)
        time.sleep(0.3 * INTERVAL)
        got = [m["payload"]["data"]["leads"]["e0"][0]["node"]["status"] for m in client.receive(1.0)]
        # What the buffers held when the gateway had to wait, then the newest state: never all five.
        assert got and got[-1] == "COMPLETED", got
        assert len(got) <= 3, got
    finally:
        client.close()
        server.should_exit = True
        thread.join(10)


# --- instances sharing a Redis ------------------------------------------------------------------------------

def hub_of(gw):
    """The gateway's ``LiveHub`` (its app is the uvicorn server's)."""
    return gw.server.server.config.app.state.sources.live


def shared_pair(make_gateway, redis_url: str):
    secret = uuid.uuid4().hex  # every instance of one deployment shares it, so their group ids agree
    return [make_gateway(cache_ttl=0, live_interval=INTERVAL, cache_url=redis_url, cache_secret=secret,
                         live_keepalive=30) for _ in range(2)]


async def test_two_instances_sharing_a_redis_poll_once_and_both_get_changes(make_gateway, upstream, private_redis):
    a, b = shared_pair(make_gateway, private_redis.url)
    token = new_token()
    lead = changeable(token)
    async with clients() as (session, client):
        on_a = await Subscriber.start("ws", session, client, a, token, variables={"first": 5})
        assert window_of(await on_a.next()) == expected_window(token, 5)
        subs_b = [await Subscriber.start(t, session, client, b, token, variables={"first": 5})
                  for t in ("ws", "sse", "multipart")]
        for sub in subs_b:  # b does not poll for its first event: it has the state a published
            assert window_of(await sub.next()) == expected_window(token, 5)
        assert metric(a, "leads_gateway_live_groups") == 1 and metric(b, "leads_gateway_live_groups") == 1
        assert metric(a, "leads_gateway_live_polling_groups") == 1  # the first to subscribe took the lease
        assert metric(b, "leads_gateway_live_polling_groups") == 0
        polls_b = metric(b, "leads_gateway_live_polls_total")
        assert 2 <= await polls_during(upstream, token, 3 * INTERVAL) <= 4  # one poll per interval, not two
        assert metric(b, "leads_gateway_live_polls_total") == polls_b
        await acontrol(upstream, "POST", lead["id"], token, {"status": "completed"})
        for sub in (on_a, *subs_b):
            event = window_of(await sub.next(INTERVAL + 1.5))
            assert {n["databaseId"]: n["status"] for n in event["nodes"]}[lead["id"]] == "COMPLETED"
        for sub in (on_a, *subs_b):
            await sub.close()
    await no_live_left(a)
    await no_live_left(b)


async def test_resubscribing_at_once_on_the_listening_instance_still_gets_changes(make_gateway, upstream,
                                                                                   private_redis):
    """The last subscriber of a group leaves and a new one arrives while the group is being torn down (a client
    re-subscribing): the new group must stay subscribed to the poller's channel (the old one's teardown must not
    unsubscribe it), so the poller's changes still reach it."""
    a, b = shared_pair(make_gateway, private_redis.url)
    token = new_token()
    lead = changeable(token)
    async with clients() as (session, client):
        on_a = await Subscriber.start("ws", session, client, a, token, variables={"first": 5})  # a polls
        assert window_of(await on_a.next()) == expected_window(token, 5)
        conn = await WSConnection.open(session, b, token)
        for _ in range(3):  # leave and come back at once, a few times
            sid, events = await conn.subscribe(LEADS, {"first": 5})
            assert window_of(await events.next(WAIT)) == expected_window(token, 5)
            await conn.complete(sid)
        sid, events = await conn.subscribe(LEADS, {"first": 5})
        assert window_of(await events.next(WAIT)) == expected_window(token, 5)
        assert metric(b, "leads_gateway_live_polling_groups") == 0  # b only listens
        await acontrol(upstream, "POST", lead["id"], token, {"status": "completed"})
        event = window_of(await events.next(INTERVAL + 1.5))
        assert {n["databaseId"]: n["status"] for n in event["nodes"]}[lead["id"]] == "COMPLETED"
        await conn.close()
        await on_a.close()
    await no_live_left(a)
    await no_live_left(b)


async def test_the_listening_instance_resubscribes_after_its_pubsub_connection_is_killed(make_gateway, upstream,
                                                                                         private_redis):
    """Redis drops the pub/sub connections (CLIENT KILL, a failover): the listening instance subscribes again,
    reads the groups' last states, and the poller's later changes still reach its subscribers."""
    import redis

    a, b = shared_pair(make_gateway, private_redis.url)
    token = new_token()
    lead = changeable(token)
    async with clients() as (session, client):
        on_a = await Subscriber.start("ws", session, client, a, token, variables={"first": 5})  # a polls
        await on_a.next()
        on_b = await Subscriber.start("sse", session, client, b, token, variables={"first": 5})
        await on_b.next()
        killed = redis.Redis.from_url(private_redis.url).client_kill_filter(_type="pubsub")
        assert killed >= 2  # both instances' live listeners (and their generation watches)
        await asyncio.sleep(0.5)
        await acontrol(upstream, "POST", lead["id"], token, {"status": "completed"})
        for sub in (on_a, on_b):
            event = window_of(await sub.next(INTERVAL + 2.0))
            assert {n["databaseId"]: n["status"] for n in event["nodes"]}[lead["id"]] == "COMPLETED"
        await on_a.close()
        await on_b.close()


async def test_create_lead_on_one_instance_pokes_the_poller_on_the_other(make_gateway, upstream, private_redis):
    secret = uuid.uuid4().hex
    a, b = [make_gateway(cache_ttl=0, live_interval=5, cache_url=private_redis.url, cache_secret=secret)
            for _ in range(2)]
    token = new_token()
    total = len(dataset_for_token(token))
    async with clients() as (session, client):
        on_a = await Subscriber.start("ws", session, client, a, token, variables={"first": 5})  # a polls
        assert window_of(await on_a.next())["totalCount"] == total
        on_b = await Subscriber.start("sse", session, client, b, token, variables={"first": 5})
        assert window_of(await on_b.next())["totalCount"] == total
        await asyncio.sleep(0.5)
        t0 = time.monotonic()
        body = await asyncio.to_thread(b.gql, CREATE, {"input": {
            "phoneNumber": "+1555" + str(uuid.uuid4().int)[:7], "campaignId": campaigns_for_token(token)[0]["id"]}},
            token)
        assert body["data"]["createLead"]["userErrors"] == [], body
        for sub in (on_a, on_b):
            assert window_of(await sub.next(2.0))["totalCount"] == total + 1
        assert time.monotonic() - t0 < 2.0  # well before the next tick, 5 s after the first poll
        await on_a.close()
        await on_b.close()


async def test_failover_when_the_polling_instance_stops(make_gateway, upstream, private_redis):
    a, b = shared_pair(make_gateway, private_redis.url)
    token = new_token()
    rows = dataset_for_token(token)[:5]
    lead = changeable(token)
    async with clients() as (session, client):
        on_a = await Subscriber.start("ws", session, client, a, token, variables={"first": 5})
        await on_a.next()
        on_b = [await Subscriber.start(t, session, client, b, token, variables={"first": 5}) for t in ("ws", "sse")]
        for sub in on_b:
            await sub.next()
        assert hub_of(a).polling() == 1 and hub_of(b).polling() == 0
        # The poller stops (as on SIGTERM: its subscriptions end, then the server goes).
        a.server.server.config.app.state.drain()
        await asyncio.to_thread(a.close)
        t0 = time.monotonic()
        took = await until(lambda: metric(b, "leads_gateway_live_polling_groups") == 1, 2 * INTERVAL + 1.0,
                           "the other instance to take the lease over")
        assert took <= 2 * INTERVAL + 0.5, took
        await on_a.events.ended(WAIT)  # a's subscriber was let go
        await asyncio.sleep(max(0.0, 2 * INTERVAL - (time.monotonic() - t0)))
        assert 2 <= await polls_during(upstream, token, 3 * INTERVAL) <= 4  # b polls now, once per interval
        await acontrol(upstream, "POST", lead["id"], token, {"status": "completed"})
        for sub in on_b:
            event = window_of(await sub.next(INTERVAL + 1.5))
            assert {n["databaseId"]: n["status"] for n in event["nodes"]}[lead["id"]] == "COMPLETED"
            assert [n["databaseId"] for n in event["nodes"]] == [r["id"] for r in rows]
        for sub in on_b:
            await sub.close()
    await no_live_left(b)


async def test_a_stalled_poller_loses_its_lease_and_does_not_poll_beside_the_new_one(make_gateway, upstream,
                                                                                   private_redis):
    a, b = shared_pair(make_gateway, private_redis.url)
    token = new_token()
    lead = changeable(token)
    async with clients() as (session, client):
        on_a = await Subscriber.start("ws", session, client, a, token, variables={"first": 5})
        await on_a.next()
        on_b = await Subscriber.start("ws", session, client, b, token, variables={"first": 5})
        await on_b.next()
        assert hub_of(a).polling() == 1 and hub_of(b).polling() == 0
        # a's event loop stalls for three intervals (a long GC pause, a stuck host): its lease expires.
        loop_a = next(iter(hub_of(a)._groups.values())).task.get_loop()
        frozen = time.monotonic()
        loop_a.call_soon_threadsafe(time.sleep, 2.5 * INTERVAL)
        took = await until(lambda: hub_of(b).polling() == 1, 2 * INTERVAL + 1.0, "b to take the lease over")
        assert took <= 2 * INTERVAL + 0.5
        await asyncio.sleep(2.5 * INTERVAL - (time.monotonic() - frozen) + INTERVAL)  # a is back, and ticked
        assert hub_of(a).polling() == 0 and hub_of(b).polling() == 1  # one poller, not two
        assert 1 <= await polls_during(upstream, token, 2 * INTERVAL) <= 3
        await acontrol(upstream, "POST", lead["id"], token, {"status": "completed"})
        for sub in (on_a, on_b):  # b's polls reach a's subscribers through Redis
            event = window_of(await sub.next(INTERVAL + 1.5))
            assert {n["databaseId"]: n["status"] for n in event["nodes"]}[lead["id"]] == "COMPLETED"
        await on_a.close()
        await on_b.close()


async def test_an_unreachable_redis_still_polls_once_per_interval(make_gateway, upstream):
    lonely = make_gateway(cache_ttl=0, live_interval=INTERVAL, cache_url="redis://127.0.0.1:1/0")  # nothing there
    token = new_token()
    lead = changeable(token)
    async with clients() as (session, client):
        t0 = time.monotonic()
        sub = await Subscriber.start("ws", session, client, lonely, token, variables={"first": 5})
        try:
            assert window_of(await sub.next(2.0)) == expected_window(token, 5)
        except TimeoutError:
            raise AssertionError("no first event within 2 s") from None
        assert time.monotonic() - t0 < 2.0
        assert 2 <= await polls_during(upstream, token, 3 * INTERVAL) <= 4
        await acontrol(upstream, "POST", lead["id"], token, {"status": "completed"})
        event = window_of(await sub.next(INTERVAL + 1.5))
        assert {n["databaseId"]: n["status"] for n in event["nodes"]}[lead["id"]] == "COMPLETED"
        await sub.close()


async def test_redis_going_away_leaves_the_instances_polling_once_per_interval(make_gateway, upstream,
                                                                              private_redis):
    a, b = shared_pair(make_gateway, private_redis.url)
    token = new_token()
    lead = changeable(token)
    async with clients() as (session, client):
        on_a = await Subscriber.start("ws", session, client, a, token, variables={"first": 5})
        await on_a.next()
        on_b = await Subscriber.start("sse", session, client, b, token, variables={"first": 5})
        await on_b.next()
        private_redis.stop()
        await asyncio.sleep(INTERVAL)
        try:
            # Each instance polls for its own subscribers now: about two polls per interval.
            assert await polls_during(upstream, token, 3 * INTERVAL) >= 4
            await acontrol(upstream, "POST", lead["id"], token, {"status": "completed"})
            for sub in (on_a, on_b):
                event = window_of(await sub.next(INTERVAL + 1.5))
                assert {n["databaseId"]: n["status"] for n in event["nodes"]}[lead["id"]] == "COMPLETED"
        finally:
            await on_a.close()
            await on_b.close()
