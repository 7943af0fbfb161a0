"""The result cache seen through HTTP: a repeat of the same request by the same caller, within the TTL, is
answered from stored bytes, with no upstream call and no GraphQL execution."""

from __future__ import annotations

import json
import time

import pytest
from starlette.routing import Route

from gateway.demo.data import dataset_for_token
from gateway.http.view import GatewayGraphQL

Q = "query Window($first: Int) { leads(first: $first) { totalCount nodes { databaseId } } }"
Q2 = "query Other($first: Int) { leads(first: $first) { nodes { databaseId } } } " \
     "query Window($first: Int) { leads(first: $first) { totalCount nodes { databaseId } } }"


def app_of(gw):
    return gw.server.server.config.app


def view_of(gw) -> GatewayGraphQL:
    for route in app_of(gw).routes:
        if isinstance(route, Route) and route.path == "/graphql":
            return route.app if isinstance(route.app, GatewayGraphQL) else route.endpoint
    raise AssertionError("no /graphql route")


def stats_of(gw):
    return app_of(gw).state.stats


def ids(body: dict) -> list[int]:
    return [n["databaseId"] for n in body["data"]["leads"]["nodes"]]


def post(gw, token: str | None, query: str = Q, variables: dict | None = None, operation: str | None = None,
         headers: dict | None = None):
    h = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {}),
         **(headers or {})}
    body = {"query": query, "variables": variables if variables is not None else {"first": 5}}
    if operation is not None:
        body["operationName"] = operation
    return gw.client.post("/graphql", content=json.dumps(body), headers=h)


@pytest.fixture
def no_execution(monkeypatch):
    """Call with a gateway: from then on, any GraphQL execution in it fails the test."""
    def forbid(gw):
        view = view_of(gw)

        async def execute(*args, **kwargs):
            raise AssertionError("GraphQL execution ran on what should have been a result-cache hit")

        monkeypatch.setattr(view.schema, "execute", execute)
    return forbid


def test_a_repeat_is_served_from_stored_bytes_without_upstream_call_or_execution(make_gateway, fresh_upstream,
                                                                                 token, no_execution):
    gw = make_gateway(cache_ttl=30)
    first = post(gw, token, headers={"X-Request-ID": "first-request"})
    assert first.status_code == 200 and "errors" not in first.json()
    assert ids(first.json()) == [r["id"] for r in dataset_for_token(token)[:5]]
    assert len(fresh_upstream.calls(token)) == 1
    no_execution(gw)
    hits = stats_of(gw).result_cache_hits
    second = post(gw, token, headers={"X-Request-ID": "second-request"})
    assert second.status_code == 200
    assert second.content == first.content
    # httpx sends `Accept: */*`: application/json.
    assert second.headers["content-type"] == first.headers["content-type"] == "application/json; charset=utf-8"
    assert second.headers["x-request-id"] == "second-request"
    assert len(fresh_upstream.calls(token)) == 1
    assert stats_of(gw).result_cache_hits == hits + 1
    # Counted as an operation, under its name, in the metrics.
    assert stats_of(gw).graphql_requests[("Window", "ok")] == 2
    metrics = gw.client.get("/metrics").text
    assert f"leads_gateway_result_cache_hits_total {float(hits + 1)}" in metrics


def test_get_and_media_types_are_keyed_and_answered_with_the_right_content_type(make_gateway, fresh_upstream, token,
                                                                               no_execution):
    gw = make_gateway(cache_ttl=30)
    params = {"query": Q, "variables": json.dumps({"first": 3})}
    auth = {"Authorization": f"Bearer {token}"}
    as_json = gw.client.get("/graphql", params=params, headers={**auth, "Accept": "application/json"})
    gql_accept = {"Accept": "application/graphql-response+json"}
    # no-cache: fetched again rather than built from the cached page, so this answer is stored too.
    as_gql = gw.client.get("/graphql", params=params, headers={**auth, **gql_accept, "Cache-Control": "no-cache"})
    assert as_json.status_code == as_gql.status_code == 200
    assert as_json.headers["content-type"] == "application/json; charset=utf-8"
    assert as_gql.headers["content-type"] == "application/graphql-response+json; charset=utf-8"
    no_execution(gw)
    again_json = gw.client.get("/graphql", params=params, headers={**auth, "Accept": "application/json"})
    again_gql = gw.client.get("/graphql", params=params, headers={**auth, **gql_accept})
    assert again_json.headers["content-type"] == "application/json; charset=utf-8"
    assert again_gql.headers["content-type"] == "application/graphql-response+json; charset=utf-8"
    assert again_json.content == as_json.content and again_gql.content == as_gql.content
    assert len(fresh_upstream.calls(token)) == 2


def test_another_token_never_gets_the_first_tokens_bytes(make_gateway, fresh_upstream, token):
    gw = make_gateway(cache_ttl=30)
    other = token + "-other"
    mine = post(gw, token)
    theirs = post(gw, other)
    assert ids(mine.json()) == [r["id"] for r in dataset_for_token(token)[:5]]
    assert ids(theirs.json()) == [r["id"] for r in dataset_for_token(other)[:5]]
    assert ids(mine.json()) != ids(theirs.json())
    assert len(fresh_upstream.calls(token)) == 1 and len(fresh_upstream.calls(other)) == 1
    assert stats_of(gw).result_cache_hits == 0
    # Each then repeats: each gets its own bytes back, still one upstream call each.
    assert post(gw, other).content == theirs.content
    assert post(gw, token).content == mine.content
    assert stats_of(gw).result_cache_hits == 2
    assert len(fresh_upstream.calls(token)) == 1 and len(fresh_upstream.calls(other)) == 1


def test_no_token_is_never_answered_from_the_cache(make_gateway, fresh_upstream, token):
    gw = make_gateway(cache_ttl=30)
    assert post(gw, token).status_code == 200
    anonymous = post(gw, None)
    assert anonymous.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert stats_of(gw).result_cache_hits == 0


def test_demo_mode_caches_by_the_demo_token(make_gateway, fresh_upstream):
    gw = make_gateway(cache_ttl=30, demo_token="demo-result-cache")
    first = post(gw, None)
    assert first.status_code == 200 and "errors" not in first.json()
    assert post(gw, None).content == first.content
    assert stats_of(gw).result_cache_hits == 1
    assert len(fresh_upstream.calls("demo-result-cache")) == 1


def test_variables_and_operation_name_are_part_of_the_key(make_gateway, fresh_upstream, token):
    gw = make_gateway(cache_ttl=30)
    five = post(gw, token, variables={"first": 5})
    three = post(gw, token, variables={"first": 3})
    assert len(ids(five.json())) == 5 and len(ids(three.json())) == 3
    assert stats_of(gw).result_cache_hits == 0
    window = post(gw, token, Q2, operation="Window", headers={"Cache-Control": "no-cache"})  # fetched: stored
    other = post(gw, token, Q2, operation="Other", headers={"Cache-Control": "no-cache"})
    assert "totalCount" in window.json()["data"]["leads"] and "totalCount" not in other.json()["data"]["leads"]
    assert stats_of(gw).result_cache_hits == 0
    assert post(gw, token, Q2, operation="Other").content == other.content
    assert post(gw, token, Q2, operation="Window").content == window.content
    assert stats_of(gw).result_cache_hits == 2
    # Variables compare as canonical JSON: key order does not matter (no-cache: fetched, so stored).
    a = post(gw, token, "query($first: Int, $after: String) { leads(first: $first, after: $after) { nodes { id } } }",
             variables={"first": 2, "after": None}, headers={"Cache-Control": "no-cache"})
    b = post(gw, token, "query($first: Int, $after: String) { leads(first: $first, after: $after) { nodes { id } } }",
             variables={"after": None, "first": 2})
    assert a.content == b.content
    assert stats_of(gw).result_cache_hits == 3
    assert stats_of(gw).graphql_requests[("Other", "ok")] == 2


def test_after_the_ttl_the_result_is_computed_again(make_gateway, fresh_upstream, token):
    gw = make_gateway(cache_ttl=0.5, cache_stale_if_error=0)
    post(gw, token)
    post(gw, token)
    assert stats_of(gw).result_cache_hits == 1 and len(fresh_upstream.calls(token)) == 1
    time.sleep(0.8)
    assert post(gw, token).status_code == 200
    assert stats_of(gw).result_cache_hits == 1
    assert len(fresh_upstream.calls(token)) == 2


def test_no_cache_skips_the_lookup_but_stores_the_fresh_answer(make_gateway, fresh_upstream, token, no_execution):
    gw = make_gateway(cache_ttl=30)
    post(gw, token)
    for header in ({"Cache-Control": "no-cache"}, {"Pragma": "no-cache"}):
        assert post(gw, token, headers=header).status_code == 200
    assert stats_of(gw).result_cache_hits == 0
    assert len(fresh_upstream.calls(token)) == 3
    no_execution(gw)
    assert post(gw, token).status_code == 200
    assert stats_of(gw).result_cache_hits == 1


def test_results_with_errors_are_not_stored(make_gateway, fresh_upstream):
    gw = make_gateway(cache_ttl=30)
    denied = "forbidden-result-cache"
    for n in (1, 2):
        body = post(gw, denied).json()
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        assert len(fresh_upstream.calls(denied)) == n
    assert stats_of(gw).result_cache_hits == 0


def test_results_with_warnings_are_not_stored(make_gateway, fresh_upstream, token):
    gw = make_gateway(cache_ttl=0.3, cache_stale_if_error=60)
    post(gw, token)
    time.sleep(0.5)
    fresh_upstream.options.fault = "503"
    for n in (2, 3):
        body = post(gw, token).json()
        assert body["extensions"]["warnings"][0]["code"] == "STALE_DATA"
        assert len(fresh_upstream.calls(token)) == n
    assert stats_of(gw).result_cache_hits == 0


def test_results_with_warnings_from_fetched_pages_are_not_stored(make_gateway, fresh_upstream, token):
    gw = make_gateway(cache_ttl=30, lookup_max_pages=1)
    last = dataset_for_token(token)[-1]["id"]  # beyond the first page of 100: LOOKUP_TRUNCATED
    query = f"{{ lead(databaseId: {last}) {{ id }} }}"
    for _ in range(2):
        body = post(gw, token, query, variables={}, headers={"Cache-Control": "no-cache"} if _ == 0 else {}).json()
        assert body["extensions"]["warnings"][0]["code"] == "LOOKUP_TRUNCATED"
    assert stats_of(gw).result_cache_hits == 0


def test_answers_built_from_cached_pages_expire_with_their_oldest_page(make_gateway, fresh_upstream, token):
    gw = make_gateway(cache_ttl=1.0, cache_stale_if_error=0)
    post(gw, token, variables={"first": 10})  # fetches page 1 (and stores that answer)
    time.sleep(0.5)
    smaller = post(gw, token, variables={"first": 4})  # built from the cached page, which is 0.5 s old
    assert len(ids(smaller.json())) == 4 and len(fresh_upstream.calls(token)) == 1
    assert post(gw, token, variables={"first": 4}).content == smaller.content
    assert stats_of(gw).result_cache_hits == 1
    time.sleep(0.7)  # the page is now past its TTL: so is every answer built from it, however recent
    again = post(gw, token, variables={"first": 4})
    assert again.status_code == 200 and stats_of(gw).result_cache_hits == 1
    assert len(fresh_upstream.calls(token)) == 2


def test_an_answer_built_from_a_stale_page_is_not_stored(make_gateway, fresh_upstream, token):
    gw = make_gateway(cache_ttl=0.3, cache_swr=60, cache_stale_if_error=0)
    post(gw, token)
    time.sleep(0.5)  # past the TTL, within stale-while-revalidate: the page is served stale, refreshed behind
    post(gw, token)
    post(gw, token)  # computed again (from the refreshed page), not the stale answer
    assert stats_of(gw).result_cache_hits == 0
    assert len(fresh_upstream.calls(token)) == 2


def test_the_byte_bound_evicts_the_oldest(make_gateway, fresh_upstream, token):
    probe = make_gateway(cache_ttl=30)
    tokens = [f"{token}-{k}" for k in range(3)]
    size = max(len(post(probe, t).content) for t in tokens)
    # Room for two answers (key of 97 bytes and 200 of overhead each), not three.
    gw = make_gateway(cache_ttl=30, result_cache_bytes=2 * (size + 300) + 10)
    for t in tokens:
        assert post(gw, t).status_code == 200
    assert len(view_of(gw).results) == 2
    post(gw, tokens[2])
    post(gw, tokens[1])
    assert stats_of(gw).result_cache_hits == 2
    post(gw, tokens[0])  # evicted, the oldest: computed again (from its cached page)
    assert stats_of(gw).result_cache_hits == 2
    assert view_of(gw).results.bytes <= view_of(gw).results.max_bytes


def test_zero_bytes_turns_it_off(make_gateway, fresh_upstream, token):
    gw = make_gateway(cache_ttl=30, result_cache_bytes=0)
    first = post(gw, token, headers={"Cache-Control": "no-cache"})
    second = post(gw, token, headers={"Cache-Control": "no-cache"})
    assert first.content == second.content
    post(gw, token)
    assert stats_of(gw).result_cache_hits == 0


def test_batches_are_not_cached(make_gateway, fresh_upstream, token):
    gw = make_gateway(cache_ttl=30)
    item = {"query": Q, "variables": {"first": 5}}
    h = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    for _ in range(2):
        r = gw.client.post("/graphql", content=json.dumps([item, item]), headers=h)
        assert r.status_code == 200 and len(r.json()) == 2
    assert stats_of(gw).result_cache_hits == 0


def test_a_hit_is_logged_as_the_operation(make_gateway, fresh_upstream, token, caplog):
    import logging

    gw = make_gateway(cache_ttl=30)
    post(gw, token)
    with caplog.at_level(logging.INFO, logger="gateway.request"):
        post(gw, token, headers={"X-Request-ID": "logged-hit"})
    lines = [r.fields for r in caplog.records if getattr(r, "fields", {}).get("request_id") == "logged-hit"]
    assert len(lines) == 1
    assert lines[0]["operation"] == "Window" and lines[0]["cache_hits"] == 1 and lines[0]["upstream_calls"] == 0
    assert lines[0]["status"] == 200
