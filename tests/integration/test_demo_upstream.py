"""The demo upstream over real loopback HTTP, checked against the Laravel behaviour it imitates.

The gateway's tests and benchmarks trust this server to behave like the real one, so each
Laravel detail the gateway depends on (paginator fields, URLs, validation errors, faults) is
pinned here, with expected results computed independently by brute force over the data set.
"""

from __future__ import annotations

import json
import time
from datetime import date

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.demo.app import (
    FAULTS,
    DemoOptions,
    format_token_faults,
    format_token_latency_ms,
    main_options_from_env,
    parse_token_faults,
    parse_token_latency_ms,
)
from gateway.demo.data import STATUSES, dataset_for_token

TOKEN = "integration-tenant"
LEADS = dataset_for_token(TOKEN)


from tests.integration.demo_server import _fresh_state, app, client, server  # noqa: F401 - fixtures


def get(client: httpx.Client, token: str | None = TOKEN, path: str = "/user/leads", **params) -> httpx.Response:
    headers = {"Accept": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return client.get(path, params=params, headers=headers)


def walk(client: httpx.Client, **params) -> list[dict]:
    """Every lead the endpoint returns for ``params``, following ``next_page_url``."""
    body = get(client, **params).json()
    leads = list(body["data"])
    while body["next_page_url"]:
        body = client.get(body["next_page_url"], headers={"Authorization": f"Bearer {TOKEN}"}).json()
        leads.extend(body["data"])
    return leads


# ------------------------------------------------------------------ auth

def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer ,abc", "Basic dXNlcjpwYXNz", "Token abc"])
def test_unauthenticated(client, authorization):
    headers = {"Accept": "application/json"} if authorization is None else {"Authorization": authorization}
    response = client.get("/user/leads", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"message": "Unauthenticated."}
    assert response.headers["content-type"].startswith("application/json")


def test_bearer_is_case_insensitive_like_laravel(client):
    response = client.get("/user/leads", headers={"Authorization": f"bearer {TOKEN}"})
    assert response.status_code == 200 and response.json()["total"] == len(LEADS)


def test_revoked_token_is_unauthenticated(client):
    response = get(client, "revoked-key")
    assert response.status_code == 401
    assert response.json() == {"message": "Unauthenticated."}


def test_forbidden(client):
    response = get(client, "forbidden-tenant")
    assert response.status_code == 403
    assert response.json() == {"message": "This action is unauthorized."}


def test_tokens_see_only_their_own_leads(client):
    ours = get(client, per_page="100").json()["data"]
    theirs = get(client, "someone-else", per_page="100").json()["data"]
    assert {lead["id"] for lead in ours}.isdisjoint({lead["id"] for lead in theirs})


# ------------------------------------------------------------------ paging

def test_walking_all_pages_reproduces_the_dataset(client):
    assert walk(client, per_page="37") == list(LEADS)


def test_default_page_and_wire_format(client, server):
    response = get(client)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["current_page", "data", "first_page_url", "from", "last_page", "last_page_url", "links",
                          "next_page_url", "path", "per_page", "prev_page_url", "to", "total"]
    assert body["current_page"] == 1 and body["per_page"] == 15
    assert body["data"] == list(LEADS[:15])
    assert body["path"] == f"{server.url}/user/leads"
    assert body["first_page_url"] == f"{server.url}/user/leads?page=1"
    assert body["next_page_url"] == f"{server.url}/user/leads?page=2"
    assert (body["from"], body["to"], body["total"]) == (1, 15, len(LEADS))
    # json_encode's default flags: escaped slashes, no raw non-ASCII.
    assert "http:\\/\\/" in response.text and response.content.isascii()


def test_api_prefixed_path(client, server):
    body = get(client, path="/api/user/leads", per_page="5").json()
    assert body["path"] == f"{server.url}/api/user/leads"
    assert body["next_page_url"] == f"{server.url}/api/user/leads?per_page=5&page=2"
    assert body["data"] == list(LEADS[:5])


def test_paginator_fields_keep_the_query_string(client, server):
    completed = [lead for lead in LEADS if lead["status"] == "completed"]
    per_page = 4
    last = -(-len(completed) // per_page)
    assert last >= 3
    body = get(client, status="completed", per_page=str(per_page), page="2").json()
    base = f"{server.url}/user/leads?status=completed&per_page=4"
    assert body["data"] == completed[4:8]
    assert (body["current_page"], body["from"], body["to"], body["total"], body["last_page"]) == (
        2, 5, 8, len(completed), last)
    assert body["prev_page_url"] == f"{base}&page=1"
    assert body["next_page_url"] == f"{base}&page=3"
    assert body["first_page_url"] == f"{base}&page=1"
    assert body["last_page_url"] == f"{base}&page={last}"
    # ``page`` keeps its position when the request had it first; empty params are dropped (null after
    # ConvertEmptyStringsToNull); unknown params are kept; values are RFC 3986 encoded.
    response = client.get("/user/leads?page=1&status=completed&foo=a%20b%2Bc&phone_number=",
                          headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.json()["next_page_url"] == f"{server.url}/user/leads?page=2&status=completed&foo=a%20b%2Bc"


def test_last_page_and_past_the_end(client, server):
    last = -(-len(LEADS) // 50)
    body = get(client, per_page="50", page=str(last)).json()
    assert body["data"] == list(LEADS[(last - 1) * 50:])
    assert body["to"] == len(LEADS) and body["next_page_url"] is None

    body = get(client, per_page="50", page=str(last + 3)).json()
    assert body["data"] == [] and body["from"] is None and body["to"] is None
    assert body["current_page"] == last + 3 and body["last_page"] == last and body["total"] == len(LEADS)
    assert body["next_page_url"] is None
    assert body["prev_page_url"] == f"{server.url}/user/leads?per_page=50&page={last + 2}"


def test_empty_result(client, server):
    body = get(client, date_from="2030-01-01").json()
    assert body["data"] == [] and body["total"] == 0 and body["last_page"] == 1
    assert body["from"] is None and body["to"] is None
    assert body["links"] == [
        {"url": None, "label": "&laquo; Previous", "active": False},
        {"url": f"{server.url}/user/leads?date_from=2030-01-01&page=1", "label": "1", "active": True},
        {"url": None, "label": "Next &raquo;", "active": False},
    ]


def _labels(body: dict) -> list[str]:
    return [link["label"] for link in body["links"]]


def test_links_window(client, server):
    last = -(-len(LEADS) // 5)
    assert last >= 30
    url = f"{server.url}/user/leads?per_page=5&page="
    body = get(client, per_page="5").json()
    assert _labels(body) == ["&laquo; Previous", *map(str, range(1, 11)), "...", str(last - 1), str(last),
                             "Next &raquo;"]
    assert body["links"][0] == {"url": None, "label": "&laquo; Previous", "active": False}
    assert body["links"][1] == {"url": f"{url}1", "label": "1", "active": True}
    assert body["links"][11] == {"url": None, "label": "...", "active": False}
    assert body["links"][-1] == {"url": f"{url}2", "label": "Next &raquo;", "active": False}

    body = get(client, per_page="5", page="15").json()
    assert _labels(body) == ["&laquo; Previous", "1", "2", "...", *map(str, range(12, 19)), "...",
                             str(last - 1), str(last), "Next &raquo;"]
    assert [link["label"] for link in body["links"] if link["active"]] == ["15"]
    assert body["links"][0]["url"] == f"{url}14" and body["links"][-1]["url"] == f"{url}16"

    body = get(client, per_page="5", page=str(last)).json()
    assert _labels(body) == ["&laquo; Previous", "1", "2", "...", *map(str, range(last - 9, last + 1)),
                             "Next &raquo;"]
    assert body["links"][-1]["url"] is None

    body = get(client, per_page="100").json()  # fewer than 14 pages: no separators
    assert _labels(body) == ["&laquo; Previous", *map(str, range(1, body["last_page"] + 1)), "Next &raquo;"]


# ------------------------------------------------------------------ filters

def _expected(status=None, campaign_id=None, phone=None, date_from=None, date_to=None) -> list[dict]:
    return [lead for lead in LEADS
            if (status is None or lead["status"] == status)
            and (campaign_id is None or lead["campaign_id"] == campaign_id)
            and (phone is None or phone in lead["phone_number"])
            and (date_from is None or lead["created_at"][:10] >= date_from)
            and (date_to is None or lead["created_at"][:10] <= date_to)]


@pytest.mark.parametrize("status", STATUSES)
def test_status_filter(client, status):
    expected = _expected(status=status)
    assert expected
    assert walk(client, status=status, per_page="100") == expected


def test_campaign_filter_including_a_deleted_campaign(client):
    campaign_ids = sorted({lead["campaign_id"] for lead in LEADS})
    deleted = {lead["campaign_id"] for lead in LEADS if lead["campaign"] is None}
    assert deleted
    for campaign_id in campaign_ids:
        assert walk(client, campaign_id=str(campaign_id), per_page="100") == _expected(campaign_id=campaign_id)
    assert get(client, campaign_id="1").json()["total"] == 0


def test_partial_phone_filter(client):
    phone = LEADS[0]["phone_number"]
    for needle in (phone[:8], phone[-4:], phone, phone[3:9]):
        expected = _expected(phone=needle)
        assert expected and walk(client, phone_number=needle, per_page="100") == expected
    assert len(_expected(phone=phone[:8])) >= 2
    # An unencoded "+" arrives as a space, which TrimStrings removes: it still matches.
    response = client.get(f"/user/leads?phone_number={phone[:8]}&per_page=100",
                          headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.json()["total"] == len(_expected(phone=phone[1:8]))


def test_phone_filter_is_an_unescaped_like(client):
    assert get(client, phone_number="_").json()["total"] == len(LEADS)
    phone = LEADS[0]["phone_number"]
    pattern = phone[:5] + "%" + phone[-2:]
    expected = [lead for lead in LEADS if phone[:5] in lead["phone_number"]
                and phone[-2:] in lead["phone_number"][lead["phone_number"].index(phone[:5]) + 5:]]
    assert walk(client, phone_number=pattern, per_page="100") == expected


def test_date_filters_are_inclusive_on_the_date(client):
    day = LEADS[len(LEADS) // 2]["created_at"][:10]
    on_day = _expected(date_from=day, date_to=day)
    assert on_day and all(lead["created_at"].startswith(day) for lead in on_day)
    assert walk(client, date_from=day, date_to=day, per_page="100") == on_day
    assert walk(client, date_from=day, per_page="100") == _expected(date_from=day)
    assert walk(client, date_to=day, per_page="100") == _expected(date_to=day)
    assert walk(client, date_from="2025-03-01", date_to="2025-03-31", per_page="100") == _expected(
        date_from="2025-03-01", date_to="2025-03-31")


def test_filters_combine(client):
    lead = LEADS[-1]
    params = {"status": lead["status"], "campaign_id": lead["campaign_id"], "phone": lead["phone_number"][2:6],
              "date_from": "2025-02-01"}
    expected = _expected(**params)
    assert lead in expected
    assert walk(client, status=params["status"], campaign_id=str(params["campaign_id"]),
                phone_number=params["phone"], date_from="2025-02-01", per_page="7") == expected


_dates = st.dates(min_value=date(2024, 12, 25), max_value=date(2025, 7, 5)).map(date.isoformat)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(status=st.none() | st.sampled_from(STATUSES),
       campaign_id=st.none() | st.sampled_from(sorted({lead["campaign_id"] for lead in LEADS})),
       phone=st.none() | st.text(alphabet="0123456789+", min_size=1, max_size=4),
       date_from=st.none() | _dates, date_to=st.none() | _dates,
       per_page=st.integers(1, 100), page=st.integers(1, 6))
def test_any_filter_combination_matches_brute_force(client, status, campaign_id, phone, date_from, date_to,
                                                    per_page, page):
    params = {"per_page": str(per_page), "page": str(page)}
    for key, value in (("status", status), ("campaign_id", campaign_id), ("phone_number", phone),
                       ("date_from", date_from), ("date_to", date_to)):
        if value is not None:
            params[key] = str(value)
    response = get(client, **params)
    if date_from and date_to and date_to < date_from:
        assert response.status_code == 422
        return
    assert response.status_code == 200
    expected = _expected(status, campaign_id, phone, date_from, date_to)
    body = response.json()
    assert body["total"] == len(expected)
    assert body["data"] == expected[(page - 1) * per_page: page * per_page]
    assert body["last_page"] == max(1, -(-len(expected) // per_page))


# ------------------------------------------------------------------ validation

def _assert_422(response: httpx.Response, errors: dict[str, list[str]]) -> None:
    assert response.status_code == 422
    body = response.json()
    assert list(body) == ["message", "errors"]
    assert body["errors"] == errors
    messages = [message for field in errors.values() for message in field]
    more = len(messages) - 1
    suffix = "" if more == 0 else f" (and {more} more error{'s' if more > 1 else ''})"
    assert body["message"] == messages[0] + suffix


@pytest.mark.parametrize(("params", "errors"), [
    ({"per_page": "abc"}, {"per_page": ["The per page field must be an integer."]}),
    ({"per_page": "0"}, {"per_page": ["The per page field must be between 1 and 100."]}),
    ({"per_page": "101"}, {"per_page": ["The per page field must be between 1 and 100."]}),
    ({"per_page": "1.5"}, {"per_page": ["The per page field must be an integer."]}),
    ({"per_page": "007"}, {"per_page": ["The per page field must be an integer."]}),
    ({"page": "0"}, {"page": ["The page field must be at least 1."]}),
    ({"page": "x"}, {"page": ["The page field must be an integer."]}),
    ({"page": "0.5"}, {"page": ["The page field must be an integer.", "The page field must be at least 1."]}),
    ({"status": "done"}, {"status": ["The selected status is invalid."]}),
    ({"status": "Completed"}, {"status": ["The selected status is invalid."]}),
    ({"campaign_id": "abc"}, {"campaign_id": ["The campaign id field must be an integer."]}),
    ({"campaign_id": "99999999999999999999"}, {"campaign_id": ["The campaign id field must be an integer."]}),
    ({"phone_number": "1" * 256},
     {"phone_number": ["The phone number field must not be greater than 255 characters."]}),
    ({"date_from": "2025-1-5"}, {"date_from": ["The date from field must match the format Y-m-d."]}),
    ({"date_from": "2025-02-30"}, {"date_from": ["The date from field must match the format Y-m-d."]}),
    ({"date_to": "05/01/2025"}, {"date_to": ["The date to field must match the format Y-m-d."]}),
    ({"date_from": "2025-03-02", "date_to": "2025-03-01"},
     {"date_to": ["The date to field must be a date after or equal to date from."]}),
    ({"status": "nope", "per_page": "0", "page": "-1"}, {
        "status": ["The selected status is invalid."],
        "per_page": ["The per page field must be between 1 and 100."],
        "page": ["The page field must be at least 1."]}),
])
def test_validation_errors(client, params, errors):
    _assert_422(get(client, **params), errors)


def test_validation_quirks(client):
    # Empty and blank values are null after Laravel's middleware, so they are not validated.
    response = get(client, per_page="", page="  ", status="", date_from="")
    assert response.status_code == 200 and response.json()["per_page"] == 15
    # Surrounding whitespace is trimmed before validation.
    assert get(client, per_page=" 5 ").json()["per_page"] == 5
    # after_or_equal with the date_format rule fails for a present but unparsable date_from.
    _assert_422(get(client, date_from="soon", date_to="2025-03-01"), {
        "date_from": ["The date from field must match the format Y-m-d."],
        "date_to": ["The date to field must be a date after or equal to date from."]})
    # A repeated key: PHP keeps the last value.
    assert client.get("/user/leads?per_page=abc&per_page=3",
                      headers={"Authorization": f"Bearer {TOKEN}"}).json()["per_page"] == 3


def test_validation_runs_after_authentication(client):
    assert get(client, None, per_page="abc").status_code == 401
    assert get(client, "forbidden-x", per_page="abc").status_code == 403


# ------------------------------------------------------------------ faults, latency, call log

def test_fault_500(client):
    response = get(client, "fault-500")
    assert response.status_code == 500 and response.json() == {"message": "Server Error"}


@pytest.mark.parametrize("status", ["502", "503"])
def test_fault_gateway_html(client, status):
    response = get(client, f"fault-{status}")
    assert response.status_code == int(status)
    assert response.headers["content-type"].startswith("text/html") and "<html>" in response.text


def test_fault_429(client, app):
    app.state.options.retry_after = 7
    response = get(client, "fault-429")
    assert response.status_code == 429 and response.json() == {"message": "Too Many Attempts."}
    assert response.headers["retry-after"] == "7"
    assert response.headers["x-ratelimit-limit"] == "60" and response.headers["x-ratelimit-remaining"] == "0"


def test_fault_malformed(client):
    response = get(client, "fault-malformed")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert response.text.startswith('{"current_page":1')
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.text)


def test_fault_html(client):
    response = get(client, "fault-html")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert response.text.lstrip().startswith("<!DOCTYPE html>")


def test_fault_shape(client):
    response = get(client, "fault-shape")
    assert response.status_code == 200
    body = response.json()
    assert isinstance(body, dict) and "current_page" not in body and not isinstance(body.get("data"), list)


def test_fault_slow(client, app):
    app.state.options.slow_seconds = 0.3
    started = time.perf_counter()
    response = get(client, "fault-slow", per_page="2")
    assert time.perf_counter() - started >= 0.3
    assert response.status_code == 200 and response.json()["total"] == len(dataset_for_token("fault-slow"))


def test_unknown_fault_token_is_an_ordinary_token(client):
    response = get(client, "fault-nonsense")
    assert response.status_code == 200 and response.json()["total"] == len(dataset_for_token("fault-nonsense"))


def test_fault_tokens_cover_every_fault_kind():
    assert set(FAULTS) == {"500", "502", "503", "429", "slow", "malformed", "html", "shape"}


def test_options_fault_with_rate_gives_a_reproducible_mix(client, app):
    app.state.options = DemoOptions(fault="500", fault_rate=0.5)
    first = [get(client, per_page="1").status_code for _ in range(20)]
    assert set(first) == {200, 500}
    assert 3 <= first.count(500) <= 17
    app.state.reset()
    assert [get(client, per_page="1").status_code for _ in range(20)] == first


def test_options_fault_applies_to_every_token_but_not_to_missing_auth(client, app):
    app.state.options = DemoOptions(fault="503")
    assert get(client).status_code == 503
    assert get(client, "other").status_code == 503
    assert get(client, None).status_code == 401
    app.state.options.fault = None
    assert get(client).status_code == 200


def test_latency(client, app):
    started = time.perf_counter()
    get(client, per_page="1")
    baseline = time.perf_counter() - started
    app.state.options.latency = 0.25
    started = time.perf_counter()
    assert get(client, per_page="1").status_code == 200
    assert time.perf_counter() - started >= 0.25 > baseline


def test_calls_are_recorded(client, app):
    get(client, None)
    get(client, status="completed", per_page="5")
    get(client, per_page="zero")
    get(client, "fault-429")
    client.get("/healthz")
    calls = app.state.calls
    assert [(c.token, c.params, c.status) for c in calls] == [
        (None, {}, 401),
        (TOKEN, {"status": "completed", "per_page": "5"}, 200),
        (TOKEN, {"per_page": "zero"}, 422),
        ("fault-429", {}, 429),
    ]
    assert client.get("/_demo/calls").json() == {"calls": 4}
    app.state.reset()
    assert list(app.state.calls) == [] and client.get("/_demo/calls").json() == {"calls": 0}


def test_options_from_env(monkeypatch):
    for name in ("DEMO_LATENCY_MS", "DEMO_FAULT", "DEMO_FAULT_RATE", "DEMO_FAULT_MIX", "DEMO_RETRY_AFTER",
                 "DEMO_SLOW_SECONDS", "DEMO_TOKEN_FAULTS", "DEMO_TOKEN_LATENCY_MS"):
        monkeypatch.delenv(name, raising=False)
    assert main_options_from_env() == DemoOptions()
    monkeypatch.setenv("DEMO_LATENCY_MS", "250")
    monkeypatch.setenv("DEMO_FAULT", "429")
    monkeypatch.setenv("DEMO_FAULT_RATE", "0.25")
    monkeypatch.setenv("DEMO_RETRY_AFTER", "3")
    assert main_options_from_env() == DemoOptions(latency=0.25, fault="429", fault_rate=0.25, retry_after=3)
    for name, bad in (("DEMO_LATENCY_MS", "fast"), ("DEMO_LATENCY_MS", "-1"), ("DEMO_FAULT", "404"),
                      ("DEMO_FAULT_RATE", "1.5"), ("DEMO_RETRY_AFTER", "soon")):
        monkeypatch.setenv(name, bad)
        with pytest.raises(ValueError, match=name):
            main_options_from_env()
        monkeypatch.delenv(name)


def test_invalid_options_are_rejected():
    with pytest.raises(ValueError):
        DemoOptions(fault="404")
    with pytest.raises(ValueError):
        DemoOptions(fault_rate=2)


def test_flaky_tokens_alternate_between_503_and_success(client):
    statuses = [get(client, "flaky-abc").status_code for _ in range(4)]
    assert statuses == [503, 200, 503, 200]
    assert get(client, "flaky-other").status_code == 503  # counted per token


# ------------------------------------------------------------------ one tenant's faults and latency

def test_token_fault_hits_its_token_only(client, app):
    app.state.options.token_faults["noisy"] = "500"  # mutable on a running server
    response = get(client, "noisy", per_page="1")
    assert response.status_code == 500 and response.json() == {"message": "Server Error"}
    assert get(client, "quiet", per_page="1").status_code == 200
    assert [get(client, "noisy", per_page="1").status_code for _ in range(3)] == [500] * 3
    assert client.get("/_demo/faults").json() == {"faults": {"500": 4}}
    app.state.options.token_faults["noisy"] = "503"
    assert get(client, "noisy").status_code == 503
    del app.state.options.token_faults["noisy"]
    assert get(client, "noisy").status_code == 200


@pytest.mark.parametrize("kind", [kind for kind in FAULTS if kind != "slow"])
def test_token_fault_every_kind(client, app, kind):
    app.state.options = DemoOptions(token_faults={"tenant-a": kind})
    fault_token = get(client, f"fault-{kind}", per_page="3")
    response = get(client, "tenant-a", per_page="3")
    assert (response.status_code, response.headers["content-type"]) == (
        fault_token.status_code, fault_token.headers["content-type"])
    if kind != "malformed":  # a truncated copy of the token's own data set
        assert response.content == fault_token.content
    assert get(client, "tenant-b", per_page="3").status_code == 200
    assert client.get("/_demo/faults").json() == {"faults": {kind: 2}}


def test_token_fault_slow_stalls_its_token_only(client, app):
    app.state.options = DemoOptions(token_faults={"slowpoke": "slow"}, slow_seconds=0.4)
    started = time.perf_counter()
    assert get(client, "slowpoke", per_page="1").status_code == 200
    slow = time.perf_counter() - started
    started = time.perf_counter()
    assert get(client, "other", per_page="1").status_code == 200
    assert slow >= 0.4 > 4 * (time.perf_counter() - started)


def test_token_fault_precedence(client, app):
    # After a fault-<kind> token, before the flaky tokens and the global fault and mix.
    app.state.options = DemoOptions(fault="503", fault_mix=(("502", 1.0),),
                                    token_faults={"fault-429": "500", "flaky-x": "500", "mine": "500"})
    assert get(client, "fault-429").status_code == 429
    assert [get(client, "flaky-x").status_code for _ in range(2)] == [500, 500]
    assert get(client, "mine").status_code == 500
    assert get(client, "theirs").status_code == 503
    assert get(client, None).status_code == 401  # no token: no fault
    app.state.options.fault = None
    assert get(client, "theirs").status_code == 502
    assert client.get("/_demo/faults").json()["faults"] == {"429": 1, "500": 3, "502": 1, "503": 1}


def test_token_latency_applies_to_its_token_only(client, app):
    app.state.options.token_latency["noisy"] = 0.3
    started = time.perf_counter()
    assert get(client, "noisy", per_page="1").status_code == 200
    noisy = time.perf_counter() - started
    started = time.perf_counter()
    assert get(client, "quiet", per_page="1").status_code == 200
    quiet = time.perf_counter() - started
    assert noisy >= 0.3 and quiet < 0.15, (noisy, quiet)
    # On top of the global latency.
    app.state.options.latency = 0.1
    started = time.perf_counter()
    get(client, "noisy", per_page="1")
    assert time.perf_counter() - started >= 0.4


def test_token_latency_and_fault_together(client, app):
    app.state.options = DemoOptions(token_faults={"noisy": "503"}, token_latency={"noisy": 0.2})
    started = time.perf_counter()
    assert get(client, "noisy").status_code == 503
    assert time.perf_counter() - started >= 0.2


def test_parse_token_faults_and_latency():
    assert parse_token_faults("tokA=500, tokB = slow") == {"tokA": "500", "tokB": "slow"}
    assert parse_token_faults("") == {} and parse_token_latency_ms("  ") == {}
    assert parse_token_faults("1|abc==503") == {"1|abc=": "503"}  # the last "=" separates
    assert parse_token_latency_ms("tokA=200,tokB=0,tokC=1.5") == {"tokA": 0.2, "tokB": 0.0, "tokC": 0.0015}
    assert format_token_faults(parse_token_faults("a=500,b=slow")) == "a=500,b=slow"
    assert format_token_latency_ms(parse_token_latency_ms("a=200,b=1500")) == "a=200,b=1500"


@pytest.mark.parametrize("parse, text, message", [
    (parse_token_faults, "tokA", "expected TOKEN=KIND (e.g. tokA=500,tokB=slow), got 'tokA'"),
    (parse_token_faults, "=500", "expected TOKEN=KIND"),
    (parse_token_faults, "tokA=", "expected TOKEN=KIND"),
    (parse_token_faults, "tokA=500,", "expected TOKEN=KIND"),
    (parse_token_faults, "tokA=404", "unknown demo fault '404' for token 'tokA'; expected one of 500, 502"),
    (parse_token_faults, "tokA=500,tokA=503", "token 'tokA' is given more than once"),
    (parse_token_latency_ms, "tokA", "expected TOKEN=MS (e.g. tokA=200), got 'tokA'"),
    (parse_token_latency_ms, "tokA=-5", "the latency of token 'tokA' must be a number of milliseconds >= 0, "
                                        "got '-5'"),
    (parse_token_latency_ms, "tokA=fast", "must be a number of milliseconds >= 0, got 'fast'"),
    (parse_token_latency_ms, "tokA=nan", "must be a number of milliseconds >= 0"),
    (parse_token_latency_ms, "tokA=inf", "must be a number of milliseconds >= 0"),
    (parse_token_latency_ms, "tokA=1,tokA=2", "token 'tokA' is given more than once"),
])
def test_parse_token_errors(parse, text, message):
    with pytest.raises(ValueError) as info:
        parse(text)
    assert message in str(info.value)


@pytest.mark.parametrize("kwargs, message", [
    ({"token_faults": {"tokA": "404"}}, "token_faults: unknown demo fault '404' for token 'tokA'"),
    ({"token_faults": {"": "500"}}, "token_faults: a token must be a non-empty string"),
    ({"token_faults": {" tokA": "500"}}, "token_faults: a token cannot contain commas or start or end with blanks"),
    ({"token_faults": {"a,b": "500"}}, "token_faults: a token cannot contain commas"),
    ({"token_faults": "tokA=500"}, "token_faults: expected a dict of token -> fault"),
    ({"token_latency": {"tokA": -0.1}}, "token_latency: the latency of token 'tokA' must be a number of "
                                        "seconds >= 0, got -0.1"),
    ({"token_latency": {"tokA": "1"}}, "token_latency: the latency of token 'tokA' must be a number"),
    ({"token_latency": {"tokA": float("inf")}}, "token_latency: the latency of token 'tokA' must be a number"),
    ({"token_latency": {"tokA": True}}, "token_latency: the latency of token 'tokA' must be a number"),
    ({"token_latency": [("tokA", 1)]}, "token_latency: expected a dict of token -> seconds"),
])
def test_invalid_token_options_are_rejected(kwargs, message):
    with pytest.raises(ValueError) as info:
        DemoOptions(**kwargs)
    assert str(info.value).startswith(message)


def test_token_options_defaults_are_not_shared():
    first, second = DemoOptions(), DemoOptions()
    first.token_faults["x"] = "500"
    first.token_latency["x"] = 1.0
    assert second.token_faults == {} and second.token_latency == {}
    assert DemoOptions(token_latency={"x": 2}).token_latency == {"x": 2.0}


def test_token_options_from_env(monkeypatch):
    monkeypatch.setenv("DEMO_TOKEN_FAULTS", "tokA=500, tokB=slow")
    monkeypatch.setenv("DEMO_TOKEN_LATENCY_MS", "tokA=200")
    options = main_options_from_env()
    assert options.token_faults == {"tokA": "500", "tokB": "slow"} and options.token_latency == {"tokA": 0.2}
    for name, bad, message in (("DEMO_TOKEN_FAULTS", "tokA=teapot", "unknown demo fault 'teapot'"),
                               ("DEMO_TOKEN_FAULTS", "tokA", "expected TOKEN=KIND"),
                               ("DEMO_TOKEN_LATENCY_MS", "tokA=-1", "milliseconds >= 0")):
        monkeypatch.setenv(name, bad)
        with pytest.raises(ValueError, match=f"^{name}: .*{message}"):
            main_options_from_env()
        monkeypatch.delenv(name)
