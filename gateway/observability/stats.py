"""Counters and histograms of requests, upstream calls and the cache.

Plain Python, cheap to update on hot paths and free of any metrics library; ``metrics.py`` exports
them in Prometheus format at scrape time. Tests read them directly.
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
MAX_OPERATION_NAMES = 200  # distinct operation-name labels kept; the rest are counted as "other"


@dataclass
class Histogram:
    buckets: tuple[float, ...] = LATENCY_BUCKETS
    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    total: float = 0.0
    count: int = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.count += 1


@dataclass
class Stats:
    upstream_requests: Counter = field(default_factory=Counter)  # by outcome: "ok" or an error code
    upstream_responses: Counter = field(default_factory=Counter)  # by (HTTP status or "none", outcome)
    upstream_retries: int = 0
    upstream_latency: Histogram = field(default_factory=Histogram)
    upstream_inflight: int = 0
    upstream_queued: int = 0  # waiting for a free upstream slot (GATEWAY_UPSTREAM_CONCURRENCY)
    cache_hits: int = 0
    cache_misses: int = 0
    result_cache_hits: int = 0  # whole answers served from the result cache (no execution)
    stale_served: Counter = field(default_factory=Counter)  # by reason: "revalidating", "upstream-error"
    coalesced_waiters: Counter = field(default_factory=Counter)  # by scope: "process", "instances"
    graphql_requests: Counter = field(default_factory=Counter)  # by (operation name, outcome)
    graphql_latency: Histogram = field(default_factory=Histogram)
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
