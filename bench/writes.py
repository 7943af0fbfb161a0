"""Writes benchmark: what ``createLead`` adds over the upstream's own ``POST /user/lead``, and how soon a second
instance serves the new lead.

Starts on 127.0.0.1, as subprocesses, the demo upstream (``--latency-ms``, 20 by default: a real API's
round trip is longer, and the figure that matters is the difference) and two gateways sharing one Redis
(``GATEWAY_CACHE_URL``: the Redis at ``--redis-url``, default 127.0.0.1:6379, or a private ``redis-server`` on
a free port when none answers there; the same ``GATEWAY_CACHE_SECRET``; default TTL 30 s, so reads are
served from the page and result caches). Then, with one client on keep-alive connections, sequentially:

1. **upstream POST**: ``--writes`` direct ``POST /user/lead`` to the demo upstream, each a new phone number;
2. **createLead**: as many mutations through gateway A selecting ``lead { id databaseId }``;
3. **createLead + leadEdge**: the same selecting ``leadEdge { cursor }`` too (the edge reads the first page
   of 100 of the caller's list, and its last page when the list is longer, to place the lead);
4. **replay**: the same ``idempotencyKey`` again (answered from the record, no upstream call);
5. **visible on B**: ``--rounds`` times: gateway B answers the caller's list (warm: from its caches), a lead
   is created on A, and B is asked again at once and then every 5 ms until its answer holds the lead:
   the time from A's answer to B's first answer with the lead, and how many queries B needed (1 means the
   very next query saw it).

Prints p50/p99 of each phase, the added latency (createLead p50 minus upstream POST p50) and the figures of
phase 5, as a Markdown table; ``--write-docs`` also writes them into docs/WRITES.md (between the
generated-section markers). Every tenant is fresh, every lead distinct (no duplicates refused).

    python -m bench.writes                    # 200 writes per phase, 50 rounds (about 30 s)
    python -m bench.writes --write-docs
    python -m bench.writes --smoke            # 10 writes, 5 rounds (the test suite runs this)

Exit status 0 when it ran, 1 when a server died or an answer was wrong. Linux only (/proc, via
bench/common.py); the subprocesses are stopped on exit and get SIGTERM if this process is killed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from bench.common import ROOT, BenchError, Fleet, Server, free_port, wait_up

DOC = ROOT / "docs" / "WRITES.md"
BEGIN, END = "<!-- bench/writes.py: begin -->", "<!-- bench/writes.py: end -->"

CREATE = "mutation($input: CreateLeadInput!) { createLead(input: $input) { lead { id databaseId } userErrors { code } } }"
CREATE_EDGE = ("mutation($input: CreateLeadInput!) { createLead(input: $input) { lead { id databaseId } "
               "leadEdge { cursor } userErrors { code } } }")
LIST = "{ leads(last: 5) { totalCount nodes { databaseId } } }"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def new_phone() -> str:
    return "+1555" + str(uuid.uuid4().int)[:7]


def redis_answers(url: str) -> bool:
    import socket
    from urllib.parse import urlparse

    u = urlparse(url)
    try:
        with socket.create_connection((u.hostname, u.port or 6379), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class Run:
    def __init__(self, fleet: Fleet, args: argparse.Namespace) -> None:
        self.fleet, self.args = fleet, args
        self.redis_proc: subprocess.Popen | None = None

    def redis(self) -> str:
        if redis_answers(self.args.redis_url):
            return self.args.redis_url
        binary = shutil.which("redis-server")
        if binary is None:
            raise BenchError(f"no Redis answers at {self.args.redis_url} and redis-server is not installed")
        port = free_port()
        self.redis_proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                            "--appendonly", "no"], stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL)
        url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + 10
        while not redis_answers(url):
            if self.redis_proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError("the private redis-server did not start")
            time.sleep(0.05)
        return url

    def start(self) -> tuple[Server, Server, Server]:
        upstream = self.fleet.python("demo upstream", ["-m", "gateway.cli", "demo-upstream", "--port", "{port}",
                                                        "--log-level", "warning", "--latency-ms",
                                                        f"{self.args.latency_ms:g}"])
        wait_up(f"{upstream.url}/healthz", upstream.proc, describe=upstream.tail)
        env = {"GATEWAY_UPSTREAM_URL": upstream.url, "GATEWAY_CACHE_URL": self.redis(),
               "GATEWAY_CACHE_SECRET": secrets.token_hex(32)}
        gateways = []
        for name in ("gateway A", "gateway B"):
            gw = self.fleet.python(name, ["-m", "gateway.cli", "serve", "--port", "{port}", "--log-level", "warning"],
                                   env)
            gateways.append(gw)
        for gw in gateways:
            wait_up(f"{gw.url}/readyz", gw.proc, describe=gw.tail)
        return upstream, gateways[0], gateways[1]

    def close(self) -> None:
        if self.redis_proc is not None:
            self.redis_proc.kill()
            self.redis_proc.wait(10)


def campaign_of(token: str) -> int:
    from gateway.demo.data import campaigns_for_token

    return campaigns_for_token(token)[0]["id"]


def timed(fn) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def upstream_posts(client: httpx.Client, upstream: Server, token: str, n: int) -> list[float]:
    times = []
    campaign = campaign_of(token)
    for _ in range(n):
        seconds, response = timed(lambda: client.post(
            f"{upstream.url}/user/lead", headers={"Authorization": f"Bearer {token}"},
            json={"phone_number": new_phone(), "campaign_id": campaign, "variables": {"customer_name": "Bench"},
                  "allow_dupplicate": False}))
        if response.status_code != 201:
            raise BenchError(f"the upstream answered {response.status_code}: {response.text[:200]}")
        times.append(seconds)
    return times


def mutate(client: httpx.Client, gw: Server, token: str, query: str, given: dict) -> dict:
    response = client.post(f"{gw.url}/graphql", json={"query": query, "variables": {"input": given}},
                           headers={"Authorization": f"Bearer {token}"})
    body = response.json()
    payload = (body.get("data") or {}).get("createLead")
    if response.status_code != 200 or not payload or payload["userErrors"] or not payload["lead"]:
        raise BenchError(f"createLead failed: {response.status_code} {response.text[:300]}")
    return payload


def creates(client: httpx.Client, gw: Server, token: str, n: int, query: str) -> list[float]:
    campaign = campaign_of(token)
    times = []
    for _ in range(n):
        given = {"phoneNumber": new_phone(), "campaignId": campaign, "customerName": "Bench"}
        seconds, _ = timed(lambda: mutate(client, gw, token, query, given))
        times.append(seconds)
    return times


def replays(client: httpx.Client, gw: Server, token: str, n: int) -> list[float]:
    given = {"phoneNumber": new_phone(), "campaignId": campaign_of(token), "idempotencyKey": uuid.uuid4().hex}
    first = mutate(client, gw, token, CREATE, given)["lead"]["databaseId"]
    times = []
    for _ in range(n):
        seconds, payload = timed(lambda: mutate(client, gw, token, CREATE, given))
        if payload["lead"]["databaseId"] != first:
            raise BenchError("a replay answered another lead")
        times.append(seconds)
    return times


def visibility(client: httpx.Client, a: Server, b: Server, token: str, rounds: int) -> tuple[list[float], list[int]]:
    """Per round: seconds from A's answer to B's first answer holding the new lead, and B's queries until then."""
    campaign = campaign_of(token)
    headers = {"Authorization": f"Bearer {token}"}

    def listed() -> list[int]:
        response = client.post(f"{b.url}/graphql", json={"query": LIST}, headers=headers)
        return [n["databaseId"] for n in response.json()["data"]["leads"]["nodes"]]

    times, queries = [], []
    for _ in range(rounds):
        listed()
        listed()  # warm: B answers from its caches
        created = mutate(client, a, token, CREATE, {"phoneNumber": new_phone(), "campaignId": campaign})
        lead_id = created["lead"]["databaseId"]
        answered = time.perf_counter()
        asked = 0
        while True:
            asked += 1
            if lead_id in listed():
                break
            if time.perf_counter() - answered > 5:
                raise BenchError("gateway B did not serve the new lead within 5 s")
            time.sleep(0.005)
        times.append(time.perf_counter() - answered)
        queries.append(asked)
    return times, queries


def report(args, figures: dict) -> list[str]:
    up, plain, edge, replay = (figures[k] for k in ("upstream", "create", "edge", "replay"))
    seen, asked = figures["visible"]
    added = statistics.median(plain) - statistics.median(up)
    added_edge = statistics.median(edge) - statistics.median(up)
    rows = [
        ("upstream `POST /user/lead` (direct)", f"{ms(percentile(up, .5))} / {ms(percentile(up, .99))}"),
        ("`createLead` selecting `lead`", f"{ms(percentile(plain, .5))} / {ms(percentile(plain, .99))}"),
        ("`createLead` selecting `lead` and `leadEdge`", f"{ms(percentile(edge, .5))} / {ms(percentile(edge, .99))}"),
        ("`createLead` replayed (same `idempotencyKey`)", f"{ms(percentile(replay, .5))} / {ms(percentile(replay, .99))}"),
        ("added by the gateway (p50 minus the upstream's p50)", f"{ms(added)} (with `leadEdge`: {ms(added_edge)})"),
        ("from A's answer to B serving the lead, p50 / p99", f"{ms(percentile(seen, .5))} / {ms(percentile(seen, .99))}"),
        ("queries B needed to serve it (max over rounds)", f"{max(asked)} (1: the very next query)"),
    ]
    lines = [f"Run: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} CPUs, "
             f"Python {platform.python_version()}; demo upstream latency {args.latency_ms:g} ms; "
             f"{args.writes} writes per phase, {args.rounds} rounds; two gateways on one Redis.",
             "", "| figure | p50 / p99 |", "| --- | --- |"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    return lines


def write_docs(lines: list[str]) -> None:
    text = DOC.read_text() if DOC.exists() else f"# Writes\n\n{BEGIN}\n{END}\n"
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    DOC.write_text(head + BEGIN + "\n" + "\n".join(lines) + "\n" + END + tail)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writes", type=int, default=200, help="writes per phase (default 200)")
    parser.add_argument("--rounds", type=int, default=50, help="rounds of the visibility phase (default 50)")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="the demo upstream's latency (default 20)")
    parser.add_argument("--redis-url", default=os.environ.get("GATEWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--smoke", action="store_true", help="10 writes, 5 rounds")
    parser.add_argument("--write-docs", action="store_true", help="write the report into docs/WRITES.md")
    args = parser.parse_args(argv)
    if args.smoke:
        args.writes, args.rounds = 10, 5
    with tempfile.TemporaryDirectory(prefix="bench-writes-") as workdir:
        fleet = Fleet(Path(workdir))
        run = Run(fleet, args)
        try:
            upstream, a, b = run.start()
            with httpx.Client(timeout=30) as client:
                tenant = lambda: f"bench-{uuid.uuid4().hex[:8]}"  # noqa: E731 - a fresh tenant per phase
                creates(client, a, tenant(), 5, CREATE_EDGE)  # warm-up: connections, code paths
                upstream_posts(client, upstream, tenant(), 5)
                figures = {
                    "upstream": upstream_posts(client, upstream, tenant(), args.writes),
                    "create": creates(client, a, tenant(), args.writes, CREATE),
                    "edge": creates(client, a, tenant(), args.writes, CREATE_EDGE),
                    "replay": replays(client, a, tenant(), args.writes),
                    "visible": visibility(client, a, b, tenant(), args.rounds),
                }
            for server in fleet.servers:
                server.check_alive()
        except BenchError as exc:
            print(f"benchmark failed: {exc}", file=sys.stderr)
            return 1
        finally:
            fleet.close()
            run.close()
    lines = report(args, figures)
    print("\n".join(lines))
    if args.write_docs:
        write_docs(lines)
        print(f"\nwritten to {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
