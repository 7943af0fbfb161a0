"""error_from_response / retry_after_seconds / PageRequest.params with real ``httpx.Response`` objects.

Every upstream status must become the contract's ``extensions.code`` (README, "Errors"), and no message
or extension may contain the caller's bearer token, even when the upstream echoes it back.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from gateway.errors import (
    BadUserInput,
    Forbidden,
    GatewayError,
    RateLimited,
    Unauthenticated,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamUnavailable,
)
from gateway.leads.filter import ListFilter
from gateway.leads.pagination import PageRef
from gateway.datasource.client import PageRequest, error_from_response, retry_after_seconds

TOKEN = "tok-3f9c2b71d0e84a6f"
URL = "https://call.aiployees.com/api/user/leads"


def response(status: int, body=None, *, headers: dict | None = None, text: str | None = None) -> httpx.Response:
    request = httpx.Request("GET", URL, params={"page": "1", "per_page": "15"},
                            headers={"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"})
    content = text.encode() if text is not None else (b"" if body is None else json.dumps(body).encode())
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    return httpx.Response(status, headers=hdrs, content=content, request=request)


def assert_token_free(error: GatewayError) -> None:
    assert TOKEN not in str(error)
    assert TOKEN not in error.message
    assert TOKEN not in json.dumps(error.extensions, default=str)


# --- the contract table ------------------------------------------------------------------------------

def test_401_is_unauthenticated():
    err = error_from_response(response(401, {"message": "Unauthenticated."}))
    assert err.extensions["code"] == "UNAUTHENTICATED"
    assert isinstance(err, Unauthenticated) and isinstance(err, UpstreamError)
    assert_token_free(err)


def test_403_is_forbidden():
    err = error_from_response(response(403, {"message": "This action is unauthorized."}))
    assert err.extensions["code"] == "FORBIDDEN"
    assert isinstance(err, Forbidden)
    assert_token_free(err)


def test_422_is_bad_user_input_with_field_errors_under_graphql_argument_names():
    body = {"message": "The selected status is invalid. (and 2 more errors)",
            "errors": {"status": ["The selected status is invalid."],
                       "date_from": ["The date from field must be a valid date."],
                       "phone_number": ["The phone number field must not be greater than 255 characters."],
                       "campaign_id": ["The campaign id field must be an integer."],
                       "date_to": ["The date to field must be a date after or equal to date from."]}}
    err = error_from_response(response(422, body))
    assert err.extensions["code"] == "BAD_USER_INPUT"
    assert isinstance(err, BadUserInput)
    assert err.extensions["fieldErrors"] == {
        "filter.status": ["The selected status is invalid."],
        "filter.createdFrom": ["The date from field must be a valid date."],
        "filter.phoneNumber": ["The phone number field must not be greater than 255 characters."],
        "filter.campaignId": ["The campaign id field must be an integer."],
        "filter.createdTo": ["The date to field must be a date after or equal to date from."],
    }
    assert "The selected status is invalid." in err.message
    assert_token_free(err)


def test_422_on_paging_parameters_and_unknown_fields():
    body = {"message": "invalid", "errors": {"per_page": ["The per page field must not be greater than 100."],
                                             "page": ["The page field must be at least 1."],
                                             "something_new": ["x"]}}
    err = error_from_response(response(422, body))
    field_errors = err.extensions["fieldErrors"]
    assert "per_page" not in field_errors and "page" not in field_errors  # no upstream names leak through
    assert field_errors["something_new"] == ["x"]
    assert ["The per page field must not be greater than 100."] in field_errors.values()


@pytest.mark.parametrize("text", ["<html>Unprocessable</html>", "", json.dumps({"message": "x", "errors": []}),
                                  json.dumps(["not", "an", "object"]), json.dumps({"errors": None})])
def test_422_with_an_odd_body_is_still_bad_user_input(text):
    err = error_from_response(response(422, text=text))
    assert err.extensions["code"] == "BAD_USER_INPUT"
    assert err.extensions["fieldErrors"] == {}


def test_429_with_retry_after_seconds():
    err = error_from_response(response(429, {"message": "Too Many Attempts."}, headers={"Retry-After": "37"}))
    assert err.extensions["code"] == "RATE_LIMITED"
    assert isinstance(err, RateLimited)
    assert err.extensions["retryAfter"] == 37
    assert_token_free(err)


def test_429_with_retry_after_http_date():
    when = datetime.now(UTC) + timedelta(seconds=120)
    err = error_from_response(response(429, headers={"Retry-After": format_datetime(when, usegmt=True)}))
    assert err.extensions["code"] == "RATE_LIMITED"
    assert 115 <= err.extensions["retryAfter"] <= 121


def test_429_without_retry_after_has_no_retry_after():
    err = error_from_response(response(429, {"message": "Too Many Attempts."}))
    assert err.extensions["code"] == "RATE_LIMITED"
    assert "retryAfter" not in err.extensions


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_upstream_unavailable_and_does_not_echo_the_body(status):
    # Laravel's debug error page dumps the request headers, bearer token included.
    page = f"<html><h1>Server Error</h1><pre>Authorization: Bearer {TOKEN}</pre></html>"
    err = error_from_response(response(status, text=page, headers={"Content-Type": "text/html"}))
    assert err.extensions["code"] == "UPSTREAM_UNAVAILABLE"
    assert isinstance(err, UpstreamUnavailable)
    assert err.extensions["upstreamStatus"] == status
    assert_token_free(err)
    assert "Server Error" not in err.message


@pytest.mark.parametrize("status", [404, 400, 405, 418, 301])
def test_other_statuses_are_bad_responses(status):
    err = error_from_response(response(status, {"message": f"Bearer {TOKEN} not found"},
                                       headers={"Location": "https://elsewhere.example/"}))
    assert err.extensions["code"] == "UPSTREAM_BAD_RESPONSE"
    assert isinstance(err, UpstreamBadResponse)
    assert err.extensions["upstreamStatus"] == status
    assert_token_free(err)


@pytest.mark.parametrize("status", [301, 302, 303, 307])
def test_redirect_to_login_is_unauthenticated(status):
    err = error_from_response(response(status, text="", headers={"Location": "https://call.aiployees.com/login"}))
    assert err.extensions["code"] == "UNAUTHENTICATED"
    assert_token_free(err)


def test_redirect_elsewhere_is_not_unauthenticated():
    err = error_from_response(response(302, text="", headers={"Location": "https://call.aiployees.com/api/v2"}))
    assert err.extensions["code"] == "UPSTREAM_BAD_RESPONSE"


def test_every_mapped_error_is_a_gateway_error_with_a_contract_code():
    contract = {"UNAUTHENTICATED", "FORBIDDEN", "BAD_USER_INPUT", "RATE_LIMITED", "UPSTREAM_TIMEOUT",
                "UPSTREAM_UNAVAILABLE", "UPSTREAM_BAD_RESPONSE", "INTERNAL_SERVER_ERROR"}
    for status in (*range(300, 310), *range(400, 452), *range(500, 512)):
        err = error_from_response(response(status, {"message": "x"}))
        assert isinstance(err, GatewayError)
        assert err.extensions["code"] in contract - {"INTERNAL_SERVER_ERROR", "UPSTREAM_TIMEOUT"}
        assert err.extensions["code"] == err.code


# --- retry_after_seconds -----------------------------------------------------------------------------

NOW = datetime(2025, 6, 30, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize("value, expected", [
    ("0", 0), ("120", 120), (" 5 ", 5),
    ("Mon, 30 Jun 2025 12:01:30 GMT", 90),
    ("Mon, 30 Jun 2025 11:59:00 GMT", 0),  # in the past: retry now, never negative
    ("Mon, 30 Jun 2025 14:00:00 +0200", 0),
    ("Mon, 30 Jun 2025 14:00:10 +0200", 10),
    (None, None), ("", None), ("soon", None), ("-5", None), ("1.5", None),
])
def test_retry_after_seconds(value, expected):
    assert retry_after_seconds(value, now=NOW) == expected


def test_retry_after_with_a_non_ascii_digit_is_garbled_not_a_crash():
    assert retry_after_seconds("\u00b2", now=NOW) is None


# --- PageRequest.params ------------------------------------------------------------------------------

def test_page_request_params_are_the_filter_then_the_page():
    q = ListFilter(status="completed", campaign_id=3, phone_number="+359", date_from=date(2025, 1, 2),
                  date_to=date(2025, 2, 3))
    assert PageRequest(q, PageRef(2, 40)).params == (
        ("campaign_id", "3"), ("date_from", "2025-01-02"), ("date_to", "2025-02-03"),
        ("phone_number", "+359"), ("status", "completed"), ("page", "2"), ("per_page", "40"),
    )
    assert PageRequest(ListFilter(), PageRef(1, 15)).params == (("page", "1"), ("per_page", "15"))


def test_page_requests_are_equal_and_hashable_by_value():
    a = PageRequest(ListFilter(status="created"), PageRef(3, 20))
    b = PageRequest(ListFilter.build(status="created", phone_number="  "), PageRef(3, 20))
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != PageRequest(ListFilter(status="created"), PageRef(3, 21))
