"""Every contract error code, produced by real upstream answers over real HTTP."""

from __future__ import annotations

import socket

import httpx
import pytest

from gateway.leads.filter import ListFilter
from gateway.leads.pagination import PageRef
from gateway.datasource.client import LeadsAPI, PageRequest

Q = "{ leads(first: 3) { totalCount nodes { databaseId } } }"


def error_of(body: dict) -> dict:
    assert body["data"] is None, body
    assert len(body["errors"]) == 1, body
    return body["errors"][0]


def test_no_token_is_unauthenticated_without_an_upstream_call(gateway, fresh_upstream):
    err = error_of(gateway.gql(Q))
    assert err["extensions"]["code"] == "UNAUTHENTICATED"
    assert "Authorization: Bearer" in err["message"]
    assert fresh_upstream.calls() == []


@pytest.mark.parametrize("header", ["Basic dXNlcjpwdw==", "Bearer", "token abc"])
def test_a_malformed_authorization_header_is_unauthenticated(gateway, fresh_upstream, header):
    err = error_of(gateway.gql(Q, headers={"Authorization": header}))
    assert err["extensions"]["code"] == "UNAUTHENTICATED"
    assert fresh_upstream.calls() == []


def test_token_is_passed_through_verbatim(gateway, fresh_upstream, token):
    gateway.gql(Q, token=token)
    assert [c.token for c in fresh_upstream.calls()] == [token]


@pytest.mark.parametrize("token,code,needle", [
    ("forbidden-user", "FORBIDDEN", "403"),
    ("fault-500", "UPSTREAM_UNAVAILABLE", "500"),
    ("fault-502", "UPSTREAM_UNAVAILABLE", "502"),
    ("fault-503", "UPSTREAM_UNAVAILABLE", "503"),
    ("fault-malformed", "UPSTREAM_BAD_RESPONSE", "not JSON"),
    ("fault-html", "UPSTREAM_BAD_RESPONSE", "not JSON"),
    ("fault-shape", "UPSTREAM_BAD_RESPONSE", "documented shape"),
])
def test_upstream_failures_map_to_contract_codes(gateway, fresh_upstream, token, code, needle):
    err = error_of(gateway.gql(Q, token=token))
    assert err["extensions"]["code"] == code
    assert needle in err["message"]
    assert token not in str(err) or token.startswith(("fault", "forbidden")) and f"Bearer {token}" not in str(err)
    assert "Traceback" not in str(err)


def test_an_answer_over_the_size_cap_is_a_bad_response_and_the_gateway_goes_on(make_gateway, fresh_upstream, token):
    """GATEWAY_UPSTREAM_MAX_BYTES: a larger answer is refused (never buffered whole) as UPSTREAM_BAD_RESPONSE;
    the next call, on a new connection, works."""
    gw = make_gateway(cache_ttl=0, upstream_max_bytes=4096)
    big = "{ leads(first: 60) { nodes { databaseId } } }"  # a page of 60 leads is well over 4 kB
    err = error_of(gw.gql(big, token=token))
    assert err["extensions"]["code"] == "UPSTREAM_BAD_RESPONSE"
    assert "GATEWAY_UPSTREAM_MAX_BYTES" in err["message"] and "4096" in err["message"]
    assert len(fresh_upstream.calls(token)) == 1  # refused, not retried
    small = gw.gql("{ leads(first: 1) { nodes { databaseId } } }", token=token)
    assert "errors" not in small and len(small["data"]["leads"]["nodes"]) == 1


def test_rate_limit_carries_retry_after(gateway, fresh_upstream):
    fresh_upstream.options.retry_after = 7
    err = error_of(gateway.gql(Q, token="fault-429"))
    assert err["extensions"] == {"code": "RATE_LIMITED", "retryAfter": 7}


def test_upstream_401_is_unauthenticated(gateway, fresh_upstream):
    """A token the upstream refuses (the demo refuses tokens starting with `revoked`)."""
    err = error_of(gateway.gql(Q, token="revoked-key"))
    assert err["extensions"]["code"] == "UNAUTHENTICATED"
    assert "401" in err["message"]
    assert len(fresh_upstream.calls("revoked-key")) == 1


def test_slow_upstream_is_a_timeout(make_gateway, fresh_upstream):
    gw = make_gateway(cache_ttl=0, upstream_timeout=0.3)
    fresh_upstream.options.slow_seconds = 3
    err = error_of(gw.gql(Q, token="fault-slow"))
    assert err["extensions"]["code"] == "UPSTREAM_TIMEOUT"
    assert "0.3 s" in err["message"]


def test_unreachable_upstream_is_unavailable(make_gateway, fresh_upstream):
    with socket.socket() as s:  # a port that was free a moment ago, with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gw = make_gateway(cache_ttl=0, upstream_url=f"http://127.0.0.1:{port}")
    err = error_of(gw.gql(Q, token="someone"))
    assert err["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
    assert str(port) not in err["message"]


async def test_upstream_422_is_bad_user_input_with_field_errors(upstream):
    """The planner never sends an invalid page, so drive the client directly against the demo upstream."""
    async with httpx.AsyncClient() as client:
        api = LeadsAPI(client, upstream.url, timeout=5)
        bad = PageRequest(ListFilter(), PageRef(1, 101))
        with pytest.raises(Exception) as info:
            await api.fetch_page("someone", bad)
    ext = info.value.extensions
    assert ext["code"] == "BAD_USER_INPUT"
    assert ext["fieldErrors"] == {"first/last": ["The per page field must be between 1 and 100."]}


def test_syntax_and_validation_errors_have_codes(gateway, fresh_upstream, token):
    parse = gateway.post("{ leads(first: ", token=token).json()["errors"][0]
    assert parse["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    invalid = gateway.post("{ leads { nope } }", token=token).json()["errors"][0]
    assert invalid["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    missing_arg = gateway.post("{ lead { databaseId } }", token=token).json()["errors"][0]
    assert missing_arg["extensions"]["code"] == "BAD_USER_INPUT"
    assert fresh_upstream.calls() == []


def test_partial_failure_keeps_the_good_fields(gateway, fresh_upstream, token):
    """A failing nullable field (a malformed id) does not lose the other fields' data."""
    body = gateway.gql('{ ok: leads(first: 2) { totalCount } bad: node(id: "zzz") { id } }', token=token)
    assert body["data"]["ok"]["totalCount"] > 0
    assert body["data"]["bad"] is None
    assert body["errors"][0]["path"] == ["bad"] and body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_unexpected_exceptions_are_masked_and_logged(make_gateway, fresh_upstream, token, caplog):
    """A bug inside the gateway (here: a broken upstream client object) is INTERNAL_SERVER_ERROR with no detail
    for the client, and the full traceback in the logs."""
    gw = make_gateway(cache_ttl=0)
    app = gw.server.server.config.app

    class Broken:
        async def fetch_page(self, token, request, **_):
            raise RuntimeError("secret internal detail")

    app.state.sources.api = Broken()
    with caplog.at_level("ERROR", logger="gateway.errors"):
        err = error_of(gw.gql(Q, token=token))
    assert err["message"] == "Internal server error."
    assert err["extensions"] == {"code": "INTERNAL_SERVER_ERROR"}
    assert "secret" not in str(err) and token not in str(err)
    assert "secret internal detail" in caplog.text


async def test_an_upstream_that_caps_per_page_is_a_bad_response():
    """An upstream answering another page size than asked would make the slicing lose leads: refuse it.
    (The demo upstream never does this, so a one-route upstream that does is served over real HTTP.)"""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from gateway.serving import start_in_thread

    async def capped(request):
        return JSONResponse({"current_page": int(request.query_params["page"]), "per_page": 50, "total": 500,
                             "last_page": 10, "data": [], "from": None, "to": None})

    server = start_in_thread(Starlette(routes=[Route("/user/leads", capped)]))
    try:
        async with httpx.AsyncClient() as client:
            api = LeadsAPI(client, server.url, timeout=5)
            with pytest.raises(Exception) as info:
                await api.fetch_page("someone", PageRequest(ListFilter(), PageRef(2, 100)))
    finally:
        server.stop()
    assert info.value.extensions["code"] == "UPSTREAM_BAD_RESPONSE"
    assert "size 50 when asked for page 2 of size 100" in info.value.message
