"""The live transports at ``/graphql``: GraphQL over SSE (distinct connections), Apollo's multipart
subscriptions and the WebSocket protocol ``graphql-transport-ws``.

strawberry implements the three; this module only fits them to the gateway:

- SSE and multipart (``stream_response``): the view picks them by ``Accept`` (strawberry's own transports
  encode the events and the heartbeats, every ``GATEWAY_LIVE_KEEPALIVE`` seconds). Only subscriptions travel
  there (a query or mutation is a request error: POST it as JSON, where the result cache, the write rules
  and the rate limit apply). A request error (parse, validation, limits, an operation that is not a
  subscription) or of the subscription's start (bad argument, no token) answers as JSON, 400, before any
  stream; a bound reached, 429 with ``Retry-After``. An error later (the upstream refused the token, a
  first read failed) is the stream's last ``next`` event, then ``complete``. Nothing below is kept once the
  client goes: the stream is closed, which ends the subscription and, with its last subscriber, its poller.
- WebSocket (``TransportWSHandler``): the token comes in ``connection_init``'s payload
  (``{"Authorization": "Bearer <token>"}``); none, or a malformed one: closed with 4401. An event whose error
  says the upstream refused the token (``UNAUTHENTICATED``, ``FORBIDDEN``) is sent, then its ``complete``, then
  the socket is closed with 4401 or 4403. At most ``GATEWAY_LIVE_MAX_PER_CONNECTION`` subscriptions at once. Keep-alive is uvicorn's WebSocket ping (``ws_ping_interval``); no ``connection_init``
  within ``GATEWAY_LIVE_INIT_TIMEOUT``: closed with 4408 (strawberry).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncGenerator

from graphql import GraphQLError
from starlette.responses import Response, StreamingResponse
from strawberry.http.streaming import (
    HTTPStreamTransport,
    MultipartSubscriptionTransport,
    SSETransport,
    merge_stream_with_heartbeat,
)
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType

from gateway.graphql.extensions.errors import INTERNAL_MESSAGE, drop_tracebacks, format_error
from gateway.http.protocol import HTTPError, Params, encode_json, params_from_object, parse_bearer

SUBSCRIPTION_ONLY = (OperationType.SUBSCRIPTION,)


def stream_transport(accept: str | None, keepalive: float) -> HTTPStreamTransport | None:
    """SSE for ``Accept: text/event-stream``, multipart for ``multipart/mixed;subscriptionSpec=1.0``, else None."""
    kind = _stream_kind(accept) if accept else None
    if kind is None:
        return None
    if kind == "multipart":
        multipart = MultipartSubscriptionTransport()
        multipart.heartbeat_interval = keepalive
        return multipart
    return SSETransport(heartbeat_interval=keepalive)


@functools.lru_cache(maxsize=256)  # a pure function of a header clients repeat verbatim (strawberry's checks
def _stream_kind(accept: str) -> str | None:  # parse it with the email package: 7 % of a result-cache hit)
    if any(MultipartSubscriptionTransport().accepts(part.strip()) for part in accept.split(",")):
        return "multipart"
    return "sse" if SSETransport().accepts(accept) else None


NOT_A_SUBSCRIPTION = ("Only subscriptions are served as a stream: send queries and mutations as a plain POST "
                      "(or over graphql-transport-ws, only subscriptions too).")


def formatted(error: GraphQLError) -> dict:
    """An error as the client sees it: the contract's code, nothing unexpected shown (the one formatter)."""
    if isinstance(error.original_error, InvalidOperationTypeError):
        return {"message": NOT_A_SUBSCRIPTION, "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}}
    return format_error(error).formatted


def result_body(result) -> dict:
    """One event's GraphQL response."""
    body: dict = {"data": result.data}
    if result.errors:
        body["errors"] = [formatted(e) for e in result.errors]
        drop_tracebacks(result.errors)
    if result.extensions:
        body["extensions"] = result.extensions
    return body


async def stream_response(results: AsyncGenerator, transport: HTTPStreamTransport, *, keepalive: float,
                          media_error: str) -> Response:
    """Answer a started stream: its request error as JSON 400, or every result as an event."""
    try:
        first = await anext(results)
    except StopAsyncIteration:
        first = None
    if isinstance(first, PreExecutionError):
        await results.aclose()
        errors = [formatted(e) for e in first.errors or ()]
        retry_after = next((e["extensions"].get("retryAfter") for e in errors
                            if (e.get("extensions") or {}).get("code") == "RATE_LIMITED"), None)
        # Refused whole to protect the upstream or other callers: 429 with Retry-After, like any request.
        status, headers = (429, {"Retry-After": str(retry_after)}) if retry_after is not None else (400, None)
        return Response(encode_json({"errors": errors}), status_code=status, headers=headers,
                        media_type=f"{media_error}; charset=utf-8")

    def encode(value) -> str:
        return encode_json(value).decode()

    async def events() -> AsyncGenerator[str, None]:
        async with contextlib.aclosing(results):  # the client left: the subscription ends, and its poller
            if first is not None:
                yield transport.encode_next(result_body(first), encode)
                async for result in results:
                    yield transport.encode_next(result_body(result), encode)
        yield transport.encode_complete()

    stream = merge_stream_with_heartbeat(events, lambda: transport.heartbeat_message(encode), interval=keepalive,
                                         send_initial_heartbeat=transport.send_initial_heartbeat)
    return StreamingResponse(stream(), status_code=200, headers=dict(transport.headers))


_CLOSE_FOR = {"UNAUTHENTICATED": (4401, "Unauthorized"), "FORBIDDEN": (4403, "Forbidden")}


class _SubscriptionsOnly:
    """The schema as the WebSocket handler sees it: it streams subscriptions only (queries and mutations go
    over HTTP, where the result cache, the write rules and the rate limit apply)."""

    def __init__(self, schema) -> None:
        self.wrapped = schema

    def __getattr__(self, name):
        return getattr(self.wrapped, name)

    async def stream(self, *args, **kwargs):
        return await self.wrapped.stream(*args, **kwargs, allowed_operation_types=SUBSCRIPTION_ONLY)


def _params(payload: object) -> Params | list[dict] | None:
    """A ``subscribe`` payload as request parameters; its errors when malformed (an id of the wrong type...);
    None when it holds neither a text nor an id (strawberry answers that as it always has)."""
    if not isinstance(payload, dict) or not (isinstance(payload.get("query"), str) or "documentId" in payload
                                             or "doc_id" in payload or "extensions" in payload):
        return None
    try:
        return params_from_object(payload)
    except HTTPError as e:
        return e.body()["errors"]


class TransportWSHandler(BaseGraphQLTransportWSHandler):
    """strawberry's ``graphql-transport-ws``, with the caller's token taken from ``connection_init``."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.schema = _SubscriptionsOnly(self.schema)
        self._refused: tuple[int, str] | None = None  # the close owed once a refused token's subscription ends

    async def handle_connection_init(self, message) -> None:
        payload = message.get("payload")
        if payload is None:  # graphql-ws sends none when the client has no connectionParams
            payload = {}
        if isinstance(payload, dict) and not self.connection_init_received:
            token = token_from_params(payload, self.view.settings.demo_token)
            if token is None:
                await self.websocket.close(code=4401, reason="Unauthorized: send {\"Authorization\": \"Bearer "
                                                             "<token>\"} as the connection_init payload")
                return
            self.context.connect(token)
        await super().handle_connection_init(message)

    async def handle_subscribe(self, message) -> None:
        """The connection's bound, the persisted-document rules (a payload may name its document by
        ``documentId``, ``doc_id`` or APQ's hash instead of sending it), the request limits and the caller's
        rate, checked as for an HTTP request, before strawberry runs the subscription on the resolved text."""
        payload = message.get("payload") if isinstance(message, dict) else None
        params = _params(payload)
        if self.connection_acknowledged and params is not None and message.get("id") not in self.operations:
            outcome = params if isinstance(params, list) else (self.over_bound()
                                                                or await self.view.ws_prepare(self.context, params))
            if not isinstance(outcome, str):
                await self.send_message({"id": message["id"], "type": "error", "payload": outcome})
                return
            if outcome is not payload.get("query"):
                message = {**message, "payload": {**payload, "query": outcome}}
        await super().handle_subscribe(message)

    def over_bound(self) -> list[dict] | None:
        """``GATEWAY_LIVE_MAX_PER_CONNECTION``, counted on strawberry's own operations (only subscriptions run
        here), which forget one the moment the client completes it."""
        limit = self.context.max_subscriptions
        if len(self.operations) < limit:
            return None
        return [{"message": f"This connection has {len(self.operations)} subscriptions, the most it may hold: end "
                            "one first, or open another connection.",
                 "extensions": {"code": "RATE_LIMITED", "retryAfter": 1, "reason": "SUBSCRIPTIONS_PER_CONNECTION",
                                "limit": limit}}]

    async def send_message(self, message) -> None:
        kind = message.get("type")
        if kind in ("next", "error"):
            _mask(message)
        await super().send_message(message)
        if kind == "next":
            for error in (message.get("payload") or {}).get("errors") or ():
                close = _CLOSE_FOR.get((error.get("extensions") or {}).get("code"))
                if close is not None:  # the upstream refused the token: it is the connection's
                    self._refused = close
        elif kind == "complete" and self._refused is not None:
            # After the subscription's `complete` (strawberry has forgotten it), not in the middle of it.
            await self.websocket.close(code=self._refused[0], reason=self._refused[1])

    def forget_id(self, id: str) -> None:
        # An operation ending just as the socket closes (a refused token, shutdown) may have been dropped by the
        # connection's cleanup already: nothing left to forget.
        self.operations.pop(id, None)


def token_from_params(payload: dict, demo_token: str | None) -> str | None:
    """The bearer token of a ``connection_init`` payload (``Authorization``, any case; also under ``headers``,
    as some clients nest it); ``demo_token`` stands in for a missing one in ``--demo`` mode."""
    values = {k.lower(): v for k, v in payload.items() if isinstance(k, str)}
    header = values.get("authorization")
    if header is None and isinstance(values.get("headers"), dict):
        header = {k.lower(): v for k, v in values["headers"].items() if isinstance(k, str)}.get("authorization")
    return parse_bearer(header, demo_token)


def _mask(message: dict) -> None:
    """Errors strawberry formatted itself: those without the contract's code are masked like every other
    unexpected error (an ``error`` message carries a list, a ``next`` one a response)."""
    payload = message.get("payload")
    errors = payload if isinstance(payload, list) else (payload or {}).get("errors") or []
    for i, error in enumerate(errors):
        if isinstance(error, dict) and not (error.get("extensions") or {}).get("code"):
            if error.get("message", "").endswith("are not allowed"):
                errors[i] = {"message": NOT_A_SUBSCRIPTION, "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}}
            elif "path" in error:
                errors[i] = {"message": INTERNAL_MESSAGE, "path": error["path"],
                             "extensions": {"code": "INTERNAL_SERVER_ERROR"}}
            else:
                errors[i] = {**error, "extensions": {**(error.get("extensions") or {}),
                                                     "code": "GRAPHQL_VALIDATION_FAILED"}}
