"""``TrafficControl``: what every upstream call passes before it goes, and reports when it is done.

Admission, in order: the upstream's 429 pauses (``pacing.py``), the breakers (``breaker.py``: everyone's,
then the caller's own), then a slot of the caller's fair share of the upstream concurrency (``fair.py``).
A call refused on the way never reaches the upstream and is never retried: the client gets
``UPSTREAM_UNAVAILABLE`` (the upstream is down for everyone) or ``RATE_LIMITED`` (the gateway protects the
upstream or the other callers from this one), both with ``retryAfter`` and a ``reason``. When the call is
done, its one classified ``Outcome`` feeds the breakers, the concurrency limit, the pauses and the metrics.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable

from gateway.config import Settings
from gateway.datasource.traffic.breaker import Breakers, Refusal, Ticket
from gateway.datasource.traffic.fair import QUEUE_FULL_RETRY, FairLimiter, Rejected
from gateway.datasource.traffic.outcome import Outcome
from gateway.datasource.traffic.pacing import Pacer
from gateway.errors import GatewayError, RateLimited, UpstreamTimeout, UpstreamUnavailable
from gateway.observability.metrics import Stats


def _seconds(value: float) -> int:
    return max(1, math.ceil(value))


class TrafficControl:
    # Every label its metrics can take (the collector lists them all, zeros included).
    OUTCOME_LABELS = tuple((outcome.value, outcome.kind) for outcome in Outcome)
    REFUSAL_REASONS = ("breaker_open", "caller_breaker", "queue_full", "queue_timeout", "upstream_slow_down")

    def __init__(self, settings: Settings, stats: Stats, clock: Callable[[], float] = time.monotonic,
                 jitter: Callable[[], int] = lambda: random.randint(0, 1)) -> None:
        self.stats = stats
        self._clock = clock
        self._jitter = jitter
        self.wait_max = settings.upstream_retry_after_max
        self.breakers = Breakers(window=settings.breaker_window, min_calls=settings.breaker_min_calls,
                                 failure_rate=settings.breaker_failure_rate,
                                 min_callers=settings.breaker_min_callers,
                                 caller_min_calls=settings.caller_breaker_min_calls,
                                 cooldown=settings.breaker_cooldown, clock=clock, on_change=self._changed)
        self.limiter = FairLimiter(settings.upstream_concurrency, share=settings.caller_share,
                                   queue_max=settings.upstream_queue_max,
                                   queue_timeout=settings.upstream_queue_timeout, clock=clock,
                                   window=settings.breaker_window)
        self.pacer = Pacer(clock, settings.breaker_window)

    @property
    def breaker_state(self) -> str:
        return self.breakers.state

    def refusal(self, caller: str) -> GatewayError | None:
        """The refusal ``caller``'s next upstream call would get now for reasons of its own (paused by a 429
        for longer than we wait, its own breaker open, its queue full), or None; nothing is admitted.

        The HTTP layer asks before it parses or executes anything, so that a caller that keeps sending
        while refused costs a dictionary lookup per request rather than a whole execution: the other
        callers keep the CPU (docs/ISOLATION.md). Everyone's refusals (the upstream's breaker, a global
        429 pause) are left to ``admit``, since the cache may still answer those requests."""
        left, whose = self.pacer.remaining(caller)
        if whose == "caller" and left > self.wait_max:
            return self._slowed_down(left, whose)
        if (refusal := self.breakers.caller_refusal(caller)) is not None:
            return self._refusal(refusal)
        if self.limiter.queue_full(caller):
            return self._queue_refused("queue_full", QUEUE_FULL_RETRY)
        return None

    async def admit(self, caller: str, deadline: float | None) -> Ticket:
        """A ticket for one upstream call by ``caller`` (hand it back to ``done``), or a refusal raised."""
        left, whose = self.pacer.remaining(caller)
        if left > 0:
            if left > self.wait_max or left >= _remaining(deadline):
                raise self._slowed_down(left, whose)
            await asyncio.sleep(left)
        ticket = self.breakers.admit(caller)
        if isinstance(ticket, Refusal):
            raise self._refusal(ticket)
        started = self._clock()
        try:
            await self.limiter.acquire(caller, _remaining(deadline))
        except Rejected as exc:
            self.breakers.abandon(ticket)
            raise self._queue_refused(exc.reason, exc.retry_after) from None
        except TimeoutError:
            self.breakers.abandon(ticket)
            raise UpstreamTimeout("The request's deadline passed while waiting for the upstream.") from None
        except BaseException:
            self.breakers.abandon(ticket)
            raise
        self.stats.upstream_queue_wait.observe(self._clock() - started)
        return ticket

    def done(self, ticket: Ticket, outcome: Outcome | None, retry_after: float | None = None) -> None:
        """The call's outcome (None: cancelled before the upstream said anything)."""
        self.limiter.release(ticket.caller, outcome)
        if outcome is None:
            self.breakers.abandon(ticket)
            return
        self.stats.upstream_outcomes[outcome.value] += 1
        self.breakers.record(ticket, outcome)
        if outcome is Outcome.SLOW_DOWN:
            self.pacer.slow_down(ticket.caller, retry_after, needed=self.breakers.spread_needed())

    def readiness(self) -> dict:
        limiter = self.limiter
        return {**self.breakers.readiness(),
                "concurrency": {"limit": limiter.capacity, "max": limiter.max_limit, "perCaller": limiter.cap,
                                "inFlight": limiter.total, "queued": limiter.queued},
                "slowedDownCallers": self.pacer.paused()}

    # --- refusals -------------------------------------------------------------------------------------

    def _refusal(self, refusal: Refusal) -> GatewayError:
        seconds = _seconds(refusal.retry_after)
        if refusal.scope == "upstream":
            return self._refused("breaker_open", UpstreamUnavailable(
                f"The upstream is failing for every caller; calls are paused for {seconds} s (circuit open).",
                retryAfter=seconds, reason="BREAKER_OPEN"))
        return self._refused("caller_breaker", RateLimited(
            f"This caller's upstream calls keep failing; they are paused for {seconds} s to protect the "
            f"upstream and the other callers.", retryAfter=seconds, reason="CALLER_PAUSED"))

    def _slowed_down(self, left: float, whose: str) -> GatewayError:
        return self._refused("upstream_slow_down", RateLimited(
            f"The upstream asked {'everyone' if whose == 'upstream' else 'this caller'} to slow down "
            f"(429); calls resume in {_seconds(left)} s.", retryAfter=_seconds(left), reason="UPSTREAM_SLOW_DOWN"))

    def _queue_refused(self, reason: str, retry_after: float) -> GatewayError:
        full = reason == "queue_full"
        # A second of jitter: callers refused together should not all come back in the same second.
        seconds = _seconds(retry_after) + self._jitter()
        return self._refused(reason, RateLimited(
            f"This caller has too many upstream calls {'waiting' if full else 'waiting too long'} "
            f"(at most {self.limiter.cap} at a time, "
            f"{self.limiter.queue_max if full else self.limiter.queue_timeout:g} "
            f"{'queued' if full else 's in line'}); try again in {seconds} s.",
            retryAfter=seconds, reason=reason.upper()))

    def _refused(self, reason: str, error: GatewayError) -> GatewayError:
        self.stats.rejected[reason] += 1
        return error

    def _changed(self, scope: str, state: str) -> None:
        self.stats.breaker_transitions[(scope, state)] += 1


def _remaining(deadline: float | None) -> float:
    return 3600.0 if deadline is None else max(0.0, deadline - time.monotonic())
