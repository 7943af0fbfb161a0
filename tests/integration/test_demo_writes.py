"""``POST /user/lead`` of the demo upstream over real loopback HTTP, against the Laravel behaviour it imitates.

The gateway's createLead is tested against this server, so what the real API does on a write is pinned
here: the 201 answer and its quirks, Laravel's validation messages and keys, the duplicate check, the
created lead showing up in ``GET /user/leads``, and the write faults (among them the answers a client
loses, and whether the lead exists afterwards).
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone

import httpx
import pytest

from gateway.demo.app import DemoOptions
from gateway.demo.data import campaigns_for_token, dataset_for_token, write_id_ranges

TOKEN = "writes-tenant"
OTHER = "writes-other-tenant"
LEADS = dataset_for_token(TOKEN)
CAMPAIGNS = campaigns_for_token(TOKEN)
CAMPAIGN = CAMPAIGNS[0]
FIRST_FREE_ID, FIRST_FREE_CONTACT_ID = (r.start for r in write_id_ranges(TOKEN))
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"


def phone(n: int) -> str:
    """A valid number no dataset has (area code 999 is not among the demo's)."""
    return f"+1999555{n:04d}"


from tests.integration.demo_server import _fresh_state, app, client, server  # noqa: F401 - fixtures


def post(client: httpx.Client, body, token: str | None = TOKEN, path: str = "/user/lead",
         **kwargs) -> httpx.Response:
    headers = {"Accept": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return client.post(path, json=body, headers=headers, **kwargs)


def lead_body(n: int = 0, **fields) -> dict:
    return {"phone_number": phone(n), "campaign_id": CAMPAIGN["id"], **fields}


def listed(client: httpx.Client, token: str = TOKEN, **params) -> dict:
    response = client.get("/user/leads", params=params, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.json()


def assert_errors(response: httpx.Response, errors: dict) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["errors"] == errors
    assert list(body["errors"]) == list(errors)  # Laravel's order
    messages = [message for field in errors.values() for message in field]
    more = len(messages) - 1
    expected = messages[0] + (f" (and {more} more error{'s' if more > 1 else ''})" if more else "")
    assert body["message"] == expected


# ------------------------------------------------------------------ creating

def test_create_answer_shape_and_quirks(client):
    before = datetime.now(timezone.utc).replace(microsecond=0)
    response = post(client, {
        "phone_number": phone(1), "campaign_id": CAMPAIGN["id"],
        "variables": {"customer_name": "Ann Lee", "email": "ann@example.com", "score": 7},
        "allow_dupplicate": False,
        "secondary_contacts": [{"phone_number": phone(2), "variables": {"customer_name": "Bo"}},
                               {"phone_number": phone(3)}],
    })
    after = datetime.now(timezone.utc)
    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-cache, private"
    body = response.json()
    assert list(body) == ["message", "data"] and body["message"] == "Lead created successfully"
    lead = body["data"]
    assert list(lead) == ["id", "campaign_id", "phone_number", "variables", "status", "created_at", "updated_at",
                          "campaign", "secondary_contacts"]
    # The vendor's quirk: the ids of the answer are strings; the rest as in the list.
    assert lead["id"] == str(LEADS[-1]["id"] + 1) == str(FIRST_FREE_ID)
    assert lead["campaign_id"] == str(CAMPAIGN["id"])
    assert '"id":"%d"' % FIRST_FREE_ID in response.text
    assert lead["phone_number"] == phone(1)
    assert lead["variables"] == {"customer_name": "Ann Lee", "email": "ann@example.com", "score": 7}
    assert lead["status"] == "created"
    assert lead["campaign"] == {"id": CAMPAIGN["id"], "name": CAMPAIGN["name"]}
    created = datetime.strptime(lead["created_at"], TIMESTAMP_FORMAT).replace(tzinfo=timezone.utc)
    assert before <= created <= after and lead["updated_at"] == lead["created_at"]
    contacts = lead["secondary_contacts"]
    assert [list(c) for c in contacts] == [["id", "phone_number", "variables", "status", "created_at",
                                            "updated_at"]] * 2
    assert [c["id"] for c in contacts] == [FIRST_FREE_CONTACT_ID, FIRST_FREE_CONTACT_ID + 1]  # numbers
    assert [(c["phone_number"], c["variables"], c["status"]) for c in contacts] == [
        (phone(2), {"customer_name": "Bo"}, "created"), (phone(3), [], "created")]
    assert all(c["created_at"] == c["updated_at"] == lead["created_at"] for c in contacts)


def test_ids_continue_and_stay_in_the_tokens_block(client):
    ids = [int(post(client, lead_body(n)).json()["data"]["id"]) for n in range(3)]
    assert ids == [FIRST_FREE_ID, FIRST_FREE_ID + 1, FIRST_FREE_ID + 2]
    other = int(post(client, {"phone_number": phone(0), "campaign_id": campaigns_for_token(OTHER)[0]["id"]},
                     OTHER).json()["data"]["id"])
    assert other == dataset_for_token(OTHER)[-1]["id"] + 1
    assert all(i < 2**31 for i in ids + [other])
    contact_ids = [contact["id"] for lead in LEADS for contact in lead["secondary_contacts"]]
    lead = post(client, lead_body(9, secondary_contacts=[{"phone_number": phone(10)}])).json()["data"]
    assert lead["secondary_contacts"][0]["id"] > max(contact_ids)
    assert lead["secondary_contacts"][0]["id"] not in {row["id"] for row in LEADS}


@pytest.mark.parametrize("variables, shown", [
    (None, "[]"), ({}, "[]"), ([], "[]"), ("absent", "[]"),
    ({"0": "a", "1": "b"}, '["a","b"]'),  # PHP arrays with keys 0..n-1 are lists
    (["x", {}], '["x",[]]'),
    ({"1": "a"}, '{"1":"a"}'),
    ({"url": "https://example.com/a"}, '{"url":"https:\\/\\/example.com\\/a"}'),
])
def test_variables_as_php_stores_and_encodes_them(client, variables, shown):
    body = lead_body() if variables == "absent" else lead_body(variables=variables)
    response = post(client, body)
    assert response.status_code == 201, response.text
    assert f'"variables":{shown},' in response.text
    # The list shows the same encoding.
    page = client.get("/user/leads", params={"phone_number": phone(0)},
                      headers={"Authorization": f"Bearer {TOKEN}"})
    assert f'"variables":{shown},' in page.text


def test_strings_are_trimmed_and_blank_ones_become_null_at_any_depth(client):
    response = post(client, {
        "phone_number": f"  {phone(1)}\t", "campaign_id": f" {CAMPAIGN['id']} ",
        "variables": {"customer_name": "  Ann  ", "note": "   ", "tags": [" a ", ""]},
        "secondary_contacts": [{"phone_number": f"\n{phone(2)} ", "variables": {"email": " b@example.com "}}],
    })
    assert response.status_code == 201, response.text
    lead = response.json()["data"]
    assert lead["phone_number"] == phone(1)
    assert lead["variables"] == {"customer_name": "Ann", "note": None, "tags": ["a", None]}
    assert lead["secondary_contacts"][0]["phone_number"] == phone(2)
    assert lead["secondary_contacts"][0]["variables"] == {"email": "b@example.com"}


def test_api_prefixed_path(client):
    response = post(client, lead_body(), path="/api/user/lead")
    assert response.status_code == 201
    assert listed(client, phone_number=phone(0))["total"] == 1


def test_get_on_the_write_route_is_not_allowed(client):
    response = client.get("/user/lead", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 405


# ------------------------------------------------------------------ the created lead in GET /user/leads

def test_created_lead_is_listed_at_the_end(client):
    created = post(client, lead_body(5, variables={"customer_name": "Zed"})).json()["data"]
    expected = {**created, "id": int(created["id"]), "campaign_id": int(created["campaign_id"])}
    everything = listed(client, per_page="100")
    assert everything["total"] == len(LEADS) + 1
    last_page = listed(client, per_page="100", page=str(everything["last_page"]))
    assert last_page["data"][-1] == expected  # numbers in the list
    assert last_page["to"] == len(LEADS) + 1
    for params in ({"phone_number": phone(5)}, {"phone_number": "999555"},
                   {"campaign_id": str(CAMPAIGN["id"]), "per_page": "100", "page": "100"},
                   {"date_from": created["created_at"][:10]},
                   {"date_from": created["created_at"][:10], "date_to": created["created_at"][:10],
                    "status": "created", "campaign_id": str(CAMPAIGN["id"])}):
        body = listed(client, **params)
        rows = body["data"] or listed(client, **{**params, "page": str(body["last_page"])})["data"]
        assert rows[-1] == expected, params
    assert listed(client, phone_number=phone(5))["total"] == 1
    assert listed(client, date_from=created["created_at"][:10])["total"] == 1
    assert listed(client, campaign_id=str(CAMPAIGN["id"]))["total"] == 1 + sum(
        lead["campaign_id"] == CAMPAIGN["id"] for lead in LEADS)
    assert listed(client, status="completed")["total"] == sum(lead["status"] == "completed" for lead in LEADS)


def test_created_leads_keep_id_order_across_pages(client):
    for n in range(3):
        assert post(client, lead_body(n)).status_code == 201
    rows = []
    page = 1
    while True:
        body = listed(client, per_page="64", page=str(page))
        rows += body["data"]
        if body["next_page_url"] is None:
            break
        page += 1
    assert [row["id"] for row in rows] == [lead["id"] for lead in LEADS] + [FIRST_FREE_ID + n for n in range(3)]
    assert rows[: len(LEADS)] == list(LEADS)


def test_tokens_are_isolated(client):
    other_total = listed(client, OTHER)["total"]
    assert post(client, lead_body(1)).status_code == 201
    assert listed(client, OTHER)["total"] == other_total
    assert listed(client, OTHER, phone_number=phone(1))["total"] == 0
    # A token's campaigns are its own: another's campaign id does not exist for it.
    assert_errors(post(client, lead_body(1), OTHER),
                  {"campaign_id": ["The selected campaign id is invalid."]})
    # The same number in the other token's own campaign is no duplicate.
    response = post(client, {"phone_number": phone(1), "campaign_id": campaigns_for_token(OTHER)[0]["id"]}, OTHER)
    assert response.status_code == 201
    assert listed(client, phone_number=phone(1))["total"] == 1


def test_reset_forgets_created_leads_and_records(client, app):
    post(client, lead_body(1))
    post(client, lead_body(1))  # a duplicate: recorded, not created
    assert client.get("/_demo/writes").json() == {"posts": 2, "created": 1}
    app.state.reset()
    assert client.get("/_demo/writes").json() == {"posts": 0, "created": 0}
    assert list(app.state.write_calls) == []
    assert listed(client)["total"] == len(LEADS)
    # The number is free again, and ids start over.
    assert post(client, lead_body(1)).json()["data"]["id"] == str(FIRST_FREE_ID)


def test_demo_writes_counts_and_records(client, app):
    response = client.post("/user/lead", json=lead_body(1, variables={"customer_name": " Ann "}),
                           headers={"Authorization": f"Bearer {TOKEN}", "X-Request-ID": "req-1"})
    assert response.status_code == 201
    post(client, lead_body(2), token=None)
    post(client, {"phone_number": "nope"})
    app.state.options.write_fault = "500"
    post(client, lead_body(3))
    assert client.get("/_demo/writes").json() == {"posts": 4, "created": 1}
    records = [(w.token, w.body, w.status, w.lead_id, w.fault) for w in app.state.write_calls]
    assert records == [
        (TOKEN, lead_body(1, variables={"customer_name": " Ann "}), 201, FIRST_FREE_ID, None),  # as received
        (None, lead_body(2), 401, None, None),
        (TOKEN, {"phone_number": "nope"}, 422, None, None),
        (TOKEN, lead_body(3), 500, None, "500"),
    ]
    assert app.state.write_calls[0].request_id == "req-1"
    assert list(app.state.calls) == []  # GET's record is not the writes'


# ------------------------------------------------------------------ auth

@pytest.mark.parametrize("token, status, message", [
    (None, 401, "Unauthenticated."),
    ("revoked-key", 401, "Unauthenticated."),
    ("forbidden-tenant", 403, "This action is unauthorized."),
])
def test_auth(client, token, status, message):
    response = post(client, lead_body(), token)
    assert response.status_code == status
    assert response.json() == {"message": message}
    assert client.get("/_demo/writes").json() == {"posts": 1, "created": 0}


def test_forbidden_comes_before_validation(client):
    response = post(client, {}, "forbidden-tenant")
    assert response.status_code == 403


# ------------------------------------------------------------------ validation

FIELD = "The phone number field"


@pytest.mark.parametrize("fields, errors", [
    ({"phone_number": None}, {"phone_number": [f"{FIELD} is required."]}),
    ({"phone_number": ""}, {"phone_number": [f"{FIELD} is required."]}),
    ({"phone_number": "   "}, {"phone_number": [f"{FIELD} is required."]}),
    ({"phone_number": []}, {"phone_number": [f"{FIELD} is required."]}),
    ({"phone_number": 14155550100}, {"phone_number": [f"{FIELD} must be a string.", f"{FIELD} format is invalid."]}),
    ({"phone_number": ["+14155550100"]}, {"phone_number": [f"{FIELD} must be a string.",
                                                           f"{FIELD} format is invalid."]}),
    ({"phone_number": "+1" + "5" * 300}, {"phone_number": [f"{FIELD} must not be greater than 255 characters.",
                                                           f"{FIELD} format is invalid."]}),
    ({"phone_number": "0014155550100"}, {"phone_number": [f"{FIELD} format is invalid."]}),
    ({"phone_number": "+0415555010"}, {"phone_number": [f"{FIELD} format is invalid."]}),
    ({"phone_number": "+14155"}, {"phone_number": [f"{FIELD} format is invalid."]}),
    ({"phone_number": "+1415555010012345"}, {"phone_number": [f"{FIELD} format is invalid."]}),
    ({"phone_number": "+1 415 555 0100"}, {"phone_number": [f"{FIELD} format is invalid."]}),
    ({"campaign_id": None}, {"campaign_id": ["The campaign id field is required."]}),
    ({"campaign_id": ""}, {"campaign_id": ["The campaign id field is required."]}),
    ({"campaign_id": "abc"}, {"campaign_id": ["The campaign id field must be an integer."]}),
    ({"campaign_id": 1.5}, {"campaign_id": ["The campaign id field must be an integer."]}),
    ({"campaign_id": "012"}, {"campaign_id": ["The campaign id field must be an integer."]}),
    ({"campaign_id": [1]}, {"campaign_id": ["The campaign id field must be an integer."]}),
    ({"campaign_id": 1}, {"campaign_id": ["The selected campaign id is invalid."]}),
    ({"campaign_id": True}, {"campaign_id": ["The selected campaign id is invalid."]}),  # filter_var: 1
    ({"variables": "x"}, {"variables": ["The variables field must be an array."]}),
    ({"variables": 5}, {"variables": ["The variables field must be an array."]}),
    ({"allow_dupplicate": "yes"}, {"allow_dupplicate": ["The allow dupplicate field must be true or false."]}),
    ({"allow_dupplicate": "true"}, {"allow_dupplicate": ["The allow dupplicate field must be true or false."]}),
    ({"allow_dupplicate": 2}, {"allow_dupplicate": ["The allow dupplicate field must be true or false."]}),
    ({"allow_dupplicate": 1.0}, {"allow_dupplicate": ["The allow dupplicate field must be true or false."]}),
    ({"secondary_contacts": "x"}, {"secondary_contacts": ["The secondary contacts field must be an array."]}),
    ({"secondary_contacts": [{"phone_number": phone(10 + i)} for i in range(11)]},
     {"secondary_contacts": ["The secondary contacts field must not have more than 10 items."]}),
    ({"secondary_contacts": "x" * 11}, {"secondary_contacts": [
        "The secondary contacts field must be an array.",
        "The secondary contacts field must not have more than 10 items."]}),
    ({"secondary_contacts": [{}]},
     {"secondary_contacts.0.phone_number": ["The secondary_contacts.0.phone_number field is required."]}),
    ({"secondary_contacts": ["+14155550100"]},
     {"secondary_contacts.0.phone_number": ["The secondary_contacts.0.phone_number field is required."]}),
    ({"secondary_contacts": [{"phone_number": phone(5)}, {"phone_number": "123"}]},
     {"secondary_contacts.1.phone_number": ["The secondary_contacts.1.phone_number field format is invalid."]}),
    ({"secondary_contacts": [{"phone_number": phone(5)}, {"phone_number": 5}]},
     {"secondary_contacts.1.phone_number": ["The secondary_contacts.1.phone_number field must be a string.",
                                            "The secondary_contacts.1.phone_number field format is invalid."]}),
    # distinct flags every element of a duplicated value.
    ({"secondary_contacts": [{"phone_number": phone(5)}, {"phone_number": phone(6)}, {"phone_number": phone(5)}]},
     {"secondary_contacts.0.phone_number": ["The secondary_contacts.0.phone_number field has a duplicate value."],
      "secondary_contacts.2.phone_number": ["The secondary_contacts.2.phone_number field has a duplicate value."]}),
    ({"secondary_contacts": [{"phone_number": phone(5), "variables": "x"}]},
     {"secondary_contacts.0.variables": ["The secondary_contacts.0.variables field must be an array."]}),
    ({"secondary_contacts": {"a": {"phone_number": ""}}},
     {"secondary_contacts.a.phone_number": ["The secondary_contacts.a.phone_number field is required."]}),
])
def test_validation_rule(client, fields, errors):
    response = post(client, {**lead_body(), **fields})
    assert_errors(response, errors)
    assert client.get("/_demo/writes").json() == {"posts": 1, "created": 0}
    assert listed(client)["total"] == len(LEADS)


def test_missing_fields_are_required(client):
    assert_errors(post(client, {}), {"phone_number": [f"{FIELD} is required."],
                                     "campaign_id": ["The campaign id field is required."]})


def test_all_rules_run_and_the_message_counts_the_others(client):
    response = post(client, {
        "phone_number": 5, "campaign_id": "x", "variables": "v", "allow_dupplicate": "maybe",
        "secondary_contacts": [{"phone_number": phone(1), "variables": 1}, {"phone_number": phone(1)}, {}],
    })
    # Every wildcard rule is expanded per element, the phone numbers' first, then the variables'.
    assert_errors(response, {
        "phone_number": [f"{FIELD} must be a string.", f"{FIELD} format is invalid."],
        "campaign_id": ["The campaign id field must be an integer."],
        "variables": ["The variables field must be an array."],
        "allow_dupplicate": ["The allow dupplicate field must be true or false."],
        "secondary_contacts.0.phone_number": ["The secondary_contacts.0.phone_number field has a duplicate value."],
        "secondary_contacts.1.phone_number": ["The secondary_contacts.1.phone_number field has a duplicate value."],
        "secondary_contacts.2.phone_number": ["The secondary_contacts.2.phone_number field is required."],
        "secondary_contacts.0.variables": ["The secondary_contacts.0.variables field must be an array."],
    })
    assert response.json()["message"] == f"{FIELD} must be a string. (and 8 more errors)"
    one_more = post(client, {"phone_number": phone(1)})
    assert one_more.json()["message"] == "The campaign id field is required."
    two = post(client, {"phone_number": 5, "campaign_id": CAMPAIGN["id"]})
    assert two.json()["message"] == f"{FIELD} must be a string. (and 1 more error)"


@pytest.mark.parametrize("fields", [
    {"campaign_id": str(CAMPAIGN["id"])},
    {"campaign_id": float(CAMPAIGN["id"])},
    {"allow_dupplicate": "0"}, {"allow_dupplicate": 1}, {"allow_dupplicate": None},
    {"variables": ["a", "b"]}, {"variables": None},
    {"secondary_contacts": []}, {"secondary_contacts": None},
    {"secondary_contacts": [{"phone_number": phone(10 + i), "variables": None} for i in range(10)]},
    {"phone_number": "+123456789012345"},  # 15 digits, the most E.164 allows
])
def test_accepted_values(client, fields):
    response = post(client, {**lead_body(), **fields})
    assert response.status_code == 201, response.text
    assert response.json()["data"]["campaign_id"] == str(CAMPAIGN["id"])


def test_deleted_campaign_does_not_exist(client):
    deleted = next(lead["campaign_id"] for lead in LEADS if lead["campaign"] is None)
    assert_errors(post(client, lead_body(campaign_id=deleted)),
                  {"campaign_id": ["The selected campaign id is invalid."]})


@pytest.mark.parametrize("content, content_type", [
    (b"not json", "application/json"),
    (b"", "application/json"),
    (b'[{"phone_number": "+19995550000"}]', "application/json"),
    (b'"text"', "application/json"),
    (b'{"phone_number": "+19995550000", "campaign_id": NaN}', "application/json"),  # PHP's json_decode refuses
    (b'{"phone_number": "\\ud800", "campaign_id": 1}', "application/json"),  # a lone surrogate, likewise
    (b'{"phone_number": "+19995550000"}\xff', "application/json"),
])
def test_a_body_that_is_no_json_object_is_empty_input(client, content, content_type):
    response = client.post("/user/lead", content=content,
                           headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": content_type})
    assert_errors(response, {"phone_number": [f"{FIELD} is required."],
                             "campaign_id": ["The campaign id field is required."]})


def test_json_is_read_only_with_a_json_content_type(client):
    body = json.dumps(lead_body()).encode()
    for content_type in ("text/plain", None):
        headers = {"Authorization": f"Bearer {TOKEN}"}
        if content_type:
            headers["Content-Type"] = content_type
        response = client.post("/user/lead", content=body, headers=headers)
        assert response.status_code == 422, content_type
    response = client.post("/user/lead", content=body, headers={"Authorization": f"Bearer {TOKEN}",
                                                                "Content-Type": "application/vnd.api+json"})
    assert response.status_code == 201


def test_the_query_string_fills_what_the_body_lacks(client):
    # $request->all() is the JSON body plus the query's other keys.
    response = client.post("/user/lead", params={"campaign_id": str(CAMPAIGN["id"]), "phone_number": "ignored"},
                           json={"phone_number": phone(1)}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 201, response.text
    assert response.json()["data"]["phone_number"] == phone(1)


# ------------------------------------------------------------------ duplicates

TAKEN = {"message": "The phone number has already been taken.",
         "errors": {"phone_number": ["The phone number has already been taken."]}}


def test_duplicate_is_refused_unless_allowed(client):
    first = post(client, lead_body(1))
    assert first.status_code == 201
    for allow in ({}, {"allow_dupplicate": False}, {"allow_dupplicate": "0"}, {"allow_dupplicate": None}):
        again = post(client, lead_body(1, **allow))
        assert again.status_code == 422 and again.json() == TAKEN, allow
    assert listed(client, phone_number=phone(1))["total"] == 1
    for n, allow in enumerate((True, 1, "1")):
        allowed = post(client, lead_body(1, allow_dupplicate=allow))
        assert allowed.status_code == 201, allow
        assert allowed.json()["data"]["id"] == str(FIRST_FREE_ID + 1 + n)
    assert listed(client, phone_number=phone(1))["total"] == 4
    # The same number in another campaign is no duplicate.
    assert post(client, lead_body(1, campaign_id=CAMPAIGNS[1]["id"])).status_code == 201


def test_duplicate_of_a_dataset_lead(client):
    existing = next(lead for lead in LEADS if lead["campaign"] is not None)
    response = post(client, {"phone_number": existing["phone_number"], "campaign_id": existing["campaign_id"]})
    assert response.status_code == 422 and response.json() == TAKEN
    other_campaign = next(c["id"] for c in CAMPAIGNS if c["id"] != existing["campaign_id"])
    assert post(client, {"phone_number": existing["phone_number"], "campaign_id": other_campaign}).status_code == 201


def test_duplicate_check_comes_after_validation(client):
    post(client, lead_body(1))
    assert_errors(post(client, lead_body(1, variables="x")), {"variables": ["The variables field must be an array."]})


# ------------------------------------------------------------------ write faults

def lead_exists(client: httpx.Client, n: int) -> bool:
    return listed(client, phone_number=phone(n))["total"] == 1


@pytest.mark.parametrize("kind, status", [("500", 500), ("503", 503), ("429", 429)])
def test_faults_instead_of_the_write(client, app, kind, status):
    app.state.options = DemoOptions(write_fault=kind, retry_after=7)
    response = post(client, lead_body(1))
    assert response.status_code == status
    if kind == "500":
        assert response.json() == {"message": "Server Error"}
    elif kind == "503":
        assert response.headers["content-type"].startswith("text/html") and "nginx" in response.text
    else:
        assert response.json() == {"message": "Too Many Attempts."} and response.headers["retry-after"] == "7"
    assert not lead_exists(client, 1)
    assert [(w.status, w.lead_id, w.fault) for w in app.state.write_calls] == [(status, None, kind)]
    assert client.get("/_demo/writes").json() == {"posts": 1, "created": 0}


def test_fault_lost_creates_the_lead_and_drops_the_answer(client, app, caplog):
    app.state.options.write_fault = "lost"
    with caplog.at_level(logging.ERROR):
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            post(client, lead_body(1))
    assert lead_exists(client, 1)
    [record] = app.state.write_calls
    assert (record.status, record.lead_id, record.fault) == (201, FIRST_FREE_ID, "lost")
    assert client.get("/_demo/writes").json() == {"posts": 1, "created": 1}
    # Cut short on purpose: uvicorn's complaint about the incomplete answer is not logged.
    assert not [r for r in caplog.records if "without completing response" in r.getMessage()]


def test_fault_lost_sends_the_head_then_part_of_the_body(client, app):
    app.state.options.write_fault = "lost"
    with client.stream("POST", "/user/lead", json=lead_body(1), headers={"Authorization": f"Bearer {TOKEN}"}) as r:
        assert r.status_code == 201 and int(r.headers["content-length"]) > 0
        with pytest.raises(httpx.RemoteProtocolError):
            r.read()


def test_fault_lost_before_creates_nothing(client, app):
    app.state.options.write_fault = "lost-before"
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        post(client, lead_body(1))
    assert not lead_exists(client, 1)
    assert [(w.lead_id, w.fault) for w in app.state.write_calls] == [(None, "lost-before")]
    app.state.options.write_fault = None
    # The id was not used: the retry gets the first free one.
    assert post(client, lead_body(1)).json()["data"]["id"] == str(FIRST_FREE_ID)


def test_fault_late_creates_the_lead_and_answers_late(client, app, server):
    app.state.options = DemoOptions(write_fault="late", slow_seconds=1.0)
    with httpx.Client(base_url=server.url, timeout=0.2) as impatient:
        started = time.perf_counter()
        with pytest.raises(httpx.ReadTimeout):
            post(impatient, lead_body(1))
        assert time.perf_counter() - started < 0.9
    assert lead_exists(client, 1)
    app.state.options.slow_seconds = 0.3
    started = time.perf_counter()
    response = post(client, lead_body(2))
    assert time.perf_counter() - started >= 0.3
    assert response.status_code == 201 and lead_exists(client, 2)
    assert [w.fault for w in app.state.write_calls] == ["late", "late"]


def test_fault_500_after_creates_the_lead(client, app):
    app.state.options.write_fault = "500-after"
    response = post(client, lead_body(1))
    assert response.status_code == 500 and response.json() == {"message": "Server Error"}
    assert lead_exists(client, 1)
    app.state.options.write_fault = None
    # A blind retry is now a duplicate.
    assert post(client, lead_body(1)).json() == TAKEN


def test_fault_times_first_attempt_fails_the_retry_succeeds(client, app):
    app.state.options = DemoOptions(write_fault="500", write_fault_times=1)
    assert post(client, lead_body(1)).status_code == 500
    assert post(client, lead_body(1)).status_code == 201
    assert post(client, lead_body(2)).status_code == 201
    assert app.state.options.write_fault_times == 0
    app.state.options.write_fault_times = 2  # settable on a running server
    assert [post(client, lead_body(n)).status_code for n in (3, 4, 5)] == [500, 500, 201]


def test_fault_times_with_lost(client, app):
    app.state.options = DemoOptions(write_fault="lost", write_fault_times=1)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        post(client, lead_body(1))
    # The retry of an unknown outcome finds the lead already there.
    assert post(client, lead_body(1)).json() == TAKEN
    assert listed(client, phone_number=phone(1))["total"] == 1


def test_token_write_faults_win_and_hit_their_token_only(client, app):
    app.state.options = DemoOptions(write_fault="503", token_write_faults={TOKEN: "500"})
    assert post(client, lead_body(1)).status_code == 500
    assert post(client, lead_body(1), OTHER).status_code == 503
    assert post(client, lead_body(1), None).status_code == 401  # no token: no fault
    app.state.options.write_fault = None
    response = post(client, {"phone_number": phone(1), "campaign_id": campaigns_for_token(OTHER)[0]["id"]}, OTHER)
    assert response.status_code == 201
    app.state.options.token_write_faults["third"] = "500-after"  # mutable on a running server
    assert post(client, lead_body(1), "third").status_code == 500
    del app.state.options.token_write_faults[TOKEN]
    assert post(client, lead_body(1)).status_code == 201


def test_read_and_write_faults_are_separate(client, app):
    app.state.options = DemoOptions(fault="500", token_faults={TOKEN: "503"})
    assert post(client, lead_body(1)).status_code == 201
    assert post(client, lead_body(2), "fault-500").status_code == 422  # an ordinary token for writes
    app.state.options = DemoOptions(write_fault="500")
    assert listed(client)["total"] == len(LEADS) + 1


def test_faults_after_processing_apply_to_any_answer(client, app):
    app.state.options.write_fault = "500-after"
    assert post(client, {}).status_code == 500  # the 422 it would have been
    app.state.options.write_fault = "lost"
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        post(client, {})
    assert [w.status for w in app.state.write_calls] == [500, 422]


# ------------------------------------------------------------------ latency

def test_latency_applies_to_writes(client, app):
    app.state.options = DemoOptions(latency=0.15, token_latency={TOKEN: 0.15})
    started = time.perf_counter()
    assert post(client, lead_body(1)).status_code == 201
    assert time.perf_counter() - started >= 0.3
    started = time.perf_counter()
    assert post(client, {"phone_number": phone(1), "campaign_id": campaigns_for_token(OTHER)[0]["id"]},
                OTHER).status_code == 201
    assert 0.15 <= time.perf_counter() - started < 0.3
