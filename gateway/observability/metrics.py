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
WRITE_RESULTS = ("created", "found", "replayed", "refused", "unknown", "failed")
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
    # Tenant isolation (datasource/traffic/): attempts by classified outcome, calls the gateway refused by
    # reason, breaker transitions by (scope, state), and the wait for a slot of the caller's fair share.
    upstream_outcomes: Counter = field(default_factory=Counter)
    rejected: Counter = field(default_factory=Counter)
    breaker_transitions: Counter = field(default_factory=Counter)
    held_refusals: int = 0  # 429s held a moment because the caller came back before its retryAfter
    upstream_queue_wait: Histogram = field(default_factory=lambda: _latency(
        "leads_gateway_upstream_queue_wait_seconds", "Wait for an upstream slot (the caller's fair share)."))
    cache_hits: int = 0
    cache_misses: int = 0
    result_cache_hits: int = 0  # whole answers served from the result cache (no execution)
    stale_served: Counter = field(default_factory=Counter)  # by reason: "revalidating", "upstream-error"
    coalesced_waiters: Counter = field(default_factory=Counter)  # by scope: "process", "instances"
    graphql_requests: Counter = field(default_factory=Counter)  # by (operation name, outcome)
    graphql_latency: Histogram = field(default_factory=lambda: _latency(
        "leads_gateway_graphql_request_duration_seconds", "GraphQL request latency."))
    inflight: int = 0  # HTTP requests being served
    # createLead (datasource/writes.py) by result: created, found (an unknown outcome settled by a lookup),
    # replayed (an idempotency key's first outcome), refused (userErrors), unknown, failed.
    lead_writes: Counter = field(default_factory=Counter)
    invalidations: int = 0  # callers' cached data dropped by a write (one generation bump each)
    # Live data (datasource/live/): polls made by this process, those that failed, states handed to
    # subscribers; the gauges are read from the hub when scraped (``live``).
    live_polls: int = 0
    live_poll_failures: int = 0
    live_pushes: int = 0
    live: object | None = None
    # Persisted documents (graphql/persisted.py): operations by where their document came from (manifest,
    # apq, text), refusals by code, APQ registrations; the manifests' size is read when scraped.
    documents: Counter = field(default_factory=Counter)
    document_refusals: Counter = field(default_factory=Counter)
    apq_registrations: int = 0
    persisted: object | None = None
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


DOCUMENT_REFUSALS = ("PERSISTED_QUERY_NOT_FOUND", "PERSISTED_QUERY_NOT_SUPPORTED", "PERSISTED_QUERY_HASH_MISMATCH",
                     "PERSISTED_QUERY_NOT_IN_LIST", "QUERY_NOT_IN_SAFELIST")


class GatewayCollector:
    def __init__(self, stats: Stats, traffic, cache, rate_limiter=None) -> None:
        self.stats, self.traffic, self.cache, self.rate_limiter = stats, traffic, cache, rate_limiter

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
        yield from self._traffic()

        for name, doc, value in (
            ("leads_gateway_cache_hits", "Pages (or whole answers) served fresh from the cache.", s.cache_hits),
            ("leads_gateway_cache_misses", "Pages not in the cache (or bypassed).", s.cache_misses),
            ("leads_gateway_result_cache_hits", "Answers served whole from the result cache.", s.result_cache_hits),
        ):
            c = CounterMetricFamily(name, doc)
            c.add_metric([], value)
            yield c
        yield _counter("leads_gateway_lead_writes", "createLead calls by result (created, found: an unknown outcome "
                       "settled by looking the lead up, replayed: an idempotency key's first outcome, refused, "
                       "unknown, failed).", s.lead_writes, "result", WRITE_RESULTS)
        yield _counter("leads_gateway_cache_invalidations", "Callers whose cached pages and answers a write made "
                       "stale (one generation bump each).", s.invalidations)
        yield from self._live()
        yield from self._documents()
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

        store = self.cache.store
        cache_up = GaugeMetricFamily("leads_gateway_cache_backend_up", "1 when the configured cache backend "
                                     "is in use (0: Redis unreachable, in-process fallback).", labels=["backend"])
        cache_up.add_metric([store.backend], 1 if store.state == "up" else 0)
        yield cache_up


    def _live(self):
        s = self.stats
        for name, doc, value in (
            ("leads_gateway_live_polls", "Upstream polls of watched windows made by this process.", s.live_polls),
            ("leads_gateway_live_poll_failures", "Polls of watched windows that failed.", s.live_poll_failures),
            ("leads_gateway_live_pushes", "States handed to subscribers (a change, or the first state).",
             s.live_pushes),
        ):
            c = CounterMetricFamily(name, doc)
            c.add_metric([], value)
            yield c
        hub = s.live
        if hub is not None:
            yield _gauge("leads_gateway_live_subscriptions", "Subscriptions open on this process.", hub.subscribers)
            yield _gauge("leads_gateway_live_groups", "Watched windows (caller, filter, window) served here.",
                         hub.groups)
            yield _gauge("leads_gateway_live_polling_groups", "Watched windows this process polls (holds the "
                         "lease of).", hub.polling())

    def _documents(self):
        s = self.stats
        yield _counter("leads_gateway_documents", "Operations run, by where their document came from: a manifest, "
                       "an APQ registration, or the text sent (ad hoc).", s.documents, "source",
                       ("manifest", "apq", "text"))
        yield _counter("leads_gateway_document_refusals", "Requests refused by the persisted-document rules, by "
                       "code.", s.document_refusals, "code", DOCUMENT_REFUSALS)
        yield _counter("leads_gateway_apq_registrations", "Documents registered by Apollo's automatic persisted "
                       "queries on this process.", s.apq_registrations)
        if s.persisted is not None:
            yield _gauge("leads_gateway_persisted_documents", "Documents loaded from the persisted-document "
                         "manifests.", len(s.persisted.manifest))

    def _traffic(self):
        """Tenant isolation: outcome classes, refusals, breakers, the fair share's queue and limit."""
        s, traffic = self.stats, self.traffic
        outcomes = CounterMetricFamily("leads_gateway_upstream_outcomes", "Upstream attempts by classified "
                                       "outcome and its kind (outage, caller-failure, caller-mistake, slow-down).",
                                       labels=["outcome", "kind"])
        for outcome, kind in traffic.OUTCOME_LABELS:
            outcomes.add_metric([outcome, kind], s.upstream_outcomes[outcome])
        yield outcomes
        rejected = s.rejected.copy()
        if self.rate_limiter is not None:
            rejected["rate_limit"] = self.rate_limiter.refused
        refused = CounterMetricFamily("leads_gateway_rejected_requests", "Calls the gateway refused to protect "
                                      "the upstream or other callers, by reason.", labels=["reason"])
        for reason in (*traffic.REFUSAL_REASONS, "rate_limit"):
            refused.add_metric([reason], rejected[reason])
        yield refused
        held = CounterMetricFamily("leads_gateway_held_refusals", "429 refusals held up to a second because the "
                                   "caller came back before the retryAfter it was given.")
        held.add_metric([], s.held_refusals)
        yield held
        failed_open = CounterMetricFamily("leads_gateway_rate_limit_failed_open", "Requests let through uncounted "
                                          "because the rate limit's Redis did not answer (GATEWAY_RATE_LIMIT).")
        failed_open.add_metric([], self.rate_limiter.failed_open if self.rate_limiter is not None else 0)
        yield failed_open
        breaker = GaugeMetricFamily("leads_gateway_breaker_state", "Upstream circuit breaker state (1 for the "
                                    "current state).", labels=["state"])
        for state in BREAKER_STATES:
            breaker.add_metric([state], 1 if traffic.breaker_state == state else 0)
        yield breaker
        transitions = CounterMetricFamily("leads_gateway_breaker_transitions", "Breaker state changes, of the "
                                          "upstream's breaker or of a caller's own.", labels=["scope", "state"])
        for scope in ("upstream", "caller"):
            for state in ("open", "closed"):
                transitions.add_metric([scope, state], s.breaker_transitions[(scope, state)])
        yield transitions
        yield from _histogram(s.upstream_queue_wait)
        limiter = traffic.limiter
        for name, doc, value in (
            ("leads_gateway_upstream_inflight", "Upstream requests in flight.", s.upstream_inflight),
            ("leads_gateway_upstream_queued", "Upstream requests waiting for a slot.", limiter.queued),
            ("leads_gateway_upstream_concurrency_limit", "Upstream slots now (AIMD, up to "
             "GATEWAY_UPSTREAM_CONCURRENCY).", limiter.capacity),
            ("leads_gateway_paused_callers", "Callers whose own breaker is not closed.",
             traffic.breakers.paused_callers()),
        ):
            g = GaugeMetricFamily(name, doc)
            g.add_metric([], value)
            yield g


def _counter(name: str, doc: str, counts, label: str | None = None, keys=()) -> CounterMetricFamily:
    """A counter family: one value (``counts`` a number), or one per key of ``keys`` (``counts`` a Counter)."""
    c = CounterMetricFamily(name, doc, labels=[label] if label else None)
    if label is None:
        c.add_metric([], counts)
    for key in keys:
        c.add_metric([key], counts[key])
    return c


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    g = GaugeMetricFamily(name, doc)
    g.add_metric([], value)
    return g


def metrics_registry(stats: Stats, traffic, cache, rate_limiter=None) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GatewayCollector(stats, traffic, cache, rate_limiter))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
