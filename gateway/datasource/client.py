"""``LeadsAPI``: the one place that speaks HTTP to the upstream ``GET /user/leads``.

Policy hooks in the spirit of apollo's RESTDataSource: ``PageRequest.params`` builds the URL parameters,
``error_from_response`` maps HTTP statuses to the gateway's error family, ``parse_page`` (parse.py)
turns the body into typed records. Nothing above this module sees a status code.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from datetime import UTC, datetime

import httpx
import orjson

from gateway.observability import scope as request_scope, tracing
from gateway.errors import (
    Forbidden,
    GatewayError,
    RateLimited,
    UpstreamBadResponse,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnauthenticated,
    UpstreamUnavailable,
)
from gateway.datasource import http_client
from gateway.leads.filter import ListFilter
from gateway.leads.pagination import PageRef
from gateway.observability.metrics import Stats
from gateway.datasource.resilience import CircuitBreaker, is_outage, retry_delay
from gateway.leads.records import LeadPage
from gateway.datasource.parse import parse_page

# Upstream URL parameter -> the GraphQL argument a client set, for 422 field errors.
ARGUMENT_FOR_PARAM = {
    "status": "filter.status",
    "campaign_id": "filter.campaignId",
    "phone_number": "filter.phoneNumber",
    "date_from": "filter.createdFrom",
    "date_to": "filter.createdTo",
    "per_page": "first/last",
    "page": "after/before",
}


@dataclass(frozen=True, slots=True)
class PageRequest:
    """One upstream call: a filter and a page. Hashable: it is the key for dedup and caching."""

    filter: ListFilter
    page: PageRef

    @property
    def params(self) -> tuple[tuple[str, str], ...]:
        return (*self.filter.params, ("page", str(self.page.page)), ("per_page", str(self.page.per_page)))


def _remaining(deadline: float | None, default: float) -> float:
    """Seconds left before ``deadline`` (``time.monotonic()``); ``default`` without one."""
    return default if deadline is None else deadline - time.monotonic()


class LeadsAPI:
    """Fetches pages of the caller's leads through one shared ``httpx.AsyncClient``.

    Every call is bounded: by the concurrency limit (a spike queues here, not at the upstream), by the
    circuit breaker (fail fast while the upstream is down), by retries with backoff (resilience.py),
    and by the request's ``deadline`` (``time.monotonic()``), whichever ends first.
    """

    path = "/user/leads"

    def __init__(self, client: httpx.AsyncClient, base_url: str, timeout: float, stats: Stats | None = None, *,
                 retries: int = 0, retry_after_max: float = 5.0, concurrency: int = 32,
                 breaker: CircuitBreaker | None = None, max_bytes: int = 8 * 1024 * 1024) -> None:
        self._client = client
        self.max_bytes = max_bytes
        self._url = base_url.rstrip("/") + self.path
        self._timeout = timeout
        self.stats = stats or Stats()
        self.retries = retries
        self.retry_after_max = retry_after_max
        self.breaker = breaker or CircuitBreaker(failures=5, cooldown=10.0)
        self._slots = asyncio.Semaphore(concurrency)

    async def close(self) -> None:
        await self._client.aclose()

    async def fetch_page(self, token: str, request: PageRequest, *, deadline: float | None = None) -> LeadPage:
        """One logical call: attempts with retries, each counted by outcome ("ok" or an error code)."""
        attempt = 0
        while True:
            try:
                return await self._attempt(token, request, deadline)
            except GatewayError as exc:
                delay = retry_delay(exc, attempt, self.retry_after_max) if attempt < self.retries else None
                if delay is None or delay >= _remaining(deadline, float("inf")):
                    raise
                attempt += 1
                self.stats.upstream_retries += 1
                await asyncio.sleep(delay)

    async def _attempt(self, token: str, request: PageRequest, deadline: float | None) -> LeadPage:
        if not self.breaker.allow():
            self.stats.upstream_requests["UPSTREAM_UNAVAILABLE"] += 1
            raise UpstreamUnavailable("The upstream is failing; calls are paused for a moment (circuit open).",
                                      retryAfter=max(1, round(self.breaker.retry_in())))
        outcome, status = "UPSTREAM_UNAVAILABLE", "none"
        try:
            page, http_status = await self._limited(token, request, deadline)
            outcome, status = "ok", str(http_status)
            self.breaker.success()
            return page
        except GatewayError as exc:
            outcome = exc.code
            status = str(getattr(exc, "http_status", status))
            self.breaker.failure(outage=is_outage(exc))
            raise
        except BaseException:
            self.breaker.abandon()  # cancelled: says nothing about the upstream
            outcome = "cancelled"
            raise
        finally:
            self.stats.upstream_requests[outcome] += 1
            self.stats.upstream_responses[(status, outcome)] += 1

    async def _limited(self, token: str, request: PageRequest, deadline: float | None) -> tuple[LeadPage, int]:
        """The HTTP exchange, once a concurrency slot is free, within the deadline."""
        self.stats.upstream_queued += 1
        try:
            async with asyncio.timeout(max(0.0, _remaining(deadline, 3600.0))):  # no task, unlike wait_for
                await self._slots.acquire()
        except TimeoutError:
            raise UpstreamTimeout("The request's deadline passed while waiting for the upstream.") from None
        finally:
            self.stats.upstream_queued -= 1
        self.stats.upstream_inflight += 1
        started = time.perf_counter()
        try:
            return await self._exchange(token, request, deadline)
        finally:
            self._slots.release()
            self.stats.upstream_inflight -= 1
            self.stats.upstream_latency.observe(time.perf_counter() - started)

    async def _exchange(self, token: str, request: PageRequest, deadline: float | None) -> tuple[LeadPage, int]:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        scope = request_scope.current()  # the request's id, forwarded, and its count of calls, logged
        if scope is not None:
            headers["X-Request-ID"] = scope.request_id
            scope.upstream_calls += 1
        timeout = min(self._timeout, max(0.001, _remaining(deadline, self._timeout)))
        with tracing.span("upstream GET /user/leads", **{"http.request.method": "GET",
                                                         "leads_gateway.page": request.page.page,
                                                         "leads_gateway.per_page": request.page.per_page}) as sp:
            response = await self._send(request, headers, timeout)
            tracing.set_attributes(sp, **{"http.response.status_code": response.status_code})
        if response.status_code != 200:
            error = error_from_response(response)
            error.http_status = response.status_code  # for metrics; not shown to clients
            raise error
        try:
            return _page_of(response, request), response.status_code
        except GatewayError as error:
            error.http_status = response.status_code
            raise

    async def _send(self, request: PageRequest, headers: dict, timeout: float) -> Answer:
        try:
            return Answer(*await http_client.get(self._client, self._url, params=request.params, headers=headers,
                                                 timeout=timeout, max_bytes=self.max_bytes))
        except http_client.BodyTooLarge:
            raise UpstreamBadResponse(f"The upstream's answer is larger than GATEWAY_UPSTREAM_MAX_BYTES "
                                      f"({self.max_bytes} bytes).") from None
        except httpx.TimeoutException as exc:
            if isinstance(exc, httpx.ConnectTimeout):
                raise UpstreamUnavailable("The upstream could not be reached (connect timeout).") from None
            raise UpstreamTimeout(f"The upstream did not answer within {timeout:g} s.") from None
        except httpx.HTTPError:
            # The exception text can carry the URL; the client gets a generic message.
            raise UpstreamUnavailable("The upstream could not be reached.") from None


@dataclass(frozen=True, slots=True)
class Answer:
    """An upstream answer, read whole (and bounded): what ``httpx.Response`` offers, for the mapping below."""

    status_code: int
    headers: httpx.Headers
    content: bytes


def _page_of(response: Answer, request: PageRequest) -> LeadPage:
    try:
        try:
            payload = orjson.loads(response.content)  # several times faster than json
        except orjson.JSONDecodeError:
            payload = json.loads(response.content)  # what orjson refuses (lone surrogates...) may still be JSON
    except ValueError:
        raise UpstreamBadResponse("The upstream answered with a body that is not JSON.") from None
    page = parse_page(payload)
    if (page.page, page.per_page) != (request.page.page, request.page.per_page):
        # Slicing trusts page/per_page; an upstream that silently capped per_page would lose leads.
        raise UpstreamBadResponse(
            f"The upstream answered page {page.page} of size {page.per_page} when asked for page "
            f"{request.page.page} of size {request.page.per_page}.")
    return page


def error_from_response(response: Answer | httpx.Response) -> GatewayError:
    """Map a non-200 upstream answer to the contract's error codes (README, "Errors")."""
    status = response.status_code
    if status == 401:
        return UpstreamUnauthenticated("The upstream refused the bearer token (401).")
    if status == 403:
        return Forbidden("The upstream refused access to these leads (403).")
    if status == 422:
        return _rejected(response)
    if status == 429:
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        extra = {"retryAfter": retry_after} if retry_after is not None else {}
        return RateLimited("The upstream is rate limiting this caller (429).", **extra)
    if 300 <= status < 400 and "login" in response.headers.get("Location", ""):
        # Laravel redirects unauthenticated non-JSON requests to its login page.
        return UpstreamUnauthenticated("The upstream refused the bearer token (redirect to login).")
    if status >= 500:
        return UpstreamUnavailable(f"The upstream failed with HTTP {status}.", upstreamStatus=status)
    return UpstreamBadResponse(f"The upstream answered with unexpected HTTP {status}.", upstreamStatus=status)


def _rejected(response: Answer | httpx.Response) -> GatewayError:
    try:
        body = json.loads(response.content)
        message = str(body.get("message") or "validation failed")
        errors = body.get("errors") or {}
        field_errors = {ARGUMENT_FOR_PARAM.get(k, k): [str(m) for m in v] for k, v in errors.items()}
    except (ValueError, AttributeError, TypeError):
        message, field_errors = "validation failed", {}
    return UpstreamRejected(f"The upstream rejected the request: {message}", fieldErrors=field_errors)


def retry_after_seconds(value: str | None, now: datetime | None = None) -> int | None:
    """``Retry-After`` as whole seconds (delta-seconds or an HTTP date), or None when absent/garbled."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return int(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0, round((when - (now or datetime.now(UTC))).total_seconds()))
