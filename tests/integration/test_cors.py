"""CORS (gateway/http/cors.py) on a real gateway: the allowlist, ``*``, same-origin only, preflights.

tests/integration/test_limits.py covers GraphQL requests from allowed and other origins; these cover the
rest of the policy, on /healthz (no upstream needed) and preflights of /graphql.
"""

from __future__ import annotations

import httpx
import pytest

ALLOWED = "https://app.example.com"
OTHER = "https://evil.example.net"
CLIENT_HEADERS = {"authorization", "content-type", "accept", "cache-control", "pragma", "x-request-id"}


@pytest.fixture(scope="module")
def listed(make_gateway):
    """Origins configured as people write them: upper case, trailing slash."""
    return make_gateway(cors_origins=("HTTPS://App.Example.com/", "https://admin.example.com"))


@pytest.fixture(scope="module")
def any_origin(make_gateway):
    return make_gateway(cors_origins=("*",))


@pytest.fixture(scope="module")
def same_origin(make_gateway):
    return make_gateway()  # cors_origins: none


def preflight(gw, origin: str, method: str = "POST", headers: str = "authorization, content-type") -> httpx.Response:
    return gw.client.options("/graphql", headers={"Origin": origin, "Access-Control-Request-Method": method,
                                                  "Access-Control-Request-Headers": headers})


def vary(response: httpx.Response) -> set[str]:
    return {v.strip().lower() for v in response.headers.get("vary", "").split(",") if v.strip()}


def cors_headers(response: httpx.Response) -> set[str]:
    return {h for h in response.headers if h.startswith("access-control-")}


def test_configured_origins_match_what_browsers_send(listed):
    response = listed.client.get("/healthz", headers={"Origin": ALLOWED})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert response.headers["access-control-expose-headers"] == "X-Request-ID, Retry-After"
    assert response.headers["x-request-id"]  # the header exposed to the page is there
    assert "origin" in vary(response) and "access-control-allow-credentials" not in response.headers


def test_preflight_of_an_allowed_origin(listed):
    response = preflight(listed, ALLOWED)
    assert response.status_code == 204 and response.content == b""
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert response.headers["access-control-allow-methods"] == "GET, POST"
    allowed = {h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")}
    assert CLIENT_HEADERS <= allowed
    assert response.headers["access-control-max-age"] == "600"
    assert "access-control-allow-credentials" not in response.headers
    assert {"origin", "access-control-request-method", "access-control-request-headers"} <= vary(response)


def test_preflight_asking_for_more_gets_the_lists_and_the_browser_decides(listed):
    """An allowed origin asking for another method or header is told what is allowed (not refused here):
    the browser then names what is missing in its console."""
    response = preflight(listed, "https://ADMIN.example.com", method="PUT", headers="x-custom")
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "https://ADMIN.example.com"
    assert response.headers["access-control-allow-methods"] == "GET, POST"
    assert "x-custom" not in response.headers["access-control-allow-headers"].lower()


def test_preflight_of_another_origin_is_refused_with_a_graphql_error(listed):
    response = preflight(listed, OTHER)
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "ORIGIN_NOT_ALLOWED" and OTHER in error["message"]
    assert "access-control-allow-origin" not in response.headers and "origin" in vary(response)


def test_another_origin_is_served_without_allow_origin(listed):
    response = listed.client.get("/healthz", headers={"Origin": OTHER})
    assert response.status_code == 200 and "access-control-allow-origin" not in response.headers
    assert "origin" in vary(response)


def test_every_response_varies_on_origin_with_an_allowlist(listed):
    response = listed.client.get("/healthz")  # no Origin: same origin, or not a browser
    assert response.status_code == 200 and "origin" in vary(response)
    assert not cors_headers(response)


def test_star_allows_any_origin_without_credentials(any_origin):
    response = any_origin.client.get("/healthz", headers={"Origin": "https://anyone.example"})
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["access-control-expose-headers"] == "X-Request-ID, Retry-After"
    assert "access-control-allow-credentials" not in response.headers
    response = preflight(any_origin, "null")  # even a sandboxed page
    assert response.status_code == 204 and response.headers["access-control-allow-origin"] == "*"
    assert response.headers["access-control-allow-methods"] == "GET, POST"


def test_without_an_allowlist_nothing_is_added_and_preflights_are_refused(same_origin):
    for origin in (None, ALLOWED):
        response = same_origin.client.get("/healthz", headers={"Origin": origin} if origin else {})
        assert response.status_code == 200
        assert not cors_headers(response) and "origin" not in vary(response)
    response = preflight(same_origin, ALLOWED)
    assert response.status_code == 403 and response.json()["errors"][0]["extensions"]["code"] == "ORIGIN_NOT_ALLOWED"
    assert not cors_headers(response) and "vary" not in response.headers


def test_an_options_request_that_is_not_a_preflight_reaches_the_app(listed):
    """Without Access-Control-Request-Method it is an ordinary request: the GraphQL view answers it."""
    response = listed.client.options("/graphql", headers={"Origin": ALLOWED})
    assert "allow" in response.headers and "access-control-allow-methods" not in response.headers
    assert response.headers["access-control-allow-origin"] == ALLOWED
