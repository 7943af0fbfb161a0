"""The live transports' small rules (gateway/http/live.py): which ``Accept`` picks which stream, and where a
WebSocket's token is read from."""

from __future__ import annotations

import pytest
from strawberry.http.streaming import MultipartSubscriptionTransport, SSETransport

from gateway.http.live import stream_transport, token_from_params


@pytest.mark.parametrize("accept, kind", [
    ("text/event-stream", SSETransport),
    ("text/event-stream, application/json", SSETransport),
    ("multipart/mixed;subscriptionSpec=1.0, application/json", MultipartSubscriptionTransport),
    ('multipart/mixed;boundary="graphql";subscriptionSpec="1.0",application/json', MultipartSubscriptionTransport),
    ("multipart/mixed;deferSpec=20220824, application/graphql-response+json, application/json", type(None)),
    ("application/graphql-response+json", type(None)),
    ("*/*", type(None)),
    (None, type(None)),
])
def test_the_accept_header_picks_the_stream(accept, kind):
    assert type(stream_transport(accept, 7.0)) is kind


def test_heartbeats_follow_the_keepalive_setting():
    assert stream_transport("text/event-stream", 7.0).heartbeat_interval == 7.0
    assert stream_transport("multipart/mixed;subscriptionSpec=1.0", 3.0).heartbeat_interval == 3.0


@pytest.mark.parametrize("payload, demo, token", [
    ({"Authorization": "Bearer abc"}, None, "abc"),
    ({"authorization": "bearer  abc "}, None, "abc"),
    ({"headers": {"Authorization": "Bearer nested"}}, None, "nested"),
    ({}, None, None),
    ({}, "demo", "demo"),  # demo mode: a missing token is the demo tenant's
    ({"Authorization": "Basic abc"}, "demo", None),  # a malformed one never is
    ({"Authorization": "Bearer "}, "demo", None),
    ({"Authorization": 42}, None, None),
    ({"headers": "Bearer x"}, None, None),
])
def test_the_websocket_token_comes_from_connection_init(payload, demo, token):
    assert token_from_params(payload, demo) == token
