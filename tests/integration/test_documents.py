"""The document cache over real HTTP: a known document is neither parsed nor validated again, while
what depends on more than its text (cost from variables, the choice of operation) is checked on every
request, and broken documents still get their own errors."""

from __future__ import annotations

import json

import pytest
import strawberry.schema.schema as strawberry_schema
from graphql.validation import validate as graphql_validate

from gateway.graphql.extensions.documents import DocumentCache

Q = "query Page($n: Int) { leads(first: $n) { nodes { databaseId campaign { name } } } }"
TWO = "query A { leads(first: 1) { totalCount } } query B { leads(first: 2) { totalCount } }"


def post(gw, token, query, variables=None, operation=None):
    body = {"query": query, "variables": variables or {}}
    if operation is not None:
        body["operationName"] = operation
    return gw.client.post("/graphql", content=json.dumps(body), headers={
        "Content-Type": "application/json", "Accept": "application/json", "Authorization": f"Bearer {token}",
        "Cache-Control": "no-cache"})  # every request executed: no result cache


@pytest.fixture
def calls(monkeypatch):
    """Counts graphql-core parses and validations made through strawberry."""
    counts = {"parse": 0, "validate": 0}
    real_parse, real_validate = strawberry_schema.parse, strawberry_schema.validate

    def parse(*args, **kwargs):
        counts["parse"] += 1
        return real_parse(*args, **kwargs)

    def validate(*args, **kwargs):
        counts["validate"] += 1
        return real_validate(*args, **kwargs)

    monkeypatch.setattr(strawberry_schema, "parse", parse)
    monkeypatch.setattr(strawberry_schema, "validate", validate)
    assert real_validate is graphql_validate
    return counts


def test_a_known_document_is_parsed_and_validated_once(make_gateway, token, calls):
    gw = make_gateway(cache_ttl=30)
    for n in (3, 4, 5):
        nodes = post(gw, token, Q, {"n": n}).json()["data"]["leads"]["nodes"]
        assert len(nodes) == n
    assert calls == {"parse": 1, "validate": 1}


def test_the_cache_can_be_turned_off(make_gateway, token, calls):
    gw = make_gateway(cache_ttl=30, document_cache_bytes=0)
    for n in (3, 4):
        assert "errors" not in post(gw, token, Q, {"n": n}).json()
    assert calls == {"parse": 2, "validate": 2}


def test_cost_from_variables_is_checked_on_every_request(make_gateway, token):
    gw = make_gateway(cache_ttl=30, max_cost=50)
    assert "errors" not in post(gw, token, Q, {"n": 10}).json()
    body = post(gw, token, Q, {"n": 40}).json()  # the same, now known, document: 1 + 40 + 40 > 50
    assert body["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX" and "data" not in body


def test_the_operation_choice_is_checked_on_every_request(make_gateway, token):
    gw = make_gateway(cache_ttl=30)
    assert post(gw, token, TWO, operation="B").json()["data"]["leads"]["totalCount"] > 0
    body = post(gw, token, TWO).json()  # known and valid, but which operation? a request error still
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED" and "data" not in body
    assert "errors" in post(gw, token, TWO, operation="C").json()


def test_broken_documents_are_not_kept_and_keep_their_codes(make_gateway, token, calls):
    gw = make_gateway(cache_ttl=30)
    for _ in range(2):
        assert post(gw, token, "{ leads(first: 1) {").json()["errors"][0]["extensions"]["code"] == \
            "GRAPHQL_PARSE_FAILED"
        assert post(gw, token, "{ leads(first: 1) { nope } }").json()["errors"][0]["extensions"]["code"] == \
            "GRAPHQL_VALIDATION_FAILED"
    assert calls["validate"] == 2  # the invalid document, validated each time


def test_the_bound_evicts_the_least_recently_used():
    cache = DocumentCache(max_bytes=30)
    cache.put("{ a }" + " " * 10, object())  # 15 bytes
    cache.put("{ b }" + " " * 10, object())
    assert cache.get("{ a }" + " " * 10) is not None  # "{ b }" is now the least recently used
    cache.put("{ c }" + " " * 10, object())
    assert "{ b }" + " " * 10 not in cache and "{ a }" + " " * 10 in cache and len(cache) == 2
    assert cache.bytes == 30
    cache.put("x" * 31, object())  # larger than the bound: not kept, nothing evicted
    assert len(cache) == 2
