"""The embedded demo upstream: ``GET /user/leads`` and ``POST /user/lead``, as the Laravel app behind them does.

It exists so that ``serve --demo`` works without credentials and so that tests and benchmarks
exercise the gateway against the real wire format, not against a friendlier one. Hence the
Laravel details are imitated on purpose: global ``TrimStrings``/``ConvertEmptyStringsToNull``
middleware, FormRequest validation (all rules run, no ``bail``) with Laravel's English
messages, ``LengthAwarePaginator::toArray()`` with ``withQueryString()`` and ``UrlWindow``
links, an unescaped SQL ``LIKE`` for the phone filter, and ``json_encode``'s escaped slashes
and ``\\uXXXX`` escapes.

Failure injection (``DemoOptions.fault``, ``DemoOptions.fault_mix``, a ``fault-<kind>`` token, or one
token's own fault and latency in ``DemoOptions.token_faults`` / ``DemoOptions.token_latency``) lets
callers test how the gateway copes with the upstream's bad days, and with one tenant's bad day while
the others are served normally.

``POST /user/lead`` (gateway/demo/writes.py decides the answer: validation, creation, which write fault)
appends the new lead to its token's list, per app instance, so that ``GET /user/leads`` shows it after
the dataset's leads. Writes get only write faults (``DemoOptions.write_fault``, ``token_write_faults``,
``write_fault_times``), among them the ones a client cannot tell apart: an answer lost after the lead was
created ("lost") or before ("lost-before"), a late one ("late") and a 500 after creating it ("500-after").
The read faults above do not apply to writes.

Leads change while it runs (gateway/demo/live.py keeps the changes, per token, and the list shows them
before filtering and paging): with ``DemoOptions.live_changes`` a mover started by the app's lifespan moves
``live_change_count`` random leads of every token seen one status further each round, and the ``/_demo/leads``
and ``/_demo/advance`` control calls change, delete or move a token's leads on demand, for tests.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import json
import logging
import math
import os
import random
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Sequence
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.demo.data import STATUSES, dataset_for_token
from gateway.demo.live import FinalStatus, LiveState
from gateway.demo.writes import (
    FAULTS_DROPPING,
    FAULTS_INSTEAD,
    TAKEN_MESSAGE,
    WRITE_FAULTS,
    WriteCall,
    WriteStore,
    allows_duplicate,
    campaign_ids,
    created_answer,
    drop_connection,
    install_quiet_drops,
    php_filter_int,
    take_write_fault,
    validate,
)

FAULTS = ("500", "502", "503", "429", "slow", "malformed", "html", "shape")
FAULT_TOKEN_PREFIX = "fault-"
FORBIDDEN_TOKEN_PREFIX = "forbidden"
REVOKED_TOKEN_PREFIX = "revoked"
FLAKY_TOKEN_PREFIX = "flaky-"  # alternately 503 and a normal answer, per token  # a token Sanctum no longer knows: 401 although one was sent

DEFAULT_PER_PAGE = 15
MAX_PER_PAGE = 100
ON_EACH_SIDE = 3  # Laravel's default AbstractPaginator::$onEachSide

_PHP_INT_MAX = 2**63 - 1
_PHP_INT_MIN = -(2**63)
_INTEGER_RE = re.compile(r"[+-]?(?:0|[1-9][0-9]*)")
_NUMERIC_RE = re.compile(r"[ \t\n\r\v\f]*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[ \t\n\r\v\f]*")
_STRICT_DATE_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_LENIENT_DATE_RE = re.compile(r"([0-9]{1,4})-([0-9]{1,2})-([0-9]{1,2})")
# Laravel's TrimStrings: whitespace plus BOM / zero-width space / LTR mark.
_TRIM_CHARS = " \t\n\r\v\f\x00\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff\u200b\u200e"

_JSON_HEADERS = {"cache-control": "no-cache, private"}


FaultMix = tuple[tuple[str, float], ...]


@dataclass
class DemoOptions:
    """Runtime knobs of the demo upstream; mutable on purpose so tests can flip them on a running server.

    Which fault a request gets, first match wins: a ``fault-<kind>`` token, the token's entry in
    ``token_faults``, a ``flaky-`` token, ``fault`` (with ``fault_rate``), then ``fault_mix``. So when
    ``fault`` is set, ``fault_mix`` is ignored. Both rate draws use one seeded RNG (``random.Random(0)``, restarted by ``reset_calls``),
    one draw per request, so a run with the same requests in the same order gets the same faults.

    Those are read faults (``GET /user/leads``). A ``POST /user/lead`` of an authenticated token gets the
    token's entry in ``token_write_faults``, else ``write_fault`` (one of WRITE_FAULTS), while
    ``write_fault_times`` (None: always) says how many more POSTs get it: each fault injected counts it
    down, so ``write_fault_times=1`` makes the next attempt fail and the retry succeed. "500", "503" and
    "429" answer instead of the request (nothing created); "lost" creates the lead and drops the
    connection mid-answer, "lost-before" drops it the same way without creating anything; "late" creates
    the lead and answers after ``slow_seconds``; "500-after" creates it and answers 500. ``latency`` and
    ``token_latency`` apply to writes too.
    """

    latency: float = 0.0  # seconds added to every response
    fault: str | None = None  # one of FAULTS
    fault_rate: float = 1.0  # fraction of requests that get ``fault``
    retry_after: int = 1  # Retry-After seconds of a 429
    slow_seconds: float = 30.0  # how long a "slow" response stalls
    # Several faults, each with its own probability, e.g. (("503", 0.10), ("slow", 0.02)): one draw x in
    # [0, 1) per request; the first fault whose cumulative rate exceeds x is injected. Rates sum to <= 1.
    fault_mix: FaultMix = ()
    # One tenant's bad day: token -> fault kind (one of FAULTS), injected into every request of that token
    # (no draw), and token -> seconds added to every response of that token (on top of ``latency``).
    token_faults: dict[str, str] = field(default_factory=dict)
    token_latency: dict[str, float] = field(default_factory=dict)
    # Writes (POST /user/lead): one fault for every POST, one token's own (wins), and how many more
    # POSTs get them (None: every one; counted down on a running server as faults are injected).
    write_fault: str | None = None
    token_write_faults: dict[str, str] = field(default_factory=dict)
    write_fault_times: int | None = None
    # Live changes: seconds between the mover's rounds (None: no mover), and how many leads of each token
    # seen each round moves one status further. Read every round, so they can be flipped on a running server.
    live_changes: float | None = None
    live_change_count: int = 1

    def __post_init__(self) -> None:
        if self.fault is not None and self.fault not in FAULTS:
            raise ValueError(f"unknown demo fault {self.fault!r}; expected one of {', '.join(FAULTS)}")
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ValueError(f"fault_rate must be between 0 and 1, got {self.fault_rate!r}")
        try:
            self.fault_mix = validate_fault_mix(self.fault_mix)
        except ValueError as exc:
            raise ValueError(f"fault_mix: {exc}") from None
        try:
            self.token_faults = validate_token_faults(self.token_faults)
        except ValueError as exc:
            raise ValueError(f"token_faults: {exc}") from None
        try:
            self.token_latency = validate_token_latency(self.token_latency)
        except ValueError as exc:
            raise ValueError(f"token_latency: {exc}") from None
        if self.write_fault is not None and self.write_fault not in WRITE_FAULTS:
            raise ValueError(f"unknown demo write fault {self.write_fault!r}; "
                             f"expected one of {', '.join(WRITE_FAULTS)}")
        try:
            self.token_write_faults = validate_token_write_faults(self.token_write_faults)
        except ValueError as exc:
            raise ValueError(f"token_write_faults: {exc}") from None
        if self.write_fault_times is not None and (isinstance(self.write_fault_times, bool)
                                                   or not isinstance(self.write_fault_times, int)
                                                   or self.write_fault_times < 0):
            raise ValueError(f"write_fault_times must be None or a whole number >= 0, got {self.write_fault_times!r}")
        if self.live_changes is not None and not _positive_seconds(self.live_changes):
            raise ValueError(f"live_changes must be None or a number of seconds > 0, got {self.live_changes!r}")
        if not _whole_at_least_one(self.live_change_count):
            raise ValueError(f"live_change_count must be a whole number >= 1, got {self.live_change_count!r}")


def _positive_seconds(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def _whole_at_least_one(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and value >= 1


def _check_rate(kind: str, rate, shown: str | None = None) -> float:
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) \
            or not 0.0 <= rate <= 1.0:
        raise ValueError(f"the rate of fault {kind!r} must be a number between 0 and 1, "
                         f"got {shown if shown is not None else repr(rate)}")
    return float(rate)


def validate_fault_mix(mix) -> FaultMix:
    """``mix`` as a tuple of ``(fault, rate)`` pairs, or ValueError saying what is wrong with it:
    an unknown fault, a fault given twice, a rate outside [0, 1], or rates summing to more than 1."""
    if isinstance(mix, (str, bytes)):
        raise ValueError(f"expected (fault, rate) pairs, not a string (parse_fault_mix reads {mix!r})")
    try:
        items = list(mix)
    except TypeError:
        raise ValueError(f"expected a sequence of (fault, rate) pairs, got {mix!r}") from None
    pairs: list[tuple[str, float]] = []
    for item in items:
        try:
            kind, rate = item
        except (TypeError, ValueError):
            raise ValueError(f"expected (fault, rate) pairs, got {item!r}") from None
        if kind not in FAULTS:
            raise ValueError(f"unknown demo fault {kind!r}; expected one of {', '.join(FAULTS)}")
        if any(kind == seen for seen, _ in pairs):
            raise ValueError(f"fault {kind!r} is given more than once")
        pairs.append((kind, _check_rate(kind, rate)))
    total = math.fsum(rate for _, rate in pairs)
    if total > 1.0 + 1e-9:
        raise ValueError(f"the rates must sum to at most 1, got {total:g} ({format_fault_mix(tuple(pairs))})")
    return tuple(pairs)


def parse_fault_mix(text: str) -> FaultMix:
    """``"503:0.10,slow:0.02,malformed:0.01"`` -> ``(("503", 0.1), ("slow", 0.02), ("malformed", 0.01))``.

    Blanks around parts are ignored; the empty string is no mix. Raises ValueError naming the bad part.
    """
    if not text.strip():
        return ()
    pairs: list[tuple[str, float]] = []
    for part in text.split(","):
        kind, colon, rate_text = (piece.strip() for piece in part.strip().partition(":"))
        if not colon or not kind or not rate_text:
            raise ValueError(f"expected <fault>:<rate> pairs separated by commas (e.g. 503:0.10,slow:0.02), "
                             f"got {part.strip()!r}")
        try:
            rate = float(rate_text)
        except ValueError:
            rate = math.nan
        if kind in FAULTS:
            _check_rate(kind, rate, repr(rate_text))
        pairs.append((kind, rate))
    return validate_fault_mix(pairs)


def format_fault_mix(mix: FaultMix) -> str:
    """The inverse of ``parse_fault_mix``."""
    return ",".join(f"{kind}:{rate:g}" for kind, rate in mix)


# ---------------------------------------------------------------------------- per-token faults and latency

def _check_token(token) -> str:
    if not isinstance(token, str) or not token.strip():
        raise ValueError(f"a token must be a non-empty string, got {token!r}")
    if token != token.strip() or "," in token:
        # What _bearer_token could never return: such an entry would silently match nothing.
        raise ValueError(f"a token cannot contain commas or start or end with blanks, got {token!r}")
    return token


def _check_token_fault(token: str, kind) -> str:
    if kind not in FAULTS:
        raise ValueError(f"unknown demo fault {kind!r} for token {token!r}; expected one of {', '.join(FAULTS)}")
    return kind


def _check_token_latency(token: str, value, unit: str = "seconds", shown: str | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"the latency of token {token!r} must be a number of {unit} >= 0, "
                         f"got {shown if shown is not None else repr(value)}")
    return float(value)


def validate_token_faults(faults) -> dict[str, str]:
    """``faults`` as a new ``{token: fault}`` dict, or ValueError naming the bad entry."""
    if not isinstance(faults, dict):
        raise ValueError(f"expected a dict of token -> fault, got {faults!r}")
    return {_check_token(token): _check_token_fault(token, kind) for token, kind in faults.items()}


def _check_token_write_fault(token: str, kind) -> str:
    if kind not in WRITE_FAULTS:
        raise ValueError(f"unknown demo write fault {kind!r} for token {token!r}; "
                         f"expected one of {', '.join(WRITE_FAULTS)}")
    return kind


def validate_token_write_faults(faults) -> dict[str, str]:
    """``faults`` as a new ``{token: write fault}`` dict, or ValueError naming the bad entry."""
    if not isinstance(faults, dict):
        raise ValueError(f"expected a dict of token -> write fault, got {faults!r}")
    return {_check_token(token): _check_token_write_fault(token, kind) for token, kind in faults.items()}


def validate_token_latency(latency) -> dict[str, float]:
    """``latency`` as a new ``{token: seconds}`` dict, or ValueError naming the bad entry."""
    if not isinstance(latency, dict):
        raise ValueError(f"expected a dict of token -> seconds, got {latency!r}")
    return {_check_token(token): _check_token_latency(token, seconds) for token, seconds in latency.items()}


def _token_pairs(text: str, example: str, value_name: str) -> list[tuple[str, str]]:
    """``"a=1, b=2"`` -> ``[("a", "1"), ("b", "2")]``; a token given twice is an error."""
    pairs: list[tuple[str, str]] = []
    for part in text.split(","):
        token, equals, value = (piece.strip() for piece in part.strip().rpartition("="))
        if not equals or not token or not value:
            raise ValueError(f"expected TOKEN={value_name} (e.g. {example}), got {part.strip()!r}")
        if any(token == seen for seen, _ in pairs):
            raise ValueError(f"token {token!r} is given more than once")
        pairs.append((token, value))
    return pairs


def parse_token_faults(text: str) -> dict[str, str]:
    """``"tokA=500,tokB=slow"`` -> ``{"tokA": "500", "tokB": "slow"}`` (the empty string: none).
    Raises ValueError naming the bad part."""
    if not text.strip():
        return {}
    return validate_token_faults(dict(_token_pairs(text, "tokA=500,tokB=slow", "KIND")))


def parse_token_write_faults(text: str) -> dict[str, str]:
    """``"tokA=lost,tokB=late"`` -> ``{"tokA": "lost", "tokB": "late"}`` (the empty string: none).
    Raises ValueError naming the bad part."""
    if not text.strip():
        return {}
    return validate_token_write_faults(dict(_token_pairs(text, "tokA=lost,tokB=late", "KIND")))


def parse_token_latency_ms(text: str) -> dict[str, float]:
    """``"tokA=200,tokB=1500"`` (milliseconds) -> ``{"tokA": 0.2, "tokB": 1.5}`` (seconds; the empty
    string: none). Raises ValueError naming the bad part."""
    if not text.strip():
        return {}
    latency: dict[str, float] = {}
    for token, ms_text in _token_pairs(text, "tokA=200", "MS"):
        _check_token(token)
        try:
            ms = float(ms_text)
        except ValueError:
            ms = math.nan
        latency[token] = _check_token_latency(token, ms, "milliseconds", repr(ms_text)) / 1000.0
    return latency


def format_token_faults(faults: dict[str, str]) -> str:
    """The inverse of ``parse_token_faults``."""
    return ",".join(f"{token}={kind}" for token, kind in faults.items())


def format_token_write_faults(faults: dict[str, str]) -> str:
    """The inverse of ``parse_token_write_faults``."""
    return format_token_faults(faults)


def format_token_latency_ms(latency: dict[str, float]) -> str:
    """The inverse of ``parse_token_latency_ms``."""
    return ",".join(f"{token}={seconds * 1000:g}" for token, seconds in latency.items())


@dataclass
class Call:
    """One request the demo upstream received (kept so tests can assert what the gateway sent)."""

    token: str | None
    params: dict[str, str]
    status: int
    request_id: str | None = None  # the X-Request-ID the caller sent


# ---------------------------------------------------------------------------- PHP / Laravel helpers

def _php_json(value) -> str:
    """``json_encode`` with Laravel's default flags: ASCII-only output and ``\\/`` for slashes."""
    return json.dumps(value, separators=(",", ":")).replace("/", "\\/")


def _json_response(payload, status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(_php_json(payload), status_code=status, media_type="application/json",
                    headers={**_JSON_HEADERS, **(headers or {})})


def _bearer_token(header: str | None) -> str | None:
    """``Illuminate\\Http\\Request::bearerToken()``: text after the last ``Bearer `` (any case), up to a comma."""
    if not header:
        return None
    position = header.lower().rfind("bearer ")
    if position < 0:
        return None
    token = header[position + 7:].split(",", 1)[0].strip()
    return token or None


def _php_query(request: Request) -> dict[str, str]:
    """The query string as PHP sees it: a repeated key keeps its first position and its last value."""
    params: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        params[key] = value
    return params


def _laravel_input(raw: dict[str, str]) -> dict[str, str | None]:
    """Apply the global ``TrimStrings`` and ``ConvertEmptyStringsToNull`` middleware."""
    cleaned: dict[str, str | None] = {}
    for key, value in raw.items():
        value = value.strip(_TRIM_CHARS)
        cleaned[key] = value or None
    return cleaned


def _laravel_json_input(value):
    """The same middleware on a JSON body: every string, at any depth, trimmed and "" made null."""
    if isinstance(value, str):
        return value.strip(_TRIM_CHARS) or None
    if isinstance(value, dict):
        return {key: _laravel_json_input(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_laravel_json_input(item) for item in value]
    return value


_JSON_MAX_DEPTH = 512  # json_decode's default depth


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _php_json_decodable(value) -> bool:
    """What ``json_decode`` refuses although Python's json reads it: lone UTF-16 surrogates
    (``"\\ud800"``) and nesting deeper than 512."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            if any("\ud800" <= char <= "\udfff" for char in item):
                return False
        elif isinstance(item, (dict, list)):
            if depth > _JSON_MAX_DEPTH:
                return False
            if isinstance(item, dict):
                pending.extend((key, depth) for key in item)
                pending.extend((child, depth + 1) for child in item.values())
            else:
                pending.extend((child, depth + 1) for child in item)
    return True


def _json_body(content_type: str | None, raw: bytes) -> dict | None:
    """The request body as Laravel's ``$request->json()`` sees it: read only when the Content-Type says
    JSON (``isJson``: contains ``/json`` or ``+json``); None when it is not a JSON object (invalid JSON,
    a list, a scalar, an empty body), which leaves the input empty."""
    if not content_type or ("/json" not in content_type and "+json" not in content_type):
        return None
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) and _php_json_decodable(value) else None


def _php_int(value: str) -> int | None:
    """``filter_var($value, FILTER_VALIDATE_INT)``: no leading zeros, within PHP's int range."""
    candidate = value.strip(" \t\n\r\v")
    if not _INTEGER_RE.fullmatch(candidate):
        return None
    number = int(candidate)
    return number if _PHP_INT_MIN <= number <= _PHP_INT_MAX else None


def _size(value: str, numeric_rules: bool) -> float:
    """Laravel's ``getSize``: the number for numeric-ruled numeric values, else the string length."""
    if numeric_rules and _NUMERIC_RE.fullmatch(value):
        return float(value)
    return len(value)


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if _is_leap(year) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _valid_date_format(value: str) -> bool:
    """``date_format:Y-m-d``: ``createFromFormat`` then ``format`` must give the input back."""
    match = _STRICT_DATE_RE.fullmatch(value)
    if not match:
        return False
    year, month, day = (int(part) for part in match.groups())
    return 1 <= month <= 12 and 1 <= day <= _days_in_month(year, month)


def _lenient_date(value: str) -> tuple[int, int, int] | None:
    """``DateTime::createFromFormat('!Y-m-d')`` as used by ``after_or_equal``: short fields and overflow allowed."""
    match = _LENIENT_DATE_RE.fullmatch(value)
    if not match:
        return None
    year, month, day = (int(part) for part in match.groups())
    year += (month - 1) // 12
    month = (month - 1) % 12 + 1
    # Day overflow/underflow rolls over month boundaries, as PHP does.
    while day > _days_in_month(year, month):
        day -= _days_in_month(year, month)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    while day < 1:
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
        day += _days_in_month(year, month)
    return year, month, day


def _after_or_equal(value: str, other: str | None) -> bool:
    """``after_or_equal:date_from`` with a ``date_format`` rule present (``checkDateTimeOrder``).

    An absent ``date_from`` passes; an unparsable one (or an unparsable ``value``) fails.
    """
    if other is None:
        return True
    first, second = _lenient_date(value), _lenient_date(other)
    return first is not None and second is not None and first >= second


# ---------------------------------------------------------------------------- validation

def _validate(data: dict[str, str | None]) -> dict[str, list[str]]:
    """The endpoint's FormRequest rules, in rule order; every attribute is ``nullable`` (absent or empty skips it)."""
    errors: dict[str, list[str]] = {}

    def fail(attribute: str, message: str) -> None:
        errors.setdefault(attribute, []).append(message)

    status = data.get("status")
    if status is not None and status not in STATUSES:  # string|in:...
        fail("status", "The selected status is invalid.")

    campaign_id = data.get("campaign_id")
    if campaign_id is not None and _php_int(campaign_id) is None:  # integer
        fail("campaign_id", "The campaign id field must be an integer.")

    phone = data.get("phone_number")
    if phone is not None and len(phone) > 255:  # string|max:255
        fail("phone_number", "The phone number field must not be greater than 255 characters.")

    date_from = data.get("date_from")
    if date_from is not None and not _valid_date_format(date_from):  # date_format:Y-m-d
        fail("date_from", "The date from field must match the format Y-m-d.")

    date_to = data.get("date_to")
    if date_to is not None:  # date_format:Y-m-d|after_or_equal:date_from
        if not _valid_date_format(date_to):
            fail("date_to", "The date to field must match the format Y-m-d.")
        if not _after_or_equal(date_to, date_from):
            fail("date_to", "The date to field must be a date after or equal to date from.")

    per_page = data.get("per_page")
    if per_page is not None:  # integer|between:1,100
        if _php_int(per_page) is None:
            fail("per_page", "The per page field must be an integer.")
        if not 1 <= _size(per_page, True) <= MAX_PER_PAGE:
            fail("per_page", f"The per page field must be between 1 and {MAX_PER_PAGE}.")

    page = data.get("page")
    if page is not None:  # integer|min:1
        if _php_int(page) is None:
            fail("page", "The page field must be an integer.")
        if not _size(page, True) >= 1:
            fail("page", "The page field must be at least 1.")
    return errors


def _validation_response(errors: dict[str, list[str]]) -> Response:
    """``ValidationException::summarize``: first message plus "(and N more error[s])"."""
    messages = [message for field_messages in errors.values() for message in field_messages]
    message = messages[0]
    if len(messages) > 1:
        more = len(messages) - 1
        message += f" (and {more} more error{'s' if more > 1 else ''})"
    return _json_response({"message": message, "errors": errors}, 422)


# ---------------------------------------------------------------------------- filtering and paging

@functools.lru_cache(maxsize=64)
def _encoded_rows(token: str) -> tuple[tuple[dict, str], ...]:
    """Each lead next to its pre-encoded JSON, so a page is a join of cached strings."""
    return tuple((lead, _php_json(lead)) for lead in dataset_for_token(token))


def _like_matcher(needle: str) -> Callable[[str], bool]:
    """MySQL ``LIKE '%needle%'`` (the value is not escaped, so ``%``/``_`` act as wildcards; ci collation)."""
    if not any(char in needle for char in "%_\\"):
        lowered = needle.lower()
        return lambda value: lowered in value.lower()
    pattern = "%" + needle + "%"
    parts, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            parts.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        parts.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
        i += 1
    regex = re.compile("".join(parts), re.IGNORECASE | re.DOTALL)
    return lambda value: regex.fullmatch(value) is not None


def _filtered(rows: Sequence[tuple[dict, str]], data: dict[str, str | None]) -> Sequence[tuple[dict, str]]:
    """The token's rows (dataset, then the leads ``POST /user/lead`` created: ids ascending; live changes
    applied) matching ``data``."""
    status = data.get("status")
    if status is not None:
        rows = [row for row in rows if row[0]["status"] == status]
    campaign_id = data.get("campaign_id")
    if campaign_id is not None:
        wanted = int(campaign_id)
        rows = [row for row in rows if row[0]["campaign_id"] == wanted]
    phone = data.get("phone_number")
    if phone is not None:
        matches = _like_matcher(phone)
        rows = [row for row in rows if matches(row[0]["phone_number"])]
    date_from = data.get("date_from")
    if date_from is not None:  # whereDate('created_at', '>=', ...)
        rows = [row for row in rows if row[0]["created_at"][:10] >= date_from]
    date_to = data.get("date_to")
    if date_to is not None:  # whereDate('created_at', '<=', ...)
        rows = [row for row in rows if row[0]["created_at"][:10] <= date_to]
    return rows


def _page_url_factory(path: str, data: dict[str, str | None]) -> Callable[[int], str]:
    """``AbstractPaginator::url()`` after ``withQueryString()``: the request's (cleaned) query with
    ``page`` replaced in place or appended, encoded by ``http_build_query`` (RFC 3986, nulls dropped)."""
    encoded = {key: quote(value, safe="") for key, value in data.items() if value is not None}
    keys = list(data)
    if "page" not in keys:
        keys.append("page")
    prefix = [f"{quote(key, safe='')}={encoded[key]}" if key in encoded else None for key in keys]
    page_index = keys.index("page")

    def url(page: int) -> str:
        parts = list(prefix)
        parts[page_index] = f"page={max(page, 1)}"
        return path + "?" + "&".join(part for part in parts if part is not None)

    return url


def _link_window(current: int, last: int) -> list[list[int] | str]:
    """``UrlWindow::make()`` then ``AbstractPaginator::elements()``: page ranges and ``"..."`` markers."""
    def pages(start: int, end: int) -> list[int]:
        return list(range(start, end + 1))

    window = ON_EACH_SIDE + 4
    if last < ON_EACH_SIDE * 2 + 8:
        return [pages(1, last)]
    if current <= window:
        return [pages(1, window + ON_EACH_SIDE), "...", pages(last - 1, last)]
    if current > last - window:
        return [pages(1, 2), "...", pages(last - (window + (ON_EACH_SIDE - 1)), last)]
    return [pages(1, 2), "...", pages(current - ON_EACH_SIDE, current + ON_EACH_SIDE), "...", pages(last - 1, last)]


def _paginator_body(request: Request, token: str, data: dict[str, str | None]) -> str:
    """``LengthAwarePaginator::toArray()`` as JSON, keys in Laravel's order."""
    per_page = int(data["per_page"]) if data.get("per_page") is not None else DEFAULT_PER_PAGE
    current = int(data["page"]) if data.get("page") is not None else 1
    rows = _filtered(request.app.state.live.rows(token), data)
    total = len(rows)
    last = max(1, -(-total // per_page))
    offset = (current - 1) * per_page
    items = rows[offset:offset + per_page]

    path = f"{request.url.scheme}://{request.url.netloc}{request.url.path}".rstrip("/")
    url = _page_url_factory(path, data)
    prev_url = url(current - 1) if current > 1 else None
    next_url = url(current + 1) if current < last else None
    links = [{"url": prev_url, "label": "&laquo; Previous", "active": False}]
    for element in _link_window(current, last):
        if element == "...":
            links.append({"url": None, "label": "...", "active": False})
        else:
            links.extend({"url": url(page), "label": str(page), "active": page == current} for page in element)
    links.append({"url": next_url, "label": "Next &raquo;", "active": False})

    rest = {
        "first_page_url": url(1),
        "from": offset + 1 if items else None,
        "last_page": last,
        "last_page_url": url(last),
        "links": links,
        "next_page_url": next_url,
        "path": path,
        "per_page": per_page,
        "prev_page_url": prev_url,
        "to": offset + len(items) if items else None,
        "total": total,
    }
    return (f'{{"current_page":{current},"data":[' + ",".join(row[1] for row in items)
            + "]," + _php_json(rest)[1:])


# ---------------------------------------------------------------------------- faults

_HTML_ERROR = ("<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n"
               "<center><h1>{code} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
_HTML_PAGE = ("<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>Login</title></head>\n"
              "<body><form method=\"POST\" action=\"/login\"><input type=\"email\" name=\"email\">"
              "<input type=\"password\" name=\"password\"><button>Log in</button></form></body>\n</html>\n")


def _fault_response(kind: str, options: DemoOptions) -> Response:
    if kind == "500":
        return _json_response({"message": "Server Error"}, 500)
    if kind in ("502", "503"):
        reason = "Bad Gateway" if kind == "502" else "Service Temporarily Unavailable"
        return Response(_HTML_ERROR.format(code=kind, reason=reason), status_code=int(kind), media_type="text/html")
    if kind == "429":
        return _json_response({"message": "Too Many Attempts."}, 429, {
            "retry-after": str(options.retry_after), "x-ratelimit-limit": "60", "x-ratelimit-remaining": "0"})
    if kind == "html":
        return Response(_HTML_PAGE, status_code=200, media_type="text/html")
    if kind == "shape":
        return _json_response({"data": "oops", "total": "many"}, 200)
    raise ValueError(f"fault {kind!r} has no canned response")


# ---------------------------------------------------------------------------- the app

def _draw_from_mix(x: float, mix: FaultMix) -> str | None:
    """The fault whose slice of [0, 1) holds ``x`` (slices laid end to end in mix order), or None."""
    cumulative = 0.0
    for kind, rate in mix:
        cumulative += rate
        if x < cumulative:
            return kind
    return None


def _respond(request: Request, token: str | None, raw: dict[str, str]) -> tuple[Response, float]:
    """The response and the extra stall (for "slow"), in Laravel's order: auth, throttling/faults, policy, validation."""
    state = request.app.state
    options: DemoOptions = state.options
    if token is None or token.startswith(REVOKED_TOKEN_PREFIX):
        return _json_response({"message": "Unauthenticated."}, 401), 0.0
    _note_caller(state, token)

    kind = None
    if token.startswith(FAULT_TOKEN_PREFIX) and token[len(FAULT_TOKEN_PREFIX):] in FAULTS:
        kind = token[len(FAULT_TOKEN_PREFIX):]
    elif token in options.token_faults:
        kind = options.token_faults[token]
        if kind not in FAULTS:  # set on a running server without validation
            raise ValueError(f"unknown demo fault {kind!r} in token_faults for token {token!r}")
    elif token.startswith(FLAKY_TOKEN_PREFIX):
        # Every other request of this token fails with a 503, starting with the first: a transient outage.
        seen = state.flaky_counts.get(token, 0)
        state.flaky_counts[token] = seen + 1
        if seen % 2 == 0:
            kind = "503"
    elif options.fault is not None:
        if options.fault not in FAULTS:
            raise ValueError(f"unknown demo fault {options.fault!r}")
        if state.fault_rng.random() < options.fault_rate:
            kind = options.fault
    elif options.fault_mix:
        kind = _draw_from_mix(state.fault_rng.random(), options.fault_mix)
        if kind is not None and kind not in FAULTS:  # set on a running server without validation
            raise ValueError(f"unknown demo fault {kind!r} in fault_mix")
    if kind is not None:
        state.fault_counts[kind] += 1
    if kind not in (None, "slow", "malformed"):
        return _fault_response(kind, options), 0.0

    if token.startswith(FORBIDDEN_TOKEN_PREFIX):
        response = _json_response({"message": "This action is unauthorized."}, 403)
    else:
        data = _laravel_input(raw)
        errors = _validate(data)
        if errors:
            response = _validation_response(errors)
        else:
            response = Response(_paginator_body(request, token, data), media_type="application/json",
                                headers=_JSON_HEADERS)
    if kind == "malformed":
        body = bytes(response.body)
        response = Response(body[: max(1, len(body) // 2)], status_code=200, media_type="application/json",
                            headers=_JSON_HEADERS)
    return response, options.slow_seconds if kind == "slow" else 0.0


def _note_caller(state, token: str) -> None:
    """A token that got past authentication has called: the mover moves its leads (a forbidden one has none)."""
    if not token.startswith(FORBIDDEN_TOKEN_PREFIX):
        state.live.seen(token)


async def _sleep_unless_disconnected(request: Request, seconds: float) -> None:
    """Stall like a slow server, but stop early when the client hangs up (keeps shutdown and benchmarks quick)."""
    async def client_gone() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    sleeper = asyncio.ensure_future(asyncio.sleep(seconds))
    watcher = asyncio.ensure_future(client_gone())
    try:
        await asyncio.wait({sleeper, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sleeper, watcher):
            task.cancel()


async def _leads(request: Request) -> Response:
    options: DemoOptions = request.app.state.options
    raw = _php_query(request)
    token = _bearer_token(request.headers.get("authorization"))
    response, stall = _respond(request, token, raw)
    request.app.state.calls.append(Call(token=token, params=dict(raw), status=response.status_code,
                                        request_id=request.headers.get("x-request-id")))
    request.app.state.call_count += 1
    delay = max(options.latency, 0.0) + stall
    if token is not None and options.token_latency:
        delay += max(options.token_latency.get(token, 0.0), 0.0)
    if delay > 0:
        await _sleep_unless_disconnected(request, delay)
    return response


# ---------------------------------------------------------------------------- POST /user/lead

def _create_lead(request: Request, token: str | None, body: dict | None) -> tuple[Response, str | None, dict | None]:
    """The answer, the write fault injected and the lead created, in Laravel's order: auth, throttling/faults,
    policy, validation, the controller's duplicate check, creation."""
    state = request.app.state
    options: DemoOptions = state.options
    store: WriteStore = state.lead_writes
    if token is None or token.startswith(REVOKED_TOKEN_PREFIX):
        return _json_response({"message": "Unauthenticated."}, 401), None, None
    _note_caller(state, token)
    kind = take_write_fault(options, token)
    if kind in FAULTS_INSTEAD:
        return _fault_response(kind, options), kind, None

    lead = None
    if token.startswith(FORBIDDEN_TOKEN_PREFIX):
        response = _json_response({"message": "This action is unauthorized."}, 403)
    else:
        # $request->all(): the JSON body's keys, then the query's others, all through the middleware.
        data = _laravel_json_input(body) if body is not None else {}
        for key, value in _laravel_input(_php_query(request)).items():
            data.setdefault(key, value)
        errors = validate(data, campaign_ids(token))
        if errors:
            response = _validation_response(errors)
        elif not allows_duplicate(data) and store.taken(token, data["phone_number"],
                                                        php_filter_int(data["campaign_id"])):
            response = _validation_response({"phone_number": [TAKEN_MESSAGE]})
        else:
            # "lost-before": the request dies before the transaction commits; the answer it would have had
            # is still built, so that what the client receives is the same as for "lost".
            built = store.create(token, data, datetime.now(timezone.utc), commit=kind != "lost-before")
            if built is None:  # the token's id block is used up (thousands of leads since the last reset)
                response = _json_response({"message": "Server Error"}, 500)
            else:
                response = _json_response(created_answer(built), 201)
                lead = built if kind != "lost-before" else None
    if kind == "500-after":
        response = _json_response({"message": "Server Error"}, 500)
    return response, kind, lead


class _LeadWrites:
    """``POST /user/lead`` as a raw ASGI app: the "lost" faults must be able to cut the answer short,
    which Starlette's request/response endpoints cannot do."""

    async def __call__(self, scope, receive, send) -> None:
        request = Request(scope, receive)
        state = request.app.state
        options: DemoOptions = state.options
        store: WriteStore = state.lead_writes
        token = _bearer_token(request.headers.get("authorization"))
        try:
            raw = await request.body()
        except ClientDisconnect:
            return
        body = _json_body(request.headers.get("content-type"), raw)
        store.posts += 1
        response, kind, lead = _create_lead(request, token, body)
        store.calls.append(WriteCall(token=token, body=body if body is not None else {},
                                     status=response.status_code, lead_id=lead["id"] if lead else None,
                                     fault=kind, request_id=request.headers.get("x-request-id")))
        delay = max(options.latency, 0.0) + (options.slow_seconds if kind == "late" else 0.0)
        if token is not None and options.token_latency:
            delay += max(options.token_latency.get(token, 0.0), 0.0)
        if delay > 0:
            await _sleep_unless_disconnected(request, delay)
        if kind in FAULTS_DROPPING:
            await drop_connection(send, response.status_code, response.raw_headers, bytes(response.body))
        else:
            await response(scope, receive, send)


async def _writes_count(request: Request) -> Response:
    """How many ``POST /user/lead`` requests this demo upstream received and how many leads it created."""
    store: WriteStore = request.app.state.lead_writes
    return Response(json.dumps({"posts": store.posts, "created": store.created}), media_type="application/json")


async def _healthz(request: Request) -> Response:
    return Response('{"status":"ok"}', media_type="application/json")


async def _call_count(request: Request) -> Response:
    """How many /user/leads requests this demo upstream has answered (benchmarks read it)."""
    return Response(json.dumps({"calls": request.app.state.call_count}), media_type="application/json")


async def _fault_counts(request: Request) -> Response:
    """How many faults of each kind this demo upstream has injected, all sources together (soak tests read it)."""
    return Response(json.dumps({"faults": dict(sorted(request.app.state.fault_counts.items()))}),
                    media_type="application/json")


# ---------------------------------------------------------------------------- live changes

_LEAD_NOT_FOUND = "No query results for model [App\\Models\\Lead] {}"
_LIVE_IDLE_CHECK = 0.5  # seconds between looks at ``live_changes`` while it is None
_log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _control_caller(request: Request) -> tuple[str | None, Response | None]:
    """The token of a control call, or the answer the list endpoint gives without a usable one."""
    token = _bearer_token(request.headers.get("authorization"))
    if token is None or token.startswith(REVOKED_TOKEN_PREFIX):
        return None, _json_response({"message": "Unauthenticated."}, 401)
    if token.startswith(FORBIDDEN_TOKEN_PREFIX):
        return None, _json_response({"message": "This action is unauthorized."}, 403)
    request.app.state.live.seen(token)
    return token, None


async def _control_body(request: Request) -> dict:
    """The JSON object sent, through the middleware; anything else reads as no input, as Laravel does."""
    body = _json_body(request.headers.get("content-type"), await request.body())
    return _laravel_json_input(body) if body is not None else {}


def _path_lead_id(request: Request) -> int | None:
    """``{id}`` of the path when it is a whole number (route model binding finds nothing otherwise)."""
    text = request.path_params["lead_id"]
    return int(text) if re.fullmatch(r"[1-9][0-9]{0,17}", text) else None


def _status_errors(status) -> dict[str, list[str]]:
    """``nullable|string|in:...`` on ``status``."""
    if status is None:
        return {}
    messages = [] if isinstance(status, str) else ["The status field must be a string."]
    if status not in STATUSES:
        messages.append("The selected status is invalid.")
    return {"status": messages} if messages else {}


async def _change_lead(request: Request) -> Response:
    """``POST /_demo/leads/{id}``: ``{"status": s}`` gives the lead that status, ``{}`` its usual next one."""
    token, refusal = _control_caller(request)
    if refusal is not None:
        return refusal
    live: LiveState = request.app.state.live
    lead_id = _path_lead_id(request)
    if lead_id is None or live.lead(token, lead_id) is None:  # route model binding comes before validation
        return _json_response({"message": _LEAD_NOT_FOUND.format(request.path_params["lead_id"])}, 404)
    status = (await _control_body(request)).get("status")
    errors = _status_errors(status)
    if errors:
        return _validation_response(errors)
    try:
        return _json_response({"data": live.set_status(token, lead_id, status, _now())}, 200)
    except FinalStatus as exc:
        return _validation_response({"status": [str(exc)]})


async def _delete_lead(request: Request) -> Response:
    """``DELETE /_demo/leads/{id}``: the lead leaves its token's list."""
    token, refusal = _control_caller(request)
    if refusal is not None:
        return refusal
    lead_id = _path_lead_id(request)
    if lead_id is None or not request.app.state.live.delete(token, lead_id):
        return _json_response({"message": _LEAD_NOT_FOUND.format(request.path_params["lead_id"])}, 404)
    return _json_response({"deleted": lead_id}, 200)


async def _advance(request: Request) -> Response:
    """``POST /_demo/advance``: ``{"count": n}`` (default 1) random leads of the token one status further."""
    token, refusal = _control_caller(request)
    if refusal is not None:
        return refusal
    raw = (await _control_body(request)).get("count")
    count = php_filter_int(raw) if raw is not None else 1
    if count is None:
        return _validation_response({"count": ["The count field must be an integer."]})
    if count < 1:
        return _validation_response({"count": ["The count field must be at least 1."]})
    return _json_response({"changed": request.app.state.live.advance(token, count, _now())}, 200)


async def _live_mover(app: Starlette) -> None:
    """Every ``live_changes`` seconds, ``live_change_count`` leads of every token seen move one status further.
    The options are read each round, so a test can turn the mover on, change it or stop it on a running server."""
    while True:
        seconds = app.state.options.live_changes
        await asyncio.sleep(seconds if seconds is not None else _LIVE_IDLE_CHECK)
        options: DemoOptions = app.state.options
        if seconds is None or options.live_changes is None:
            continue
        try:
            app.state.live.round(options.live_change_count, _now())
        except Exception:  # a bad round must not end the live changes for good
            _log.exception("demo upstream: a round of live changes failed")


@contextlib.asynccontextmanager
async def _lifespan(app: Starlette):
    """Runs the mover while the server does, and stops it before the server is gone."""
    mover = asyncio.create_task(_live_mover(app), name="demo-live-mover")
    app.state.live_mover = mover
    try:
        yield
    finally:
        mover.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await mover


def reset_calls(app: Starlette) -> None:
    """Forget recorded calls, the leads created, the writes recorded and the live changes, and restart the
    fault draw sequence (so fault_rate runs are reproducible)."""
    app.state.lead_writes.reset()
    app.state.live.reset()
    app.state.calls.clear()
    app.state.call_count = 0
    app.state.fault_counts = collections.Counter()
    app.state.fault_rng = random.Random(0)
    app.state.flaky_counts = {}


def create_demo_app(options: DemoOptions | None = None) -> Starlette:
    """A Starlette app serving ``GET /user/leads`` and ``POST /user/lead`` (also under ``/api``) plus
    ``GET /healthz`` and the ``/_demo/*`` counters.

    ``app.state.options`` is read on every request, ``app.state.calls`` records every
    ``/user/leads`` request, ``app.state.write_calls`` every ``/user/lead`` one (``WriteCall``),
    ``app.state.lead_writes`` holds the leads created, ``app.state.live`` the live changes (``LiveState``;
    the mover, ``app.state.live_mover``, runs with the app's lifespan); ``app.state.reset()`` clears all of it.
    The ``/_demo/leads/{id}`` and ``/_demo/advance`` control calls change a token's leads, for tests.
    """
    write_endpoint = _LeadWrites()
    app = Starlette(routes=[
        Route("/user/leads", _leads, methods=["GET"]),
        Route("/api/user/leads", _leads, methods=["GET"]),
        Route("/user/lead", write_endpoint, methods=["POST"]),
        Route("/api/user/lead", write_endpoint, methods=["POST"]),
        Route("/healthz", _healthz, methods=["GET"]),
        Route("/_demo/calls", _call_count, methods=["GET"]),
        Route("/_demo/faults", _fault_counts, methods=["GET"]),
        Route("/_demo/writes", _writes_count, methods=["GET"]),
        Route("/_demo/leads/{lead_id}", _change_lead, methods=["POST"]),
        Route("/_demo/leads/{lead_id}", _delete_lead, methods=["DELETE"]),
        Route("/_demo/advance", _advance, methods=["POST"]),
    ], lifespan=_lifespan)
    install_quiet_drops()
    app.state.options = options if options is not None else DemoOptions()
    app.state.lead_writes = WriteStore(_php_json)
    app.state.write_calls = app.state.lead_writes.calls  # the most recent writes (bounded), cleared in place
    app.state.live = LiveState(_php_json, _encoded_rows, app.state.lead_writes.rows)
    app.state.live_mover = None  # the mover's task while the server runs
    # The most recent calls for tests (bounded: benchmarks send millions), and a count of all of them.
    app.state.calls = collections.deque(maxlen=100_000)
    app.state.call_count = 0
    app.state.fault_counts = collections.Counter()
    app.state.fault_rng = random.Random(0)
    app.state.flaky_counts = {}
    app.state.reset = lambda: reset_calls(app)
    return app


def parse_live_changes(text: str, name: str) -> float:
    """Seconds between the mover's rounds, from the variable or the flag ``name``: a finite number > 0."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not _positive_seconds(seconds):
        raise ValueError(f"{name} must be a number of seconds > 0, got {text!r}")
    return seconds


def _env_float(name: str, minimum: float, maximum: float | None = None) -> float | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if value != value or value < minimum or (maximum is not None and value > maximum):
        bounds = f"between {minimum:g} and {maximum:g}" if maximum is not None else f">= {minimum:g}"
        raise ValueError(f"{name} must be {bounds}, got {raw!r}")
    return value


def main_options_from_env() -> DemoOptions:
    """Options from ``DEMO_LATENCY_MS``, ``DEMO_FAULT``, ``DEMO_FAULT_RATE``, ``DEMO_FAULT_MIX``,
    ``DEMO_RETRY_AFTER``, ``DEMO_SLOW_SECONDS``, ``DEMO_TOKEN_FAULTS`` (``tokA=500,tokB=slow``),
    ``DEMO_TOKEN_LATENCY_MS`` (``tokA=200``), ``DEMO_WRITE_FAULT``, ``DEMO_TOKEN_WRITE_FAULTS``
    (``tokA=lost,tokB=late``), ``DEMO_WRITE_FAULT_TIMES``, ``DEMO_LIVE_CHANGES`` (seconds between the mover's
    rounds) and ``DEMO_LIVE_CHANGE_COUNT`` (all optional), for ``leads-gateway demo-upstream``."""
    options = DemoOptions()
    latency_ms = _env_float("DEMO_LATENCY_MS", 0.0)
    if latency_ms is not None:
        options.latency = latency_ms / 1000.0
    fault = os.environ.get("DEMO_FAULT", "").strip()
    if fault:
        if fault not in FAULTS:
            raise ValueError(f"DEMO_FAULT must be one of {', '.join(FAULTS)}, got {fault!r}")
        options.fault = fault
    rate = _env_float("DEMO_FAULT_RATE", 0.0, 1.0)
    if rate is not None:
        options.fault_rate = rate
    mix = os.environ.get("DEMO_FAULT_MIX", "")
    if mix.strip():
        try:
            options.fault_mix = parse_fault_mix(mix)
        except ValueError as exc:
            raise ValueError(f"DEMO_FAULT_MIX: {exc}") from None
    retry_after = os.environ.get("DEMO_RETRY_AFTER", "").strip()
    if retry_after:
        if not re.fullmatch(r"[0-9]+", retry_after):
            raise ValueError(f"DEMO_RETRY_AFTER must be a whole number of seconds >= 0, got {retry_after!r}")
        options.retry_after = int(retry_after)
    slow = _env_float("DEMO_SLOW_SECONDS", 0.0)
    if slow is not None:
        options.slow_seconds = slow
    write_fault = os.environ.get("DEMO_WRITE_FAULT", "").strip()
    if write_fault:
        if write_fault not in WRITE_FAULTS:
            raise ValueError(f"DEMO_WRITE_FAULT must be one of {', '.join(WRITE_FAULTS)}, got {write_fault!r}")
        options.write_fault = write_fault
    times = os.environ.get("DEMO_WRITE_FAULT_TIMES", "").strip()
    if times:
        if not re.fullmatch(r"[0-9]+", times):
            raise ValueError(f"DEMO_WRITE_FAULT_TIMES must be a whole number >= 0, got {times!r}")
        options.write_fault_times = int(times)
    live = os.environ.get("DEMO_LIVE_CHANGES", "").strip()
    if live:
        options.live_changes = parse_live_changes(live, "DEMO_LIVE_CHANGES")
    count = os.environ.get("DEMO_LIVE_CHANGE_COUNT", "").strip()
    if count:
        if not re.fullmatch(r"[0-9]+", count) or int(count) < 1:
            raise ValueError(f"DEMO_LIVE_CHANGE_COUNT must be a whole number >= 1, got {count!r}")
        options.live_change_count = int(count)
    for name, parse, attribute in (("DEMO_TOKEN_FAULTS", parse_token_faults, "token_faults"),
                                   ("DEMO_TOKEN_LATENCY_MS", parse_token_latency_ms, "token_latency"),
                                   ("DEMO_TOKEN_WRITE_FAULTS", parse_token_write_faults, "token_write_faults")):
        try:
            setattr(options, attribute, parse(os.environ.get(name, "")))
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
    return options
