"""Cache benchmark: the gateway's cold, warm and coalesced paths against the upstream called directly.

Starts, on loopback and in one run, the demo upstream (20 ms latency by default) and one gateway
process, then measures with an asyncio HTTP client:
- direct: the upstream's own page request (the baseline every ratio divides by);
- cold: every GraphQL request a cache miss (``Cache-Control: no-cache``, callers taking turns);
- warm: the same caller and query again and again (cache hits);
- burst: bursts of identical queries arriving together, a caller with a cold cache each (coalesced).
Callers come from pools of tokens whose demo datasets are built before measuring, so the upstream
does the same work for the direct and the gateway requests.
For each: p50/p99 latency, requests per second, and upstream requests per request.

    python -m bench.cache_bench [--requests 400] [--concurrency 16] [--burst 50] [--latency-ms 20]
    python -m bench.cache_bench --smoke      # a few requests: checks that it works, not the figures
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from bench.common import free_port, wait_up

QUERY = ("query { leads(first: 15) { totalCount pageInfo { hasNextPage endCursor } "
         "nodes { id databaseId customerName phoneNumber status createdAt campaign { name } "
         "secondaryContacts { phoneNumber status } } } }")


@dataclass
class Result:
    name: str
    latencies: list[float]
    seconds: float
    upstream_calls: int

    @property
    def count(self) -> int:
        return len(self.latencies)

    def pct(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000

    @property
    def rps(self) -> float:
        return self.count / self.seconds

    @property
    def upstream_per_request(self) -> float:
        return self.upstream_calls / self.count


@contextmanager
def servers(latency_ms: float):
    up_port, gw_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "DEMO_"))}
    upstream = subprocess.Popen([sys.executable, "-m", "gateway.cli", "demo-upstream", "--port", str(up_port),
                                 "--latency-ms", str(latency_ms), "--log-level", "warning"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    gw_env = {**env, "GATEWAY_UPSTREAM_URL": f"http://127.0.0.1:{up_port}", "GATEWAY_CACHE_TTL": "300"}
    gateway = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--port", str(gw_port),
                                "--log-level", "warning"], env=gw_env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_up(f"http://127.0.0.1:{up_port}/healthz", upstream)
        wait_up(f"http://127.0.0.1:{gw_port}/readyz", gateway)
        yield f"http://127.0.0.1:{up_port}", f"http://127.0.0.1:{gw_port}"
    finally:
        for proc in (gateway, upstream):
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


async def upstream_calls(client: httpx.AsyncClient, upstream: str) -> int:
    return (await client.get(f"{upstream}/_demo/calls")).json()["calls"]


async def timed(send) -> float:
    started = time.perf_counter()
    response = await send()
    elapsed = time.perf_counter() - started
    if response.status_code != 200 or b'"errors"' in response.content:
        raise RuntimeError(f"bad response: {response.status_code} {response.text[:200]}")
    return elapsed


async def closed_loop(n: int, concurrency: int, make_send) -> tuple[list[float], float]:
    """n requests by ``concurrency`` workers, each sending its next request when the last returns."""
    latencies: list[float] = []
    counter = iter(range(n))

    async def worker():
        for i in counter:
            latencies.append(await timed(make_send(i)))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started


async def bursts(count: int, size: int, make_send) -> tuple[list[float], float]:
    """``count`` bursts of ``size`` requests sent at once; the next burst starts when one has returned."""
    latencies: list[float] = []
    started = time.perf_counter()
    for b in range(count):
        latencies += await asyncio.gather(*(timed(make_send(b * size + i)) for i in range(size)))
    return latencies, time.perf_counter() - started


async def run(args) -> list[Result]:
    results = []
    limits = httpx.Limits(max_connections=max(args.concurrency, args.burst) + 4)
    with servers(args.latency_ms) as (upstream, gateway):
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            def gql(token: str, fresh: bool = False):
                headers = {"Authorization": f"Bearer {token}"}
                if fresh:
                    headers["Cache-Control"] = "no-cache"
                return lambda: client.post(f"{gateway}/graphql", json={"query": QUERY}, headers=headers)

            def direct(token: str):
                return lambda: client.get(f"{upstream}/user/leads", params={"page": 1, "per_page": 15},
                                          headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})

            async def measure(name: str, n: int, concurrency: int, make_send, driver=closed_loop) -> None:
                before = await upstream_calls(client, upstream)
                latencies, seconds = await driver(n, concurrency, make_send)
                results.append(Result(name, latencies, seconds, await upstream_calls(client, upstream) - before))

            run_id = uuid.uuid4().hex[:6]
            pool = [f"bench-{run_id}-{k}" for k in range(50)]
            n_bursts = max(1, min(12, args.requests // args.burst))  # the demo caches 64 datasets
            burst_pool = [f"burst-{run_id}-{k}" for k in range(n_bursts)]
            # Build the pools' demo datasets and warm connections and code paths (not measured).
            await closed_loop(len(pool), 4, lambda i: direct(pool[i]))
            await closed_loop(len(burst_pool), 4, lambda i: direct(burst_pool[i]))
            await closed_loop(20, 4, lambda i: gql(pool[i % 3], fresh=True))

            await measure("direct upstream", args.requests, args.concurrency, lambda i: direct(pool[i % 50]))
            await measure("gateway cold", args.requests, args.concurrency, lambda i: gql(pool[i % 50], fresh=True))
            await gql(pool[0])()
            await measure("gateway warm", args.requests, args.concurrency, lambda i: gql(pool[0]))
            await measure("direct upstream, bursts", n_bursts, args.burst,
                          lambda i: direct(burst_pool[i // args.burst]), driver=bursts)
            await measure("gateway burst", n_bursts, args.burst,
                          lambda i: gql(burst_pool[i // args.burst]), driver=bursts)
    return results


def report(results: list[Result], args) -> str:
    by_name = {r.name: r for r in results}
    baseline = {"gateway cold": "direct upstream", "gateway warm": "direct upstream",
                "gateway burst": "direct upstream, bursts"}
    lines = [
        f"demo upstream latency {args.latency_ms:g} ms; {args.requests} requests per scenario; "
        f"concurrency {args.concurrency} (bursts of {args.burst}); {os.cpu_count()} cores",
        "",
        "| scenario | p50 ms | p99 ms | req/s | upstream calls per request | p50 vs direct | p99 vs direct "
        "| req/s vs direct | upstream calls vs direct |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        base = by_name[baseline.get(r.name, r.name)]
        lines.append(f"| {r.name} | {r.pct(50):.1f} | {r.pct(99):.1f} | {r.rps:.0f} | {r.upstream_per_request:.3f} | "
                     f"{r.pct(50) / base.pct(50):.2f}x | {r.pct(99) / base.pct(99):.2f}x | {r.rps / base.rps:.2f}x | "
                     f"{r.upstream_per_request / base.upstream_per_request:.3f}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--burst", type=int, default=50)
    parser.add_argument("--latency-ms", type=float, default=20)
    parser.add_argument("--smoke", action="store_true", help="a few requests only")
    args = parser.parse_args(argv)
    if args.smoke:
        args.requests, args.concurrency, args.burst = 20, 4, 10
    results = asyncio.run(run(args))
    print(report(results, args))
    by_name = {r.name: r for r in results}
    cold, warm, burst = by_name["gateway cold"], by_name["gateway warm"], by_name["gateway burst"]
    # The properties the cache promises; the figures above are for reading, these must hold.
    assert cold.upstream_per_request == 1.0, cold.upstream_per_request
    assert warm.upstream_calls == 0, warm.upstream_calls
    assert burst.upstream_per_request == 1 / args.burst, burst.upstream_per_request
    return 0


if __name__ == "__main__":
    sys.exit(main())
