"""Live data benchmark: GraphQL subscriptions (``subscription { leads(...) }``) held by thousands of subscribers.

Starts on 127.0.0.1, as subprocesses, the demo upstream (``leads-gateway demo-upstream``, no added latency)
and, per phase, fresh gateways (``leads-gateway serve``, one worker each) with ``GATEWAY_LIVE_INTERVAL``
(``--interval``, 1 s by default) and the per-connection and per-caller subscription limits raised to
100000. A phase with one instance uses the default in-process cache (``memory://``); a phase with two
instances gives both the same ``GATEWAY_CACHE_URL`` (the Redis at ``--redis-url``, default
127.0.0.1:6379/0, or a private ``redis-server`` on a free port when none answers there) and the same
``GATEWAY_CACHE_SECRET``. Each phase has fresh callers (tokens), so nothing is shared between phases.

Subscribers: ``--callers`` callers (5) x ``--windows`` windows each (10) = 50 distinct windows: per caller
``leads(first: 10)``, ``leads(first: 10, filter: {status: S})`` for each of the 7 statuses, ``leads(first: 5)``
and ``leads(first: 25)``, each selecting ``totalCount nodes { databaseId status updatedAt }``. The subscribers
are spread evenly over the windows; in each window half (``--ws-share``) use WebSocket
(``graphql-transport-ws``, ``--per-ws`` subscriptions of one caller per connection, 10 by default) and the
others GraphQL over SSE (distinct connections mode: one connection each). With two instances the
connections alternate between them, so every window has subscribers on both. The load generator is
``--client-procs`` processes (2) of asyncio + aiohttp, each holding its share of the connections; it opens
``--connect-concurrency`` (100) at a time.

Per phase (1,000 then 5,000 subscribers on one instance, then the same on two; ``--subscribers``):

1. **subscribe**: every subscription until its first ``next`` (the window at once): the time until all had it;
2. **quiet span**: after 2 intervals of settling, ``--span`` intervals (10) with no change: upstream
   ``GET /user/leads`` calls (``/_demo/calls`` before and after) per interval (target: the number of distinct
   windows, one poll per window per interval however many subscribers and instances), pushes received
   (target 0: nothing is sent while a window is unchanged), each gateway's CPU (utime + stime of its process
   tree, /proc) as a percentage of one CPU and in CPU-ms per subscriber per second, and its memory (VmRSS)
   before the subscribers and with them (KiB per subscriber);
3. **changes**: ``--changes`` times (20), after a random pause of up to one interval (so that changes land at
   every point of the poll cycle), the lowest-id lead of one caller (in turn) gets another status through the
   demo upstream's control call ``POST /_demo/leads/{id}`` at t0. That lead is in the caller's unfiltered
   windows and first in the window of its new status, and leaves the window of its old one: 5 of the
   caller's 10 windows change. The push latency is from t0 to the last subscriber of those windows
   receiving a ``next`` that shows the change (target p99 < interval + 1 s; with 20 changes the p99 is the
   maximum), from t0 to each subscriber, and the fan-out (first to last subscriber of one window); also the
   upstream calls per interval during this span, the gateways' CPU above their quiet rate per push delivered,
   and the pushes received against those expected (a push identical to the window before it is an error).
   Meanwhile a thread asks each gateway's ``/healthz`` every 50 ms (a slow answer means a stalled event loop)
   and each load-generator process measures its own event loop's lag (so that a late push is not its fault).

The machine's CPUs are shared with whatever else runs: each phase first reads how busy they are for 2 s
before its servers start (printed, to tell a loaded machine from a slow gateway).

Prints a Markdown table (one column per phase) with the targets and PASS/MISS; ``--write-docs`` also writes
it, with the exact command, into docs/LIVE.md (between the generated-section markers).

    python -m bench.live                    # 1,000 and 5,000 subscribers, 1 and 2 instances (3 to 4 minutes)
    python -m bench.live --write-docs
    python -m bench.live --smoke            # 20 subscribers, 2 callers x 2 windows, 1 and 2 instances (the tests)
    python -m bench.live --subscribers 2000 --instances 2 --interval 2

Exit status 0 when it ran, targets met or not (it is a benchmark); 1 when a server died, could not start, or
subscriptions could not be made at all. Linux only (/proc). Everything is bounded in time (``--timeout``);
the subprocesses (servers, load generator) are stopped on exit, Ctrl-C and SIGTERM, and get SIGTERM if this
process is killed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import multiprocessing
import os
import platform
import random
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.common import (ROOT, BenchError, Fleet, Server, cpu_ticks, die_with_parent, free_port,
                          machine_busy_seconds, process_tree, tree_cpu_seconds, wait_up)
from bench.writes import percentile, redis_answers

DOC = ROOT / "docs" / "LIVE.md"
BEGIN, END = "<!-- bench/live.py: begin -->", "<!-- bench/live.py: end -->"

STATUSES = ("created", "scheduled", "processing", "completed", "rescheduled", "reached-max-retries", "blacklisted")
QUERY = ("subscription Live($first: Int!, $filter: LeadFilter) { leads(first: $first, filter: $filter) "
         "{ totalCount nodes { databaseId status updatedAt } } }")
# The windows of one caller, in the order they are taken (first, demo status or None).
WINDOW_SPECS = ((10, None), *((10, s) for s in STATUSES), (5, None), (25, None))
LIMITS = "100000"
HANDSHAKE_TIMEOUT = 30.0


def gql_status(status: str) -> str:
    return status.upper().replace("-", "_")


def log(message: str) -> None:
    print(f"live: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Window:
    key: int
    caller: str
    first: int
    status: str | None  # the demo's spelling

    @property
    def variables(self) -> dict:
        return {"first": self.first, "filter": {"status": gql_status(self.status)} if self.status else None}


@dataclass(frozen=True)
class Sub:
    sid: int
    window: Window
    transport: str  # "ws" | "sse"
    conn: int  # connection number (a WebSocket holds several subscriptions)
    instance: int


def plan(callers: list[str], per_caller: int, subscribers: int, per_ws: int, instances: int,
         ws_share: float = 0.5) -> list[Sub]:
    """Subscribers spread evenly over the windows; per window ``ws_share`` of them (half, by default) over
    WebSocket, the others over SSE (rounded up in odd windows, down in even ones); WebSocket subscriptions
    of one caller grouped ``per_ws`` to a connection (different windows on one connection when possible)."""
    windows = [Window(i * per_caller + j, caller, *WINDOW_SPECS[j % len(WINDOW_SPECS)])
               for i, caller in enumerate(callers) for j in range(per_caller)]
    slots: list[tuple[int, Window]] = []  # (rank within the window, window)
    for n in range(subscribers):
        window = windows[n % len(windows)]
        slots.append((n // len(windows), window))
    per_window = {w.key: sum(1 for _, x in slots if x.key == w.key) for w in windows}
    subs: list[Sub] = []
    conn = 0
    ws_by_caller: dict[str, list[tuple[int, Window]]] = {}
    sse: list[tuple[int, Window]] = []
    for rank, window in slots:
        share = per_window[window.key] * ws_share
        if rank < int(share) + (share != int(share) and window.key % 2):
            ws_by_caller.setdefault(window.caller, []).append((rank, window))
        else:
            sse.append((rank, window))
    # Instances: a caller's WebSocket connections, and a window's SSE subscribers, alternate between them.
    sid = 1
    for c, caller in enumerate(callers):
        group = sorted(ws_by_caller.get(caller, []), key=lambda rw: (rw[0], rw[1].key))
        for j, start in enumerate(range(0, len(group), per_ws)):
            for _, window in group[start:start + per_ws]:
                subs.append(Sub(sid, window, "ws", conn, (c + j) % instances))
                sid += 1
            conn += 1
    sse_rank: dict[int, int] = {}
    for _, window in sse:
        rank = sse_rank[window.key] = sse_rank.get(window.key, -1) + 1
        subs.append(Sub(sid, window, "sse", conn, (window.key + rank) % instances))
        sid += 1
        conn += 1
    return subs


# ------------------------------------------------------------------------------------ the load generator

@dataclass
class SubState:
    sub: Sub
    initial: float | None = None  # monotonic time of the first `next`
    events: int = 0
    pushes: int = 0
    same: int = 0  # pushes identical to the window before them
    last: object = None
    ended: str | None = None


class Client:
    """One load-generator process: its share of the connections, on one asyncio loop; it answers the
    parent's commands over a pipe."""

    def __init__(self, pipe, subs: list[Sub], urls: list[str], concurrency: int) -> None:
        self.pipe, self.urls, self.concurrency = pipe, urls, concurrency
        self.states = {s.sid: SubState(s) for s in subs}
        self.subs = subs
        self.errors: dict[str, int] = {}
        self.pings = 0
        self.pending: dict[int, tuple[str, int, str]] = {}  # sid -> (present|absent, lead id, GraphQL status)
        self.seen: list[tuple[int, str, float]] = []  # (window, transport, when) per subscriber that saw it
        self.change: int | None = None
        self.deadline_handle: asyncio.TimerHandle | None = None
        self.tasks: list[asyncio.Task] = []
        self.closing = False
        self.max_lag = 0.0  # the event loop's worst lateness since the last stats

    async def lag_monitor(self) -> None:
        """How late this process's event loop wakes up (a load generator that lags reports late pushes)."""
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.05)
            self.max_lag = max(self.max_lag, time.monotonic() - before - 0.05)

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def send(self, message: tuple) -> None:
        self.pipe.send(message)

    # ---- events
    def on_next(self, sid: int, payload: dict) -> None:
        now = time.monotonic()
        state = self.states.get(sid)
        if state is None:
            self.error("next for an unknown id")
            return
        if payload.get("errors"):
            code = ((payload["errors"][0].get("extensions") or {}).get("code")) or payload["errors"][0].get("message")
            self.error(f"GraphQL error: {str(code)[:60]}")
        data = (payload.get("data") or {}).get("leads")
        state.events += 1
        if state.initial is None:
            state.initial = now
        else:
            state.pushes += 1
            if data == state.last:
                state.same += 1
                self.error(f"identical push ({state.sub.transport}, instance {chr(65 + state.sub.instance)})")
        state.last = data
        wanted = self.pending.get(sid)
        if wanted is not None and data is not None:
            kind, lead, status = wanted
            nodes = data.get("nodes") or ()
            if kind == "present":
                hit = any(n.get("databaseId") == lead and n.get("status") == status for n in nodes)
            else:
                hit = all(n.get("databaseId") != lead for n in nodes)
            if hit:
                del self.pending[sid]
                self.seen.append((state.sub.window.key, state.sub.transport, now))
                if not self.pending:
                    self.report_change()

    def report_change(self) -> None:
        if self.change is None:
            return
        if self.deadline_handle is not None:
            self.deadline_handle.cancel()
        self.send(("seen", self.change, self.seen, len(self.pending)))
        self.change, self.pending, self.seen = None, {}, []

    def expect(self, change: int, caller: str, lead: int, new: str, old: str, deadline: float) -> None:
        pending = {}
        for sid, state in self.states.items():
            window = state.sub.window
            if window.caller != caller or state.initial is None or state.ended:
                continue
            if window.status in (None, new):
                pending[sid] = ("present", lead, gql_status(new))
            elif window.status == old:
                pending[sid] = ("absent", lead, gql_status(old))
        self.change, self.pending, self.seen = change, pending, []
        self.send(("expecting", change, len(pending)))
        if not pending:
            self.report_change()
            return
        loop = asyncio.get_running_loop()
        self.deadline_handle = loop.call_at(loop.time() + max(0.0, deadline - time.monotonic()), self.report_change)

    def stats(self) -> dict:
        states = self.states.values()
        return {"subs": len(self.states), "ready": sum(1 for s in states if s.initial is not None),
                "events": sum(s.events for s in states), "pushes": sum(s.pushes for s in states),
                "same": sum(s.same for s in states), "ended": sum(1 for s in states if s.ended),
                "errors": dict(self.errors), "pings": self.pings, "max_lag": self.max_lag,
                "cpu": cpu_ticks(os.getpid()) / os.sysconf("SC_CLK_TCK")}

    def ended(self, states: list[SubState], why: str) -> None:
        if self.closing:
            return
        for state in states:
            if not state.ended:
                state.ended = why
                self.error(f"ended: {why}")

    # ---- transports
    async def websocket(self, session, sem, url: str, token: str, subs: list[Sub]) -> None:
        import aiohttp

        states = [self.states[s.sid] for s in subs]
        try:
            async with sem:
                ws = await session.ws_connect(f"{url}/graphql", protocols=["graphql-transport-ws"], autoping=True,
                                              heartbeat=None, max_msg_size=0,
                                              timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0))
                await ws.send_str(json.dumps({"type": "connection_init",
                                              "payload": {"Authorization": f"Bearer {token}"}}))
                while True:
                    msg = await asyncio.wait_for(ws.receive(), HANDSHAKE_TIMEOUT)
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        raise ConnectionError(f"WebSocket {msg.type.name} before connection_ack "
                                              f"({ws.close_code})")
                    body = json.loads(msg.data)
                    if body.get("type") == "ping":
                        await ws.send_str('{"type":"pong"}')
                        continue
                    if body.get("type") != "connection_ack":
                        raise ConnectionError(f"{body.get('type')} before connection_ack")
                    break
                for s in subs:
                    await ws.send_str(json.dumps({"id": str(s.sid), "type": "subscribe",
                                                  "payload": {"query": QUERY, "variables": s.window.variables}}))
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                body = json.loads(msg.data)
                kind = body.get("type")
                if kind == "next":
                    self.on_next(int(body["id"]), body.get("payload") or {})
                elif kind == "ping":
                    self.pings += 1
                    await ws.send_str('{"type":"pong"}')
                elif kind == "error":
                    self.error(f"ws error: {json.dumps(body.get('payload'))[:80]}")
                    state = self.states.get(int(body.get("id", 0)))
                    if state is not None:
                        state.ended = "error"
                elif kind == "complete":
                    state = self.states.get(int(body.get("id", 0)))
                    if state is not None and not state.ended:
                        state.ended = "complete"
                        self.error("ws complete from the server")
            self.ended(states, f"WebSocket closed ({ws.close_code})")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - counted, the run goes on
            self.ended(states, f"ws {type(exc).__name__}: {str(exc)[:60]}")

    async def sse(self, session, sem, url: str, token: str, sub: Sub) -> None:
        import aiohttp

        state = self.states[sub.sid]
        try:
            async with sem:
                response = await session.post(
                    f"{url}/graphql", data=json.dumps({"query": QUERY, "variables": sub.window.variables}),
                    headers={"Content-Type": "application/json", "Accept": "text/event-stream",
                             "Authorization": f"Bearer {token}"},
                    timeout=aiohttp.ClientTimeout(total=None, sock_connect=HANDSHAKE_TIMEOUT, sock_read=None))
                if response.status != 200 or not response.headers.get("Content-Type", "").startswith(
                        "text/event-stream"):
                    text = (await response.text())[:80]
                    raise ConnectionError(f"HTTP {response.status} {response.headers.get('Content-Type')}: {text}")
            async with response:
                event, data = None, []
                while True:
                    line = await response.content.readline()
                    if not line:
                        break
                    line = line.rstrip(b"\r\n")
                    if not line:
                        if event in (None, b"next") and data:
                            self.on_next(sub.sid, json.loads(b"\n".join(data)))
                        elif event == b"complete":
                            state.ended = "complete"
                            self.error("sse complete from the server")
                        event, data = None, []
                    elif line.startswith(b":"):
                        self.pings += 1
                    elif line.startswith(b"event:"):
                        event = line[6:].strip()
                    elif line.startswith(b"data:"):
                        value = line[5:]
                        data.append(value[1:] if value.startswith(b" ") else value)
            self.ended([state], "SSE stream ended")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001
            self.ended([state], f"sse {type(exc).__name__}: {str(exc)[:60]}")

    async def run(self) -> None:
        import aiohttp

        loop = asyncio.get_running_loop()
        commands: asyncio.Queue = asyncio.Queue()
        loop.add_reader(self.pipe.fileno(), lambda: commands.put_nowait(self.pipe.recv()))
        connector = aiohttp.TCPConnector(limit=0, force_close=False, enable_cleanup_closed=False)
        session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None))
        sem = asyncio.Semaphore(self.concurrency)
        self.tasks.append(asyncio.create_task(self.lag_monitor()))
        try:
            while True:
                command = await commands.get()
                op = command[0]
                if op == "go":
                    started = time.monotonic()
                    groups: dict[int, list[Sub]] = {}
                    for s in self.subs:
                        groups.setdefault(s.conn, []).append(s)
                    for group in groups.values():
                        first = group[0]
                        url = self.urls[first.instance]
                        token = first.window.caller
                        if first.transport == "ws":
                            self.tasks.append(asyncio.create_task(self.websocket(session, sem, url, token, group)))
                        else:
                            self.tasks.append(asyncio.create_task(self.sse(session, sem, url, token, first)))
                    deadline = command[1]
                    while time.monotonic() < deadline and any(
                            s.initial is None and not s.ended for s in self.states.values()):
                        await asyncio.sleep(0.05)
                    initial = [s.initial for s in self.states.values() if s.initial is not None]
                    self.send(("subscribed", started, max(initial) if initial else None, len(initial), self.stats()))
                elif op == "expect":
                    self.expect(*command[1:])
                elif op == "stats":
                    self.send(("stats", self.stats()))
                    self.max_lag = 0.0
                elif op == "close":
                    self.closing = True
                    final = self.stats()
                    for task in self.tasks:
                        task.cancel()
                    await asyncio.gather(*self.tasks, return_exceptions=True)
                    self.send(("closed", final))
                    return
        finally:
            loop.remove_reader(self.pipe.fileno())
            await session.close()


def client_main(pipe, subs: list[Sub], urls: list[str], concurrency: int) -> None:
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the parent tells it to close
    raise_nofile()
    client = Client(pipe, subs, urls, concurrency)
    asyncio.run(client.run())


async def warm_up(url: str, token: str) -> None:
    """One subscription over each transport, to its first window, then closed: the gateway has loaded what
    subscriptions use before its memory is read. A failure here is not fatal (the phase reports errors)."""
    import aiohttp

    sub = Sub(0, Window(0, token, 1, None), "ws", 0, 0)
    client = Client(None, [sub], [url], 1)
    client.send = lambda message: None
    async with aiohttp.ClientSession() as session:
        for transport in (client.websocket(session, asyncio.Semaphore(1), url, token, [sub]),
                          client.sse(session, asyncio.Semaphore(1), url, token, sub)):
            client.states[0] = SubState(sub)
            task = asyncio.create_task(transport)
            deadline = time.monotonic() + HANDSHAKE_TIMEOUT
            while client.states[0].initial is None and not task.done() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            client.closing = True
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            client.closing = False


class Clients:
    """The load-generator processes, driven from the parent."""

    def __init__(self, subs: list[Sub], urls: list[str], procs: int, concurrency: int) -> None:
        ctx = multiprocessing.get_context("fork")
        self.pipes, self.procs = [], []
        for i in range(procs):
            mine = [s for s in subs if s.conn % procs == i]
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=client_main, args=(child, mine, urls, max(1, concurrency // procs)),
                               daemon=True, name=f"live-client-{i}")
            proc.start()
            child.close()
            self.pipes.append(parent)
            self.procs.append(proc)

    def broadcast(self, message: tuple) -> None:
        for pipe in self.pipes:
            pipe.send(message)

    def gather(self, kind: str, timeout: float, match=None) -> list[tuple]:
        """One message of ``kind`` from every client (others of another kind are dropped), within ``timeout``."""
        deadline = time.monotonic() + timeout
        answers: list[tuple | None] = [None] * len(self.pipes)
        while any(a is None for a in answers):
            for i, pipe in enumerate(self.pipes):
                if answers[i] is not None:
                    continue
                while pipe.poll(0):
                    message = pipe.recv()
                    if message[0] == kind and (match is None or match(message)):
                        answers[i] = message
                        break
                if answers[i] is None and not self.procs[i].is_alive():
                    raise BenchError(f"load generator {i} died (exit {self.procs[i].exitcode})")
            if any(a is None for a in answers):
                if time.monotonic() > deadline:
                    raise BenchError(f"the load generator did not answer {kind!r} within {timeout:.0f} s")
                time.sleep(0.002)
        return answers  # type: ignore[return-value]

    def stats(self) -> dict:
        self.broadcast(("stats",))
        return merge([m[1] for m in self.gather("stats", 30)])

    def close(self) -> dict | None:
        final = None
        try:
            self.broadcast(("close",))
            final = merge([m[1] for m in self.gather("closed", 30)])
        except (BenchError, OSError):
            pass
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        return final

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid]


def merge(stats: list[dict]) -> dict:
    total: dict = {"errors": {}}
    for s in stats:
        for key, value in s.items():
            if key == "errors":
                for k, v in value.items():
                    total["errors"][k] = total["errors"].get(k, 0) + v
            elif key.startswith("max_"):
                total[key] = max(total.get(key, 0), value)
            else:
                total[key] = total.get(key, 0) + value
    return total


# ------------------------------------------------------------------------------------------ the servers

def raise_nofile(wanted: int = 65536) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def rss_kib(pid: int) -> int:
    total = 0
    for p in process_tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


class Redis:
    def __init__(self, url: str) -> None:
        self.wanted, self.proc, self.url = url, None, None

    def get(self) -> str:
        if self.url:
            return self.url
        if redis_answers(self.wanted):
            self.url = self.wanted
            return self.url
        binary = shutil.which("redis-server")
        if binary is None:
            raise BenchError(f"no Redis answers at {self.wanted} and redis-server is not installed")
        port = free_port()
        self.proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     preexec_fn=die_with_parent)
        url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + 10
        while not redis_answers(url):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError("the private redis-server did not start")
            time.sleep(0.05)
        self.url = url
        return url

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)


# ---------------------------------------------------------------------------------------------- a phase

class Probe:
    """``GET /healthz`` on each gateway every 50 ms from a thread, during the changes: how long the slowest
    answers took (a gateway whose event loop stalls answers late; the load generator's own lag is separate)."""

    def __init__(self, gateways: list[Server]) -> None:
        self.gateways = gateways
        self.latencies: list[list[float]] = [[] for _ in gateways]
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stop_event.wait(0.05):
                for i, gw in enumerate(self.gateways):
                    started = time.monotonic()
                    try:
                        client.get(f"{gw.url}/healthz")
                    except httpx.HTTPError:
                        continue
                    self.latencies[i].append(time.monotonic() - started)

    def start(self) -> Probe:
        self.thread.start()
        return self

    def stop(self) -> list[list[float]]:
        self.stop_event.set()
        self.thread.join(15)
        return self.latencies

@dataclass
class Phase:
    instances: int
    subscribers: int
    windows: int = 0
    ws: int = 0
    sse: int = 0
    connections: int = 0
    per_instance: list[int] = field(default_factory=list)
    subscribed: int = 0
    subscribe_seconds: float | None = None
    quiet_seconds: float = 0.0
    quiet_polls: int = 0
    quiet_pushes: int = 0
    change_seconds: float = 0.0
    change_polls: int = 0
    latencies: list[float] = field(default_factory=list)  # t0 -> last subscriber, per change seen by all
    spreads: list[float] = field(default_factory=list)  # first -> last subscriber of one window, per change
    deliveries: list[float] = field(default_factory=list)  # t0 -> each subscriber
    by_transport: dict = field(default_factory=lambda: {"ws": [], "sse": []})  # t0 -> each subscriber
    missed_changes: int = 0
    missed_deliveries: int = 0
    expected_pushes: int = 0
    change_pushes: int = 0
    same_pushes: int = 0
    events: int = 0
    errors: dict = field(default_factory=dict)
    cpu_seconds: list[float] = field(default_factory=list)  # per instance, over the quiet span
    rss_before: list[int] = field(default_factory=list)  # KiB
    rss_with: list[int] = field(default_factory=list)
    rss_after: list[int] = field(default_factory=list)  # KiB, after the changes
    client_cpu: float = 0.0  # seconds over the quiet span, all load-generator processes
    client_lag: float = 0.0  # the load generator's worst event-loop lateness during the changes
    probe: list[list[float]] = field(default_factory=list)  # /healthz latencies per instance, during the changes
    machine_busy: float = 0.0  # seconds over the quiet span, the whole machine
    change_cpu: list[float] = field(default_factory=list)
    upstream_cpu: float = 0.0  # seconds over the quiet span, the demo upstream
    background_busy: float | None = None  # share of all CPUs busy before the phase's servers started

    @property
    def label(self) -> str:
        return f"{self.instances} instance{'s' if self.instances > 1 else ''}, {self.subscribers:,}"


class Bench:
    def __init__(self, args, fleet: Fleet) -> None:
        self.args, self.fleet = args, fleet
        self.redis = Redis(args.redis_url)
        self.upstream: Server | None = None
        self.http = httpx.Client(timeout=30)
        self.status: dict[str, str] = {}  # caller -> the current status of its lowest-id lead

    def close(self) -> None:
        self.http.close()
        self.redis.close()

    def start_upstream(self) -> None:
        self.upstream = self.fleet.python("demo upstream", ["-m", "gateway.cli", "demo-upstream", "--port", "{port}",
                                                             "--log-level", "warning"])
        wait_up(f"{self.upstream.url}/healthz", self.upstream.proc, describe=self.upstream.tail)

    def calls(self) -> int:
        return self.http.get(f"{self.upstream.url}/_demo/calls").json()["calls"]

    def start_gateways(self, n: int, tag: str) -> list[Server]:
        env = {"GATEWAY_UPSTREAM_URL": self.upstream.url, "GATEWAY_LIVE_INTERVAL": f"{self.args.interval:g}",
               "GATEWAY_LIVE_MAX_PER_CONNECTION": LIMITS, "GATEWAY_LIVE_MAX_PER_CALLER": LIMITS}
        if n > 1:
            env |= {"GATEWAY_CACHE_URL": self.redis.get(), "GATEWAY_CACHE_SECRET": secrets.token_hex(32)}
        for item in self.args.gateway_env:
            key, _, value = item.partition("=")
            env[key] = value
        gateways = [self.fleet.python(f"gateway {tag}{chr(65 + i)}", ["-m", "gateway.cli", "serve", "--port",
                                                                      "{port}", "--log-level", "warning"], env)
                    for i in range(n)]
        for gw in gateways:
            wait_up(f"{gw.url}/readyz", gw.proc, describe=gw.tail)
        for gw in gateways:  # the code paths loaded before the memory is read
            self.http.post(f"{gw.url}/graphql", json={"query": "{ __typename }"},
                           headers={"Authorization": "Bearer live-warm-up"})
            asyncio.run(warm_up(gw.url, f"live-warm-up-{tag}"))
        self.quiesce()
        return gateways

    def quiesce(self, limit: float = 25.0) -> None:
        """Wait until the upstream sees no poll for 1.5 intervals (the warm-up's subscriptions are closed and
        their windows no longer polled), at most ``limit`` seconds."""
        started = time.monotonic()
        calls, still_since = self.calls(), time.monotonic()
        while time.monotonic() - still_since < 1.5 * self.args.interval:
            if time.monotonic() - started > limit:
                log(f"the upstream was still polled {limit:g} s after the warm-up subscriptions closed")
                return
            time.sleep(0.1)
            now = self.calls()
            if now != calls:
                calls, still_since = now, time.monotonic()
        if time.monotonic() - started > 3 * self.args.interval:
            log(f"polls stopped {time.monotonic() - started - 1.5 * self.args.interval:.1f} s after the "
                f"warm-up subscriptions closed")

    def phase(self, instances: int, subscribers: int, index: int) -> Phase:
        from gateway.demo.data import dataset_for_token

        args = self.args
        result = Phase(instances, subscribers)
        tag = f"{index}"
        callers = [f"live-{index}-{c}-{uuid.uuid4().hex[:6]}" for c in range(args.callers)]
        lowest = {}
        for caller in callers:
            first = dataset_for_token(caller)[0]
            lowest[caller] = first["id"]
            self.status[caller] = first["status"]
        subs = plan(callers, args.windows, subscribers, args.per_ws, instances, args.ws_share)
        result.windows = len(callers) * args.windows
        result.ws = sum(1 for s in subs if s.transport == "ws")
        result.sse = len(subs) - result.ws
        result.connections = len({s.conn for s in subs})
        result.per_instance = [sum(1 for s in subs if s.instance == i) for i in range(instances)]
        log(f"phase {result.label}: {len(subs)} subscriptions ({result.ws} WebSocket, {result.sse} SSE) on "
            f"{result.connections} connections, {result.windows} windows")
        busy0, at0 = machine_busy_seconds(), time.monotonic()
        time.sleep(2)
        result.background_busy = (machine_busy_seconds() - busy0) / (time.monotonic() - at0) / (os.cpu_count() or 1)
        gateways = self.start_gateways(instances, tag)
        pids = [gw.proc.pid for gw in gateways]
        result.rss_before = [rss_kib(pid) for pid in pids]
        clients = Clients(subs, [gw.url for gw in gateways], args.client_procs, args.connect_concurrency)
        try:
            bound = 30 + subscribers * 0.02
            go = time.monotonic()
            clients.broadcast(("go", go + bound))
            answers = clients.gather("subscribed", bound + 30)
            result.subscribed = sum(a[3] for a in answers)
            last = [a[2] for a in answers if a[2] is not None]
            if result.subscribed == len(subs) and last:
                result.subscribe_seconds = max(last) - go
            stats = merge([a[4] for a in answers])
            log(f"subscribed {result.subscribed}/{len(subs)} in {time.monotonic() - go:.1f} s; "
                f"errors {stats['errors'] or 'none'}")
            for gw in gateways:
                gw.check_alive()
            if result.subscribed == 0:
                raise BenchError(f"no subscription got its first window: {stats['errors']}\n"
                                 + "\n".join(gw.tail(10) for gw in gateways))
            time.sleep(2 * args.interval)  # settle: the first polls of every window are behind

            # Quiet span: no change.
            before = clients.stats()
            calls0, cpu0, client0, busy0 = self.calls(), [tree_cpu_seconds(p) for p in pids], \
                self.client_cpu(clients), machine_busy_seconds()
            upstream0 = tree_cpu_seconds(self.upstream.proc.pid)
            t0 = time.monotonic()
            time.sleep(args.span * args.interval)
            calls1, cpu1, client1, busy1 = self.calls(), [tree_cpu_seconds(p) for p in pids], \
                self.client_cpu(clients), machine_busy_seconds()
            result.upstream_cpu = tree_cpu_seconds(self.upstream.proc.pid) - upstream0
            result.quiet_seconds = time.monotonic() - t0
            after = clients.stats()
            result.quiet_polls = calls1 - calls0
            result.quiet_pushes = after["pushes"] - before["pushes"]
            result.cpu_seconds = [b - a for a, b in zip(cpu0, cpu1)]
            result.client_cpu = client1 - client0
            result.machine_busy = busy1 - busy0
            result.rss_with = [rss_kib(pid) for pid in pids]
            log(f"quiet span: {result.quiet_polls} upstream calls in {result.quiet_seconds:.1f} s, "
                f"{result.quiet_pushes} pushes")

            # Changes.
            calls0, cpu0, pushes0 = self.calls(), [tree_cpu_seconds(p) for p in pids], after["pushes"]
            t_start = time.monotonic()
            probe = Probe(gateways).start()
            for k in range(args.changes):
                time.sleep(random.uniform(0, args.interval))
                caller = callers[k % len(callers)]
                old = self.status[caller]
                new_choices = [s for s in STATUSES if s != old]
                new = random.choice(new_choices)
                deadline = time.monotonic() + args.interval + args.change_timeout
                clients.broadcast(("expect", k, caller, lowest[caller], new, old, deadline))
                expecting = clients.gather("expecting", 10, match=lambda m, k=k: m[1] == k)
                result.expected_pushes += sum(m[2] for m in expecting)
                started = time.monotonic()
                response = self.http.post(f"{self.upstream.url}/_demo/leads/{lowest[caller]}", json={"status": new},
                                          headers={"Authorization": f"Bearer {caller}"})
                if response.status_code >= 300:
                    raise BenchError(f"the control call POST /_demo/leads/{lowest[caller]} answered "
                                     f"{response.status_code}: {response.text[:200]}")
                self.status[caller] = new
                seen = clients.gather("seen", args.interval + args.change_timeout + 10,
                                      match=lambda m, k=k: m[1] == k)
                times = [t for m in seen for _, _, t in m[2]]
                by_window: dict[int, list[float]] = {}
                for m in seen:
                    for window, transport, t in m[2]:
                        by_window.setdefault(window, []).append(t)
                        result.by_transport[transport].append(t - started)
                missing = sum(m[3] for m in seen)
                result.deliveries += [t - started for t in times]
                result.missed_deliveries += missing
                if missing:
                    result.missed_changes += 1
                    log(f"change {k}: {missing} subscriber(s) did not see it within "
                        f"{args.interval + args.change_timeout:g} s")
                elif times:
                    result.latencies.append(max(times) - started)
                    result.spreads += [max(ts) - min(ts) for ts in by_window.values()]
                    if max(times) - started > args.interval + 0.5:
                        last = {tr: max((t for m in seen for _, x, t in m[2] if x == tr), default=started)
                                for tr in ("ws", "sse")}
                        log(f"change {k}: slow, {max(times) - started:.2f} s to the last subscriber (WebSocket "
                            f"{last['ws'] - started:.2f} s, SSE {last['sse'] - started:.2f} s); per window first..last "
                            + ", ".join(f"{min(ts) - started:.2f}..{max(ts) - started:.2f} s"
                                        for ts in by_window.values()))
            result.change_seconds = time.monotonic() - t_start
            result.probe = probe.stop()
            result.rss_after = [rss_kib(pid) for pid in pids]
            result.change_polls = self.calls() - calls0
            result.change_cpu = [tree_cpu_seconds(p) - c for p, c in zip(pids, cpu0)]
            final = clients.stats()
            result.change_pushes = final["pushes"] - pushes0
            result.same_pushes = final["same"]
            result.client_lag = final["max_lag"]
            result.events = final["events"]
            result.errors = final["errors"]
            for gw in gateways:
                gw.check_alive()
            if result.latencies:
                log(f"changes: last-subscriber latency p50 {percentile(result.latencies, .5) * 1000:.0f} ms, "
                    f"p99 {percentile(result.latencies, .99) * 1000:.0f} ms; missed {result.missed_changes}")
        finally:
            clients.close()
            for gw in gateways:
                self.fleet.stop(gw)
        return result

    @staticmethod
    def client_cpu(clients: Clients) -> float:
        return sum(cpu_ticks(pid) for pid in clients.pids()) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------- report

def ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:,.0f} ms"


def per(values: list, fmt) -> str:
    return " / ".join(fmt(v) for v in values)


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "**MISS**")


def report(phases: list[Phase], args, command: str) -> tuple[list[str], int]:
    interval = args.interval
    rows: list[tuple[str, list[str], str]] = []
    misses = 0

    def row(name: str, values: list[str], target: str = "") -> None:
        rows.append((name, values, target))

    def judged(name: str, values: list[tuple[str, bool | None]], target: str) -> None:
        nonlocal misses
        misses += sum(1 for _, ok in values if ok is False)
        row(name, [f"{v} {verdict(ok)}" if ok is not None else v for v, ok in values], target)

    row("subscriptions: WebSocket + SSE (connections)",
        [f"{p.ws:,} + {p.sse:,} ({p.connections:,})" for p in phases])
    row("subscriptions per instance", [per(p.per_instance, lambda v: f"{v:,}") for p in phases])
    row("distinct windows (callers x windows)", [f"{p.windows}" for p in phases])
    judged("subscribed (first window received) / time until all",
           [(f"{p.subscribed:,} / {ms(p.subscribe_seconds)}", p.subscribed == p.subscribers) for p in phases],
           "all")
    quiet = [p.quiet_polls / (p.quiet_seconds / interval) if p.quiet_seconds else 0.0 for p in phases]
    judged(f"upstream polls per interval, quiet span ({args.span} intervals)",
           [(f"{q:.1f}", 0.8 * p.windows <= q <= p.windows * 1.05 + 0.5) for q, p in zip(quiet, phases)],
           "one per window: ≤ windows (+5 %), ≥ 80 %")
    changing = [p.change_polls / (p.change_seconds / interval) if p.change_seconds else 0.0 for p in phases]
    row(f"upstream polls per interval, during the changes", [f"{c:.1f}" for c in changing])
    judged("pushes during the quiet span", [(f"{p.quiet_pushes:,}", p.quiet_pushes == 0) for p in phases], "0")
    judged("push latency, change to last subscriber: p50 / p99 / max",
           [(f"{ms(percentile(p.latencies, .5))} / {ms(percentile(p.latencies, .99))} / {ms(max(p.latencies))}"
             if p.latencies else "n/a", (percentile(p.latencies, .99) < interval + 1 and not p.missed_changes)
             if p.latencies else False) for p in phases],
           f"p99 < {ms(interval + 1)}")
    row("push latency, change to each subscriber: p50 / p99",
        [f"{ms(percentile(p.deliveries, .5))} / {ms(percentile(p.deliveries, .99))}" if p.deliveries else "n/a"
         for p in phases])
    row("push latency, change to each subscriber: p99 WebSocket / SSE",
        [f"{ms(percentile(p.by_transport['ws'], .99)) if p.by_transport['ws'] else 'n/a'} / "
         f"{ms(percentile(p.by_transport['sse'], .99)) if p.by_transport['sse'] else 'n/a'}" for p in phases])
    row("fan-out: first to last subscriber of one window, per change: p50 / max",
        [f"{ms(percentile(p.spreads, .5))} / {ms(max(p.spreads))}" if p.spreads else "n/a" for p in phases])
    judged("changes not seen by every subscriber in time (subscribers)",
           [(f"{p.missed_changes} of {args.changes} ({p.missed_deliveries:,})", p.missed_changes == 0)
            for p in phases], "0")
    row("pushes during the changes: received / expected", [f"{p.change_pushes:,} / {p.expected_pushes:,}"
                                                             for p in phases])
    row("pushes identical to the window before them", [f"{p.same_pushes:,}" for p in phases])
    row("events received (`next`, the first windows included)", [f"{p.events:,}" for p in phases])
    judged("errors", [(", ".join(f"{k}: {v:,}" for k, v in sorted(p.errors.items())) or "0", not p.errors)
                      for p in phases], "0")
    row("gateway CPU, quiet span (% of one CPU, per instance)",
        [per(p.cpu_seconds, lambda c, p=p: f"{100 * c / p.quiet_seconds:.1f} %") for p in phases])
    row("gateway CPU-ms per subscriber per second, quiet span",
        [per([(c, n) for c, n in zip(p.cpu_seconds, p.per_instance)],
             lambda cn, p=p: f"{1000 * cn[0] / p.quiet_seconds / max(1, cn[1]):.3f}") for p in phases])
    row("gateway CPU, during the changes (% of one CPU, per instance)",
        [per(p.change_cpu, lambda c, p=p: f"{100 * c / p.change_seconds:.1f} %") if p.change_seconds else "n/a"
         for p in phases])
    row("gateway CPU-ms per push delivered (during the changes, above the quiet rate, all instances)",
        [f"{1000 * (sum(p.change_cpu) - sum(p.cpu_seconds) / p.quiet_seconds * p.change_seconds) / p.change_pushes:.2f}"
         if p.change_pushes and p.quiet_seconds else "n/a" for p in phases])
    row("gateway RSS before / with the subscribers (MiB, per instance)",
        [per(list(zip(p.rss_before, p.rss_with)), lambda bw: f"{bw[0] / 1024:.0f} → {bw[1] / 1024:.0f}")
         for p in phases])
    row("gateway RSS after the changes (MiB, per instance)",
        [per(p.rss_after, lambda v: f"{v / 1024:.0f}") for p in phases])
    row("gateway memory per subscriber (KiB)",
        [per([(b, w, n) for b, w, n in zip(p.rss_before, p.rss_with, p.per_instance)],
             lambda bwn: f"{(bwn[1] - bwn[0]) / max(1, bwn[2]):.1f}") for p in phases])
    row("load generator CPU, quiet span (% of one CPU)",
        [f"{100 * p.client_cpu / p.quiet_seconds:.1f} %" for p in phases])
    row("gateway `/healthz` every 50 ms during the changes: p99 (max), per instance",
        [per(p.probe, lambda ls: f"{ms(percentile(ls, .99))} ({ms(max(ls))})" if ls else "n/a") for p in phases])
    row("load generator's worst event-loop lag during the changes", [ms(p.client_lag) for p in phases])
    row("demo upstream CPU, quiet span (% of one CPU)",
        [f"{100 * p.upstream_cpu / p.quiet_seconds:.1f} %" for p in phases])
    row("whole machine busy, quiet span (% of all CPUs)",
        [f"{100 * p.machine_busy / p.quiet_seconds / (os.cpu_count() or 1):.1f} %" for p in phases])
    row("whole machine busy before the phase's servers started (other processes, % of all CPUs)",
        [f"{100 * p.background_busy:.1f} %" if p.background_busy is not None else "n/a" for p in phases])

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine())
    lines = [
        f"Run: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} vCPU ({cpu}), Linux "
        f"{platform.release()}, Python {platform.python_version()}; the gateways, the demo upstream, Redis and "
        f"the load generator ({args.client_procs} process{'es' if args.client_procs > 1 else ''}, asyncio + "
        f"aiohttp) share them.",
        "",
        f"Command: `{command}`",
        "",
        f"Live interval `GATEWAY_LIVE_INTERVAL={args.interval:g}` s; {args.callers} callers x {args.windows} "
        f"windows; {args.per_ws} subscriptions per WebSocket connection, 1 per SSE connection; quiet span "
        f"{args.span} intervals; {args.changes} changes. One instance: in-process cache; two: one Redis "
        f"(`GATEWAY_CACHE_URL`), the connections alternating between them. Per-instance values are "
        f"separated by `/`.",
        "",
        "| figure | " + " | ".join(p.label for p in phases) + " | target |",
        "| --- | " + " | ".join("---" for _ in phases) + " | --- |",
    ]
    lines += [f"| {name} | " + " | ".join(values) + f" | {target} |" for name, values, target in rows]
    lines += ["", f"Targets missed: {misses}"]
    return lines, misses


def write_docs(lines: list[str]) -> None:
    text = DOC.read_text() if DOC.exists() else DOC_INTRO
    if BEGIN not in text:
        text = text.rstrip("\n") + f"\n\n{BEGIN}\n{END}\n"
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    DOC.write_text(head + BEGIN + "\n" + "\n".join(lines) + "\n" + END + tail)


DOC_INTRO = """# Live data: subscriptions under load

`python -m bench.live --write-docs` (bench/live.py; the method is in its docstring) holds 1,000 and then
5,000 concurrent `subscription { leads(...) }` subscribers, half over WebSocket (`graphql-transport-ws`,
10 subscriptions per connection) and half over SSE (one connection each), on 50 distinct windows
(5 callers x 10 windows), first on one gateway instance, then on two instances sharing Redis. It counts the
upstream polls per interval (target: one per distinct window per interval, however many subscribers and
instances), checks that nothing is pushed while the windows are unchanged, measures the latency from a
change upstream (the demo upstream's control call `POST /_demo/leads/{id}`) to the last subscriber
receiving it (target p99 < interval + 1 s), the time to subscribe everyone, and each gateway's CPU and
memory per subscriber. The test suite runs `python -m bench.live --smoke` (20 subscribers, 4 windows, one
and two instances), which checks that the benchmark works, not its figures.

## Latest run

"""


# ------------------------------------------------------------------------------------------------ main

def _terminate(signum, frame):  # SIGTERM: unwind like Ctrl-C so that the servers are stopped
    raise KeyboardInterrupt


def _watchdog(seconds: float) -> threading.Timer:
    def expire() -> None:
        log(f"the run took longer than --timeout {seconds:g} s: stopping")
        os.kill(os.getpid(), signal.SIGTERM)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    return timer


def parse_args(argv: list[str] | None):
    parser = argparse.ArgumentParser(prog="python -m bench.live", description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, nargs="+", default=[1000, 5000],
                        help="subscribers per phase (default 1000 5000)")
    parser.add_argument("--instances", type=int, nargs="+", default=[1, 2],
                        help="gateway instances per phase (default 1 2; each with every --subscribers)")
    parser.add_argument("--interval", type=float, default=1.0, help="GATEWAY_LIVE_INTERVAL, seconds (default 1)")
    parser.add_argument("--callers", type=int, default=5, help="callers (tokens) per phase (default 5)")
    parser.add_argument("--windows", type=int, default=10, help="distinct windows per caller (default 10, max "
                                                                f"{len(WINDOW_SPECS)})")
    parser.add_argument("--per-ws", type=int, default=10, help="subscriptions per WebSocket connection (10)")
    parser.add_argument("--ws-share", type=float, default=0.5,
                        help="share of the subscriptions over WebSocket, the rest over SSE (default 0.5)")
    parser.add_argument("--span", type=int, default=10, help="intervals of the quiet span (default 10)")
    parser.add_argument("--changes", type=int, default=20, help="changes per phase (default 20)")
    parser.add_argument("--change-timeout", type=float, default=5.0,
                        help="seconds past one interval a change may take to reach every subscriber (5)")
    parser.add_argument("--client-procs", type=int, default=2, help="load-generator processes (default 2)")
    parser.add_argument("--connect-concurrency", type=int, default=100,
                        help="connections being opened at once, all load-generator processes (default 100)")
    parser.add_argument("--redis-url", default=os.environ.get("GATEWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--gateway-env", action="append", default=[], metavar="GATEWAY_X=VALUE",
                        help="another gateway setting, every phase (repeatable)")
    parser.add_argument("--timeout", type=float, default=1200.0, help="the whole run's bound, seconds (1200)")
    parser.add_argument("--smoke", action="store_true",
                        help="20 subscribers, 2 callers x 2 windows, 1 and 2 instances, short spans")
    parser.add_argument("--write-docs", action="store_true", help="write the report into docs/LIVE.md")
    if "--smoke" in (sys.argv[1:] if argv is None else argv):  # its own defaults; options given still win
        parser.set_defaults(subscribers=[20], callers=2, windows=2, per_ws=5, span=4, changes=3, client_procs=1,
                            timeout=150.0)
    args = parser.parse_args(argv)
    if not 0 <= args.ws_share <= 1:
        parser.error("--ws-share must be between 0 and 1")
    if not 1 <= args.windows <= len(WINDOW_SPECS):
        parser.error(f"--windows must be between 1 and {len(WINDOW_SPECS)}")
    if args.interval < 1:
        parser.error("--interval must be at least 1 (the gateway's minimum)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = " ".join(["python -m bench.live", *(sys.argv[1:] if argv is None else argv)])
    raise_nofile()
    previous = signal.signal(signal.SIGTERM, _terminate)
    watchdog = _watchdog(args.timeout)
    started = time.monotonic()
    phases: list[Phase] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-live-") as workdir:
            fleet = Fleet(Path(workdir))
            bench = Bench(args, fleet)
            try:
                bench.start_upstream()
                index = 0
                for instances in args.instances:
                    for subscribers in args.subscribers:
                        index += 1
                        phases.append(bench.phase(instances, subscribers, index))
                        bench.upstream.check_alive()
            finally:
                fleet.close()
                bench.close()
    except KeyboardInterrupt:
        log("interrupted; servers stopped")
        return 130
    except (BenchError, RuntimeError, subprocess.SubprocessError, httpx.HTTPError, OSError) as exc:
        log(f"FAILED: {type(exc).__name__}: {exc}")
        return 1
    finally:
        watchdog.cancel()
        signal.signal(signal.SIGTERM, previous)
    lines, misses = report(phases, args, command)
    print("\n".join(lines))
    if args.write_docs:
        write_docs(lines)
        log(f"written to {DOC.relative_to(ROOT)}")
    log(f"done in {time.monotonic() - started:.0f} s; {misses} target(s) missed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
