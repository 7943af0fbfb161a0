"""``/metrics``: the gateway's counters in Prometheus text format (prometheus-client).

Values live in ``Stats`` (and the breaker and cache store); a collector reads them at scrape time, so
hot paths pay for a plain integer increment, not a metrics-library call; the latency histograms are
prometheus-client's, collected with the rest. No label ever carries a token or a caller: labels are
operation names (bounded), outcomes (error codes), HTTP statuses, reasons.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from gateway.observability.stats import Stats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BREAKER_STATES = ("closed", "half-open", "open")


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
