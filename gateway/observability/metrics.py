"""The gateway's metrics: what is counted (``Stats``) and ``/metrics``, its Prometheus text (prometheus-client).

Counters are plain Python in ``Stats`` (an integer increment on hot paths; tests read them directly),
exported by a collector at scrape time with the breaker's and the cache store's state. The two latency
histograms are prometheus-client's own ``Histogram``: an ``observe`` takes 1-1.5 µs (a lock per update)
against 0.2-0.3 µs for the hand-written one it replaced, under 0.5 % of a warm request's 0.26 ms of CPU.
No label ever carries a token or a caller: labels are operation names (bounded), outcomes (error codes),
HTTP statuses, reasons.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BREAKER_STATES = ("closed", "half-open", "open")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
MAX_OPERATION_NAMES = 200  # distinct operation-name labels kept; the rest are counted as "other"


def _latency(name: str, doc: str) -> Histogram:
    # registry=None: collected through its app's own registry (below); the global one refuses a second app's
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


def _histogram(h: Histogram):
    """The histogram's families without the ``_created`` gauge prometheus-client adds (``/metrics`` never had
    one; switching it off globally would reach every other user of the library in the process)."""
    for metric in h.collect():
        metric.samples = [x for x in metric.samples if x.name != metric.name + "_created"]
        yield metric


class GatewayCollector:
    def __init__(self, stats: Stats, breaker, cache) -> None:
        self.stats, self.breaker, self.cache = stats, breaker, cache

    def collect(self):
        s = self.stats
        graphql = CounterMetricFamily("leads_gateway_graphql_requests", "GraphQL operations by name and outcome "
                                      "(ok or the first error code).", labels=["operation", "outcome"])
        for (operation, outcome), n in sorted(s.graphql_requests.items()):
            graphql.add_metric([operation, outcome], n)
        yield graphql
        yield from _histogram(s.graphql_latency)
        inflight = GaugeMetricFamily("leads_gateway_inflight_requests", "HTTP requests being served.")
        inflight.add_metric([], s.inflight)
        yield inflight

        upstream = CounterMetricFamily("leads_gateway_upstream_requests", "Upstream attempts by HTTP status "
                                       "(none: no answer) and outcome.", labels=["status", "outcome"])
        for (status, outcome), n in sorted(s.upstream_responses.items()):
            upstream.add_metric([status, outcome], n)
        yield upstream
        retries = CounterMetricFamily("leads_gateway_upstream_retries", "Upstream attempts that were retries.")
        retries.add_metric([], s.upstream_retries)
        yield retries
        yield from _histogram(s.upstream_latency)
        for name, doc, value in (
            ("leads_gateway_upstream_inflight", "Upstream requests in flight.", s.upstream_inflight),
            ("leads_gateway_upstream_queued", "Upstream requests waiting for a slot.", s.upstream_queued),
        ):
            g = GaugeMetricFamily(name, doc)
            g.add_metric([], value)
            yield g

        for name, doc, value in (
            ("leads_gateway_cache_hits", "Pages (or whole answers) served fresh from the cache.", s.cache_hits),
            ("leads_gateway_cache_misses", "Pages not in the cache (or bypassed).", s.cache_misses),
            ("leads_gateway_result_cache_hits", "Answers served whole from the result cache.", s.result_cache_hits),
        ):
            c = CounterMetricFamily(name, doc)
            c.add_metric([], value)
            yield c
        stale = CounterMetricFamily("leads_gateway_cache_stale_served", "Expired pages served, by reason.",
                                    labels=["reason"])
        for reason in ("revalidating", "upstream-error"):
            stale.add_metric([reason], s.stale_served[reason])
        yield stale
        coalesced = CounterMetricFamily("leads_gateway_coalesced_waiters", "Requests that joined an upstream call "
                                        "already in flight, by scope.", labels=["scope"])
        for scope in ("process", "instances"):
            coalesced.add_metric([scope], s.coalesced_waiters[scope])
        yield coalesced

        breaker = GaugeMetricFamily("leads_gateway_breaker_state", "Upstream circuit breaker state (1 for the "
                                    "current state).", labels=["state"])
        for state in BREAKER_STATES:
            breaker.add_metric([state], 1 if self.breaker.state == state else 0)
        yield breaker
        store = self.cache.store
        cache_up = GaugeMetricFamily("leads_gateway_cache_backend_up", "1 when the configured cache backend "
                                     "is in use (0: Redis unreachable, in-process fallback).", labels=["backend"])
        cache_up.add_metric([store.backend], 1 if store.state == "up" else 0)
        yield cache_up


def metrics_registry(stats: Stats, breaker, cache) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GatewayCollector(stats, breaker, cache))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
