"""Request ids, request logs, /metrics, tracing, and no token anywhere it should not be."""

from __future__ import annotations

import re

import pytest

from gateway.demo.app import DemoOptions
from tests.conftest import skip_or_fail

Q = "query ListLeads { leads(first: 3) { totalCount nodes { databaseId } } }"


def request_logs(caplog) -> list[dict]:
    return [r.fields for r in caplog.records if r.name == "gateway.request"]


def test_request_ids_are_accepted_generated_returned_and_forwarded(gateway, fresh_upstream, token):
    given = gateway.post(Q, token=token, headers={"X-Request-ID": "trace-42.a"})
    assert given.headers["x-request-id"] == "trace-42.a"
    assert fresh_upstream.calls(token)[-1].request_id == "trace-42.a"
    made = gateway.post(Q + " ", token=token)  # another document, so another... same page: no new call
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    hostile = gateway.post(Q, token=token, headers={"X-Request-ID": "a" * 300})
    assert hostile.headers["x-request-id"] != "a" * 300 and len(hostile.headers["x-request-id"]) == 32
    assert gateway.client.get("/healthz").headers["x-request-id"]


def test_one_structured_log_line_per_request(make_gateway, fresh_upstream, token, caplog):
    gw = make_gateway(cache_ttl=30)
    with caplog.at_level("INFO", logger="gateway.request"):
        gw.post(Q, token=token, headers={"X-Request-ID": "first"})
        gw.post(Q, token=token, headers={"X-Request-ID": "second"})
        gw.post('{ leads(after: "nope") { totalCount } }', token=token, headers={"X-Request-ID": "third"})
    logs = {entry["request_id"]: entry for entry in request_logs(caplog)}
    assert set(logs) == {"first", "second", "third"}
    first, second, third = logs["first"], logs["second"], logs["third"]
    assert first["operation"] == "ListLeads" and first["status"] == 200 and first["path"] == "/graphql"
    assert (first["upstream_calls"], first["cache_hits"]) == (1, 0)
    assert (second["upstream_calls"], second["cache_hits"]) == (0, 1)
    assert third["error_codes"] == ["BAD_USER_INPUT"] and third["operation"] is None
    assert all(isinstance(e["duration_ms"], float) for e in logs.values())


def test_metrics_in_prometheus_format(make_gateway, fresh_upstream, token):
    gw = make_gateway(cache_ttl=30)
    gw.post(Q, token=token)
    gw.post(Q, token=token)
    gw.post(Q, token="fault-503")
    text = gw.client.get("/metrics")
    assert text.headers["content-type"].startswith("text/plain")
    body = text.text
    assert 'leads_gateway_graphql_requests_total{operation="ListLeads",outcome="ok"} 2.0' in body
    assert 'leads_gateway_graphql_requests_total{operation="ListLeads",outcome="UPSTREAM_UNAVAILABLE"} 1.0' in body
    assert 'leads_gateway_upstream_requests_total{outcome="ok",status="200"} 1.0' in body
    assert 'leads_gateway_upstream_requests_total{outcome="UPSTREAM_UNAVAILABLE",status="503"} 1.0' in body
    assert "leads_gateway_cache_hits_total 1.0" in body and "leads_gateway_cache_misses_total 2.0" in body
    assert 'leads_gateway_breaker_state{state="closed"} 1.0' in body
    assert "leads_gateway_graphql_request_duration_seconds_count 3.0" in body
    assert "leads_gateway_upstream_request_duration_seconds_bucket" in body
    assert 'leads_gateway_cache_backend_up{backend="memory"} 1.0' in body
    assert "leads_gateway_inflight_requests 1.0" in body  # the scrape itself


def test_operation_names_cannot_grow_the_metrics_without_bound(make_gateway, token):
    gw = make_gateway(cache_ttl=30)
    for i in range(210):
        gw.post(f"query Op{i} {{ leads(first: 1) {{ totalCount }} }}", token=token)
    body = gw.client.get("/metrics").text
    names = set(re.findall(r'leads_gateway_graphql_requests_total\{operation="([^"]+)"', body))
    assert len(names) == 201 and "other" in names


SECRET = "SECRET-TOKEN-7f3e9a1c"


@pytest.mark.parametrize("fault", [None, "500", "502", "503", "429", "slow", "malformed", "html", "shape"])
def test_the_token_appears_nowhere(make_gateway, fresh_upstream, caplog, fault):
    """Every error path driven with a recognisable token: not in responses, logs or metrics."""
    gw = make_gateway(cache_ttl=0, upstream_timeout=0.3, upstream_retries=1)
    fresh_upstream.app.state.options = DemoOptions(fault=fault, slow_seconds=1, retry_after=0)
    bodies = []
    with caplog.at_level("DEBUG"):
        for query in (Q, '{ leads(after: "garbage") { totalCount } }', "{ lead(databaseId: 5) { id } }",
                      '{ node(id: "x") { id } }', "{ leads(first: ", "{ nope }"):
            response = gw.post(query, token=SECRET)
            bodies.append(response.text + str(dict(response.headers)))
        for token in (f"revoked-{SECRET}", f"forbidden-{SECRET}"):
            response = gw.post(Q, token=token)
            if fault is None:  # (an injected fault comes before the upstream's policy check)
                assert response.json()["errors"][0]["extensions"]["code"] in ("UNAUTHENTICATED", "FORBIDDEN")
            bodies.append(response.text + str(dict(response.headers)))
    metrics = gw.client.get("/metrics").text
    assert fresh_upstream.calls(SECRET), "the upstream saw the token (the test really used it)"
    for text in (*bodies, metrics, caplog.text, *(str(r.__dict__) for r in caplog.records)):
        assert SECRET not in text


def test_internal_errors_are_logged_with_the_request_id(make_gateway, fresh_upstream, token, caplog):
    gw = make_gateway(cache_ttl=0)

    class Broken:
        async def fetch_page(self, token, request, **_):
            raise RuntimeError("kaboom")

    gw.server.server.config.app.state.sources.api = Broken()
    with caplog.at_level("INFO"):
        response = gw.post(Q, token=token, headers={"X-Request-ID": "req-77"})
    assert response.json()["errors"][0] == {**response.json()["errors"][0], "message": "Internal server error."}
    failure = next(r for r in caplog.records if r.name == "gateway.errors")
    assert failure.fields["request_id"] == "req-77" and "kaboom" in caplog.text
    assert "kaboom" not in response.text


def test_spans_for_the_operation_and_each_upstream_call(make_gateway, fresh_upstream, token):
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
    except ImportError:
        skip_or_fail("opentelemetry-sdk is not installed (pip install -e '.[test]')")
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    gw = make_gateway(cache_ttl=0)
    gw.post("query Two { a: leads(first: 3) { totalCount } b: leads(first: 4) { totalCount } }", token=token,
            headers={"X-Request-ID": "span-1"})
    spans = exporter.get_finished_spans()
    operation = [s for s in spans if s.name == "graphql.operation"]
    upstream = [s for s in spans if s.name == "upstream GET /user/leads"]
    assert len(operation) == 1 and operation[0].attributes["graphql.operation.name"] == "Two"
    assert operation[0].attributes["leads_gateway.request_id"] == "span-1"
    assert sorted(s.attributes["leads_gateway.per_page"] for s in upstream) == [3, 4]
    assert all(s.attributes["http.response.status_code"] == 200 for s in upstream)
    assert all(s.parent is not None and s.parent.span_id == operation[0].context.span_id for s in upstream)
    assert token not in str([dict(s.attributes) for s in spans])
