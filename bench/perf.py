"""Performance benchmark: the gateway against a Node federation gateway (Hive Gateway) doing the same work,
and against the Python HTTP ceiling, all measured with ``wrk`` in one run on this machine.

Started on 127.0.0.1, each its own process and kept running through the run:
- the demo upstream twice, with 0 ms and with 20 ms of added latency;
- the ceiling (bench/ceiling.py): bare Starlette on uvicorn, the gateway's uvicorn settings, answering
  POST /graphql with the gateway's own response bytes;
- the gateway, 1 worker, on the 0 ms upstream: **warm** (the same tenant and query again: result
  cache hits) and **cold** (``Cache-Control: no-cache``: every request an upstream call; the requests
  take turns over more tenants than connections, since concurrent identical requests share one call);
- the gateway, 1 worker, result cache off (``GATEWAY_RESULT_CACHE_BYTES=0``), page cache warmed: a
  **new query over cached pages** (the query re-executed every time, no upstream call);
- the gateway, 2 workers, warm;
- the gateway, 1 worker, on the 20 ms upstream: cold at 1 connection, against the 20 ms upstream called
  directly at 1 connection (the difference of p50s is the latency the gateway adds on a cache miss);
- persisted documents (Apollo APQ, registered once per gateway by a POST with the text and its hash): warm by
  hash alone over GET, and cold by hash alone at 1 connection on the 20 ms upstream (T6: at most a quarter of
  what Hive Gateway adds there); left out, with a note in the report, when a gateway does not answer them;
- every gateway with its default settings (log level info: a JSON request line each, to its log file);
- Hive Gateway (bench/hive.py) on the 0 ms upstream with its response cache on and off, and uncached on
  the 20 ms upstream at 1 connection (for information).

Every target is first checked (200, the expected data, no ``errors``; the ceiling's bytes are the
gateway's) and warmed, then driven by ``wrk -t1`` in alternating rounds (each target once per round).
For each run: req/s, p50/p99 (wrk's ``--latency``), the server's CPU per request (utime+stime of its
whole process tree from /proc, delta over the run / requests), RSS per process, and the upstream calls
per request (the demo upstream's counter); also the CPU that processes not of this run used meanwhile
(/proc/stat), since a busy machine skews everything. Figures are medians over the rounds (CPU: total
over all rounds / total requests; RSS: the maximum). Then the issue's goals (T1-T6) as ratios,
PASS/MISS (T6 with the persisted rows). ``--profile`` adds py-spy profiles (blocking sampling at 250 Hz, idle samples left out) of
the gateway's warm, cold and new-query paths, each under the same wrk load, by category and function.

    python -m bench.perf                          # 3 rounds of 10 s per target at 32 connections
    python -m bench.perf --rounds 2 --duration 5
    python -m bench.perf --write-docs [--docs docs/BENCHMARKS.md]   # also the chart docs/perf.png
    python -m bench.perf --profile                # also py-spy profiles of the gateway's three paths
    python -m bench.perf --smoke                  # 1 round of 1 s at 4 connections: checks that it works

Exit status 0 when everything answered correctly, goals missed or not (it is a benchmark); 1 when
a target answered wrongly, wrk saw socket errors or non-2xx answers, or a server died.
Needs Linux (/proc), ``wrk`` (apt-get install wrk) and Node/npm for Hive Gateway. Two cores are
shared by wrk, the servers and the upstreams: compare figures of one run, not across machines.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import hashlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench import wrk
from bench.cache_bench import QUERY
from bench.common import (BenchError, Fleet, Server, cmdline, free_port, machine_busy_seconds, process_tree, rss_mb,
                          tree_cpu_seconds, wait_up)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DOCS = ROOT / "docs" / "BENCHMARKS.md"
PERF_BEGIN, PERF_END = "<!-- perf:begin -->", "<!-- perf:end -->"
PROFILE_BEGIN, PROFILE_END = "<!-- profile:begin -->", "<!-- profile:end -->"
TOKEN = "bench-perf-1"
LEADS = 15
# Far longer than a run: a page cache entry expiring mid-run would turn "warm" rows into cold ones.
CACHE_TTL = "3600"


def start_upstream(fleet: Fleet, latency_ms: int) -> Server:
    server = fleet.python(f"upstream {latency_ms} ms", ["-m", "gateway.cli", "demo-upstream", "--port", "{port}",
                                                         "--latency-ms", str(latency_ms), "--log-level", "warning"])
    wait_up(f"{server.url}/healthz", server.proc, describe=server.tail)
    return server


def start_gateway(fleet: Fleet, name: str, upstream: Server, *, workers: int = 1,
                  result_cache: bool = True) -> Server:
    env = {"GATEWAY_UPSTREAM_URL": upstream.url, "GATEWAY_CACHE_TTL": CACHE_TTL}
    if not result_cache:
        env["GATEWAY_RESULT_CACHE_BYTES"] = "0"
    # The default settings, log level info included: one JSON line per request, on stderr, which goes to the
    # server's log file (as a deployment's stderr goes to a pipe or a file).
    args = ["-m", "gateway.cli", "serve", "--port", "{port}"]
    if workers > 1:
        args += ["--workers", str(workers)]
    return fleet.python(name, args, env)


def start_ceiling(fleet: Fleet, body: bytes, content_type: str) -> Server:
    body_file = fleet.workdir / "ceiling-body.json"
    body_file.write_bytes(body)
    server = fleet.python("ceiling", ["-m", "bench.ceiling", "--port", "{port}", "--body", str(body_file),
                                      "--content-type", content_type])
    wait_up(f"{server.url}/readyz", server.proc, describe=server.tail)
    return server


def start_hive(fleet: Fleet, hive, name: str, upstream: Server, supergraph: Path, *, cache: bool) -> Server:
    port = free_port()
    log = fleet.workdir / f"{name.replace(' ', '-')}.log"
    proc = hive.start(port, upstream.url, cache=cache, log_path=log, supergraph=supergraph)
    return fleet.add(Server(name, proc, port, log))


def wait_ready(server: Server, url: str, timeout: float = 60) -> None:
    wait_up(url, server.proc, timeout=timeout, describe=server.tail)


def load_hive():
    try:
        from bench import hive
    except ImportError as exc:
        raise BenchError(f"bench/hive.py (the Hive Gateway peer) is missing or broken: {exc}") from exc
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise BenchError("node and npm are needed for the Hive Gateway peer (apt-get install nodejs npm)")
    return hive


# ------------------------------------------------------------------------------------------ targets

HEADERS = {"Content-Type": "application/json", "Accept": "application/json", "Authorization": f"Bearer {TOKEN}"}


@dataclass
class Sample:
    result: wrk.WrkResult
    cpu_seconds: float
    rss: dict[int, float]  # pid -> MB, every process of the server's tree after the run
    workers_rss: list[float]  # the worker processes' (the server itself when it has none)
    upstream_calls: int | None
    foreign_cores: float  # CPU used meanwhile by processes not of this run (other work on the machine), in cores


@dataclass
class Target:
    label: str
    server: Server
    connections: int
    method: str = "POST"
    path: str = "/graphql"
    body: str | None = None
    extra_headers: dict[str, str] = field(default_factory=dict)
    upstream: Server | None = None
    upstream_calls: str | None = None  # "none": must make no upstream call; "each": one per request at least
    # Worker processes behind the port: each has its own caches, and the kernel, not the warm-up, decides
    # which of them a connection reaches, so all but one may still fill theirs (one call each) in a run.
    workers: int = 1
    kind: str = "gateway"  # gateway | ceiling | hive | upstream
    tokens: list[str] | None = None  # wrk takes turns over these (cold rows), else TOKEN
    samples: list[Sample] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url + self.path

    @property
    def headers(self) -> dict[str, str]:
        base = {k: v for k, v in HEADERS.items() if k != "Content-Type"} if self.method == "GET" else HEADERS
        return {**base, **self.extra_headers}

    def send(self, client: httpx.Client, token: str = TOKEN) -> httpx.Response:
        headers = {**self.headers, "Authorization": f"Bearer {token}"}
        return client.request(self.method, self.url, content=self.body, headers=headers)


def graphql_body(query: str) -> str:
    return json.dumps({"query": query}, separators=(",", ":"))


def leads_in(data: object) -> int:
    """The longest list of objects anywhere in ``data`` (the leads, whatever the answer's shape)."""
    if isinstance(data, dict):
        return max((leads_in(v) for v in data.values()), default=0)
    if isinstance(data, list):
        own = len(data) if data and all(isinstance(v, dict) for v in data) else 0
        return max([own, *(leads_in(v) for v in data)])
    return 0


def problem_with(target: Target, response: httpx.Response, expected: bytes | None) -> str | None:
    if response.status_code != 200:
        return f"HTTP {response.status_code}"
    try:
        body = response.json()
    except ValueError:
        return "not JSON"
    if target.kind != "upstream":  # a GraphQL answer
        if not isinstance(body, dict):
            return "not a JSON object"
        if body.get("errors"):
            return f"errors: {body['errors']}"
        body = body.get("data")
    if leads_in(body) != LEADS:
        return f"{leads_in(body)} leads, expected {LEADS}"
    if expected is not None and response.content != expected:
        return "not the same bytes as the gateway's warm answer"
    return None


def check(target: Target, client: httpx.Client, expected: bytes | None = None, token: str = TOKEN) -> httpx.Response:
    """One request: 200, JSON with LEADS leads and no ``errors`` (and ``expected``'s bytes when given)."""
    response = target.send(client, token)
    problem = problem_with(target, response, expected)
    if problem:
        raise BenchError(f"{target.label}: {problem}: {response.text[:300]}\n{target.server.tail(10)}")
    return response


def upstream_calls(client: httpx.Client, upstream: Server | None) -> int | None:
    if upstream is None:
        return None
    return client.get(f"{upstream.url}/_demo/calls").json()["calls"]


def worker_pids(root: int) -> list[int]:
    """uvicorn's worker processes (spawned by multiprocessing), else the server process itself."""
    workers = [p for p in process_tree(root) if p != root and "spawn_main" in cmdline(p)]
    return workers or [root]


def settle(client: httpx.Client, upstream: Server | None, limit: float = 15) -> None:
    """Wait until the requests wrk left in flight are done (no more upstream calls), so that they are not
    counted for the next target."""
    deadline = time.monotonic() + limit
    last = upstream_calls(client, upstream)
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = upstream_calls(client, upstream)
        if now == last:
            return
        last = now


class CpuMeter:
    """CPU of the target's tree, of all this run's servers and of wrk (a waited child), and of the machine."""

    def __init__(self, target: Target, fleet_pids: list[int]):
        self.target, self.fleet_pids = target, fleet_pids
        self.start = self.read()

    def read(self) -> tuple[float, float, float, float, float]:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (tree_cpu_seconds(self.target.server.proc.pid), sum(tree_cpu_seconds(p) for p in self.fleet_pids),
                children.ru_utime + children.ru_stime, machine_busy_seconds(), time.monotonic())

    def stop(self) -> tuple[float, float]:
        """(the target's CPU seconds, the cores used by processes not of this run)."""
        end = self.read()
        server, fleet, wrk_cpu, busy, elapsed = (e - s for e, s in zip(end, self.start))
        return server, max(0.0, busy - fleet - wrk_cpu) / elapsed


def measure(target: Target, script: Path, seconds: int, client: httpx.Client, fleet: Fleet,
            warm_up: bool = False) -> Sample:
    target.server.check_alive()
    calls_before = upstream_calls(client, target.upstream)
    meter = CpuMeter(target, [s.proc.pid for s in fleet.servers])
    result = wrk.run(target.url, script, connections=target.connections, seconds=seconds)
    cpu, foreign = meter.stop()  # at wrk's end: what the server does for abandoned requests is not timed
    rss = {pid: mb for pid in process_tree(target.server.proc.pid) if (mb := rss_mb(pid)) is not None}
    workers = [rss.get(pid, 0.0) for pid in worker_pids(target.server.proc.pid)]
    settle(client, target.upstream)
    calls = upstream_calls(client, target.upstream)
    sample = Sample(result, cpu, rss, workers, None if calls is None else calls - calls_before, foreign)
    problems = verify(target, sample, warm_up)
    if problems:
        raise BenchError(f"{target.label}: {'; '.join(problems)}\n{result.text}\n{target.server.tail(10)}")
    return sample


def verify(target: Target, sample: Sample, warm_up: bool = False) -> list[str]:
    result, problems = sample.result, []
    if result.requests == 0:
        problems.append("no request completed")
    if result.non_2xx:
        problems.append(f"{result.non_2xx} non-2xx answers")
    if result.socket_errors:
        problems.append(f"{result.socket_errors} socket errors")
    # The rows must be what they say: a warm path makes no upstream call, a cold one one per request.
    # (Not during the warm-up: each worker has its own cache to fill.)
    if warm_up:
        return problems
    if target.upstream_calls == "none" and (sample.upstream_calls or 0) > target.workers - 1:
        problems.append(f"{sample.upstream_calls} upstream calls on a path that should make none "
                        f"(beyond one per worker not yet reached: {target.workers - 1})")
    if target.upstream_calls == "each" and (sample.upstream_calls or 0) < result.requests:
        problems.append(f"{sample.upstream_calls} upstream calls for {result.requests} requests (expected one each)")
    return problems


def write_script(target: Target, workdir: Path, index: int) -> Path:
    path = workdir / f"target-{index}.lua"
    path.write_text(wrk.script(target.method, target.headers, target.body, target.tokens))
    return path


# ------------------------------------------------------------------------------------------ the run

@dataclass
class Run:
    targets: dict[str, Target]
    seconds: float = 0.0
    profiles: dict[str, collections.Counter] = field(default_factory=dict)
    body_bytes: int = 0
    notes: list[str] = field(default_factory=list)


def start_servers(fleet: Fleet, hive) -> dict[str, Server]:
    """Every server but the ceiling (which needs the gateway's answer), ready, by key."""
    log("starting the upstreams and the gateways")
    up0, up20 = start_upstream(fleet, 0), start_upstream(fleet, 20)
    gw1 = start_gateway(fleet, "gateway", up0)
    gw_norc = start_gateway(fleet, "gateway no result cache", up0, result_cache=False)
    gw2 = start_gateway(fleet, "gateway 2 workers", up0, workers=2)
    gw20 = start_gateway(fleet, "gateway 20 ms", up20)
    hives = {}
    if hive is not None:  # composed and started while the gateways boot
        log("composing and starting Hive Gateway")
        hive.install()
        # Into the run's directory (the upstream's URL is baked into the supergraph), once per upstream.
        with ThreadPoolExecutor(2) as pool:
            graph0, graph20 = pool.map(lambda up: hive.compose(up.url, fleet.workdir / f"supergraph-{up.port}"),
                                       (up0, up20))
        hives = {"hive cached": start_hive(fleet, hive, "hive cached", up0, graph0, cache=True),
                 "hive uncached": start_hive(fleet, hive, "hive uncached", up0, graph0, cache=False),
                 "hive 20": start_hive(fleet, hive, "hive uncached 20 ms", up20, graph20, cache=False)}
        log("composed; waiting for the gateways and Hive Gateway")
    for server in (gw1, gw_norc, gw2, gw20):
        wait_ready(server, f"{server.url}/readyz")
    log("gateways ready")
    for server in hives.values():
        wait_ready(server, hive.ready_url(server.port), timeout=120)
    log("all servers up; checking their answers")
    return {"up0": up0, "up20": up20, "gw1": gw1, "gw_norc": gw_norc, "gw2": gw2, "gw20": gw20, **hives}


def build_targets(fleet: Fleet, args, hive, client: httpx.Client, notes: list[str]) -> dict[str, Target]:
    """Start every server and return the targets by key, each checked to answer correctly (``notes``: what was
    left out, and why)."""
    servers = start_servers(fleet, hive)
    up0, up20, gw1, gw_norc, gw2, gw20 = (servers[k] for k in ("up0", "up20", "gw1", "gw_norc", "gw2", "gw20"))
    hives = {k: v for k, v in servers.items() if k.startswith("hive")}
    body, cold = graphql_body(QUERY), {"Cache-Control": "no-cache"}
    conns = args.connections
    # The gateway makes one upstream call for concurrent identical requests, no-cache or not: the cold and
    # uncached rows take turns over more tenants than connections, so that every request needs its own
    # call. At most 48 (with TOKEN, within the demo upstream's 64 cached datasets).
    pool = [f"bench-perf-cold-{i}" for i in range(min(48, 2 * conns))]
    t = {
        "gateway warm": Target("gateway warm", gw1, conns, body=body, upstream=up0, upstream_calls="none"),
        "gateway cold": Target("gateway cold", gw1, conns, body=body, extra_headers=cold, upstream=up0,
                               upstream_calls="each", tokens=pool),
        "gateway new query": Target("gateway new query over cached pages", gw_norc, conns, body=body,
                                    upstream=up0, upstream_calls="none"),
        "gateway 2 workers": Target("gateway warm, 2 workers", gw2, conns, body=body, upstream=up0,
                                    upstream_calls="none", workers=2),
    }
    # The gateway's warm answer (the second: a result cache hit): the ceiling serves exactly these bytes.
    check(t["gateway warm"], client)
    warm = check(t["gateway warm"], client)
    warm_bytes = warm.content
    ceiling = start_ceiling(fleet, warm_bytes, warm.headers["content-type"])
    t = {"ceiling": Target("ceiling", ceiling, conns, body=body, kind="ceiling"), **t}
    if hives:
        hive_body = graphql_body(hive.QUERY)
        t["hive cached"] = Target("Hive cached", hives["hive cached"], conns, body=hive_body, upstream=up0,
                                  kind="hive")
        t["hive uncached"] = Target("Hive uncached", hives["hive uncached"], conns, body=hive_body, upstream=up0,
                                    kind="hive", tokens=pool)
    t["upstream 20"] = Target("upstream direct, 20 ms", up20, 1, method="GET",
                              path="/user/leads?page=1&per_page=15", upstream=up20, kind="upstream")
    t["gateway cold 20"] = Target("gateway cold, 20 ms upstream", gw20, 1, body=body, extra_headers=cold,
                                  upstream=up20, upstream_calls="each")
    proxy = fleet.python("bare proxy", ["-m", "bench.ceiling", "--port", "{port}", "--proxy",
                                        f"{up20.url}/user/leads?page=1&per_page=15"])
    wait_ready(proxy, f"{proxy.url}/readyz")
    t["proxy 20"] = Target("bare Python proxy, 20 ms upstream", proxy, 1, body=body, upstream=up20, kind="upstream")
    if hives:
        t["hive 20"] = Target("Hive uncached, 20 ms upstream", hives["hive 20"], 1, body=hive_body, upstream=up20,
                              kind="hive")
    for key, target in t.items():
        same = warm_bytes if key in ("ceiling", "gateway warm", "gateway 2 workers") else None
        check(target, client)  # the first (a cache miss where there is a cache), then the one compared
        check(target, client, same)
        for token in target.tokens or ():  # also builds each tenant's demo dataset before measuring
            check(target, client, token=token)
    if REQUEST_LINE not in gw1.tail(5):
        raise BenchError(f"the gateway wrote no request log line at its default settings:\n{gw1.tail(5)}")
    persisted = persisted_targets(client, gw1, gw20, up0, up20, conns)
    if isinstance(persisted, str):
        notes.append(f"Persisted-document rows left out: {persisted}")
        log(notes[-1])
        return t
    order = {"gateway warm": "gateway warm persisted", "gateway cold 20": "gateway cold persisted 20"}
    placed: dict[str, Target] = {}
    for key, target in t.items():  # each persisted row right after its sibling
        placed[key] = target
        if key in order:
            placed[order[key]] = persisted[order[key]]
    return placed


REQUEST_LINE = '"msg": "request"'


def apq_path(query: str) -> tuple[str, dict]:
    """The GET path of an Apollo APQ request for ``query`` (hash only), and its ``extensions`` object."""
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": hashlib.sha256(query.encode()).hexdigest()}}
    return "/graphql?" + urllib.parse.urlencode({"extensions": json.dumps(extensions, separators=(",", ":"))}), \
        extensions


def persisted_targets(client: httpx.Client, gw1: Server, gw20: Server, up0: Server, up20: Server,
                      conns: int) -> dict[str, Target] | str:
    """The persisted-document rows: the query registered once per gateway by an APQ POST (text and hash), then
    sent by hash alone over GET; the reason instead when the gateway does not answer them (no APQ)."""
    path, extensions = apq_path(QUERY)
    register = json.dumps({"query": QUERY, "extensions": extensions}, separators=(",", ":"))
    targets = {
        "gateway warm persisted": Target("gateway warm, persisted (APQ GET)", gw1, conns, method="GET", path=path,
                                         upstream=up0, upstream_calls="none"),
        "gateway cold persisted 20": Target("gateway cold persisted, 20 ms upstream", gw20, 1, method="GET", path=path,
                                            extra_headers={"Cache-Control": "no-cache"}, upstream=up20,
                                            upstream_calls="each"),
    }
    try:
        for target in targets.values():
            registration = Target("APQ registration", target.server, 1, body=register, upstream=target.upstream)
            check(registration, client)
            check(target, client)
            check(target, client)
    except BenchError as exc:
        return f"the gateway does not answer a persisted query by its hash ({str(exc).splitlines()[0][:300]})"
    return targets


def run(args, workdir: Path) -> Run:
    hive = None if args.no_hive else load_hive()
    started = time.monotonic()
    fleet = Fleet(workdir)
    try:
        with httpx.Client(timeout=30) as client:
            notes: list[str] = []
            targets = build_targets(fleet, args, hive, client, notes)
            scripts = {key: write_script(t, workdir, i) for i, (key, t) in enumerate(targets.items())}
            result = Run(targets, body_bytes=len(check(targets["gateway warm"], client).content), notes=notes)
            for key, target in targets.items():  # warm-up (JIT, connections, caches): not recorded
                log(f"warming {target.label}")
                measure(target, scripts[key], 1, client, fleet, warm_up=True)
            for round_no in range(1, args.rounds + 1):
                for key, target in targets.items():
                    sample = measure(target, scripts[key], args.duration, client, fleet)
                    target.samples.append(sample)
                    log(f"round {round_no}/{args.rounds}: {target.label}: {sample.result.rps:.0f} req/s, "
                        f"p50 {sample.result.p50_ms:.2f} ms (other processes: {sample.foreign_cores:.2f} cores)")
            if args.profile:
                for key in ("gateway warm", "gateway cold", "gateway new query"):
                    log(f"profiling {targets[key].label}")
                    result.profiles[targets[key].label] = profile(targets[key], scripts[key], args.profile_seconds,
                                                                  workdir)
    finally:
        fleet.close()
    result.seconds = time.monotonic() - started
    return result


_T0 = time.monotonic()


def log(message: str) -> None:
    print(f"perf: [{time.monotonic() - _T0:5.1f} s] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------ summary

@dataclass
class Row:
    key: str
    label: str
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_ms: float
    rss_mb: float
    workers_rss: list[float]
    calls_per_request: float | None
    requests: int


def summarize(key: str, target: Target) -> Row:
    samples = target.samples
    requests = sum(s.result.requests for s in samples)
    calls = [s.upstream_calls for s in samples]
    workers = [max(s.workers_rss[i] for s in samples) for i in range(len(samples[0].workers_rss))]
    return Row(
        key=key, label=target.label, connections=target.connections,
        rps=statistics.median(s.result.rps for s in samples),
        p50_ms=statistics.median(s.result.p50_ms for s in samples),
        p99_ms=statistics.median(s.result.p99_ms for s in samples),
        cpu_ms=1000 * sum(s.cpu_seconds for s in samples) / requests,
        rss_mb=max(max(s.rss.values()) for s in samples),
        workers_rss=workers,
        calls_per_request=None if None in calls else sum(calls) / requests,
        requests=requests,
    )


@dataclass
class Ratio:
    goal: str
    what: str
    value: float | None
    unit: str  # "x", "ms" or "MB"
    op: str  # ">=", "<=" or "<"
    limit: float

    @property
    def passed(self) -> bool | None:
        if self.value is None:
            return None
        return {">=": self.value >= self.limit, "<=": self.value <= self.limit, "<": self.value < self.limit}[self.op]

    def cells(self) -> list[str]:
        decimals = 1 if self.unit == "MB" else 2
        shown = "n/a" if self.value is None else (f"{self.value:.2f}x" if self.unit == "x" else
                                                   f"{self.value:.{decimals}f} {self.unit}")
        limit = f"{self.limit:g}x" if self.unit == "x" else f"{self.limit:g} {self.unit}"
        verdict = {True: "PASS", False: "MISS", None: "n/a"}[self.passed]
        symbol = {">=": "≥", "<=": "≤", "<": "<"}[self.op]
        return [self.goal, self.what, shown, f"{symbol} {limit}", verdict]


def ratios(rows: dict[str, Row]) -> tuple[list[Ratio], list[tuple[str, str]]]:
    """The issue's goals, and figures for information."""
    def div(a: str, b: str, attr: str) -> float | None:
        if a not in rows or b not in rows:
            return None
        return getattr(rows[a], attr) / getattr(rows[b], attr)

    def added(key: str) -> float | None:
        return rows[key].p50_ms - rows["upstream 20"].p50_ms if key in rows else None

    def ratio_of(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None or b <= 0 else a / b

    gateway_rss = [r.rss_mb for k, r in rows.items() if k.startswith("gateway") and r.connections > 1]
    goals = [
        Ratio("T1", "req/s: gateway warm ÷ Hive cached", div("gateway warm", "hive cached", "rps"), "x", ">=", 2.0),
        Ratio("T1", "req/s: gateway warm ÷ ceiling", div("gateway warm", "ceiling", "rps"), "x", ">=", 0.5),
        Ratio("T2", "CPU ms/request: gateway new query over cached pages ÷ Hive uncached",
              div("gateway new query", "hive uncached", "cpu_ms"), "x", "<=", 1.0),
        Ratio("T3", "p50 ms, 1 connection, 20 ms upstream: gateway cold − upstream direct",
              added("gateway cold 20"), "ms", "<=", 2.0),
        Ratio("T4", "RSS per gateway process under load (max)", max(gateway_rss), "MB", "<", 150),
        Ratio("T5", "req/s: gateway warm, 2 workers ÷ 1 worker", div("gateway 2 workers", "gateway warm", "rps"),
              "x", ">=", 1.6),
        Ratio("T6", "p50 ms, 1 connection, 20 ms upstream: (gateway cold persisted − upstream direct) ÷ "
              "(Hive uncached − upstream direct)", ratio_of(added("gateway cold persisted 20"), added("hive 20")),
              "x", "<=", 0.25),
    ]
    info = []
    if "gateway cold persisted 20" in rows:
        info.append(("p50 ms, 1 connection, 20 ms upstream: gateway cold persisted − upstream direct",
                     f"{added('gateway cold persisted 20'):.2f} ms"))
    if "gateway warm persisted" in rows:
        info.append(("req/s: gateway warm, persisted (APQ GET) ÷ ceiling",
                     f"{div('gateway warm persisted', 'ceiling', 'rps'):.2f}x"))
    if "hive 20" in rows:
        info.append(("p50 ms, 1 connection, 20 ms upstream: Hive uncached − upstream direct",
                     f"{added('hive 20'):.2f} ms"))
    if "proxy 20" in rows:
        info.append(("p50 ms, 1 connection, 20 ms upstream: bare Python proxy − upstream direct (the floor)",
                     f"{added('proxy 20'):.2f} ms"))
        if "hive 20" in rows:
            info.append(("the floor ÷ (Hive uncached − upstream direct)",
                         f"{ratio_of(added('proxy 20'), added('hive 20')):.2f}x"))
    if "hive cached" in rows:
        info.append(("req/s: Hive cached ÷ ceiling", f"{div('hive cached', 'ceiling', 'rps'):.2f}x"))
        info.append(("CPU ms/request: gateway warm ÷ Hive cached",
                     f"{div('gateway warm', 'hive cached', 'cpu_ms'):.2f}x"))
    if "hive uncached" in rows:
        info.append(("CPU ms/request: gateway cold ÷ Hive uncached",
                     f"{div('gateway cold', 'hive uncached', 'cpu_ms'):.2f}x"))
    return goals, info


def markdown_table(header: list[str], rows: list[list[str]], align: str) -> list[str]:
    return ["| " + " | ".join(header) + " |", "| " + " | ".join("---:" if a == "r" else "---" for a in align) + " |",
            *("| " + " | ".join(r) + " |" for r in rows)]


def results_table(rows: dict[str, Row]) -> list[str]:
    def rss(row: Row) -> str:
        return " / ".join(f"{mb:.0f}" for mb in row.workers_rss) if len(row.workers_rss) > 1 else f"{row.rss_mb:.0f}"

    body = [[r.label, str(r.connections), f"{r.rps:.0f}", f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}", f"{r.cpu_ms:.3f}",
             rss(r), "–" if r.calls_per_request is None else f"{r.calls_per_request:.3f}"] for r in rows.values()]
    return markdown_table(["target", "connections", "req/s", "p50 ms", "p99 ms", "CPU ms/request", "RSS MB",
                           "upstream calls/request"], body, "lrrrrrrr")


def ratios_table(goals: list[Ratio], info: list[tuple[str, str]]) -> list[str]:
    lines = markdown_table(["goal", "ratio", "measured", "target", "result"], [g.cells() for g in goals], "llrrl")
    if info:
        lines += ["", *markdown_table(["for information", "measured"], [list(i) for i in info], "lr")]
    return lines


def machine() -> str:
    def first_line(cmd: list[str]) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return "missing"

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine())
    hive_version = "n/a"
    package = ROOT / "bench" / "hive" / "node_modules" / "@graphql-hive" / "gateway" / "package.json"
    if package.exists():
        hive_version = json.loads(package.read_text()).get("version", "n/a")
    return (f"{os.cpu_count()} cores ({cpu}), Linux {platform.release()}, Python {platform.python_version()}, "
            f"Node {first_line(['node', '--version'])}, Hive Gateway {hive_version}, {wrk.version()}")


def report(result: Run, args, command: str) -> tuple[str, dict[str, Row]]:
    rows = {key: summarize(key, t) for key, t in result.targets.items()}
    goals, info = ratios(rows)
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    foreign = [s.foreign_cores for t in result.targets.values() for s in t.samples]
    lines = [
        f"`{command}`: {args.rounds} round(s) of {args.duration} s per target, alternating, "
        f"`wrk -t1 --latency`, {args.connections} connections (1 for the latency rows); "
        f"answer {result.body_bytes} bytes; run {result.seconds:.0f} s.",
        "",
        f"Machine: {machine()}; {date}. Processes not of this run used {statistics.median(foreign):.2f} cores "
        f"(median over the runs; max {max(foreign):.2f}) while wrk ran"
        + (": **a busy machine, the figures are less reliable**." if max(foreign) > 0.25 else "."),
        "",
        *results_table(rows),
        "",
        *ratios_table(goals, info),
        *(["", *result.notes] if result.notes else []),
    ]
    return "\n".join(lines), rows


# ------------------------------------------------------------------------------------------ profiles

# Frame categories, tried in order on a frame's file path (py-spy --full-filenames).
CATEGORIES = [
    ("GraphQL parsing", re.compile(r"site-packages/graphql/language/")),
    ("validation", re.compile(r"site-packages/graphql/validation/")),
    ("execution", re.compile(r"site-packages/(graphql/execution|strawberry)/")),
    ("gateway code", re.compile(re.escape(str(ROOT / "gateway")) + "/")),
    ("upstream HTTP client", re.compile(r"site-packages/(httpx|httpcore|h11)/")),
    ("JSON", re.compile(r"(/json/|site-packages/orjson)")),
    ("server/ASGI", re.compile(r"(site-packages/(uvicorn|starlette|httptools|uvloop)/|/asyncio/)")),
]
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*)\)$")


def profile(target: Target, script: Path, seconds: int, workdir: Path) -> collections.Counter:
    """py-spy samples of the server (one process) while wrk loads ``target``; stack -> samples."""
    pyspy = Path(sys.executable).with_name("py-spy")
    if not pyspy.exists():
        raise BenchError("py-spy is missing (pip install py-spy; ./dev test installs it)")
    out = workdir / f"profile-{len(list(workdir.glob('profile-*')))}.txt"
    load = threading.Thread(target=wrk.run, args=(target.url, script),
                            kwargs={"connections": target.connections, "seconds": seconds + 2}, daemon=True)
    load.start()
    time.sleep(0.5)  # sample under load only
    # Blocking (py-spy's default: the server is paused for each sample, a few % slower while profiled, but
    # --nonblocking's torn stacks put up to 10 % of the samples on the wrong function). Idle stacks are
    # left out (also the default), so the shares are of busy time. The profiled runs are not in the table.
    cmd = [str(pyspy), "record", "--pid", str(target.server.proc.pid), "--rate", os.environ.get("PYSPY_RATE", "250"), "--duration", str(seconds),
           "--format", "raw", "--full-filenames", "--nolineno", "--output", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    load.join(seconds + 30)
    if done.returncode != 0 or not out.exists():
        raise BenchError(f"py-spy failed: {done.stdout}{done.stderr}")
    stacks: collections.Counter = collections.Counter()
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[stack] += int(count)
    return stacks


def parse_frame(frame: str) -> tuple[str, str]:
    match = FRAME.match(frame)
    return (match["func"], match["file"]) if match else (frame, "")


def category(frames: list[tuple[str, str]]) -> str:
    """The category of the innermost frame that has one (a stdlib helper counts for its caller)."""
    for _, file in reversed(frames):
        for name, pattern in CATEGORIES:
            if pattern.search(file):
                return name
    return "other"


def short(func: str, file: str) -> str:
    """``func (path)`` with the path from its package on (site-packages, the project, the standard library)."""
    for prefix in (r"^.*/site-packages/", r"^.*/lib/python3\.\d+/", "^" + re.escape(str(ROOT)) + "/"):
        file, found = re.subn(prefix, "", file)
        if found:
            break
    return f"{func} ({file})"


def profile_summary(stacks: collections.Counter) -> tuple[int, list[tuple[str, float]], list[tuple[str, float]]]:
    total = sum(stacks.values())
    by_category: collections.Counter = collections.Counter()
    by_function: collections.Counter = collections.Counter()
    for stack, count in stacks.items():
        frames = [parse_frame(f) for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        by_category[category(frames)] += count
        by_function[short(*frames[-1])] += count
    shares = [(name, 100 * n / total) for name, n in by_category.most_common()]
    top = [(name, 100 * n / total) for name, n in by_function.most_common(15)]
    return total, shares, top


def profile_report(profiles: dict[str, collections.Counter], seconds: int) -> str:
    lines = [f"py-spy {seconds} s at 250 Hz per path under the same wrk load (1 worker; idle samples left out, "
             "py-spy's default: shares are of busy time; C code such as orjson counts for the Python frame "
             "that called it, and `Runner.run` stands for uvloop's C event loop: socket I/O, HTTP parsing). "
             "A sample counts for the innermost frame that has a category."]
    for label, stacks in profiles.items():
        total, shares, top = profile_summary(stacks)
        lines += ["", f"**{label}** ({total} samples)", "",
                  *markdown_table(["category", "share"], [[n, f"{s:.1f} %"] for n, s in shares], "lr"), "",
                  *markdown_table(["function (self samples)", "share"], [[n.replace("|", "\\|"), f"{s:.1f} %"]
                                                                          for n, s in top], "lr")]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ docs

def chart(rows: dict[str, Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loaded = [r for r in rows.values() if r.connections > 1]
    labels = [r.label for r in loaded]
    colors = ["#999999" if r.key == "ceiling" else "#e8a33d" if r.key.startswith("hive") else "#3d7ee8"
              for r in loaded]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    left.barh(labels, [r.rps for r in loaded], color=colors)
    left.set_xlabel("req/s (higher is better)")
    right.barh(labels, [r.cpu_ms for r in loaded], color=colors)
    right.set_xlabel("server CPU ms per request (lower is better)")
    left.invert_yaxis()
    for axis, values, fmt in ((left, [r.rps for r in loaded], "{:.0f}"), (right, [r.cpu_ms for r in loaded],
                                                                        "{:.2f}")):
        for i, value in enumerate(values):
            axis.text(value, i, " " + fmt.format(value), va="center", fontsize=8)
        axis.margins(x=0.15)
    fig.suptitle(f"{loaded[0].connections} connections, wrk -t1, one machine (grey: Python HTTP ceiling, "
                 "blue: gateway, orange: Hive Gateway)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def replace_block(text: str, begin: str, end: str, block: str, after: str | None = None) -> str:
    """``text`` with ``block`` between ``begin`` and ``end``: replaced where the markers are, else inserted
    after the marker ``after`` or, failing that, after the first paragraph under the ``# Benchmarks`` title."""
    section = f"{begin}\n\n{block}\n\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        return head + section + rest.split(end, 1)[1]
    if after and after in text:
        head, tail = text.split(after, 1)
        return head + after + "\n\n" + section + tail
    lines = text.splitlines(keepends=True)
    title = next((i for i, line in enumerate(lines) if line.strip() == "# Benchmarks"), None)
    if title is None:
        return text.rstrip("\n") + "\n\n" + section + "\n"
    i = title + 1
    while i < len(lines) and not lines[i].strip():  # blank lines before the paragraph
        i += 1
    while i < len(lines) and lines[i].strip():  # the paragraph
        i += 1
    return "".join(lines[:i]) + "\n" + section + "\n" + "".join(lines[i:])


ROW_NOTES = [
    "- **ceiling**: bare Starlette on uvicorn (the gateway's settings) returning the gateway's answer bytes: "
    "the Python HTTP ceiling;",
    "- every gateway row runs `leads-gateway serve` with its default settings: log level info, one JSON line per "
    "request on stderr, which goes to a file (as a deployment's goes to a pipe or a file);",
    "- **gateway warm**: the same tenant and query again and again, one worker: result cache hits;",
    "- **gateway warm, persisted (APQ GET)**: the same, the query sent by its hash alone "
    "(`GET /graphql?extensions={\"persistedQuery\":{\"version\":1,\"sha256Hash\":...}}`), registered once by an APQ "
    "POST carrying the text and the hash;",
    "- **gateway cold**: `Cache-Control: no-cache`, every request an upstream call (the tenants take turns, "
    "so that concurrent requests never share one);",
    "- **gateway new query over cached pages**: result cache off (`GATEWAY_RESULT_CACHE_BYTES=0`), page "
    "cache warm: the query executed every time, no upstream call;",
    "- **gateway warm, 2 workers**: `--workers 2` (RSS: each worker);",
    "- **Hive cached / uncached**: Hive Gateway (bench/hive.py) with its response cache on / off, the same "
    "data in the upstream's shape; uncached takes turns over tenants like gateway cold;",
    "- **upstream direct, 20 ms**, **gateway cold, 20 ms upstream**, **Hive uncached, 20 ms upstream**: one "
    "connection, for the latency a cache miss adds to the upstream's own (T3);",
    "- **gateway cold persisted, 20 ms upstream**: the same miss with the query sent by its APQ hash alone over GET "
    "(`Cache-Control: no-cache`): T6 compares what it adds to the upstream's latency with what Hive adds;",
    "- **bare Python proxy, 20 ms upstream**: `python -m bench.ceiling --proxy`, uvicorn forwarding each request to "
    "the upstream page on a kept-alive aiohttp session and answering its bytes, no GraphQL: the least a Python "
    "gateway on this machine adds on a miss (the floor under T3 and T6);",
    "- CPU ms/request: user + system CPU of the server's process tree during the runs ÷ requests; RSS: "
    "the largest process after a run; upstream calls/request: the demo upstream's count.",
]


def write_docs(path: Path, perf_text: str, rows: dict[str, Row], profile_text: str | None) -> Path:
    png = path.parent / "perf.png"
    chart(rows, png)
    perf_block = "\n".join([
        "## Performance against Hive Gateway and the Python ceiling (`python -m bench.perf`)",
        "",
        "Generated by `python -m bench.perf --write-docs`; edits between the markers are overwritten. "
        "Every server runs in its own process on 127.0.0.1, all through the run; the demo upstream answers "
        "at once (0 ms) unless the row says 20 ms. The rows:",
        "",
        *ROW_NOTES,
        "",
        perf_text,
        "",
        f"![req/s and CPU per request per target]({png.name})",
    ])
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    text = replace_block(text, PERF_BEGIN, PERF_END, perf_block)
    if profile_text is not None:
        block = "### Where the gateway's CPU goes (`python -m bench.perf --profile`)\n\n" + profile_text
        text = replace_block(text, PROFILE_BEGIN, PROFILE_END, block, after=PERF_END)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return png


# ------------------------------------------------------------------------------------------ main

def _terminate(signum, frame):  # SIGTERM: unwind like Ctrl-C so that the servers are stopped
    raise KeyboardInterrupt


def parse_args(argv: list[str] | None):
    parser = argparse.ArgumentParser(prog="python -m bench.perf", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true",
                        help="1 round of 1 s per target at 4 connections, no docs: checks that it works")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (whole seconds; default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections of the load rows (default 32)")
    parser.add_argument("--write-docs", action="store_true", help="write the results into --docs and perf.png")
    parser.add_argument("--docs", type=Path, default=DEFAULT_DOCS,
                        help="markdown file --write-docs updates (default docs/BENCHMARKS.md; the chart "
                             "perf.png goes beside it)")
    parser.add_argument("--profile", action="store_true",
                        help="also profile the gateway's warm, cold and new-query paths with py-spy")
    parser.add_argument("--profile-seconds", type=int, default=None,
                        help="seconds per profile (default: --duration, 2 with --smoke)")
    parser.add_argument("--no-hive", action="store_true", help="leave Hive Gateway out (its ratios: n/a)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rounds, args.duration, args.connections = 1, 1, 4
        if args.write_docs:
            parser.error("--smoke writes no docs")
    if args.profile_seconds is None:
        args.profile_seconds = 2 if args.smoke else args.duration
    if min(args.duration, args.rounds, args.connections, args.profile_seconds) < 1:
        parser.error("--duration, --rounds, --connections and --profile-seconds must be at least 1")
    if not Path("/proc/self/stat").exists():
        parser.error("this benchmark reads /proc and runs on Linux only")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = " ".join(["python -m bench.perf", *(sys.argv[1:] if argv is None else argv)])
    try:
        wrk.wrk_path()
    except RuntimeError as exc:
        print(f"perf: {exc}", file=sys.stderr)
        return 1
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        with tempfile.TemporaryDirectory(prefix="perf-") as workdir:
            result = run(args, Path(workdir))
    except KeyboardInterrupt:
        print("perf: interrupted; servers stopped", file=sys.stderr)
        return 130
    except (BenchError, RuntimeError, subprocess.SubprocessError, httpx.HTTPError) as exc:
        print(f"perf: FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    text, rows = report(result, args, command)
    print(text)
    profile_text = profile_report(result.profiles, args.profile_seconds) if result.profiles else None
    if profile_text:
        print("\n" + profile_text)
    if args.write_docs:
        png = write_docs(args.docs, text, rows, profile_text)
        log(f"wrote {args.docs} and {png}")
    log(f"done in {result.seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
