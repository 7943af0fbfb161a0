"""Persisted documents over real HTTP (CONTRACT.md, "Persisted documents"): every request shape (GraphQL over
HTTP's ``documentId``, Apollo's APQ ``extensions.persistedQuery``, Relay's ``doc_id``) over GET and POST, every
refusal code with its HTTP status in both media types and every mode (APQ on/off, safelist on/off, manifests
present/absent), APQ registration (across instances sharing Redis, bounded in memory), the safelist, GET caching
headers, the metrics, and manifests in a real ``leads-gateway serve`` process: checked at start-up, reloaded on
SIGHUP without dropping a request."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.demo.data import campaigns_for_token, dataset_for_token
from tests.integration.test_http_protocol import error_body, media_of

GQL = "application/graphql-response+json"
JSON = "application/json"
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

# The documents of the manifests. Apollo's manifest (ids: sha256 of the body):
LEADS = "query Leads($n: Int) { leads(first: $n) { totalCount nodes { databaseId } } }"
# An alias the client never sends: the stored text runs exactly as stored.
ALIASED = "query Aliased { top: leads(first: 2) { nodes { databaseId number: phoneNumber } } }"
TWO_OPS = ("query First($n: Int!) { first: leads(first: $n) { nodes { databaseId } } } "
           "query Count { leads { totalCount } }")
CREATE = ("mutation Create($input: CreateLeadInput!) { createLead(input: $input) "
          "{ lead { databaseId } userErrors { message } } }")
# relay-compiler's persistConfig output: a flat map, md5 ids.
RELAY = "query RelayLeads($n: Int) { leads(first: $n) { nodes { databaseId } } }"
# graphql-codegen client preset's persisted-documents.json: a flat map, sha256 ids.
CODEGEN = "query CodegenLeads($n: Int) { leads(first: $n) { nodes { databaseId status } } }"
# In no manifest.
OTHER = "query Other($n: Int) { leads(first: $n) { totalCount } }"

APOLLO_DOCS = (LEADS, ALIASED, TWO_OPS, CREATE)
ALL_DOCS = APOLLO_DOCS + (RELAY, CODEGEN)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def apollo_manifest(*bodies: str) -> dict:
    operations = []
    for body in bodies:
        kind, name = re.match(r"\s*(query|mutation|subscription)\s+(\w+)", body).groups()
        operations.append({"id": sha(body), "body": body, "name": name, "type": kind})
    return {"format": "apollo-persisted-query-manifest", "version": 1, "operations": operations}


def write_json(path: Path, content: dict) -> str:
    path.write_text(json.dumps(content, indent=2))
    return str(path)


@pytest.fixture(scope="module")
def manifests(tmp_path_factory) -> tuple[str, ...]:
    """Three files, merged: Apollo's manifest, a Relay map (md5 ids), a graphql-codegen map (sha256 ids)."""
    d = tmp_path_factory.mktemp("manifests")
    return (write_json(d / "persisted-query-manifest.json", apollo_manifest(*APOLLO_DOCS)),
            write_json(d / "relay-persisted.json", {md5(RELAY): RELAY}),
            write_json(d / "persisted-documents.json", {sha(CODEGEN): CODEGEN}))


MODES = {
    "apq+manifest": lambda m: dict(persisted_documents=m),
    "noapq+manifest": lambda m: dict(apq=False, persisted_documents=m),
    "safelist+manifest": lambda m: dict(allow_arbitrary_documents=False, persisted_documents=m),
    "apq": lambda m: dict(),
    "noapq": lambda m: dict(apq=False),
}


@pytest.fixture(scope="module")
def mode(make_gateway, manifests):
    """``mode(name)``: the module's gateway in that mode (started once)."""
    started: dict = {}

    def get(name: str):
        if name not in started:
            started[name] = make_gateway(cache_ttl=30, **MODES[name](manifests))
        return started[name]
    return get


# --- requests ------------------------------------------------------------------------------------


def send(client: httpx.Client, method: str, body: dict, token: str | None = None, accept: str = JSON,
         headers: dict | None = None) -> httpx.Response:
    """``body`` as a POST JSON body, or as GET parameters (objects JSON-encoded, as Apollo Client sends them)."""
    h = {"Accept": accept, **({"Authorization": f"Bearer {token}"} if token else {}), **(headers or {})}
    if method == "GET":
        params = {k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items()}
        return client.get("/graphql", params=params, headers=h)
    return client.post("/graphql", content=json.dumps(body), headers={**h, "Content-Type": "application/json"})


def apq(sha256_hash: str, version: int = 1) -> dict:
    return {"extensions": {"persistedQuery": {"version": version, "sha256Hash": sha256_hash}}}


def ok(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body and body.get("data") is not None, body
    return body["data"]


def first_ids(token: str, n: int) -> list[int]:
    return [r["id"] for r in dataset_for_token(token)[:n]]


def ids(connection: dict) -> list[int]:
    return [node["databaseId"] for node in connection["nodes"]]


def expect_leads(data: dict, token: str, n: int) -> None:
    """What LEADS (or RELAY, CODEGEN, OTHER) answers with ``$n``."""
    rows = dataset_for_token(token)
    if "nodes" in data["leads"]:
        assert ids(data["leads"]) == first_ids(token, n)
    if "totalCount" in data["leads"]:
        assert data["leads"]["totalCount"] == len(rows)


# --- every request shape -------------------------------------------------------------------------

SHAPES = {
    "documentId=sha256:<hash> (Apollo manifest)": lambda: {"documentId": f"sha256:{sha(LEADS)}"},
    "documentId=<Apollo manifest id>": lambda: {"documentId": sha(LEADS)},
    "extensions.persistedQuery=<Apollo manifest id>": lambda: apq(sha(LEADS)),
    "doc_id=<Relay md5 id>": lambda: {"doc_id": md5(RELAY)},
    "documentId=<Relay md5 id>": lambda: {"documentId": md5(RELAY)},
    "doc_id=<Apollo manifest id>": lambda: {"doc_id": sha(LEADS)},
    "documentId=<codegen sha256 id>": lambda: {"documentId": sha(CODEGEN)},
    "documentId=sha256:<hash> (codegen map)": lambda: {"documentId": f"sha256:{sha(CODEGEN)}"},
    "documentId=sha256:<hash> (text of a Relay map entry)": lambda: {"documentId": f"sha256:{sha(RELAY)}"},
    "documentId=<Apollo manifest id> with the same text": lambda: {"documentId": sha(LEADS), "query": LEADS},
    "documentId=sha256:<hash> with the same text": lambda: {"documentId": f"sha256:{sha(LEADS)}", "query": LEADS},
    "extensions.persistedQuery with the same text": lambda: {"query": LEADS, **apq(sha(LEADS))},
    "doc_id with the same text": lambda: {"doc_id": md5(RELAY), "query": RELAY},
}


@pytest.mark.parametrize("mode_name", ["apq+manifest", "noapq+manifest", "safelist+manifest"])
@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_request_shape_runs_the_stored_document(mode, fresh_upstream, token, mode_name, method, shape):
    gw = mode(mode_name)
    for accept in (GQL, JSON):
        response = send(gw.client, method, {**SHAPES[shape](), "variables": {"n": 4}}, token, accept)
        assert media_of(response) == accept
        expect_leads(ok(response), token, 4)


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("by", ["documentId", "doc_id", "apq"])
def test_variables_and_operation_name_with_an_id(mode, fresh_upstream, token, method, by):
    gw = mode("apq+manifest")
    ident = apq(sha(TWO_OPS)) if by == "apq" else {by: sha(TWO_OPS)}
    first = ok(send(gw.client, method, {**ident, "operationName": "First", "variables": {"n": 3}}, token))
    assert ids(first["first"]) == first_ids(token, 3) and "leads" not in first
    count = ok(send(gw.client, method, {**ident, "operationName": "Count"}, token))
    assert count == {"leads": {"totalCount": len(dataset_for_token(token))}}
    # Which operation? A request error, as for the same text sent in full.
    response = send(gw.client, method, {**ident, "variables": {"n": 3}}, token, GQL)
    assert response.status_code == 400
    error_body(response, "GRAPHQL_VALIDATION_FAILED")
    response = send(gw.client, method, {**ident, "operationName": "First", "variables": {"n": "three"}}, token, GQL)
    assert response.status_code == 400
    error_body(response, "BAD_USER_INPUT")


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("by", ["documentId", "doc_id", "apq"])
def test_the_stored_text_runs_exactly_as_stored(mode, fresh_upstream, token, method, by):
    """The manifest's document has aliases the client never sent: the answer has them."""
    gw = mode("apq+manifest")
    ident = apq(sha(ALIASED)) if by == "apq" else {by: sha(ALIASED)}
    data = ok(send(gw.client, method, ident, token))
    rows = dataset_for_token(token)[:2]
    assert data == {"top": {"nodes": [{"databaseId": r["id"], "number": r["phone_number"]} for r in rows]}}


# --- every code, every mode, both media types ----------------------------------------------------

RUNS = "runs"
NOT_FOUND = ("PERSISTED_QUERY_NOT_FOUND", 400, 200)
NOT_IN_LIST = ("PERSISTED_QUERY_NOT_IN_LIST", 400, 200)
NOT_IN_SAFELIST = ("QUERY_NOT_IN_SAFELIST", 400, 200)
MISMATCH = ("PERSISTED_QUERY_HASH_MISMATCH", 400, 200)
APQ_NOT_FOUND = ("PERSISTED_QUERY_NOT_FOUND", 200, 200, "PersistedQueryNotFound")  # 200 always
APQ_NOT_SUPPORTED = ("PERSISTED_QUERY_NOT_SUPPORTED", 200, 200, "PersistedQueryNotSupported")  # 200 always
VERSION_NOT_SUPPORTED = ("PERSISTED_QUERY_NOT_SUPPORTED", 400, 200)


def _arbitrary(outcome, safelist=NOT_IN_LIST) -> dict:
    return {"apq+manifest": outcome, "noapq+manifest": outcome, "apq": outcome, "noapq": outcome,
            "safelist+manifest": safelist}


# (request, {mode: expected}); a mode the spec leaves open is not listed.
CASES = {
    "APQ hash unknown, no text": (lambda: apq(secrets.token_hex(32)), {
        "apq+manifest": APQ_NOT_FOUND, "apq": APQ_NOT_FOUND,
        "noapq+manifest": APQ_NOT_SUPPORTED, "noapq": APQ_NOT_SUPPORTED,
        "safelist+manifest": NOT_IN_LIST}),
    "documentId=sha256:<unknown>": (lambda: {"documentId": f"sha256:{secrets.token_hex(32)}"},
                                    _arbitrary(NOT_FOUND)),
    "documentId=<unknown id>": (lambda: {"documentId": f"no-such-document-{secrets.token_hex(4)}"},
                                _arbitrary(NOT_FOUND)),
    "doc_id=<unknown id>": (lambda: {"doc_id": secrets.token_hex(16)}, _arbitrary(NOT_FOUND)),
    "text in no manifest": (lambda: {"query": OTHER}, _arbitrary(RUNS, safelist=NOT_IN_SAFELIST)),
    "text in no manifest, with its APQ hash": (lambda: {"query": OTHER, **apq(sha(OTHER))}, {
        "apq+manifest": RUNS, "apq": RUNS, "safelist+manifest": NOT_IN_SAFELIST}),
    "text in a manifest, with its APQ hash": (lambda: {"query": LEADS, **apq(sha(LEADS))}, {
        "apq+manifest": RUNS, "noapq+manifest": RUNS, "safelist+manifest": RUNS, "apq": RUNS}),
    "text in a manifest, no id": (lambda: {"query": LEADS}, _arbitrary(RUNS, safelist=RUNS)),
    "APQ hash of another text": (lambda: {"query": ALIASED, **apq(sha(LEADS))}, {
        "apq+manifest": MISMATCH, "noapq+manifest": MISMATCH, "safelist+manifest": MISMATCH, "apq": MISMATCH}),
    "documentId=sha256: of another text": (lambda: {"query": ALIASED, "documentId": f"sha256:{sha(LEADS)}"},
                                           _arbitrary(MISMATCH, safelist=MISMATCH)),
    "documentId=<manifest id> of another text": (lambda: {"query": ALIASED, "documentId": md5(RELAY)}, {
        "apq+manifest": MISMATCH, "noapq+manifest": MISMATCH, "safelist+manifest": MISMATCH}),
    "doc_id=<manifest id> of another text": (lambda: {"query": ALIASED, "doc_id": md5(RELAY)}, {
        "apq+manifest": MISMATCH, "noapq+manifest": MISMATCH, "safelist+manifest": MISMATCH}),
    "APQ version 2": (lambda: apq(sha(LEADS), version=2), {
        "apq+manifest": VERSION_NOT_SUPPORTED, "apq": VERSION_NOT_SUPPORTED,
        "safelist+manifest": VERSION_NOT_SUPPORTED}),
}

CODE_PARAMS = [pytest.param(case, name, id=f"{case}-{name}") for case, (_, modes) in CASES.items() for name in modes]


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("case,mode_name", CODE_PARAMS)
def test_every_code_with_its_status_in_every_mode(mode, upstream, token, case, mode_name, method):
    make, expected_by_mode = CASES[case]
    expected = expected_by_mode[mode_name]
    gw = mode(mode_name)
    for accept in (GQL, JSON):
        body = make()
        if "$n" in body.get("query", "$n"):
            body["variables"] = {"n": 2}
        response = send(gw.client, method, body, token, accept)
        assert media_of(response) == accept, response.headers
        if expected == RUNS:
            expect_leads(ok(response), token, 2)
            continue
        code, gql_status, json_status, *message = expected
        assert response.status_code == (gql_status if accept == GQL else json_status), (accept, response.text)
        error = error_body(response, code)
        if message:
            assert error["message"] == message[0]
    if expected != RUNS:
        assert upstream.calls(token) == []  # refused before anything ran


# --- APQ registration ----------------------------------------------------------------------------


def unique_text() -> str:
    """A document no other test (nor an earlier run against the same Redis) registered."""
    return f"query Fresh($n: Int) {{ r{uuid.uuid4().hex}: leads(first: $n) {{ nodes {{ databaseId }} }} }}"


def key_of(data: dict) -> str:
    (key,) = data
    return key


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("mode_name", ["apq", "apq+manifest"])
def test_apq_round_trip(mode, fresh_upstream, token, method, mode_name):
    gw = mode(mode_name)
    text = unique_text()
    for accept in (GQL, JSON):  # Apollo Client's link: the hash alone first
        response = send(gw.client, method, {**apq(sha(text)), "variables": {"n": 2}}, token, accept)
        assert response.status_code == 200
        assert error_body(response, "PERSISTED_QUERY_NOT_FOUND")["message"] == "PersistedQueryNotFound"
    # ... then the text with the hash (Apollo Client sends that one as a POST, whatever the first was).
    data = ok(send(gw.client, "POST", {"query": text, **apq(sha(text)), "variables": {"n": 2}}, token))
    assert ids(data[key_of(data)]) == first_ids(token, 2)
    for n in (3, 5):  # from then on the hash alone runs it, with any variables
        data = ok(send(gw.client, method, {**apq(sha(text)), "variables": {"n": n}}, token, GQL))
        assert ids(data[key_of(data)]) == first_ids(token, n)


@pytest.mark.parametrize("text,code", [
    ("query Broken { leads(first: 1) { nodes { databaseId } }", "GRAPHQL_PARSE_FAILED"),
    ("query Unknown { leads(first: 1) { nope } }", "GRAPHQL_VALIDATION_FAILED"),
    ("query Deep { leads { nodes { campaign { leads { nodes { campaign { leads { nodes { campaign { leads "
     "{ nodes { campaign { leads { totalCount } } } } } } } } } } } } } }", "QUERY_TOO_COMPLEX"),  # depth 13
])
def test_apq_request_errors_are_not_registered(mode, fresh_upstream, token, text, code):
    gw = mode("apq")
    text = text.replace("query ", f"query R{uuid.uuid4().hex[:8]}", 1)
    for accept in (GQL, JSON):
        response = send(gw.client, "POST", {"query": text, **apq(sha(text))}, token, accept)
        assert response.status_code == (400 if accept == GQL else 200), response.text
        error_body(response, code)
    for method in ("GET", "POST"):
        response = send(gw.client, method, apq(sha(text)), token, GQL)
        assert response.status_code == 200
        error_body(response, "PERSISTED_QUERY_NOT_FOUND")
    assert fresh_upstream.calls(token) == []


def error_code_of(response: httpx.Response) -> str:
    return response.json()["errors"][0]["extensions"]["code"]


def test_no_apq_registration_in_safelist_mode(make_gateway, manifests, fresh_upstream, token):
    gw = make_gateway(allow_arbitrary_documents=False, persisted_documents=manifests)
    text = unique_text()
    for _ in range(2):
        response = send(gw.client, "POST", {"query": text, **apq(sha(text)), "variables": {"n": 2}}, token, GQL)
        assert response.status_code == 400
        error_body(response, "QUERY_NOT_IN_SAFELIST")
        response = send(gw.client, "POST", {**apq(sha(text)), "variables": {"n": 2}}, token, GQL)
        assert response.status_code == 400
        error_body(response, "PERSISTED_QUERY_NOT_IN_LIST")
    assert metric(gw, "leads_gateway_apq_registrations_total") == 0
    assert fresh_upstream.calls(token) == []


def test_apq_is_shared_by_instances_sharing_redis_and_the_secret(make_gateway, redis_url, fresh_upstream, token):
    secret = secrets.token_hex(16)
    a = make_gateway(cache_url=redis_url, cache_secret=secret, result_cache_bytes=0)
    b = make_gateway(cache_url=redis_url, cache_secret=secret, result_cache_bytes=0)
    other = make_gateway(cache_url=redis_url, cache_secret=secrets.token_hex(16), result_cache_bytes=0)
    text = unique_text()
    response = send(b.client, "POST", {**apq(sha(text)), "variables": {"n": 2}}, token, GQL)
    assert response.status_code == 200
    error_body(response, "PERSISTED_QUERY_NOT_FOUND")
    data = ok(send(a.client, "POST", {"query": text, **apq(sha(text)), "variables": {"n": 2}}, token))
    assert ids(data[key_of(data)]) == first_ids(token, 2)
    assert metric(a, "leads_gateway_apq_registrations_total") == 1
    for method in ("GET", "POST"):  # registered on A: B knows it
        data = ok(send(b.client, method, {**apq(sha(text)), "variables": {"n": 3}}, token))
        assert ids(data[key_of(data)]) == first_ids(token, 3)
    for method in ("GET", "POST"):  # same Redis, another secret: not shared
        response = send(other.client, method, {**apq(sha(text)), "variables": {"n": 3}}, token, GQL)
        assert response.status_code == 200
        error_body(response, "PERSISTED_QUERY_NOT_FOUND")


def _register_many(gw, token: str, count: int) -> list[str]:
    texts = []
    for _ in range(count):
        text = unique_text() + " " + "#" * 40 + "\n"  # ~ 150 bytes each
        ok(send(gw.client, "POST", {"query": text, **apq(sha(text)), "variables": {"n": 1}}, token))
        texts.append(text)
    return texts


def test_apq_memory_bound_drops_the_oldest_registrations(make_gateway, fresh_upstream, token):
    gw = make_gateway(apq_cache_bytes=1000, result_cache_bytes=0)  # memory:// backend: the bound is all there is
    texts = _register_many(gw, token, 20)  # ~ 3000 bytes of text
    response = send(gw.client, "POST", {**apq(sha(texts[0])), "variables": {"n": 1}}, token, GQL)
    assert response.status_code == 200
    error_body(response, "PERSISTED_QUERY_NOT_FOUND")
    data = ok(send(gw.client, "POST", {**apq(sha(texts[-1])), "variables": {"n": 1}}, token))
    assert ids(data[key_of(data)]) == first_ids(token, 1)
    # The client sends the text again: registered again, and runs by hash again.
    ok(send(gw.client, "POST", {"query": texts[0], **apq(sha(texts[0])), "variables": {"n": 1}}, token))
    ok(send(gw.client, "POST", {**apq(sha(texts[0])), "variables": {"n": 1}}, token))


def test_apq_memory_bound_with_redis_still_finds_the_oldest_in_redis(make_gateway, redis_url, fresh_upstream, token):
    gw = make_gateway(apq_cache_bytes=1000, result_cache_bytes=0, cache_url=redis_url,
                      cache_secret=secrets.token_hex(16))
    texts = _register_many(gw, token, 20)
    data = ok(send(gw.client, "POST", {**apq(sha(texts[0])), "variables": {"n": 2}}, token))
    assert ids(data[key_of(data)]) == first_ids(token, 2)


# --- the safelist --------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_safelist_runs_manifest_texts_and_nothing_else(mode, fresh_upstream, token, method):
    gw = mode("safelist+manifest")
    for text in (LEADS, RELAY, CODEGEN):  # a text equal to a manifest document, sent without any id
        expect_leads(ok(send(gw.client, method, {"query": text, "variables": {"n": 3}}, token)), token, 3)
    refused = [OTHER, LEADS + " ", LEADS.replace("first: $n", "first:$n"), "{ __typename }",
               "query Leads($n: Int) { leads(first: $n) { totalCount } }", "{ __schema { types { name } } }"]
    for text in refused:  # anything else, however close
        for accept in (GQL, JSON):
            response = send(gw.client, method, {"query": text, "variables": {"n": 3}}, token, accept)
            assert response.status_code == (400 if accept == GQL else 200), (text, response.text)
            error_body(response, "QUERY_NOT_IN_SAFELIST")


@pytest.mark.parametrize("overrides,shown", [
    (dict(allow_arbitrary_documents=False), False),  # the safelist turns the IDE off by default
    (dict(allow_arbitrary_documents=False, graphiql=True), True),  # unless asked for explicitly
    (dict(), True),
    (dict(graphiql=False), False),
])
def test_graphiql_under_the_safelist(make_gateway, manifests, overrides, shown):
    gw = make_gateway(persisted_documents=manifests, **overrides)
    page = gw.client.get("/graphql", headers={"Accept": BROWSER})
    if shown:
        assert page.status_code == 200 and media_of(page) == "text/html"
        assert "graphiql" in page.text.lower()
    else:
        assert media_of(page) != "text/html" and page.status_code != 200
        assert "graphiql" not in page.text.lower()


@pytest.mark.parametrize("mode_name", ["apq+manifest", "safelist+manifest", "noapq+manifest"])
def test_a_mutation_by_id_over_get_is_405(mode, fresh_upstream, token, mode_name):
    gw = mode(mode_name)
    campaign = campaigns_for_token(token)[0]
    variables = {"input": {"phoneNumber": "+14155550100", "campaignId": campaign["id"]}}
    shapes = [{"documentId": sha(CREATE)}, {"documentId": f"sha256:{sha(CREATE)}"}, {"doc_id": sha(CREATE)},
              apq(sha(CREATE)), {"query": CREATE}]
    for shape in shapes:
        for accept in (GQL, JSON):
            response = send(gw.client, "GET", {**shape, "variables": variables}, token, accept)
            assert response.status_code == 405, (shape, response.text)
            assert response.headers["allow"] == "POST" and media_of(response) == accept
            error_body(response, "METHOD_NOT_ALLOWED")
    assert fresh_upstream.writes(token) == []
    # The same over POST creates the lead.
    data = ok(send(gw.client, "POST", {"documentId": sha(CREATE), "variables": variables}, token))
    assert data["createLead"]["userErrors"] == [] and data["createLead"]["lead"]["databaseId"] > 0
    assert len(fresh_upstream.writes(token)) == 1


# --- GET caching headers -------------------------------------------------------------------------


def vary_of(response: httpx.Response) -> set[str]:
    return {v.strip().lower() for header in response.headers.get_list("vary") for v in header.split(",")}


def max_age(response: httpx.Response) -> int:
    m = re.fullmatch(r"private,\s*max-age=(\d+)", response.headers.get("cache-control", ""))
    assert m, (response.status_code, response.headers.get("cache-control"), response.text)
    return int(m.group(1))


def test_get_success_is_private_with_max_age_within_the_ttl(make_gateway, manifests, fresh_upstream, token):
    gw = make_gateway(cache_ttl=30, persisted_documents=manifests)
    requests = [{"documentId": sha(LEADS)}, {"doc_id": md5(RELAY)}, apq(sha(LEADS)), {"query": OTHER}]
    ages = []
    for body in requests:
        for accept in (GQL, JSON):
            response = send(gw.client, "GET", {**body, "variables": {"n": 5}}, token, accept)
            ok(response)
            ages.append(max_age(response))
            assert 0 <= ages[-1] <= 30
            assert {"authorization", "accept"} <= vary_of(response)
    assert ages[0] >= 25  # just fetched: fresh for about the whole TTL
    time.sleep(1.2)
    later = send(gw.client, "GET", {"documentId": sha(LEADS), "variables": {"n": 5}}, token)
    ok(later)
    assert max_age(later) < ages[0]  # the same data, older: fresh for less
    assert {"authorization", "accept"} <= vary_of(later)


def test_get_without_caching_says_max_age_0(make_gateway, manifests, fresh_upstream, token):
    gw = make_gateway(cache_ttl=0, persisted_documents=manifests)
    response = send(gw.client, "GET", {"documentId": sha(LEADS), "variables": {"n": 2}}, token)
    ok(response)
    assert max_age(response) == 0
    assert "authorization" in vary_of(response)


@pytest.mark.parametrize("body,token_kind,status", [
    pytest.param({"documentId": f"sha256:{'0' * 64}"}, "token", (400, 200), id="NOT_FOUND"),
    pytest.param(apq("1" * 64), "token", (200, 200), id="APQ-NOT_FOUND"),
    pytest.param({"documentId": sha(LEADS), "query": ALIASED}, "token", (400, 200), id="HASH_MISMATCH"),
    pytest.param(apq(sha(LEADS), version=2), "token", (400, 200), id="NOT_SUPPORTED"),
    pytest.param({"query": "{ leads { nope } }"}, "token", (400, 200), id="VALIDATION_FAILED"),
    pytest.param({"documentId": sha(LEADS)}, "none", (200, 200), id="field-error-UNAUTHENTICATED"),
    pytest.param({"documentId": sha(LEADS)}, "forbidden", (200, 200), id="field-error-FORBIDDEN"),
    pytest.param({"documentId": sha(CREATE)}, "token", (405, 405), id="mutation-405"),
    pytest.param({"documentId": sha(LEADS), "variables": "{nope"}, "token", (400, 400), id="malformed-400"),
])
def test_get_errors_are_no_store(mode, fresh_upstream, token, body, token_kind, status):
    gw = mode("apq+manifest")
    caller = {"token": token, "none": None, "forbidden": "forbidden-persisted"}[token_kind]
    for accept, expected in zip((GQL, JSON), status):
        response = send(gw.client, "GET", body, caller, accept)
        assert response.status_code == expected, response.text
        assert "errors" in response.json()
        assert response.headers.get("cache-control") == "no-store"
        assert {"authorization", "accept"} <= vary_of(response)


# --- metrics -------------------------------------------------------------------------------------


def samples(gw) -> list:
    text = gw.client.get("/metrics").text
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def metric(gw, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples with these labels (0 when there is none)."""
    return sum(s.value for s in samples(gw) if s.name == name and all(s.labels.get(k) == v
                                                                       for k, v in labels.items()))


def documents(gw) -> dict[str, float]:
    return {source: metric(gw, "leads_gateway_documents_total", source=source)
            for source in ("manifest", "apq", "text")}


def refusals(gw) -> dict[str, float]:
    found = {}
    for s in samples(gw):
        if s.name == "leads_gateway_document_refusals_total" and s.value:
            found[s.labels["code"]] = s.value
    return found


def test_metrics_count_documents_by_source_and_refusals_by_code(make_gateway, manifests, fresh_upstream, token):
    gw = make_gateway(persisted_documents=manifests, result_cache_bytes=0, cache_ttl=0)
    assert metric(gw, "leads_gateway_persisted_documents") == len(ALL_DOCS)
    assert documents(gw) == {"manifest": 0, "apq": 0, "text": 0} and refusals(gw) == {}
    ok(send(gw.client, "POST", {"query": OTHER}, token))
    ok(send(gw.client, "POST", {"documentId": sha(LEADS)}, token))
    ok(send(gw.client, "GET", {"doc_id": md5(RELAY)}, token))
    ok(send(gw.client, "POST", apq(sha(ALIASED)), token))
    ok(send(gw.client, "GET", {"documentId": f"sha256:{sha(CODEGEN)}"}, token))
    send(gw.client, "POST", apq(secrets.token_hex(32)), token)
    send(gw.client, "GET", {"documentId": f"sha256:{secrets.token_hex(32)}"}, token)
    send(gw.client, "POST", {"doc_id": "nope"}, token)
    send(gw.client, "POST", {"documentId": sha(LEADS), "query": ALIASED}, token)
    send(gw.client, "POST", apq(sha(LEADS), version=2), token)
    assert documents(gw) == {"manifest": 4, "apq": 0, "text": 1}
    assert refusals(gw) == {"PERSISTED_QUERY_NOT_FOUND": 3, "PERSISTED_QUERY_HASH_MISMATCH": 1,
                            "PERSISTED_QUERY_NOT_SUPPORTED": 1}
    assert metric(gw, "leads_gateway_apq_registrations_total") == 0
    # A registration runs the text it registers (counted once, as apq or text), then the hash alone: apq.
    text = unique_text()
    ok(send(gw.client, "POST", {"query": text, **apq(sha(text))}, token))
    assert metric(gw, "leads_gateway_apq_registrations_total") == 1
    after = documents(gw)
    assert after["manifest"] == 4 and after["apq"] + after["text"] == 2
    for _ in range(3):
        ok(send(gw.client, "POST", apq(sha(text)), token))
    assert documents(gw) == {**after, "apq": after["apq"] + 3}
    assert metric(gw, "leads_gateway_apq_registrations_total") == 1
    assert sum(refusals(gw).values()) == 5

    safelist = make_gateway(persisted_documents=manifests, allow_arbitrary_documents=False, result_cache_bytes=0)
    send(safelist.client, "POST", {"query": OTHER}, token)
    send(safelist.client, "POST", {"query": OTHER, **apq(sha(OTHER))}, token)
    send(safelist.client, "POST", {"documentId": "nope"}, token)
    send(safelist.client, "POST", apq(secrets.token_hex(32)), token)
    ok(send(safelist.client, "POST", {"documentId": sha(LEADS)}, token))
    assert refusals(safelist) == {"QUERY_NOT_IN_SAFELIST": 2, "PERSISTED_QUERY_NOT_IN_LIST": 2}
    assert documents(safelist) == {"manifest": 1, "apq": 0, "text": 0}
    assert metric(safelist, "leads_gateway_apq_registrations_total") == 0

    no_apq = make_gateway(apq=False, result_cache_bytes=0)
    send(no_apq.client, "POST", apq(secrets.token_hex(32)), token)
    assert refusals(no_apq) == {"PERSISTED_QUERY_NOT_SUPPORTED": 1}
    assert metric(no_apq, "leads_gateway_persisted_documents") == 0


# --- manifests in a real process -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """A ``python -m gateway.cli serve`` process; its output goes to a file (a pipe nobody reads would fill)."""

    def __init__(self, upstream_url: str, log: Path, **env: str) -> None:
        self.port = free_port()
        self.log = log
        full_env = {**{k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")},
                    "GATEWAY_UPSTREAM_URL": upstream_url, **env}
        self.out = open(log, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--port", str(self.port)],
                                     env=full_env, stdout=self.out, stderr=subprocess.STDOUT, text=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        if not self.out.closed:
            self.out.flush()
        return self.log.read_text()

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while not self.ready():
            assert self.proc.poll() is None, f"the gateway exited ({self.proc.returncode}):\n{self.output()}"
            assert time.monotonic() < deadline, "the gateway did not start"
            time.sleep(0.1)

    def wait_exit(self) -> int:
        """The exit status of a gateway that must refuse to start."""
        deadline = time.monotonic() + 30
        while self.proc.poll() is None:
            if self.ready():
                self.stop()
                pytest.fail(f"the gateway started:\n{self.output()}")
            assert time.monotonic() < deadline, "the gateway neither started nor exited"
            time.sleep(0.1)
        self.out.close()
        return self.proc.returncode

    def hup(self) -> None:
        os.kill(self.proc.pid, signal.SIGHUP)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.out.close()


@pytest.fixture
def serve(upstream, tmp_path):
    started: list[Served] = []

    def start(*paths: str, ready: bool = True, **env: str) -> Served:
        s = Served(upstream.url, tmp_path / f"gateway-{len(started)}.log",
                   GATEWAY_PERSISTED_DOCUMENTS=",".join(paths), **env)
        started.append(s)
        if ready:
            s.wait_ready()
        return s

    yield start
    for s in started:
        s.stop()


BAD_DOCUMENTS = {
    "unknown field": "query Unknown { leads(first: 1) { nodes { nope } } }",
    "syntax error": "query Broken { leads(first: 1) { nodes { databaseId } }",
    "over the request limits": "query Aliases { " + " ".join(f"a{k}: __typename" for k in range(60)) + " }",
}


@pytest.mark.parametrize("problem", list(BAD_DOCUMENTS))
@pytest.mark.parametrize("fmt", ["apollo", "flat"])
def test_an_invalid_document_stops_the_start_naming_file_and_id(serve, tmp_path, problem, fmt):
    bad = BAD_DOCUMENTS[problem]
    path = tmp_path / f"manifest-{fmt}.json"
    if fmt == "apollo":
        content = apollo_manifest(LEADS, bad)
        bad_id = sha(bad)
    else:
        bad_id = f"bad-{problem.replace(' ', '-')}"
        content = {sha(LEADS): LEADS, bad_id: bad}
    good = write_json(tmp_path / "good.json", {md5(RELAY): RELAY})
    s = serve(good, write_json(path, content), ready=False)
    assert s.wait_exit() != 0
    output = s.output()
    assert str(path) in output and bad_id in output, output


def test_the_same_id_with_two_texts_stops_the_start(serve, tmp_path):
    first = write_json(tmp_path / "first.json", {"leads-page": LEADS})
    second = write_json(tmp_path / "second.json", {"leads-page": OTHER})
    s = serve(first, second, ready=False)
    assert s.wait_exit() != 0
    output = s.output()
    assert "leads-page" in output and (first in output or second in output), output


def test_apollo_and_flat_files_are_merged(serve, manifests, fresh_upstream, token):
    s = serve(*manifests)
    with httpx.Client(base_url=s.url, timeout=10) as client:
        for body in ({"documentId": sha(LEADS)}, apq(sha(LEADS)), {"doc_id": md5(RELAY)},
                     {"documentId": sha(CODEGEN)}, {"documentId": f"sha256:{sha(CODEGEN)}"}):
            for method in ("GET", "POST"):
                expect_leads(ok(send(client, method, {**body, "variables": {"n": 3}}, token)), token, 3)
        text = client.get("/metrics").text
    gauge = [s.value for f in text_string_to_metric_families(text) for s in f.samples
             if s.name == "leads_gateway_persisted_documents"]
    assert gauge == [len(ALL_DOCS)]


def wait_for(check, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except AssertionError:
            pass
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.1)


def by_id(client: httpx.Client, doc_id: str, token: str) -> httpx.Response:
    """Never answered from the result cache: the document is looked up each time."""
    return send(client, "POST", {"documentId": doc_id, "variables": {"n": 2}}, token, GQL,
                headers={"Cache-Control": "no-cache"})


def runs(client: httpx.Client, doc_id: str, token: str) -> bool:
    response = by_id(client, doc_id, token)
    return response.status_code == 200 and "errors" not in response.json()


def not_found(client: httpx.Client, doc_id: str, token: str) -> bool:
    response = by_id(client, doc_id, token)
    return response.status_code == 400 and error_code_of(response) == "PERSISTED_QUERY_NOT_FOUND"


def test_sighup_reloads_the_manifests(serve, tmp_path, fresh_upstream, token):
    path = tmp_path / "persisted-documents.json"
    write_json(path, {"doc-a": LEADS})
    s = serve(str(path))
    with httpx.Client(base_url=s.url, timeout=10) as client:
        assert runs(client, "doc-a", token) and not_found(client, "doc-b", token)
        write_json(path, {"doc-a": LEADS, "doc-b": RELAY})
        s.hup()
        wait_for(lambda: runs(client, "doc-b", token))
        expect_leads(ok(by_id(client, "doc-b", token)), token, 2)
        assert runs(client, "doc-a", token)
        assert metric_of(client, "leads_gateway_persisted_documents") == 2
        write_json(path, {"doc-b": RELAY})  # a document dropped from the file is gone after the next reload
        s.hup()
        wait_for(lambda: not_found(client, "doc-a", token))
        assert runs(client, "doc-b", token)
    assert s.proc.poll() is None


def metric_of(client: httpx.Client, name: str) -> float:
    return sum(s.value for f in text_string_to_metric_families(client.get("/metrics").text) for s in f.samples
               if s.name == name)


def test_no_request_is_dropped_during_reloads(serve, tmp_path, fresh_upstream, token):
    path = tmp_path / "persisted-documents.json"
    write_json(path, {"doc-a": LEADS})
    s = serve(str(path))
    answers: list = []
    stop = threading.Event()

    def loop(doc_id: str) -> None:
        with httpx.Client(base_url=s.url, timeout=10) as client:
            while not stop.is_set():
                try:
                    response = by_id(client, doc_id, token)
                    answers.append((response.status_code, response.json()))
                except Exception as e:  # a dropped connection, a reset: what must not happen
                    answers.append((None, repr(e)))

    threads = [threading.Thread(target=loop, args=("doc-a",)) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for k in range(6):  # six reloads in 1.5 s, each with one more document
            write_json(path, {"doc-a": LEADS, **{f"extra-{j}": RELAY for j in range(k + 1)}})
            s.hup()
            time.sleep(0.25)
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    assert len(answers) >= 30, answers[:5]
    failed = [a for a in answers if a[0] != 200 or "errors" in a[1]]
    assert failed == [], failed[:5]
    assert all(ids(a[1]["data"]["leads"]) == first_ids(token, 2) for a in answers)
    with httpx.Client(base_url=s.url, timeout=10) as client:
        wait_for(lambda: runs(client, "extra-5", token))
    assert s.proc.poll() is None


@pytest.mark.parametrize("broken", [
    {"doc-a": LEADS, "doc-c": OTHER, "doc-bad": "query Bad { leads { nope } }"},
    "{ this is not JSON",
])
def test_a_broken_reload_keeps_the_previous_set(serve, tmp_path, fresh_upstream, token, broken):
    path = tmp_path / "persisted-documents.json"
    write_json(path, {"doc-a": LEADS})
    s = serve(str(path))
    with httpx.Client(base_url=s.url, timeout=10) as client:
        if isinstance(broken, dict):
            write_json(path, broken)
        else:
            path.write_text(broken)
        s.hup()
        time.sleep(1.0)  # whatever the reload did, it did it by now
        assert s.proc.poll() is None, s.output()
        assert runs(client, "doc-a", token)  # the previous set is still served
        assert not_found(client, "doc-c", token)  # nothing of the broken files was taken
        assert metric_of(client, "leads_gateway_persisted_documents") == 1
        write_json(path, {"doc-a": LEADS, "doc-c": OTHER})  # fixed: the next reload takes it
        s.hup()
        wait_for(lambda: runs(client, "doc-c", token))
    s.stop()
    errors = [json.loads(line) for line in s.output().splitlines()
              if line.startswith("{") and '"level": "error"' in line]
    assert any(str(path) in json.dumps(e) for e in errors), s.output()


# --- subscriptions -------------------------------------------------------------------------------

LIVE = "subscription Live($first: Int) { leads(first: $first) { totalCount nodes { databaseId } } }"


async def first_sse_event(gw, body: dict, token: str) -> tuple[int, dict]:
    """The status and first event (or JSON answer) of an SSE subscription request."""
    headers = {"Accept": "text/event-stream", "Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=10) as client, client.stream("POST", f"{gw.url}/graphql", json=body,
                                                                       headers=headers) as response:
        if not response.headers["content-type"].startswith("text/event-stream"):
            return response.status_code, json.loads(await response.aread())
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                return response.status_code, json.loads(line[5:])
    raise AssertionError("the stream ended without an event")


async def test_subscriptions_run_by_id_and_follow_the_safelist(make_gateway, tmp_path, fresh_upstream, token):
    import aiohttp

    from tests.integration.test_live import WSConnection

    manifest = write_json(tmp_path / "live.json", {"live-1": LIVE})
    gw = make_gateway(persisted_documents=(manifest,), allow_arbitrary_documents=False)
    status, event = await first_sse_event(gw, {"doc_id": "live-1", "variables": {"first": 3}}, token)
    assert status == 200 and ids(event["data"]["leads"]) == first_ids(token, 3), event
    other = "subscription { leads(first: 2) { totalCount } }"
    status, answer = await first_sse_event(gw, {"query": other}, token)
    assert status == 400 and answer["errors"][0]["extensions"]["code"] == "QUERY_NOT_IN_SAFELIST", answer
    async with aiohttp.ClientSession() as session:
        conn = await WSConnection.open(session, gw, token)
        _, refused = await conn.subscribe(other)
        error = await refused.next()
        assert error["ws"] == "error" and error["errors"][0]["extensions"]["code"] == "QUERY_NOT_IN_SAFELIST", error
        _, listed = await conn.subscribe(LIVE, {"first": 2})  # the manifest's exact text runs
        assert ids((await listed.next())["data"]["leads"]) == first_ids(token, 2)
        # By id, in the subscribe payload: the shapes of HTTP (Relay's subscribeFn sends what its network
        # layer sends).
        for by in ({"doc_id": "live-1"}, {"documentId": "live-1"}, apq(sha(LIVE))):
            conn._ids += 1
            sid = str(conn._ids)
            await conn.ws.send_json({"id": sid, "type": "subscribe", "payload": {**by, "variables": {"first": 1}}})
            assert ids((await conn.subs[sid].next())["data"]["leads"]) == first_ids(token, 1), by
        for by, code in (({"doc_id": "nope"}, "PERSISTED_QUERY_NOT_IN_LIST"), ({"doc_id": 5}, "BAD_REQUEST")):
            conn._ids += 1
            sid = str(conn._ids)
            await conn.ws.send_json({"id": sid, "type": "subscribe", "payload": by})
            error = await conn.subs[sid].next()
            assert error["ws"] == "error" and error["errors"][0]["extensions"]["code"] == code, error
        await conn.close()


# --- batches -------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode_name", ["apq+manifest", "safelist+manifest"])
def test_each_operation_of_a_batch_is_resolved_on_its_own(mode, fresh_upstream, token, mode_name):
    gw = mode(mode_name)
    text = unique_text()
    batch = [{"documentId": f"sha256:{sha(LEADS)}", "variables": {"n": 2}}, {"doc_id": "no-such-id"},
             {"query": text, **apq(sha(text))}, {"query": LEADS, "variables": {"n": 1}}]
    response = send(gw.client, "POST", batch, token)  # type: ignore[arg-type]
    assert response.status_code == 200
    by_id, unknown, registered, listed = response.json()
    expect_leads(by_id["data"], token, 2)
    expect_leads(listed["data"], token, 1)
    if mode_name == "safelist+manifest":
        assert unknown["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_IN_LIST"
        assert registered["errors"][0]["extensions"]["code"] == "QUERY_NOT_IN_SAFELIST"
    else:
        assert unknown["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
        assert "errors" not in registered
        assert "errors" not in ok_by_hash(gw, text, token)


def ok_by_hash(gw, text: str, token: str) -> dict:
    """The answer to ``text`` sent by its APQ hash alone."""
    return send(gw.client, "POST", apq(sha(text)), token).json()
