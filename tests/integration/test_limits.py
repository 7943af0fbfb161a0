"""Request limits, batching, introspection and CORS, over real HTTP: every over-limit request is
refused with its code and the measured value before any upstream call; one just under is served."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import httpx
import pytest

from gateway.app import create_app
from gateway.config import Settings
from gateway.http.cors import CORSMiddleware
from gateway.leads.ids import to_global_id
from gateway.serving import start_in_thread

GQL = {"Accept": "application/graphql-response+json"}


def refused(response: httpx.Response, name: str, limit: int, measured: int | None = None) -> dict:
    """A request error for one exceeded limit: 400, no `data` entry, the limit and the measured value."""
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/graphql-response+json")
    body = response.json()
    assert "data" not in body, body
    [error] = body["errors"]
    ext = error["extensions"]
    assert ext["code"] == "QUERY_TOO_COMPLEX" and ext["limitName"] == name and ext["limit"] == limit, error
    assert ext["measured"] > limit
    if measured is not None:
        assert ext["measured"] == measured, error
    return error


def served(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


# --- depth ---------------------------------------------------------------------------------------

DEPTH_5 = "{ leads(first: 1) { edges { node { campaign { name } } } } }"
DEPTH_4 = "{ leads(first: 1) { edges { node { databaseId } } } }"
DEPTH_5_IN_FRAGMENTS = """
{ ...Root }
fragment Root on Query { leads(first: 1) { ...Conn } }
fragment Conn on LeadConnection { edges { node { ... on Lead { campaign { name } } } } }
"""


@pytest.fixture(scope="module")
def depth_gw(make_gateway):
    return make_gateway(cache_ttl=0, max_depth=4)


def test_depth_over_the_limit_is_refused_without_upstream_call(depth_gw, fresh_upstream, token):
    error = refused(depth_gw.post(DEPTH_5, token=token, headers=GQL), "depth", 4, 5)
    assert "5 fields deep" in error["message"]
    assert fresh_upstream.calls(token) == []


def test_depth_counts_through_fragments_and_inline_fragments(depth_gw, fresh_upstream, token):
    refused(depth_gw.post(DEPTH_5_IN_FRAGMENTS, token=token, headers=GQL), "depth", 4, 5)
    assert fresh_upstream.calls(token) == []


def test_depth_at_the_limit_is_served(depth_gw, fresh_upstream, token):
    data = served(depth_gw.post(DEPTH_4, token=token, headers=GQL))
    assert len(data["leads"]["edges"]) == 1 and len(fresh_upstream.calls(token)) == 1


def test_depth_error_is_200_for_application_json_clients(depth_gw, fresh_upstream, token):
    """The same request error, answered the legacy way (GraphQL over HTTP, application/json)."""
    response = depth_gw.post(DEPTH_5, token=token, headers={"Accept": "application/json"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    assert response.json()["errors"][0]["extensions"]["limitName"] == "depth"
    assert fresh_upstream.calls(token) == []


# --- aliases -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def alias_gw(make_gateway):
    return make_gateway(cache_ttl=0, max_aliases=3)


def aliased(n: int) -> str:
    return "{ " + " ".join(f"a{i}: leads(first: 1) {{ totalCount }}" for i in range(n)) + " }"


def test_aliases_at_the_limit_are_served(alias_gw, fresh_upstream, token):
    data = served(alias_gw.post(aliased(3), token=token, headers=GQL))
    assert set(data) == {"a0", "a1", "a2"} and len(fresh_upstream.calls(token)) == 1  # one identical page


def test_aliases_over_the_limit_are_refused(alias_gw, fresh_upstream, token):
    refused(alias_gw.post(aliased(4), token=token, headers=GQL), "aliases", 3, 4)
    assert fresh_upstream.calls(token) == []


@pytest.mark.parametrize("query,measured", [
    # Two aliases in a fragment spread twice (once through another fragment): 4.
    ("{ ...Two ...Again } fragment Two on Query { x: leads(first: 1) { totalCount } y: __typename }"
     " fragment Again on Query { ...Two }", 4),
    # Aliases inside a fragment on a nested type, spread under two aliased fields: 2 + 2.
    ("{ p: leads(first: 1) { ...N } q: leads(first: 2) { ...N } }"
     " fragment N on LeadConnection { n: nodes { i: databaseId } }", 6),
    # Inside an inline fragment.
    ("{ leads(first: 1) { nodes { ... on Lead { a: id b: id c: id d: id } } } }", 4),
])
def test_aliases_hidden_in_fragments_are_counted(alias_gw, fresh_upstream, token, query, measured):
    refused(alias_gw.post(query, token=token, headers=GQL), "aliases", 3, measured)
    assert fresh_upstream.calls(token) == []


def test_a_fragment_spread_once_counts_once(alias_gw, fresh_upstream, token):
    query = "{ ...Two } fragment Two on Query { x: leads(first: 1) { totalCount } y: __typename }"
    served(alias_gw.post(query, token=token, headers=GQL))


def test_fragments_spreading_each_other_twice_are_measured_at_once(alias_gw, fresh_upstream, token):
    """2**40 aliases through 40 levels of doubled spreads: counted exactly, without walking them all
    (strawberry's MaxAliasesLimiter / QueryDepthLimiter would walk every spread: hours)."""
    levels = 40
    fragments = " ".join(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels))
    query = "{ leads(first: 1) { totalCount } ...F0 } " + fragments + f" fragment F{levels} on Query {{ a: __typename }}"
    started = time.monotonic()
    refused(alias_gw.post(query, token=token, headers=GQL), "aliases", 3, 2 ** levels)
    assert time.monotonic() - started < 2
    assert fresh_upstream.calls(token) == []


# --- tokens and document size ---------------------------------------------------------------------


def with_tokens(n: int) -> str:
    """A document of exactly n tokens: `{ leads ( first : 1 ) { totalCount }` is 10, `}` one more."""
    return "{ leads(first: 1) { totalCount } " + "__typename " * (n - 11) + "}"


def test_tokens_at_the_limit_are_served(make_gateway, fresh_upstream, token):
    gw = make_gateway(cache_ttl=0, max_tokens=40)
    served(gw.post(with_tokens(40), token=token, headers=GQL))
    assert len(fresh_upstream.calls(token)) == 1


def test_tokens_over_the_limit_are_refused(make_gateway, fresh_upstream, token):
    gw = make_gateway(cache_ttl=0, max_tokens=40)
    refused(gw.post(with_tokens(41), token=token, headers=GQL), "tokens", 40, 41)
    # Comments count as tokens too (they cost the parser as much).
    refused(gw.post(with_tokens(30) + "\n#c" * 11, token=token, headers=GQL), "tokens", 40, 41)
    assert fresh_upstream.calls(token) == []


def padded(size: int, filler: str = " ") -> str:
    base = "{ leads(first: 1) { totalCount } }"
    extra = size - len(base.encode())
    if filler == " ":
        return base + " " * extra
    # A comment of two-byte characters: fewer characters than bytes.
    return base + "\n#" + filler * ((extra - 2) // 2) + " " * ((extra - 2) % 2)


def test_document_size_at_the_limit_is_served(make_gateway, fresh_upstream, token):
    gw = make_gateway(cache_ttl=0, max_document_bytes=300)
    served(gw.post(padded(300), token=token, headers=GQL))
    served(gw.post(padded(300, "é"), token=token, headers=GQL))


def test_document_size_is_counted_in_utf8_bytes(make_gateway, fresh_upstream, token):
    gw = make_gateway(cache_ttl=0, max_document_bytes=300)
    refused(gw.post(padded(301), token=token, headers=GQL), "documentBytes", 300, 301)
    query = padded(302, "é")
    assert len(query) < 300 < len(query.encode())
    refused(gw.post(query, token=token, headers=GQL), "documentBytes", 300, 302)
    assert fresh_upstream.calls(token) == []


def test_document_limits_apply_to_get_too(make_gateway, fresh_upstream, token):
    gw = make_gateway(cache_ttl=0, max_document_bytes=300)
    response = gw.client.get("/graphql", params={"query": padded(301)},
                             headers={**GQL, "Authorization": f"Bearer {token}"})
    refused(response, "documentBytes", 300, 301)
    assert fresh_upstream.calls(token) == []


# --- cost ----------------------------------------------------------------------------------------

NESTED = "{ leads(first: 100) { nodes { campaign { leads(first: 100) { nodes { id } } } } } }"
NESTED_VARS = """query Nested($outer: Int, $inner: Int) {
  leads(first: $outer) { nodes { campaign { leads(first: $inner) { nodes { id } } } } } }"""


def test_nested_connections_multiply_their_page_sizes(gateway, fresh_upstream, token):
    # 1 (leads) + 100 (nodes) + 100 (campaign) + 100 (campaign leads) + 100 * 100 (their nodes)
    error = refused(gateway.post(NESTED, token=token, headers=GQL), "cost", 2500, 10301)
    assert "smaller pages" in error["message"]
    assert fresh_upstream.calls(token) == []


def test_cost_reads_page_sizes_from_variables(gateway, fresh_upstream, token):
    refused(gateway.post(NESTED_VARS, {"outer": 100, "inner": 100}, token=token, headers=GQL), "cost", 2500, 10301)
    assert fresh_upstream.calls(token) == []
    data = served(gateway.post(NESTED_VARS, {"outer": 5, "inner": 5}, token=token, headers=GQL))
    assert len(data["leads"]["nodes"]) == 5


def test_cost_uses_variable_defaults(gateway, fresh_upstream, token):
    query = "query($n: Int = 100) { leads(first: $n) { nodes { campaign { leads(first: $n) { nodes { id } } } } } }"
    refused(gateway.post(query, token=token, headers=GQL), "cost", 2500, 10301)
    assert fresh_upstream.calls(token) == []


def test_cost_through_fragments_on_connections(gateway, fresh_upstream, token):
    query = """{ leads(first: 100) { ...Outer } }
      fragment Outer on LeadConnection { nodes { campaign { leads(last: 100) { ...Inner } } } }
      fragment Inner on LeadConnection { edges { node { id } } }"""
    # 1 + 100 + 100 + 100 + 100*100 (edges) + 100*100 (node)
    refused(gateway.post(query, token=token, headers=GQL), "cost", 2500, 20301)
    assert fresh_upstream.calls(token) == []


@pytest.fixture(scope="module")
def cost_gw(make_gateway):
    return make_gateway(cache_ttl=0, max_cost=19)


def test_cost_at_the_limit_is_served(cost_gw, fresh_upstream, token):
    # 1 + 3 + 3 + 3 + 3 * 3 = 19
    query = "{ leads(first: 3) { nodes { campaign { leads(first: 3) { nodes { id } } } } } }"
    data = served(cost_gw.post(query, token=token, headers=GQL))
    assert len(data["leads"]["nodes"]) == 3


@pytest.mark.parametrize("query,variables,measured", [
    ("{ leads(first: 3) { nodes { campaign { leads(first: 4) { nodes { id } } } } } }", None, 22),
    # Without first/last a connection holds 15 (the upstream default): 1 + 15 (nodes) + 15 (campaign).
    ("{ leads { nodes { campaign { name } } } }", None, 31),
    ("{ leads(last: 4) { edges { node { secondaryContacts { id } } } } }", None, 1 + 4 + 4 + 12),
    ("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": [to_global_id("Lead", i) for i in range(20)]}, 20),
])
def test_cost_counts_lists_of_objects(cost_gw, fresh_upstream, token, query, variables, measured):
    refused(cost_gw.post(query, variables, token=token, headers=GQL), "cost", 19, measured)
    assert fresh_upstream.calls(token) == []


def test_scalars_and_page_info_are_cheap(cost_gw, fresh_upstream, token):
    # 1 (leads) + 1 (pageInfo) + 15 (nodes) = 17: totalCount and the nodes' scalars are free.
    served(cost_gw.post("{ leads { totalCount pageInfo { hasNextPage } nodes { id databaseId status } } }",
                        token=token, headers=GQL))


# --- request body ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def body_gw(make_gateway):
    return make_gateway(cache_ttl=0, max_body_bytes=1000)


def body_of(size: int) -> bytes:
    raw = json.dumps({"query": "{ leads(first: 1) { totalCount } }"}).encode()
    return raw + b" " * (size - len(raw))


def test_body_at_the_limit_is_served(body_gw, fresh_upstream, token):
    response = body_gw.client.post("/graphql", content=body_of(1000), headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    assert response.status_code == 200 and response.json()["data"]["leads"]["totalCount"] > 0


def test_body_over_the_limit_is_413(body_gw, fresh_upstream, token):
    response = body_gw.client.post("/graphql", content=body_of(1001), headers={
        **GQL, "Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/graphql-response+json")
    [error] = response.json()["errors"]
    assert error["extensions"] == {"code": "PAYLOAD_TOO_LARGE", "limitName": "bodyBytes", "limit": 1000,
                                   "measured": 1001}
    assert fresh_upstream.calls(token) == []


def test_chunked_body_over_the_limit_is_413(body_gw, fresh_upstream, token):
    def chunks():
        for _ in range(4):
            yield b" " * 300

    response = body_gw.client.post("/graphql", content=chunks(), headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    assert "content-length" not in response.request.headers  # sent chunked
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"


def raw_exchange(gw, head: bytes, body: bytes) -> bytes:
    """Send a request head and part of a body, never finishing it; return what the server answered."""
    with socket.create_connection((gw.server.host, gw.server.port), timeout=5) as s:
        s.sendall(head + body)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = s.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


def test_a_declared_huge_body_is_refused_before_it_is_sent(body_gw):
    """Content-Length says 50 MB and nothing follows: the answer comes at once (nothing is read)."""
    head = (b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 50000000\r\n\r\n")
    assert raw_exchange(body_gw, head, b"").startswith(b"HTTP/1.1 413")


def test_a_streamed_body_is_refused_once_it_passes_the_limit(body_gw):
    """Chunked, never terminated: the gateway answers as soon as 1000 bytes are passed, so it never
    waits for (or buffers) the whole body."""
    head = b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunk = b"258\r\n" + b" " * 600 + b"\r\n"  # 0x258 = 600 bytes
    assert raw_exchange(body_gw, head, chunk * 2).startswith(b"HTTP/1.1 413")


# --- batching -------------------------------------------------------------------------------------


def post_batch(gw, operations: list, token: str, headers: dict | None = None) -> httpx.Response:
    return gw.client.post("/graphql", content=json.dumps(operations), headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {token}", **(headers or {})})


@pytest.fixture(scope="module")
def batch_gw(make_gateway):
    return make_gateway(cache_ttl=0, max_batch=3, max_depth=4)


def test_a_batch_up_to_the_limit_answers_an_array(batch_gw, fresh_upstream, token):
    operations = [{"query": "query($n: Int) { leads(first: $n) { nodes { databaseId } } }", "variables": {"n": n}}
                  for n in (1, 2, 3)]
    response = post_batch(batch_gw, operations, token, GQL)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/graphql-response+json")
    body = response.json()
    assert [len(item["data"]["leads"]["nodes"]) for item in body] == [1, 2, 3]


def test_a_batch_over_the_limit_is_refused_whole(batch_gw, fresh_upstream, token):
    operations = [{"query": "{ leads(first: 1) { totalCount } }"}] * 4
    response = post_batch(batch_gw, operations, token, GQL)
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["extensions"] == {"code": "BATCH_TOO_LARGE", "limitName": "batch", "limit": 3, "measured": 4}
    assert fresh_upstream.calls(token) == []


def test_each_operation_of_a_batch_is_limited_on_its_own(batch_gw, fresh_upstream, token):
    response = post_batch(batch_gw, [{"query": DEPTH_4}, {"query": DEPTH_5}, {"query": "{ nope }"}], token, GQL)
    assert response.status_code == 200
    ok, deep, invalid = response.json()
    assert len(ok["data"]["leads"]["edges"]) == 1
    assert "data" not in deep and deep["errors"][0]["extensions"]["limitName"] == "depth"
    assert "data" not in invalid and invalid["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert len(fresh_upstream.calls(token)) == 1  # only the first one ran


def test_a_malformed_batch_item_is_a_bad_request(batch_gw, fresh_upstream, token):
    response = post_batch(batch_gw, [{"query": DEPTH_4}, {"variables": {}}], token)
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["extensions"] == {"code": "BAD_REQUEST", "batchIndex": 1}
    assert fresh_upstream.calls(token) == []


def test_batching_can_be_turned_off(make_gateway, fresh_upstream, token):
    gw = make_gateway(cache_ttl=0, max_batch=0)
    response = post_batch(gw, [{"query": "{ leads(first: 1) { totalCount } }"}], token)
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BATCH_TOO_LARGE"
    assert fresh_upstream.calls(token) == []
    served(gw.post("{ leads(first: 1) { totalCount } }", token=token))  # single operations still work


# --- introspection --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def closed_gw(make_gateway):
    return make_gateway(cache_ttl=0, introspection=False)


@pytest.mark.parametrize("query", [
    "{ __schema { queryType { name } } }",
    '{ __type(name: "Lead") { fields { name } } }',
    "{ ...I } fragment I on Query { __schema { types { name } } }",
])
def test_introspection_can_be_turned_off(closed_gw, query):
    response = closed_gw.post(query, headers=GQL)
    assert response.status_code == 400
    errors = response.json()["errors"]  # graphql-core names every introspection field it meets
    assert errors and all(e["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED" for e in errors)
    assert "introspection has been disabled" in errors[0]["message"]


def test_federation_sdl_and_typename_survive_without_introspection(closed_gw):
    data = served(closed_gw.post("{ __typename _service { sdl } }", headers=GQL))
    root = Path(__file__).resolve().parents[2]
    assert data["_service"]["sdl"].rstrip() + "\n" == (root / "schema.graphql").read_text()
    assert data["__typename"] == "Query"


def test_introspection_is_on_by_default(gateway):
    assert served(gateway.post("{ __schema { queryType { name } } }", headers=GQL)) == {
        "__schema": {"queryType": {"name": "Query"}}}


def test_the_full_introspection_query_passes_the_default_limits(gateway):
    from graphql import get_introspection_query

    data = served(gateway.post(get_introspection_query(descriptions=True), headers=GQL))
    assert any(t["name"] == "LeadConnection" for t in data["__schema"]["types"])


# --- CORS -----------------------------------------------------------------------------------------

ALLOWED = "https://app.example.com"


@pytest.fixture(scope="module")
def cors_url(upstream):
    """The gateway wrapped in the CORS middleware, as app.py is to do it."""
    settings = Settings(upstream_url=upstream.url, cache_ttl=0, cors_origins=(ALLOWED, "https://admin.example.com"))
    server = start_in_thread(CORSMiddleware(create_app(settings), origins=settings.cors_origins))
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def same_origin_url(upstream):
    settings = Settings(upstream_url=upstream.url, cache_ttl=0)  # cors_origins: none
    server = start_in_thread(CORSMiddleware(create_app(settings), origins=settings.cors_origins))
    yield server.url
    server.stop()


def graphql_post(url: str, origin: str | None, token: str) -> httpx.Response:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    if origin:
        headers["Origin"] = origin
    return httpx.post(f"{url}/graphql", json={"query": "{ leads(first: 1) { totalCount } }"}, headers=headers)


def preflight(url: str, origin: str) -> httpx.Response:
    return httpx.options(f"{url}/graphql", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type, x-request-id"})


def test_cors_allowed_origin_gets_its_origin_back(cors_url, fresh_upstream, token):
    response = graphql_post(cors_url, "https://App.Example.com/", token)  # case and slash do not matter
    assert response.status_code == 200 and response.json()["data"]["leads"]["totalCount"] > 0
    assert response.headers["access-control-allow-origin"] == "https://App.Example.com/"
    assert "X-Request-ID" in response.headers["access-control-expose-headers"]
    assert "Origin" in response.headers["vary"]
    assert "access-control-allow-credentials" not in response.headers


def test_cors_disallowed_origin_gets_no_cors_headers(cors_url, fresh_upstream, token):
    response = graphql_post(cors_url, "https://evil.example.net", token)
    assert "access-control-allow-origin" not in response.headers
    assert "Origin" in response.headers["vary"]


def test_cors_preflight_for_an_allowed_origin(cors_url):
    response = preflight(cors_url, ALLOWED)
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert set(response.headers["access-control-allow-methods"].split(", ")) == {"GET", "POST"}
    allowed_headers = {h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "cache-control", "x-request-id"} <= allowed_headers
    assert int(response.headers["access-control-max-age"]) > 0


def test_cors_preflight_for_another_origin_is_refused(cors_url):
    response = preflight(cors_url, "https://evil.example.net")
    assert response.status_code == 403
    assert "access-control-allow-origin" not in response.headers
    assert response.json()["errors"][0]["extensions"]["code"] == "ORIGIN_NOT_ALLOWED"


def test_cors_default_is_same_origin_only(same_origin_url, fresh_upstream, token):
    response = graphql_post(same_origin_url, ALLOWED, token)
    assert response.status_code == 200  # served, but the browser will not hand it to the page
    assert not any(h.startswith("access-control-") for h in response.headers)
    assert preflight(same_origin_url, ALLOWED).status_code == 403
    # A request without Origin (same origin, or not a browser) is untouched.
    assert not any(h.startswith("access-control-") for h in graphql_post(same_origin_url, None, token).headers)
