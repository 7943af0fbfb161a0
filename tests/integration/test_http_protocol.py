"""GraphQL over HTTP (graphql.github.io/graphql-over-http), over real HTTP: methods, media types,
status codes, and a GraphQL error body for every malformed request (never plain text, never a 500)."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from starlette.applications import Starlette
from starlette.routing import Route

from gateway.config import Settings
from gateway.datasource.source import LeadsSources
from gateway.graphql.context import ContextFactory
from gateway.http.view import GatewayGraphQL
from gateway.observability.metrics import Stats
from gateway.serving import start_in_thread

GQL = "application/graphql-response+json"
JSON = "application/json"
Q = "{ leads(first: 2) { totalCount nodes { databaseId } } }"
QV = "query Page($n: Int!) { leads(first: $n) { nodes { databaseId } } }"


def auth(token: str, **headers: str) -> dict:
    return {"Authorization": f"Bearer {token}", **headers}


def post_raw(gw, body: bytes | str, token: str | None = None, content_type: str | None = JSON,
             accept: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if accept is not None:
        headers["Accept"] = accept
    return gw.client.post("/graphql", content=body, headers=headers)


def media_of(response: httpx.Response) -> str:
    return response.headers["content-type"].split(";")[0].strip()


def error_body(response: httpx.Response, code: str) -> dict:
    """A GraphQL error body: {"errors": [{"message", "extensions": {"code"}}]}, no `data` entry."""
    body = response.json()
    assert "data" not in body, body
    assert isinstance(body["errors"], list) and len(body["errors"]) >= 1, body
    error = body["errors"][0]
    assert isinstance(error["message"], str) and error["message"]
    assert error["extensions"]["code"] == code, body
    return error


# --- GET -----------------------------------------------------------------------------------------


def test_get_query(gateway, fresh_upstream, token):
    response = gateway.client.get("/graphql", params={"query": Q}, headers=auth(token))
    assert response.status_code == 200 and media_of(response) == JSON  # httpx sends Accept: */*
    assert len(response.json()["data"]["leads"]["nodes"]) == 2


def test_get_with_variables_and_operation_name(gateway, fresh_upstream, token):
    response = gateway.client.get("/graphql", headers=auth(token, Accept=GQL), params={
        "query": QV + " query Other { __typename }", "variables": json.dumps({"n": 3}), "operationName": "Page"})
    assert response.status_code == 200 and media_of(response) == GQL
    assert len(response.json()["data"]["leads"]["nodes"]) == 3


def test_get_empty_operation_name_means_none(gateway, fresh_upstream, token):
    response = gateway.client.get("/graphql", params={"query": Q, "operationName": ""}, headers=auth(token))
    assert response.status_code == 200 and "data" in response.json()


@pytest.mark.parametrize("query,operation_name", [
    ("mutation { leads }", None),  # the schema has no mutations: still 405, not a validation error
    ("query A { __typename } mutation B { x }", "B"),
    ("mutation Deep { a { b { c { d { e { f { g { h { i { j { k { l { m { n } } } } } } } } } } } } } }", None),
])
def test_get_mutation_is_405(gateway, fresh_upstream, token, query, operation_name):
    params = {"query": query} | ({"operationName": operation_name} if operation_name else {})
    for accept in (GQL, JSON):
        response = gateway.client.get("/graphql", params=params, headers=auth(token, Accept=accept))
        assert response.status_code == 405
        assert response.headers["allow"] == "POST"
        assert media_of(response) == accept
        error_body(response, "METHOD_NOT_ALLOWED")
    assert fresh_upstream.calls(token) == []


def test_get_may_select_the_query_of_a_mixed_document(gateway, fresh_upstream, token):
    """Only the operation that would run decides: GET may pick the query out of a mixed document."""
    response = gateway.client.get("/graphql", params={"query": "query A { __typename } mutation B { x }",
                                                      "operationName": "A"}, headers={"Accept": GQL})
    assert response.status_code == 400  # validation then fails (no Mutation type): a request error, not 405
    error_body(response, "GRAPHQL_VALIDATION_FAILED")


@pytest.mark.parametrize("params,needle", [
    ({}, "no `query`"),
    ({"query": Q, "variables": "{nope"}, "not valid JSON"),
    ({"query": Q, "variables": "[1]"}, "`variables` must be an object"),
    ({"query": Q, "extensions": "3"}, "`extensions` must be an object"),
])
def test_get_malformed_is_400(gateway, fresh_upstream, token, params, needle):
    for accept in (GQL, JSON):
        response = gateway.client.get("/graphql", params=params, headers=auth(token, Accept=accept))
        assert response.status_code == 400 and media_of(response) == accept
        assert needle in error_body(response, "BAD_REQUEST")["message"]
    assert fresh_upstream.calls(token) == []


def test_graphiql_only_for_browsers(gateway):
    """A browser (text/html) gets GraphiQL; a GET without a query from anything else is a bad request."""
    page = gateway.client.get("/graphql", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert page.status_code == 200 and media_of(page) == "text/html"
    response = gateway.client.get("/graphql")
    assert response.status_code == 400 and media_of(response) == JSON
    error_body(response, "BAD_REQUEST")


# --- POST and media types -----------------------------------------------------------------------


def test_post_application_json(gateway, fresh_upstream, token):
    response = gateway.post(Q, token=token, headers={"Accept": JSON})
    assert response.status_code == 200 and response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.json()["data"]["leads"]["totalCount"] > 0


def test_post_graphql_response_json(gateway, fresh_upstream, token):
    response = gateway.post(Q, token=token, headers={"Accept": GQL})
    assert response.status_code == 200 and response.headers["content-type"] == f"{GQL}; charset=utf-8"
    assert response.json()["data"]["leads"]["totalCount"] > 0


def test_no_accept_header_means_graphql_response_json(gateway, fresh_upstream, token):
    request = gateway.client.build_request("POST", "/graphql", json={"query": "{ nope }"},
                                           headers=auth(token))
    del request.headers["accept"]
    response = gateway.client.send(request)
    assert media_of(response) == GQL and response.status_code == 400


@pytest.mark.parametrize("accept,media", [
    ("*/*", JSON),
    ("application/*", JSON),
    (f"{GQL}, {JSON}", GQL),
    (f"{JSON}, {GQL}", GQL),  # equal weights: the spec's preferred type
    (f"{GQL}; charset=utf-8, {JSON}; charset=utf-8", GQL),  # what the spec recommends clients send
    (f"{JSON};q=0.9, {GQL}", GQL),
    (f"{GQL};q=0.5, {JSON}", JSON),
    (f"*/*, {GQL}", GQL),  # named beats a wildcard
    (f"{GQL};q=0, */*", JSON),
    (f"text/html, {JSON};q=0.1", JSON),
])
def test_accept_negotiation(gateway, accept, media):
    response = gateway.post("{ __typename }", headers={"Accept": accept})
    assert response.status_code == 200 and media_of(response) == media


@pytest.mark.parametrize("accept", ["text/plain", "text/html", f"{JSON};q=0, {GQL};q=0", "application/xml"])
def test_unacceptable_accept_is_406(gateway, fresh_upstream, token, accept):
    response = gateway.post(Q, token=token, headers={"Accept": accept})
    assert response.status_code == 406 and media_of(response) == JSON
    error_body(response, "NOT_ACCEPTABLE")
    assert fresh_upstream.calls(token) == []


# --- status codes: request errors versus executed operations ------------------------------------

REQUEST_ERRORS = [
    ("{", None, None, "GRAPHQL_PARSE_FAILED"),
    ("", None, None, "GRAPHQL_PARSE_FAILED"),
    ("{ nope }", None, None, "GRAPHQL_VALIDATION_FAILED"),
    (QV, {"n": "three"}, None, "BAD_USER_INPUT"),  # variable coercion
    (QV, None, None, "BAD_USER_INPUT"),  # a required variable is missing
    ("query A { __typename } query B { __typename }", None, None, "GRAPHQL_VALIDATION_FAILED"),
    ("query A { __typename }", None, "Nope", "GRAPHQL_VALIDATION_FAILED"),
    ("subscription { leads }", None, None, "GRAPHQL_VALIDATION_FAILED"),
]


@pytest.mark.parametrize("query,variables,operation_name,code", REQUEST_ERRORS)
def test_request_errors_are_400_with_graphql_response_json(gateway, fresh_upstream, token,
                                                            query, variables, operation_name, code):
    body = {"query": query, "variables": variables, "operationName": operation_name}
    response = post_raw(gateway, json.dumps(body), token, accept=GQL)
    assert response.status_code == 400 and media_of(response) == GQL
    error_body(response, code)
    assert fresh_upstream.calls(token) == []


@pytest.mark.parametrize("query,variables,operation_name,code", REQUEST_ERRORS)
def test_request_errors_are_200_with_application_json(gateway, fresh_upstream, token,
                                                      query, variables, operation_name, code):
    """A well-formed GraphQL-over-HTTP request that fails to parse or validate: 200 (legacy rules)."""
    body = {"query": query, "variables": variables, "operationName": operation_name}
    response = post_raw(gateway, json.dumps(body), token, accept=JSON)
    assert response.status_code == 200 and media_of(response) == JSON
    error_body(response, code)
    assert fresh_upstream.calls(token) == []


@pytest.mark.parametrize("accept", [GQL, JSON])
def test_field_errors_are_200_with_data(gateway, fresh_upstream, accept):
    """Executed, the root field failed (no token): `data` is present (null), so 200 in both media types."""
    response = gateway.post(Q, headers={"Accept": accept})
    assert response.status_code == 200 and media_of(response) == accept
    body = response.json()
    assert "data" in body and body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED" and body["errors"][0]["path"] == ["leads"]


def test_partial_data_is_200(gateway, fresh_upstream, token):
    query = '{ leads(first: 1) { totalCount } node(id: "garbage") { id } }'
    response = gateway.post(query, token=token, headers={"Accept": GQL})
    assert response.status_code == 200
    body = response.json()
    assert body["data"]["leads"]["totalCount"] > 0 and body["data"]["node"] is None
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT" and body["errors"][0]["path"] == ["node"]


# --- malformed POSTs ----------------------------------------------------------------------------

MALFORMED = [
    (b"{", "not valid JSON"),
    (b"NONSENSE", "not valid JSON"),
    (b"", "empty"),
    (b"   ", "empty"),
    (b'"a string"', "JSON object"),
    (b"42", "JSON object"),
    (b"null", "JSON object"),
    (b"true", "JSON object"),
    (b'{"variables": {}}', "no `query`"),
    (b'{"qeury": "{ __typename }"}', "no `query`"),
    (b'{"query": null}', "no `query`"),
    (b'{"query": 1}', "`query` must be a string"),
    (b'{"query": {"kind": "Document"}}', "`query` must be a string"),
    (b'{"query": ["{ __typename }"]}', "`query` must be a string"),
    (b'{"query": "{ __typename }", "variables": [7]}', "`variables` must be an object"),
    (b'{"query": "{ __typename }", "variables": "{}"}', "`variables` must be an object"),
    (b'{"query": "{ __typename }", "operationName": 3}', "`operationName` must be a string"),
    (b'{"query": "{ __typename }", "extensions": []}', "`extensions` must be an object"),
    (b'{"query": "{ __typename }", "variables": {"n": NaN}}', "not valid JSON"),
    (b'{"query": "{ __typename }", "variables": {"n": ' + b"9" * 5000 + b"}}", "not valid JSON"),
    (b"[" * 50_000, "JSON"),
    (b"\xff\xfe{\x00}\x00", "UTF-8"),
    (b"[]", "batch is empty"),
]


@pytest.mark.parametrize("accept", [GQL, JSON])
@pytest.mark.parametrize("body,needle", MALFORMED)
def test_malformed_requests_are_400_with_a_graphql_error(gateway, fresh_upstream, token, body, needle, accept):
    response = post_raw(gateway, body, token, accept=accept)
    assert response.status_code == 400 and media_of(response) == accept
    assert needle in error_body(response, "BAD_REQUEST")["message"]
    assert fresh_upstream.calls(token) == []


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/graphql",
                                          "application/json; charset=latin-1", "application/jsonx"])
def test_wrong_content_type_is_415(gateway, fresh_upstream, token, content_type):
    response = post_raw(gateway, json.dumps({"query": Q}), token, content_type=content_type, accept=GQL)
    assert response.status_code == 415 and media_of(response) == GQL
    error_body(response, "UNSUPPORTED_MEDIA_TYPE")
    assert fresh_upstream.calls(token) == []


def test_json_with_charset_and_odd_casing_is_fine(gateway, fresh_upstream, token):
    response = post_raw(gateway, json.dumps({"query": Q}), token, content_type="Application/JSON; Charset=UTF-8")
    assert response.status_code == 200 and response.json()["data"]["leads"]["totalCount"] > 0


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=st.one_of(
    st.binary(max_size=300),
    st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                 lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                     st.sampled_from(["query", "variables", "operationName", "extensions", "x"]), inner, max_size=4),
                 max_leaves=12).map(lambda v: json.dumps(v).encode()),
))
def test_no_body_is_ever_a_500_or_plain_text(gateway, body):
    response = post_raw(gateway, body, accept=GQL)
    assert response.status_code in (200, 400), (body, response.status_code, response.text)
    assert media_of(response) == GQL
    payload = response.json()
    items = payload if isinstance(payload, list) else [payload]
    for item in items:
        assert set(item) <= {"data", "errors", "extensions"} and ("data" in item or item["errors"])


# --- methods ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bare_view_url():
    """The view mounted for every method, as app.py is to mount it (``Route("/graphql", graphql)``)."""
    settings = Settings()
    contexts = ContextFactory(LeadsSources(settings, Stats()), max_page_size=settings.max_page_size)
    app = Starlette(routes=[Route("/graphql", GatewayGraphQL(settings, contexts, Stats()))])
    server = start_in_thread(app)
    yield server.url
    server.stop()


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_methods_are_405_with_a_graphql_error(bare_view_url, method):
    response = httpx.request(method, f"{bare_view_url}/graphql", json={"query": "{ __typename }"},
                             headers={"Accept": GQL})
    assert response.status_code == 405 and response.headers["allow"] == "GET, POST"
    assert media_of(response) == GQL
    error_body(response, "METHOD_NOT_ALLOWED")


def test_plain_options_lists_the_methods(bare_view_url):
    response = httpx.options(f"{bare_view_url}/graphql")
    assert response.status_code == 204 and "POST" in response.headers["allow"]


def test_head_is_a_get_without_body(gateway):
    response = gateway.client.head("/graphql", params={"query": "{ __typename }"})
    assert response.status_code == 200 and media_of(response) == JSON and response.content == b""
