"""Retry policy and circuit breaker for the upstream (in the spirit of Hive's useUpstreamRetry).

Retried: connection failures, 502/503/504 and 429, with exponential backoff and full jitter, at most
``retries`` times, honouring ``Retry-After`` up to a cap, and never past the request's deadline.
Never retried: other 4xx (the same request would fail the same way), 500 (an application error, not
an outage) and read timeouts (a second full timeout would only double the wait).
The breaker opens after ``failures`` consecutive outage-like failures, fails fast while open, and
lets one probe call through after ``cooldown`` seconds; the probe's outcome closes or reopens it.
"""

from __future__ import annotations

import random
import time

from gateway.errors import GatewayError, RateLimited, UpstreamTimeout, UpstreamUnavailable

RETRYABLE_STATUSES = frozenset({502, 503, 504})
BACKOFF_BASE = 0.1  # seconds; attempt n waits up to BACKOFF_BASE * 2**n
BACKOFF_MAX = 2.0


def is_retryable(error: GatewayError) -> bool:
    if isinstance(error, RateLimited):
        return True
    if isinstance(error, UpstreamUnavailable):
        status = error.extensions.get("upstreamStatus")
        return status is None or status in RETRYABLE_STATUSES  # None: the connection failed
    return False


def is_outage(error: GatewayError) -> bool:
    """Failures that say the upstream is down (they count towards opening the breaker)."""
    return isinstance(error, (UpstreamUnavailable, UpstreamTimeout))


def retry_delay(error: GatewayError, attempt: int, retry_after_max: float,
                rng: random.Random = random._inst) -> float | None:  # type: ignore[attr-defined]
    """Seconds to wait before attempt ``attempt + 1``, or None when this error should not be retried."""
    if not is_retryable(error):
        return None
    backoff = rng.uniform(0, min(BACKOFF_MAX, BACKOFF_BASE * 2 ** attempt))
    retry_after = error.extensions.get("retryAfter")
    if retry_after is not None:
        if retry_after > retry_after_max:
            return None  # the upstream asks for longer than we may wait: tell the client instead
        return max(float(retry_after), backoff)
    return backoff


class CircuitBreaker:
    CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"

    def __init__(self, failures: int, cooldown: float, clock=time.monotonic) -> None:
        self.threshold = failures
        self.cooldown = cooldown
        self._clock = clock
        self.state = self.CLOSED
        self.consecutive_failures = 0
        self._opened_at = 0.0
        self._probing = False

    def allow(self) -> bool:
        """May a call go to the upstream now? While half-open, only one probe at a time."""
        if self.state == self.OPEN and self._clock() - self._opened_at >= self.cooldown:
            self.state = self.HALF_OPEN
        if self.state == self.CLOSED:
            return True
        if self.state == self.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def retry_in(self) -> float:
        return max(0.0, self.cooldown - (self._clock() - self._opened_at))

    def abandon(self) -> None:
        """The call was cancelled before it said anything about the upstream: let another probe go."""
        self._probing = False

    def success(self) -> None:
        self.state = self.CLOSED
        self.consecutive_failures = 0
        self._probing = False

    def failure(self, outage: bool) -> None:
        self._probing = False
        if not outage:
            # The upstream answered (a 4xx, a bad body): it is up, whatever the answer was.
            if self.state == self.HALF_OPEN:
                self.state = self.CLOSED
            self.consecutive_failures = 0
            return
        self.consecutive_failures += 1
        if self.state == self.HALF_OPEN or self.consecutive_failures >= self.threshold:
            self.state = self.OPEN
            self._opened_at = self._clock()
