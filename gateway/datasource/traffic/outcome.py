"""Every upstream attempt's outcome, classified once (DESIGN.md, "Errors are data").

Retries (``retry.py``), the breakers (``breaker.py``), the concurrency limit (``fair.py``), the 429 pauses
(``pacing.py``), the metrics and the logs all read this one class, never the status code or the error type.

Four kinds, as the operator sees them (``Outcome.kind``):
- ``outage``: the upstream is down, whoever asks: no answer at all (refused, reset, DNS, TLS:
  ``UNREACHABLE``) or 502/503/504 from its front (``OUTAGE``);
- ``caller-failure``: may be this caller's own doing: a 500 (an application error on its request), a
  timeout (its slow query), an answer that is not the documented shape. It becomes an outage only when
  several callers see it (the breaker's spread rule decides, not this module);
- ``caller-mistake``: the upstream is up and said no to this caller: 401, 403, 422;
- ``slow-down``: the upstream asks us to slow down (429).
"""

from __future__ import annotations

from enum import Enum

from gateway.errors import (
    Forbidden,
    GatewayError,
    RateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnauthenticated,
    UpstreamUnavailable,
)

GATEWAY_STATUSES = frozenset({502, 503, 504})


class Outcome(Enum):
    """One upstream attempt's outcome; ``value`` is its metrics label."""

    OK = "ok"
    UNREACHABLE = "unreachable"  # no HTTP answer: refused, reset, DNS, TLS
    OUTAGE = "outage"  # 502/503/504
    TIMEOUT = "timeout"  # no answer in time
    CALLER_FAILURE = "caller_failure"  # 500, an unreadable or misshapen answer
    CALLER_MISTAKE = "caller_mistake"  # 401, 403, 422
    SLOW_DOWN = "slow_down"  # 429

    @property
    def kind(self) -> str:
        return _KIND[self]

    @property
    def failed(self) -> bool:
        """Counts as a failure towards the breakers (the upstream did not do its part)."""
        return self in _FAILED

    @property
    def retryable(self) -> bool:
        """Worth another attempt: an outage may be transient, a 429 asks for a later one. Never a timeout (a
        second full wait would only double it), a 500 (an application error), or the caller's mistake."""
        return self in (Outcome.UNREACHABLE, Outcome.OUTAGE, Outcome.SLOW_DOWN)

    @property
    def overload(self) -> bool:
        """Says the upstream has too much to do, whoever asked: the concurrency limit shrinks (AIMD). A timeout or
        a 429 says so only when more than one caller gets them (``fair.py``): alone, it is that caller's."""
        return self in (Outcome.UNREACHABLE, Outcome.OUTAGE)


_KIND = {
    Outcome.OK: "ok",
    Outcome.UNREACHABLE: "outage",
    Outcome.OUTAGE: "outage",
    Outcome.TIMEOUT: "caller-failure",
    Outcome.CALLER_FAILURE: "caller-failure",
    Outcome.CALLER_MISTAKE: "caller-mistake",
    Outcome.SLOW_DOWN: "slow-down",
}
_FAILED = frozenset({Outcome.UNREACHABLE, Outcome.OUTAGE, Outcome.TIMEOUT, Outcome.CALLER_FAILURE})


def classify(error: GatewayError | None) -> Outcome:
    """The outcome of an attempt that returned (``None``) or raised ``error`` (an upstream error from the
    client: ``LeadsAPI`` maps every transport failure and status to one of these first)."""
    if error is None:
        return Outcome.OK
    if isinstance(error, UpstreamUnavailable):
        status = error.extensions.get("upstreamStatus")
        if status is None:
            return Outcome.UNREACHABLE
        return Outcome.OUTAGE if status in GATEWAY_STATUSES else Outcome.CALLER_FAILURE
    if isinstance(error, UpstreamTimeout):
        return Outcome.TIMEOUT
    if isinstance(error, RateLimited):
        return Outcome.SLOW_DOWN
    if isinstance(error, (UpstreamUnauthenticated, Forbidden, UpstreamRejected)):
        return Outcome.CALLER_MISTAKE
    return Outcome.CALLER_FAILURE  # an unreadable answer, or anything else: the upstream did not do its part
