"""``LeadsAPI``: the one place that speaks HTTP to the upstream (``GET /user/leads``, ``POST /user/lead``).

Policy hooks in the spirit of apollo's RESTDataSource: ``PageRequest.params`` builds the URL parameters,
``error_from_response`` maps HTTP statuses to the gateway's error family, ``parse_page`` (parse.py)
turns the body into typed records. Nothing above this module sees a status code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
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
from gateway.config import Settings
from gateway.datasource.traffic import Outcome, TrafficControl, classify
from gateway.datasource.traffic.breaker import Ticket
from gateway.datasource.traffic.retry import retry_delay
from gateway.leads.records import LeadPage, LeadRecord
from gateway.datasource.parse import parse_created, parse_page

log = logging.getLogger("gateway.datasource")

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

    Every attempt passes ``TrafficControl`` first (the caller's fair share of the concurrency, the
    breakers, the upstream's 429 pauses: datasource/traffic/) and reports its one classified ``Outcome``
    back to it; the outcome also decides retries (with backoff) and labels the metrics. Every call is
    bounded by the request's ``deadline`` (``time.monotonic()``), retries and waits included.
    """

    path = "/user/leads"
    create_path = "/user/lead"

    def __init__(self, client: httpx.AsyncClient, base_url: str, timeout: float, stats: Stats | None = None, *,
                 retries: int = 0, retry_after_max: float = 5.0, traffic: TrafficControl | None = None,
                 max_bytes: int = 8 * 1024 * 1024) -> None:
        self._client = client
        self.max_bytes = max_bytes
        self._url = base_url.rstrip("/") + self.path
        self._create_url = base_url.rstrip("/") + self.create_path
        self._timeout = timeout
        self.stats = stats or Stats()
        self.retries = retries
        self.retry_after_max = retry_after_max
        self.traffic = traffic or TrafficControl(Settings(upstream_retry_after_max=retry_after_max), self.stats)

    async def close(self) -> None:
        await self._client.aclose()

    async def fetch_page(self, token: str, request: PageRequest, *, caller: str = "-",
                         deadline: float | None = None) -> LeadPage:
        """One logical call by ``caller`` (the token's HMAC: the unit of fairness and of the breakers), with
        retries; every attempt counted by outcome ("ok" or an error code)."""
        attempt = 0
        while True:
            ticket = await self.traffic.admit(caller, deadline)  # a refusal is raised here, never retried
            result = await self._attempt(token, request, deadline, ticket)
            if isinstance(result, LeadPage):
                return result
            delay = (retry_delay(result.outcome, result.error.extensions.get("retryAfter"), attempt,
                                 self.retry_after_max) if attempt < self.retries else None)
            if delay is None or delay >= _remaining(deadline, float("inf")):
                raise result.error
            attempt += 1
            self.stats.upstream_retries += 1
            await asyncio.sleep(delay)

    async def _attempt(self, token: str, request: PageRequest, deadline: float | None,
                       ticket: Ticket) -> LeadPage | _Failure:
        """One HTTP exchange holding an admitted ticket: the page, or the upstream's error with its outcome,
        classified once here for traffic control, the metrics and the retry decision."""
        with self._accounted(ticket) as tally:
            try:
                page, http_status = await self._exchange(token, request, deadline)
                tally.answered(Outcome.OK, str(http_status), "ok")
                return page
            except GatewayError as exc:
                tally.failed(exc)
                if tally.outcome.failed:  # one line per failed attempt, with its class: what the breakers count
                    log.info("upstream call failed", extra={"fields": {
                        "outcome": tally.outcome.value, "kind": tally.outcome.kind, "status": tally.status,
                        "caller": ticket.caller[:8]}})
                return _Failure(exc, tally.outcome)

    @contextlib.contextmanager
    def _accounted(self, ticket: Ticket):
        """Around one attempt: in flight, its latency, its outcome back to traffic control, the counters."""
        tally = _Tally()
        self.stats.upstream_inflight += 1
        started = time.perf_counter()
        try:
            yield tally
        finally:
            self.stats.upstream_inflight -= 1
            self.stats.upstream_latency.observe(time.perf_counter() - started)
            self.traffic.done(ticket, tally.outcome, tally.retry_after)
            self.stats.upstream_requests[tally.code] += 1
            self.stats.upstream_responses[(tally.status, tally.code)] += 1

    @staticmethod
    def _headers(token: str, **extra: str) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json", **extra}
        scope = request_scope.current()  # the request's id, forwarded, and its count of calls, logged
        if scope is not None:
            headers["X-Request-ID"] = scope.request_id
            scope.upstream_calls += 1
        return headers

    async def _exchange(self, token: str, request: PageRequest, deadline: float | None) -> tuple[LeadPage, int]:
        headers = self._headers(token)
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


    async def create_lead(self, token: str, body: dict, *, caller: str = "-",
                          deadline: float | None = None) -> Created | Refused | Unknown:
        """One ``POST /user/lead``, never repeated here (``datasource/writes.py`` decides what follows).

        Returns what the upstream said: ``Created``, ``Refused`` (its 422), or ``Unknown`` when it may have
        created the lead without the gateway learning so (a timeout or a connection lost after sending, a
        5xx, an unreadable answer to the request). Raises what certainly created nothing: no connection,
        401, 403, 429, another 4xx; and traffic control's refusals."""
        ticket = await self.traffic.admit(caller, deadline)
        with self._accounted(ticket) as tally:
            try:
                result, status = await self._post(token, body, deadline)
            except GatewayError as exc:
                tally.failed(exc)
                raise
            if isinstance(result, Created):
                tally.answered(Outcome.OK, status, "ok")
            elif isinstance(result, Refused):
                tally.answered(Outcome.CALLER_MISTAKE, status, "BAD_USER_INPUT")
            else:
                tally.failed(result.error)
            return result

    async def _post(self, token: str, body: dict, deadline: float | None) -> tuple[Created | Refused | Unknown, str]:
        headers = self._headers(token, **{"Content-Type": "application/json"})
        timeout = min(self._timeout, max(0.001, _remaining(deadline, self._timeout)))
        with tracing.span("upstream POST /user/lead", **{"http.request.method": "POST"}) as sp:
            try:
                answer = Answer(*await http_client.send(self._client, "POST", self._create_url,
                                                        content=orjson.dumps(body), headers=headers,
                                                        timeout=timeout, max_bytes=self.max_bytes))
            except (httpx.ConnectError, httpx.ConnectTimeout):
                raise UpstreamUnavailable("The upstream could not be reached; the lead was not sent.") from None
            except http_client.BodyTooLarge:
                return Unknown(UpstreamBadResponse("The upstream's answer to the create is too large.")), "none"
            except httpx.TimeoutException:
                return Unknown(UpstreamTimeout(f"The upstream did not answer the create within {timeout:g} s.")), "none"
            except httpx.HTTPError:
                return Unknown(UpstreamUnavailable("The connection to the upstream was lost during the create.")), "none"
            tracing.set_attributes(sp, **{"http.response.status_code": answer.status_code})
        status = answer.status_code
        if status in (200, 201):
            try:
                return Created(parse_created(_json(answer.content))), str(status)
            except GatewayError as error:  # it answered success: the lead likely exists, in a shape we cannot read
                error.http_status = status
                return Unknown(error), str(status)
        error = error_from_response(answer)
        error.http_status = status
        if status == 422:
            return Refused(*_laravel_errors(answer)), "422"
        if status >= 500:
            return Unknown(error), str(status)  # an application error after the insert, a gateway's 504...
        raise error


@dataclass(slots=True)
class _Tally:
    """What one attempt came to, for ``LeadsAPI._accounted`` (cancelled until said otherwise)."""

    outcome: Outcome | None = None
    status: str = "none"  # the HTTP status, or "none" without an answer
    code: str = "cancelled"  # "ok" or the error code
    retry_after: float | None = None

    def answered(self, outcome: Outcome, status: str, code: str) -> None:
        self.outcome, self.status, self.code = outcome, status, code

    def failed(self, error: GatewayError) -> None:
        self.outcome, self.code = classify(error), error.code
        self.status = str(getattr(error, "http_status", self.status))
        self.retry_after = error.extensions.get("retryAfter")


@dataclass(frozen=True, slots=True)
class Created:
    """The upstream created the lead and said so."""

    lead: LeadRecord


@dataclass(frozen=True, slots=True)
class Refused:
    """The upstream's 422: Laravel's message and ``errors`` (upstream field -> messages); nothing created."""

    message: str
    errors: dict[str, list[str]]


@dataclass(frozen=True, slots=True)
class Unknown:
    """The upstream may or may not have created the lead; ``error`` says what went wrong."""

    error: GatewayError


@dataclass(frozen=True, slots=True)
class _Failure:
    """An attempt's upstream error with its classified outcome (inside ``LeadsAPI`` only)."""

    error: GatewayError
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class Answer:
    """An upstream answer, read whole (and bounded): what ``httpx.Response`` offers, for the mapping below."""

    status_code: int
    headers: httpx.Headers
    content: bytes


def _json(content: bytes):
    try:
        try:
            return orjson.loads(content)  # several times faster than json
        except orjson.JSONDecodeError:
            return json.loads(content)  # what orjson refuses (lone surrogates...) may still be JSON
    except ValueError:
        raise UpstreamBadResponse("The upstream answered with a body that is not JSON.") from None


def _page_of(response: Answer, request: PageRequest) -> LeadPage:
    page = parse_page(_json(response.content))
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


def _laravel_errors(response: Answer | httpx.Response) -> tuple[str, dict[str, list[str]]]:
    """Laravel's 422 body: its message and ``errors`` (field -> messages); whatever else it holds, no crash."""
    try:
        body = json.loads(response.content)
        message = str(body.get("message") or "validation failed")
        errors = body.get("errors") or {}
        return message, {str(k): [str(m) for m in (v if isinstance(v, list) else [v])] for k, v in errors.items()}
    except (ValueError, AttributeError, TypeError):
        return "validation failed", {}


def _rejected(response: Answer | httpx.Response) -> GatewayError:
    message, errors = _laravel_errors(response)
    field_errors = {ARGUMENT_FOR_PARAM.get(k, k): v for k, v in errors.items()}
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
