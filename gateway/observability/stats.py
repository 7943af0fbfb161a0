"""Counters and histograms of requests, upstream calls and the cache.

Counters are plain Python (an integer increment on hot paths; tests read them directly) that
``metrics.py`` exports at scrape time. The two latency histograms are prometheus-client's own
``Histogram``: an ``observe`` takes 1-1.5 µs (a lock per update) against 0.2-0.3 µs for the hand-written
one it replaced, under 0.5 % of a warm request's 0.26 ms of CPU: within noise.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from prometheus_client import Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
MAX_OPERATION_NAMES = 200  # distinct operation-name labels kept; the rest are counted as "other"


def _latency(name: str, doc: str) -> Histogram:
    # registry=None: collected through its app's own registry (metrics.py); the global one refuses a second app's
    return Histogram(name, doc, buckets=LATENCY_BUCKETS, registry=None)


@dataclass
class Stats:
    upstream_requests: Counter = field(default_factory=Counter)  # by outcome: "ok" or an error code
    upstream_responses: Counter = field(default_factory=Counter)  # by (HTTP status or "none", outcome)
    upstream_retries: int = 0
    upstream_latency: Histogram = field(default_factory=lambda: _latency(
        "leads_gateway_upstream_request_duration_seconds", "Upstream call latency."))
    upstream_inflight: int = 0
    upstream_queued: int = 0  # waiting for a free upstream slot (GATEWAY_UPSTREAM_CONCURRENCY)
    cache_hits: int = 0
    cache_misses: int = 0
    result_cache_hits: int = 0  # whole answers served from the result cache (no execution)
    stale_served: Counter = field(default_factory=Counter)  # by reason: "revalidating", "upstream-error"
    coalesced_waiters: Counter = field(default_factory=Counter)  # by scope: "process", "instances"
    graphql_requests: Counter = field(default_factory=Counter)  # by (operation name, outcome)
    graphql_latency: Histogram = field(default_factory=lambda: _latency(
        "leads_gateway_graphql_request_duration_seconds", "GraphQL request latency."))
    inflight: int = 0  # HTTP requests being served
    operation_names: set = field(default_factory=set)

    def count_operation(self, operation: str | None, outcome: str) -> None:
        name = (operation or "anonymous")[:64]
        if name not in self.operation_names:
            if len(self.operation_names) >= MAX_OPERATION_NAMES:
                name = "other"  # clients choose operation names: never let them grow the label set unbounded
            else:
                self.operation_names.add(name)
        self.graphql_requests[(name, outcome)] += 1

    def snapshot(self) -> dict:
        return {
            "upstream_requests": dict(self.upstream_requests),
            "cache_hits": self.cache_hits,
            "cache_misses": self.cache_misses,
            "stale_served": dict(self.stale_served),
            "coalesced_waiters": dict(self.coalesced_waiters),
        }
