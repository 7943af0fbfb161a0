"""createLead over real HTTP against the demo upstream's ``POST /user/lead``: validation, the upstream's 422,
lost and late answers (exactly one lead, the client told the truth), idempotency keys (also concurrent, on
two instances sharing a real Redis), read-your-writes on every instance, other callers' caches untouched,
and the HTTP rules for mutations."""

from __future__ import annotations

import json
import logging
import secrets
import threading
import uuid

import httpx
import pytest

from gateway.demo.data import campaigns_for_token, dataset_for_token

CREATE = """mutation Create($input: CreateLeadInput!) {
  createLead(input: $input) {
    lead { id databaseId phoneNumber customerName email variables status campaignId campaign { databaseId name }
           secondaryContacts { phoneNumber customerName status } }
    leadEdge { cursor node { databaseId } }
    userErrors { field message code }
  }
}"""
CREATE_BARE = """mutation Create($input: CreateLeadInput!) {
  createLead(input: $input) { lead { databaseId } userErrors { field code } }
}"""
LIST = "{ leads(last: 3) { totalCount edges { cursor node { databaseId phoneNumber } } } }"
LOOKUP = "query($id: Int!) { lead(databaseId: $id) { databaseId phoneNumber } }"


def new_phone() -> str:
    return "+1555" + str(uuid.uuid4().int)[:7]


def campaign_of(token: str) -> int:
    return campaigns_for_token(token)[0]["id"]


def lead_input(token: str, **extra) -> dict:
    return {"phoneNumber": new_phone(), "campaignId": campaign_of(token), "customerName": "Ada Lovelace",
            "email": "ada@example.com", **extra}


def create(gw, token, input_, query=CREATE) -> dict:
    body = gw.gql(query, {"input": input_}, token)
    return body


def leads_with_phone(gw, token, phone) -> list[int]:
    """The caller's leads with this phone number, read past every cache (``no-cache``)."""
    body = gw.gql("query($p: String) { leads(first: 100, filter: {phoneNumber: $p}) { nodes { databaseId phoneNumber } } }",
                  {"p": phone}, token, headers={"Cache-Control": "no-cache"})
    return [n["databaseId"] for n in body["data"]["leads"]["nodes"] if n["phoneNumber"] == phone]


@pytest.fixture(scope="module")
def gw(make_gateway):
    return make_gateway(cache_ttl=30)


@pytest.fixture(scope="module")
def impatient(make_gateway):
    """A gateway that gives up on the upstream after 1 s (the "late" fault answers after 3 s)."""
    return make_gateway(cache_ttl=30, upstream_timeout=1.0)


# --- the happy path, and read-your-writes --------------------------------------------------------------

def test_create_answers_the_lead_and_the_list_shows_it_at_once(gw, fresh_upstream, token):
    before = gw.gql(LIST, token=token)["data"]["leads"]  # cached now (page and result cache)
    assert gw.gql(LIST, token=token)["data"]["leads"] == before
    given = lead_input(token, variables={"plan": "pro"}, secondaryContacts=[
        {"phoneNumber": new_phone(), "customerName": "Bob"}])
    payload = create(gw, token, given)["data"]["createLead"]
    assert payload["userErrors"] == []
    lead = payload["lead"]
    assert lead["phoneNumber"] == given["phoneNumber"] and lead["status"] == "CREATED"
    assert lead["customerName"] == "Ada Lovelace" and lead["email"] == "ada@example.com"
    assert lead["variables"] == {"plan": "pro", "customer_name": "Ada Lovelace", "email": "ada@example.com"}
    assert lead["campaignId"] == given["campaignId"] == lead["campaign"]["databaseId"]
    assert lead["campaign"]["name"]
    assert [c["customerName"] for c in lead["secondaryContacts"]] == ["Bob"]
    # The upstream was sent exactly what the contract says.
    (write,) = fresh_upstream.writes(token)
    assert write.body["phone_number"] == given["phoneNumber"] and write.body["allow_dupplicate"] is False
    after = gw.gql(LIST, token=token)["data"]["leads"]
    assert after["totalCount"] == before["totalCount"] + 1
    assert after["edges"][-1]["node"]["databaseId"] == lead["databaseId"]
    # leadEdge places the lead in the unfiltered list: the very cursor the list gives it.
    assert payload["leadEdge"] == {"cursor": after["edges"][-1]["cursor"], "node": {"databaseId": lead["databaseId"]}}
    assert gw.gql(LOOKUP, {"id": lead["databaseId"]}, token)["data"]["lead"]["phoneNumber"] == given["phoneNumber"]


def test_a_lead_looked_up_before_is_found_after_a_write(gw, fresh_upstream, token):
    missing = dataset_for_token(token)[-1]["id"] + 1  # the id the next lead gets
    assert gw.gql(LOOKUP, {"id": missing}, token)["data"]["lead"] is None  # the caller's list, scanned and cached
    lead = create(gw, token, lead_input(token))["data"]["createLead"]["lead"]
    assert lead["databaseId"] == missing
    assert gw.gql(LOOKUP, {"id": missing}, token)["data"]["lead"]["databaseId"] == missing


def test_writes_and_invalidations_are_counted_in_metrics(gw, fresh_upstream, token):
    def sample(name: str) -> float:
        text = gw.client.get("/metrics").text
        return float(next(line.split()[-1] for line in text.splitlines() if line.startswith(name + " ")))

    created, invalidations = sample('leads_gateway_lead_writes_total{result="created"}'), sample(
        "leads_gateway_cache_invalidations_total")
    refused = sample('leads_gateway_lead_writes_total{result="refused"}')
    create(gw, token, lead_input(token))
    create(gw, token, lead_input(token, campaignId=999_999))
    assert sample('leads_gateway_lead_writes_total{result="created"}') == created + 1
    assert sample('leads_gateway_lead_writes_total{result="refused"}') == refused + 1
    assert sample("leads_gateway_cache_invalidations_total") == invalidations + 1


def test_another_callers_cache_is_untouched(gw, fresh_upstream, token):
    other = token + "-other"
    gw.gql(LIST, token=other)
    calls = len(fresh_upstream.calls(other))
    create(gw, token, lead_input(token))
    assert gw.gql(LIST, token=other)["data"]["leads"]["totalCount"] == len(dataset_for_token(other))
    gw.gql("{ leads(first: 2) { totalCount } }", token=other)
    assert len(fresh_upstream.calls(other)) == calls  # still served from its cache


def test_two_instances_sharing_redis_see_the_write_at_once(make_gateway, fresh_upstream, redis_url, token):
    secret = secrets.token_hex(16)
    a = make_gateway(cache_url=redis_url, cache_ttl=30, cache_secret=secret)
    b = make_gateway(cache_url=redis_url, cache_ttl=30, cache_secret=secret)
    other = token + "-other"
    before = b.gql(LIST, token=token)["data"]["leads"]
    a.gql(LIST, token=token)
    b.gql(LIST, token=other)
    calls_other = len(fresh_upstream.calls(other))
    lead = create(a, token, lead_input(token))["data"]["createLead"]["lead"]
    after = b.gql(LIST, token=token)["data"]["leads"]  # the very next query, on the other instance
    assert after["totalCount"] == before["totalCount"] + 1
    assert after["edges"][-1]["node"]["databaseId"] == lead["databaseId"]
    assert a.gql(LIST, token=token)["data"]["leads"] == after
    b.gql(LIST, token=other)
    a.gql(LIST, token=other)
    assert len(fresh_upstream.calls(other)) == calls_other  # the other caller's pages still shared and fresh


# --- validation, before any upstream call ---------------------------------------------------------------

@pytest.mark.parametrize("change, field, code", [
    ({"phoneNumber": "4155550100"}, ["input", "phoneNumber"], "INVALID"),
    ({"phoneNumber": "  "}, ["input", "phoneNumber"], "REQUIRED"),
    ({"campaignId": 0}, ["input", "campaignId"], "INVALID"),
    ({"email": "nope"}, ["input", "email"], "INVALID"),
    ({"customerName": "x" * 256}, ["input", "customerName"], "TOO_LONG"),
    ({"variables": ["a", "list"]}, ["input", "variables"], "INVALID"),
    ({"variables": {f"v{i}": i for i in range(51)}}, ["input", "variables"], "TOO_MANY"),
    ({"secondaryContacts": [{"phoneNumber": "+14155550100"}, {"phoneNumber": "12"}]},
     ["input", "secondaryContacts", "1", "phoneNumber"], "INVALID"),
    ({"secondaryContacts": [{"phoneNumber": "+14155550100", "variables": 3}]},
     ["input", "secondaryContacts", "0", "variables"], "INVALID"),
    ({"secondaryContacts": [{"phoneNumber": f"+1415555{i:04d}"} for i in range(11)]},
     ["input", "secondaryContacts"], "TOO_MANY"),
    ({"idempotencyKey": ""}, ["input", "idempotencyKey"], "INVALID"),
])
def test_invalid_input_is_a_user_error_and_nothing_is_sent(gw, fresh_upstream, token, change, field, code):
    payload = create(gw, token, {**lead_input(token), **change})["data"]["createLead"]
    assert payload["lead"] is None and payload["leadEdge"] is None
    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [(field, code)]
    assert payload["userErrors"][0]["message"]
    assert fresh_upstream.writes(token) == []


def test_a_wrong_type_is_a_graphql_request_error(gw, fresh_upstream, token):
    response = gw.post(CREATE, {"input": {**lead_input(token), "campaignId": "seven"}}, token)
    assert response.status_code == 200  # application/json: request errors are 200 with no data
    body = response.json()
    assert "data" not in body and body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert fresh_upstream.writes(token) == []


# --- the upstream's 422 -----------------------------------------------------------------------------------

def test_a_duplicate_is_refused_unless_allowed(gw, fresh_upstream, token):
    existing = next(r for r in dataset_for_token(token) if r["campaign"] is not None)
    given = lead_input(token, phoneNumber=existing["phone_number"], campaignId=existing["campaign_id"])
    payload = create(gw, token, given)["data"]["createLead"]
    assert payload["lead"] is None
    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [(["input", "phoneNumber"], "DUPLICATE")]
    allowed = create(gw, token, {**given, "allowDuplicate": True})["data"]["createLead"]
    assert allowed["userErrors"] == [] and allowed["lead"]["phoneNumber"] == existing["phone_number"]
    assert [w.body["allow_dupplicate"] for w in fresh_upstream.writes(token)] == [False, True]


def test_an_unknown_campaign_and_nested_upstream_errors_point_into_the_input(gw, fresh_upstream, token):
    payload = create(gw, token, lead_input(token, campaignId=999_999))["data"]["createLead"]
    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [(["input", "campaignId"], "UNKNOWN_CAMPAIGN")]
    twice = new_phone()
    payload = create(gw, token, lead_input(token, secondaryContacts=[{"phoneNumber": twice}, {"phoneNumber": twice}])
                     )["data"]["createLead"]
    fields = [(e["field"], e["code"]) for e in payload["userErrors"]]
    assert (["input", "secondaryContacts", "1", "phoneNumber"], "DUPLICATE") in fields
    assert len(fresh_upstream.writes(token)) == 2  # each sent once, never retried


def test_the_same_mutation_twice_is_executed_twice_not_replayed(gw, fresh_upstream, token):
    given = lead_input(token)
    first = create(gw, token, given, CREATE_BARE)["data"]["createLead"]
    second = create(gw, token, given, CREATE_BARE)["data"]["createLead"]
    assert first["userErrors"] == [] and [e["code"] for e in second["userErrors"]] == ["DUPLICATE"]
    assert len(fresh_upstream.writes(token)) == 2


# --- top-level errors -------------------------------------------------------------------------------------

@pytest.mark.parametrize("who, code", [(None, "UNAUTHENTICATED"), ("revoked-x", "UNAUTHENTICATED"),
                                       ("forbidden-x", "FORBIDDEN")])
def test_auth_failures_are_top_level_errors(gw, fresh_upstream, token, who, code):
    body = gw.gql(CREATE, {"input": lead_input(token)}, who)
    assert body["data"] is None and body["errors"][0]["extensions"]["code"] == code
    assert body["errors"][0]["path"] == ["createLead"]


def test_a_429_is_rate_limited_and_nothing_is_retried(gw, fresh_upstream, token):
    fresh_upstream.options.token_write_faults = {token: "429"}
    body = gw.gql(CREATE, {"input": lead_input(token)}, token)
    assert body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert body["errors"][0]["extensions"]["retryAfter"] == 1
    assert len(fresh_upstream.writes(token)) == 1


# --- unknown outcomes: exactly one lead, and the truth ----------------------------------------------------

def outcome(gw, upstream, token, fault, *, times=None, allow_duplicate=False, key=None):
    """Create a lead while the upstream's writes for ``token`` get ``fault`` (``times``: only the first ones)."""
    upstream.options.token_write_faults = {token: fault}
    upstream.options.write_fault_times = times
    given = lead_input(token, allowDuplicate=allow_duplicate, **({"idempotencyKey": key} if key else {}))
    body = gw.gql(CREATE_BARE, {"input": given}, token)
    upstream.options.token_write_faults = {}
    upstream.options.write_fault_times = None
    return given, body


@pytest.mark.parametrize("fault, times, posts", [
    ("lost", None, 1),        # created, answer lost: found by the lookup, never sent again
    ("500-after", None, 1),   # created, then a 500: found
    ("lost-before", 1, 2),    # nothing created, connection lost: not found, sent again once
    ("500", 1, 2),            # nothing created, 500: not found, sent again once
])
def test_an_unknown_outcome_is_settled_before_anything_is_sent_again(gw, fresh_upstream, token, fault, times, posts):
    given, body = outcome(gw, fresh_upstream, token, fault, times=times)
    payload = body["data"]["createLead"]
    assert "errors" not in body and payload["userErrors"] == []
    assert leads_with_phone(gw, token, given["phoneNumber"]) == [payload["lead"]["databaseId"]]
    assert len(fresh_upstream.writes(token)) == posts


def test_a_late_answer_is_found_and_the_lead_is_not_created_twice(impatient, fresh_upstream, token):
    fresh_upstream.options.slow_seconds = 3.0
    given, body = outcome(impatient, fresh_upstream, token, "late")
    payload = body["data"]["createLead"]
    assert payload["userErrors"] == [] and payload["lead"]["databaseId"]
    assert leads_with_phone(impatient, token, given["phoneNumber"]) == [payload["lead"]["databaseId"]]
    assert len(fresh_upstream.writes(token)) == 1


def test_when_every_attempt_fails_the_client_is_told_the_outcome_is_unknown(gw, fresh_upstream, token):
    given, body = outcome(gw, fresh_upstream, token, "500")
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "UPSTREAM_UNAVAILABLE" and error["extensions"]["outcome"] == "UNKNOWN"
    assert leads_with_phone(gw, token, given["phoneNumber"]) == []
    assert len(fresh_upstream.writes(token)) == 2  # the second only after the lookup found nothing


def test_with_duplicates_allowed_an_unknown_outcome_is_not_sent_again_until_the_client_retries(
        gw, fresh_upstream, token):
    key = uuid.uuid4().hex
    given, body = outcome(gw, fresh_upstream, token, "lost-before", allow_duplicate=True, key=key)
    assert body["errors"][0]["extensions"]["outcome"] == "UNKNOWN"
    assert len(fresh_upstream.writes(token)) == 1  # nothing upstream would stop a late first one: no second POST
    retry = gw.gql(CREATE_BARE, {"input": given}, token)["data"]["createLead"]  # the same key: looks, then sends
    assert retry["userErrors"] == []
    assert leads_with_phone(gw, token, given["phoneNumber"]) == [retry["lead"]["databaseId"]]
    assert len(fresh_upstream.writes(token)) == 2


def test_a_retry_with_the_key_after_an_unknown_outcome_finds_the_lead_instead_of_creating_it(
        impatient, fresh_upstream, token):
    """The first call times out and its lookup fails too (the upstream is down for reads as well): the
    client is told UNKNOWN; its retry with the same key finds the lead the first POST created."""
    fresh_upstream.options.slow_seconds = 3.0
    fresh_upstream.options.token_faults = {token: "503"}  # reads fail: the lookup cannot settle it
    key = uuid.uuid4().hex
    given, body = outcome(impatient, fresh_upstream, token, "late", allow_duplicate=True, key=key)
    assert body["errors"][0]["extensions"]["outcome"] == "UNKNOWN"
    fresh_upstream.options.token_faults = {}
    retry = impatient.gql(CREATE_BARE, {"input": given}, token)["data"]["createLead"]
    assert retry["userErrors"] == []
    assert leads_with_phone(impatient, token, given["phoneNumber"]) == [retry["lead"]["databaseId"]]
    assert len(fresh_upstream.writes(token)) == 1


# --- idempotency keys ---------------------------------------------------------------------------------------

def test_a_repeated_key_returns_the_first_outcome(gw, fresh_upstream, token):
    given = lead_input(token, idempotencyKey=uuid.uuid4().hex)
    first = create(gw, token, given)["data"]["createLead"]
    again = create(gw, token, given)["data"]["createLead"]
    assert again["lead"] == first["lead"] and again["userErrors"] == []
    assert len(fresh_upstream.writes(token)) == 1
    # A refusal is an outcome too.
    refused = lead_input(token, campaignId=999_999, idempotencyKey=uuid.uuid4().hex)
    assert create(gw, token, refused)["data"]["createLead"]["userErrors"][0]["code"] == "UNKNOWN_CAMPAIGN"
    assert create(gw, token, refused)["data"]["createLead"]["userErrors"][0]["code"] == "UNKNOWN_CAMPAIGN"
    assert len(fresh_upstream.writes(token)) == 2


def test_the_same_key_with_another_input_is_refused(gw, fresh_upstream, token):
    key = uuid.uuid4().hex
    create(gw, token, lead_input(token, idempotencyKey=key))
    payload = create(gw, token, lead_input(token, idempotencyKey=key))["data"]["createLead"]
    assert payload["lead"] is None
    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [(["input", "idempotencyKey"],
                                                                         "IDEMPOTENCY_KEY_REUSED")]
    assert len(fresh_upstream.writes(token)) == 1


def test_keys_belong_to_their_caller(gw, fresh_upstream, token):
    key = uuid.uuid4().hex
    other = token + "-other"
    mine = create(gw, token, lead_input(token, idempotencyKey=key))["data"]["createLead"]["lead"]
    theirs = create(gw, other, lead_input(other, idempotencyKey=key))["data"]["createLead"]["lead"]
    assert mine and theirs and mine["databaseId"] != theirs["databaseId"]


def test_concurrent_calls_with_one_key_on_two_instances_make_one_post(make_gateway, fresh_upstream, redis_url, token):
    secret = secrets.token_hex(16)
    instances = [make_gateway(cache_url=redis_url, cache_ttl=30, cache_secret=secret) for _ in range(2)]
    fresh_upstream.options.latency = 0.3  # long enough for every call to arrive while the first one runs
    given = lead_input(token, idempotencyKey=uuid.uuid4().hex)
    results: list = [None] * 8
    barrier = threading.Barrier(len(results))

    def call(i: int) -> None:
        gw = instances[i % 2]
        with httpx.Client(base_url=gw.url, timeout=30) as client:
            barrier.wait()
            results[i] = client.post("/graphql", json={"query": CREATE_BARE, "variables": {"input": given}},
                                     headers={"Authorization": f"Bearer {token}"}).json()

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(results))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    ids = {r["data"]["createLead"]["lead"]["databaseId"] for r in results}
    assert len(ids) == 1 and all(r["data"]["createLead"]["userErrors"] == [] for r in results)
    assert len(fresh_upstream.writes(token)) == 1
    assert leads_with_phone(instances[0], token, given["phoneNumber"]) == list(ids)


# --- HTTP rules and limits ------------------------------------------------------------------------------------

def test_a_mutation_over_get_is_405(gw, fresh_upstream, token):
    response = gw.client.get("/graphql", params={"query": CREATE_BARE,
                                                  "variables": json.dumps({"input": lead_input(token)})},
                             headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert response.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"
    assert fresh_upstream.writes(token) == []


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data"])
def test_no_mutation_through_a_form_or_a_simple_request(gw, fresh_upstream, token, content_type):
    body = json.dumps({"query": CREATE_BARE, "variables": {"input": lead_input(token)}})
    response = gw.client.post("/graphql", content=body, headers={"Content-Type": content_type,
                                                                  "Authorization": f"Bearer {token}"})
    assert response.status_code == 415
    assert fresh_upstream.writes(token) == []


def test_too_many_writes_in_one_operation_is_refused_before_any(gw, fresh_upstream, token):
    fields = " ".join(f'c{i}: createLead(input: {{phoneNumber: "+1415555{i:04d}", campaignId: 1}}) {{ lead {{ id }} }}'
                      for i in range(11))
    body = gw.post("mutation { " + fields + " }", token=token).json()
    assert body["errors"][0]["extensions"]["limitName"] == "writes"
    assert body["errors"][0]["extensions"]["measured"] == 11
    assert fresh_upstream.writes(token) == []


def test_writes_are_logged_without_personal_data(gw, fresh_upstream, token, caplog):
    fresh_upstream.options.token_write_faults = {token: "lost-before"}  # logged: a second POST after a lookup
    fresh_upstream.options.write_fault_times = 1
    given = lead_input(token, customerName="Zebulon Quixote", email="zq@example.org")
    with caplog.at_level(logging.DEBUG, logger="gateway"):
        payload = create(gw, token, given)["data"]["createLead"]
    assert payload["lead"]
    # The gateway's own loggers (the demo upstream's are not the gateway's; httpx's stay at WARNING, as
    # logs.configure sets them in production).
    ours = [r for r in caplog.records if r.name.startswith("gateway.") and not r.name.startswith("gateway.demo")]
    logged = "\n".join(f"{r.getMessage()} {getattr(r, 'fields', '')}" for r in ours)
    assert "request" in logged and "sending it again" in logged  # the write was logged
    for secret in (given["phoneNumber"], given["phoneNumber"][1:], "Zebulon", "zq@example.org", token):
        assert secret not in logged


def test_a_write_whose_client_left_finishes_before_shutdown(upstream, redis_url, token):
    """The client gives up while the upstream is still answering, and the instance is stopped at once: the
    write still completes and records its outcome, so the same key on another instance replays it."""
    from gateway.app import create_app
    from gateway.config import Settings
    from gateway.serving import start_in_thread

    upstream.reset()
    upstream.options.token_latency = {token: 1.0}  # created at once, answered a second later
    settings = Settings(upstream_url=upstream.url, cache_url=redis_url, cache_secret=secrets.token_hex(16),
                        upstream_retries=0)
    first = start_in_thread(create_app(settings))
    given = lead_input(token, idempotencyKey=uuid.uuid4().hex)
    with httpx.Client(base_url=first.url, timeout=0.3) as client, pytest.raises(httpx.ReadTimeout):
        client.post("/graphql", json={"query": CREATE_BARE, "variables": {"input": given}},
                    headers={"Authorization": f"Bearer {token}"})
    # Requests get 0.1 s to finish, then are cancelled (as after GATEWAY_SHUTDOWN_GRACE): the write itself
    # is not, and the lifespan's shutdown waits for it.
    first.server.config.timeout_graceful_shutdown = 0.1
    first.stop(timeout=15)
    upstream.options.token_latency = {}
    second = start_in_thread(create_app(settings))
    try:
        with httpx.Client(base_url=second.url, timeout=30) as client:
            body = client.post("/graphql", json={"query": CREATE_BARE, "variables": {"input": given}},
                               headers={"Authorization": f"Bearer {token}"}).json()
            replayed = [line for line in client.get("/metrics").text.splitlines()
                        if line.startswith('leads_gateway_lead_writes_total{result="replayed"}')]
        assert body["data"]["createLead"]["userErrors"] == []
        assert len(upstream.writes(token)) == 1
        assert replayed == ['leads_gateway_lead_writes_total{result="replayed"} 1.0']  # the record said done
    finally:
        second.stop()
