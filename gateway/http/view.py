"""The GraphQL HTTP endpoint: GraphQL over HTTP (GET and POST), request limits, batching, GraphiQL.

strawberry's ASGI view executes; this subclass owns the HTTP side, because the rules below need the
outcome of each operation (request error or executed) and a context per batched operation.

Media type (``Accept``, see ``protocol.negotiate``): ``application/graphql-response+json`` when asked for
or when ``Accept`` is absent, ``application/json`` for ``*/*`` or when asked for; neither acceptable: 406.
The response's ``Content-Type`` is the negotiated type with ``charset=utf-8``.

Status codes (GraphQL over HTTP, "Status Codes"):

| case | graphql-response+json | application/json |
| --- | --- | --- |
| executed (data, possibly with field errors, possibly ``data: null``) | 200 | 200 |
| request error: parse, validation, query limits, operation not found, variable coercion (no ``data`` key) | 400 | 200 |
| malformed request: body not JSON / not an object or array, no ``query``, wrong parameter type | 400 | 400 |
| method other than GET/POST | 405 (``Allow: GET, POST``) | 405 |
| a mutation over GET (checked before validation) | 405 (``Allow: POST``) | 405 |
| POST without ``Content-Type: application/json`` | 415 | 415 |
| body over ``max_body_bytes`` | 413 | 413 |
| batch over ``max_batch`` (or any batch when it is 0) | 400 | 400 |
| caller over ``GATEWAY_RATE_LIMIT`` (``RATE_LIMITED``, ``retryAfter``; ``Retry-After`` header) | 429 | 429 |
| caller refused upstream calls for now: paused, own breaker open, queue full (``RATE_LIMITED``, as above) | 429 | 429 |

A batch (a JSON array of request objects) answers a JSON array, one result per operation, each
limited and executed on its own (own context, own DataLoaders and warnings), concurrently; it is
200 once its items are well-formed, each item carrying its own errors.

Result cache (``result_cache.py``): a single GET or POST operation is looked up, by caller scope and exact
request, once the request is parsed and its method, media types, body size and document size are checked,
and before anything is parsed, validated or executed (an entry comes from an identical request that passed
every limit). ``Cache-Control: no-cache`` skips the lookup; the fresh answer may still be stored. Stored:
200, executed, no ``errors``, no ``extensions.warnings``; it expires when the oldest page (or remembered
lead) it was built from stops being fresh (the operation's ``LeadsSource`` returns each page with its fetch
time and keeps the oldest), so an answer is never served later than its pages would be; one built from a
stale page is not stored at all. Answers to mutations are never stored. The key holds the caller's scope
(its HMAC and generation): after a write by that caller, on any instance sharing the cache backend, no
earlier answer matches. Batches are neither looked up nor stored.

Rate limit (``ratelimit.py``): once a request with a token is read and well-formed (method, media types,
body, batch size checked), and before the result cache or anything else, it is counted against its
caller's rate; a batch costs its number of operations. GraphiQL page loads and malformed requests are not
counted.

Early refusal: after a result-cache miss (or the lookup skipped), before parsing, a caller that traffic
control refuses right now for reasons of its own (``TrafficControl.refusal``) gets that ``RATE_LIMITED``
as a 429 with ``Retry-After``, even when the page cache could have answered: while refused, a request
costs a lookup, not an execution.

Persisted documents (``graphql/persisted.py``): once a request is read and its rate counted, and before the
result cache, each operation's text is resolved: the text sent, or the one its ``documentId``, ``doc_id`` or APQ
hash names; a refusal (unknown id, hash mismatch, the safelist) is a request error with its code, except APQ's
``PERSISTED_QUERY_NOT_FOUND``/``NOT_SUPPORTED``, always 200 (Apollo Client's link gives up APQ on a 400). An APQ
text is registered once it executed. Every GET answer says ``Vary: Accept, Authorization`` and
``Cache-Control``: ``private, max-age`` (as long as its data stays fresh) for a clean executed answer, else
``no-store``.

Either 429 (rate limit, early refusal) is held up to a second first when the caller comes back before the
``retryAfter`` it was last given (``impatience.py``), so that ignoring it cannot become a busy loop.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from datetime import timedelta

from graphql import GraphQLError, parse
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.graphql import OperationType

from gateway.observability import scope as request_scope
from gateway.config import Settings
from gateway.graphql.context import ContextFactory
from gateway.graphql.extensions.errors import drop_tracebacks
from gateway.graphql.extensions.limits import Limits, check_document, document_bytes
from gateway.graphql.persisted import PersistedDocuments, PersistedError, Resolved
from gateway.graphql.schema import build_schema
from gateway.http.graphiql.page import graphiql_html
from gateway.http.protocol import (
    JSON,
    GRAPHQL_RESPONSE_JSON,
    GatewayRequest,
    HTTPError,
    Params,
    bad_request,
    bearer_token,
    check_content_type,
    decode_json,
    encode_json,
    negotiate,
    params_from_object,
    params_from_query_string,
    read_body,
    wants_fresh,
    wants_html,
)
from gateway.http.impatience import Impatience
from gateway.http.live import SUBSCRIPTION_ONLY, TransportWSHandler, stream_response, stream_transport
from gateway.http.ratelimit import RateLimiter
from gateway.http.result_cache import ResultCache, result_key
from gateway.observability.metrics import Stats

log = logging.getLogger("gateway.http")

ALLOW = "GET, POST"
EXECUTED, REQUEST_ERROR, INTERNAL = "executed", "request-error", "internal"


class GatewayGraphQL(GraphQL):
    """strawberry's ASGI view, with the gateway's context, limits, HTTP rules and GraphiQL page."""

    graphql_transport_ws_handler_class = TransportWSHandler

    def __init__(self, settings: Settings, contexts: ContextFactory, stats: Stats) -> None:
        super().__init__(build_schema(settings), graphql_ide="graphiql" if settings.graphiql_on else None,
                         subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
                         connection_init_wait_timeout=timedelta(seconds=settings.live_init_timeout),
                         # the gateway's own bound (graphql/subscription.py) answers with a code
                         max_subscriptions_per_connection=None,
                         allowed_origins=settings.cors_origins)
        self.settings = settings
        self.contexts = contexts
        self.stats = stats
        self.limits = Limits.from_settings(settings)
        # The manifests are loaded (parsed, validated: ConfigError on a bad one) and pinned in the document
        # cache now; the APQ store arrives with the cache backend (``app.py``'s lifespan).
        self.persisted = PersistedDocuments(settings, self.schema, self.limits)
        self.pin_manifest()
        self.results = ResultCache(max_bytes=settings.result_cache_bytes, ttl=settings.cache_ttl)
        self.rate_limiter = RateLimiter.from_settings(settings)  # None: no GATEWAY_RATE_LIMIT
        self.impatience = Impatience()

    def pin_manifest(self) -> None:
        """Hold the manifests' parsed and validated documents in the document cache (at start and on reload)."""
        if self.schema.documents is not None:
            self.schema.documents.pin(self.persisted.manifest.parsed)

    def reload_manifests(self) -> int:
        """Read the manifest files again (SIGHUP); ``ConfigError`` keeps the current set. Requests in flight keep
        the set they started with; the next ones get the new one."""
        manifest = self.persisted.reload()
        self.pin_manifest()
        return len(manifest)

    async def get_context(self, request, response=None):  # type: ignore[override]
        """A WebSocket connection's context (only WebSockets reach strawberry's own handling)."""
        return self.contexts.live()

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:  # type: ignore[override]
        return HTMLResponse(graphiql_html(demo=self.settings.demo_token is not None))

    # --- HTTP ------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = GatewayRequest(scope, receive)
        media = negotiate(request.headers.get("accept")) or JSON
        try:
            response = await self.handle(request)
        except HTTPError as e:
            # Nothing reads its traceback, whose frames hold the error: a reference cycle that would leave
            # each refusal's objects to the cyclic collector (its pauses under a flood: docs/ISOLATION.md).
            e.__traceback__ = None
            headers = e.headers
            if request.method in ("GET", "HEAD"):  # a refusal is never kept by a cache
                headers = {**headers, **_get_headers("no-store")}
            response = self.json_response(e.body(), e.status, media, headers)
        except Exception:  # a bug: still a GraphQL error body, never a plain-text page
            log.exception("unexpected error handling a GraphQL request")
            body = {"errors": [{"message": "Internal server error.", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}]}
            response = self.json_response(body, 500, media)
        await response(scope, receive, send)

    async def handle(self, request: Request) -> Response:
        method = request.method
        if method == "OPTIONS":  # not a CORS preflight (the CORS middleware answers those)
            return Response(status_code=204, headers={"Allow": f"{ALLOW}, OPTIONS"})
        if method not in ("GET", "HEAD", "POST"):
            raise HTTPError(405, "METHOD_NOT_ALLOWED", f"{method} is not supported: use GET or POST.",
                            headers={"Allow": ALLOW})
        # The operation's deadline: every upstream call, retry and wait it makes ends by then.
        deadline = time.monotonic() + self.settings.request_timeout
        accept = request.headers.get("accept")
        is_get = method in ("GET", "HEAD")
        if is_get and "query" not in request.query_fields and self.graphql_ide and wants_html(accept):
            return await self.render_graphql_ide(request)
        transport = stream_transport(accept, self.settings.live_keepalive)
        if transport is not None:
            return await self.run_stream(request, transport, is_get)
        media = negotiate(accept)
        if media is None:
            raise HTTPError(406, "NOT_ACCEPTABLE",
                            f"Cannot answer in any type of `Accept: {accept[:100]}`: accept "
                            f"`{GRAPHQL_RESPONSE_JSON}` or `{JSON}`.")
        if is_get:
            params = params_from_query_string(request.query_fields)
            await self.limit_rate(request, 1)
            return await self.run_single(request, params, {OperationType.QUERY}, media, deadline, is_get=True)

        check_content_type(request.headers.get("content-type"))
        data = decode_json(await read_body(request, self.settings.max_body_bytes))
        allowed = {OperationType.QUERY, OperationType.MUTATION}
        if isinstance(data, list):
            batch = self.batch_params(data)
            await self.limit_rate(request, len(batch))
            await self.refuse_early(request)
            outcomes = await asyncio.gather(*(self.run_item(request, p, allowed, deadline) for p in batch))
            return self.json_response([body for _, body, _ in outcomes], 200, media)
        params = params_from_object(data)
        await self.limit_rate(request, 1)
        return await self.run_single(request, params, allowed, media, deadline)

    async def run_stream(self, request: Request, transport, is_get: bool) -> Response:
        """A subscription over SSE or multipart (``live.py``): rate-limited and checked like any request."""
        if is_get:
            params = params_from_query_string(request.query_fields)
        else:
            check_content_type(request.headers.get("content-type"))
            data = decode_json(await read_body(request, self.settings.max_body_bytes))
            if isinstance(data, list):
                raise bad_request("Batches cannot be streamed: send one subscription per request.")
            params = params_from_object(data)
        await self.limit_rate(request, 1)
        resolved = await self.resolve(params)
        if isinstance(resolved, PersistedError):
            return self.json_response(resolved.body(), 400, GRAPHQL_RESPONSE_JSON)
        params = params.with_query(resolved.text)
        errors = check_document(params.query, self.limits)
        if errors:
            return self.json_response({"errors": [e.formatted for e in errors]}, 400, GRAPHQL_RESPONSE_JSON)
        context = self.contexts.live(bearer_token(request, self.settings.demo_token))
        results = await self.schema.stream(params.query, variable_values=params.variables, context_value=context,
                                           operation_name=params.operation_name, operation_extensions=params.extensions,
                                           allowed_operation_types=SUBSCRIPTION_ONLY)
        return await stream_response(results, transport, keepalive=self.settings.live_keepalive,
                                     media_error=GRAPHQL_RESPONSE_JSON)

    async def ws_prepare(self, context, params: Params) -> str | list[dict]:
        """The text a subscription sent over a WebSocket runs (its own, or the one its id names), or why it is
        refused before it runs (the persisted-document rules, request limits, the caller's rate), as the errors
        of a graphql-transport-ws ``error`` message."""
        resolved = await self.resolve(params)
        if isinstance(resolved, PersistedError):
            return resolved.body()["errors"]
        query = resolved.text
        errors = check_document(query, self.limits)
        if errors:
            return [e.formatted for e in errors]
        if self.rate_limiter is not None and context.token is not None:
            seconds = await self.rate_limiter.check(self.contexts.caller(context.token), 1)
            if seconds is not None:
                message, extensions = _over_rate(seconds)
                return [{"message": message, "extensions": {"code": "RATE_LIMITED", **extensions}}]
        return query

    async def limit_rate(self, request: Request, cost: int) -> None:
        """Count the request against its caller's rate (a batch: one per operation); over it, 429."""
        if self.rate_limiter is None:
            return
        token = bearer_token(request, self.settings.demo_token)
        if token is None:  # answered UNAUTHENTICATED without calling anything: nothing to protect
            return
        caller = self.contexts.caller(token)
        seconds = await self.rate_limiter.check(caller, cost)
        if seconds is not None:
            message, extensions = _over_rate(seconds)
            await self.refuse(caller, HTTPError(429, "RATE_LIMITED", message, headers={"Retry-After": str(seconds)},
                                                **extensions))

    async def refuse_early(self, request: Request) -> None:
        """A caller refused upstream calls right now for reasons of its own (paused after a 429, its own
        breaker open, its queue full) gets that refusal as a 429 before its request is parsed, validated or
        executed: a caller that keeps sending while refused then costs next to no CPU (docs/ISOLATION.md)."""
        token = bearer_token(request, self.settings.demo_token)
        if token is None:
            return
        caller = self.contexts.caller(token)
        error = self.contexts.refusal(caller)
        if error is not None:
            extensions = {k: v for k, v in error.extensions.items() if k != "code"}
            await self.refuse(caller, HTTPError(
                429, error.code, error.message, headers={"Retry-After": str(extensions["retryAfter"])}, **extensions))

    async def refuse(self, caller: str, error: HTTPError) -> None:
        """Raise a 429 refusal, held a moment first when the caller came back before its last ``retryAfter``
        (``impatience.py``: a client resending at once must not turn refusals into a busy loop)."""
        if await self.impatience.hold(caller) > 0:
            self.stats.held_refusals += 1
        self.impatience.told(caller, error.extensions["retryAfter"])
        raise error

    # --- persisted documents ---------------------------------------------------------------------

    async def resolve(self, params: Params) -> Resolved | PersistedError:
        """The text a request runs (``persisted.py``: by id, or its own under the safelist), or its refusal,
        counted."""
        try:
            return await self.persisted.resolve(params.query, params.document)
        except PersistedError as e:
            e.__traceback__ = None  # nothing reads it; its frames would hold the request (a reference cycle)
            self.stats.document_refusals[e.code] += 1
            if (scope := request_scope.current()) is not None:
                scope.error_codes.append(e.code)
            return e

    async def ran(self, resolved: Resolved, outcome: str) -> None:
        """Count an operation by its document's source; register an APQ text once it ran without a request
        error (a text that does not parse or validate is never kept)."""
        self.stats.documents[resolved.source] += 1
        if resolved.register is not None and outcome == EXECUTED:
            await self.persisted.register(resolved.register, resolved.text)
            self.stats.apq_registrations += 1

    def refusal_response(self, error: PersistedError, media: str, headers: dict[str, str] | None = None) -> Response:
        status = 200 if error.always_ok else self.status_for(REQUEST_ERROR, media)
        return self.json_response(error.body(), status, media, headers)

    async def run_item(self, request: Request, params: Params, allowed: set[OperationType],
                       deadline: float) -> tuple[str, dict, float | None]:
        """One operation of a batch: resolved, then executed."""
        resolved = await self.resolve(params)
        if isinstance(resolved, PersistedError):
            return REQUEST_ERROR, resolved.body(), None
        outcome = await self.run_one(request, params.with_query(resolved.text), allowed, deadline)
        await self.ran(resolved, outcome[0])
        return outcome

    # --- result cache ----------------------------------------------------------------------------

    async def run_single(self, request: Request, params: Params, allowed: set[OperationType], media: str,
                         deadline: float, *, is_get: bool = False) -> Response:
        """One (not batched) operation, answered from the result cache when it can be. A GET's answer says how
        long a private cache may keep it (``Cache-Control``: as long as its data stays fresh), and that it
        varies by caller and media type."""
        resolved = await self.resolve(params)
        if isinstance(resolved, PersistedError):
            return self.refusal_response(resolved, media, _get_headers("no-store") if is_get else None)
        params = params.with_query(resolved.text)
        caller_key = await self.caller_scope(request)
        key = self.result_key(caller_key, params, media)
        if key is not None and not wants_fresh(request) and (hit := self.results.get(key)) is not None:
            self.stats.result_cache_hits += 1
            self.stats.cache_hits += 1  # a hit like a page's (logs and the hit ratio agree); result_cache_hits tells which
            self.stats.documents[resolved.source] += 1
            if (scope := request_scope.current()) is not None:
                scope.executed = True  # answered as an operation: counted, timed and logged like one
                scope.operation = hit.operation
                scope.cache_hits += 1
            headers = _get_headers(_private(hit.expires - self.results.clock())) if is_get else None
            return Response(hit.body, status_code=hit.status, headers=headers, media_type=hit.content_type)
        await self.refuse_early(request)
        started = self.results.clock()
        status, body, fetched_at = await self.run_one(request, params, allowed, deadline, caller_key)
        await self.ran(resolved, status)
        code = self.status_for(status, media)
        clean = (code == 200 and status == EXECUTED and "errors" not in body
                 and not (body.get("extensions") or {}).get("warnings"))
        # Fresh only as long as the oldest page it was built from (a stale one: already expired).
        fresh_from = started if fetched_at is None else min(started, fetched_at)
        headers = None
        if is_get:
            headers = _get_headers(_private(fresh_from + self.settings.cache_ttl - time.time()) if clean else "no-store")
        response = self.json_response(body, code, media, headers)
        scope = request_scope.current()  # the operation's name and type
        if key is not None and clean and (scope is None or scope.operation_type == "query"):  # a mutation's: never
            self.results.put(key, response.body, code, response.headers["content-type"],
                             scope.operation if scope is not None else None, fresh_from)
        return response

    async def caller_scope(self, request: Request) -> str | None:
        """The caller's scope (HMAC and generation, ``ContextFactory.scope``) when the result cache is on and the
        request has a token: read once, for the result-cache key and the operation's page-cache keys."""
        if not self.results.enabled:
            return None
        token = bearer_token(request, self.settings.demo_token)
        if token is None:  # an UNAUTHENTICATED answer: never stored, so never looked up
            return None
        return await self.contexts.scope(self.contexts.caller(token))

    def result_key(self, scope: str | None, params: Params, media: str) -> str | None:
        """The result-cache key of this request; None when it cannot be cached (cache off, no token, too big).
        Keyed by the caller's scope: after a write by this caller, no answer from before it matches."""
        if scope is None or document_bytes(params.query) > self.limits.max_document_bytes:
            return None
        return result_key(scope, params.query, params.variables, params.operation_name, params.extensions, media)

    def batch_params(self, data: list) -> list[Params]:
        limit = self.settings.max_batch
        if not data:
            raise bad_request("The batch is empty: send at least one operation.")
        if limit == 0:
            raise HTTPError(400, "BATCH_TOO_LARGE", "Batched requests are turned off: send one operation per request.",
                            limitName="batch", limit=0, measured=len(data))
        if len(data) > limit:
            raise HTTPError(400, "BATCH_TOO_LARGE", f"The batch has {len(data)} operations; the limit is {limit}.",
                            limitName="batch", limit=limit, measured=len(data))
        return [params_from_object(item, batchIndex=i) for i, item in enumerate(data)]

    async def run_one(self, request: Request, params: Params, allowed: set[OperationType],
                      deadline: float, scope: str | None = None) -> tuple[str, dict, float | None]:
        """Execute one operation (its text resolved): (outcome, response body, when the oldest data it was given
        was fetched)."""
        documents = self.schema.documents
        errors = None if documents is not None and params.query in documents else check_document(params.query,
                                                                                                  self.limits)
        if errors:
            return REQUEST_ERROR, {"errors": [e.formatted for e in errors]}, None
        context = self.contexts.create(bearer_token(request, self.settings.demo_token), fresh=wants_fresh(request),
                                       deadline=deadline, scope=scope)
        try:
            result = await self.schema.execute(params.query, variable_values=params.variables, context_value=context,
                                               operation_name=params.operation_name, allowed_operation_types=allowed,
                                               operation_extensions=params.extensions)
        except InvalidOperationTypeError as e:
            if e.operation_type is OperationType.MUTATION:
                raise HTTPError(405, "METHOD_NOT_ALLOWED", "Mutations are not allowed over GET: use POST.",
                                headers={"Allow": "POST"}) from None
            return REQUEST_ERROR, _request_error("Subscriptions are not supported over HTTP.",
                                                 "GRAPHQL_VALIDATION_FAILED"), None
        except CannotGetOperationTypeError as e:
            message = (f'Unknown operation named "{e.operation_name}".' if e.operation_name else
                       "The document must contain exactly one operation, or `operationName` must name one.")
            return REQUEST_ERROR, _request_error(message, "GRAPHQL_VALIDATION_FAILED"), None
        except MissingQueryError:  # the empty string: a document that does not parse
            return REQUEST_ERROR, _request_error(_parse_error(params.query), "GRAPHQL_PARSE_FAILED"), None
        body: dict = {}
        outcome = _outcome(result)
        if outcome == EXECUTED:
            body["data"] = result.data  # a request error has no `data` entry at all
        if result.errors:
            body["errors"] = [e.formatted for e in result.errors]
            drop_tracebacks(result.errors)
        if result.extensions:
            body["extensions"] = result.extensions
        context.release()  # what it read goes now, not at the cyclic collector's next pass
        return outcome, body, context.source.fetched_at

    @staticmethod
    def status_for(outcome: str, media: str) -> int:
        if outcome == INTERNAL:
            return 500
        if outcome == REQUEST_ERROR and media == GRAPHQL_RESPONSE_JSON:
            return 400
        return 200

    def json_response(self, body: object, status: int, media: str, headers: dict[str, str] | None = None) -> Response:
        return Response(encode_json(body), status_code=status, headers=headers, media_type=f"{media}; charset=utf-8")


def _outcome(result) -> str:
    """Executed (``data`` present, even null through a field error) or a request error (no ``data``)."""
    errors = result.errors or []
    if result.data is not None or not errors or any(e.path is not None for e in errors):
        return EXECUTED
    if all((e.extensions or {}).get("code") == "INTERNAL_SERVER_ERROR" for e in errors):
        return INTERNAL
    return REQUEST_ERROR


def _private(seconds: float) -> str:
    return f"private, max-age={max(0, math.floor(seconds))}"


def _get_headers(cache_control: str) -> dict[str, str]:
    """The caching headers of a GET's answer: answers differ by caller and by negotiated media type."""
    return {"Cache-Control": cache_control, "Vary": "Accept, Authorization"}


def _over_rate(seconds: int) -> tuple[str, dict]:
    """The message and extensions of a refusal by ``GATEWAY_RATE_LIMIT`` (over HTTP or a WebSocket)."""
    return f"Too many requests from this caller: retry in {seconds} s.", {"retryAfter": seconds, "reason": "RATE_LIMIT"}


def _request_error(message: str, code: str) -> dict:
    return {"errors": [{"message": message, "extensions": {"code": code}}]}


def _parse_error(query: str) -> str:
    try:
        parse(query)
    except GraphQLError as e:
        return e.message
    return "The document is empty."  # pragma: no cover - only an empty document gets here
