"""Circuit breakers: one for the upstream (everyone's), one per caller.

The upstream's breaker opens only when the upstream is down for everyone: over the last ``window``
seconds at least ``min_calls`` calls, ``failure_rate`` of them failed (Hystrix: 50 % of at least 20 in
10 s; resilience4j: 50 % of 100), and the failures are spread over several callers: ``min_callers``, or
every caller active in the window when fewer were, and never fewer than two, except when the upstream
could not be reached at all (a refused connection is nobody's query; with a single active caller it is
still an outage). So failures confined to one caller never open it, however many (Envoy, likewise,
never ejects the only host over one client's errors).

A caller's own breaker opens on that caller's failures alone (``caller_min_calls``, same rate and
window) and pauses only that caller: it cannot keep the upstream busy with calls that keep failing.
Failures that were the upstream's (it was unreachable, or its breaker opened on them) never count
against a caller.

Both fail fast while open and let one probe call through after ``cooldown`` seconds (half-open); the
probe's outcome closes or reopens the breaker.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from gateway.datasource.traffic.outcome import Outcome
from gateway.datasource.traffic.window import RollingWindow, Totals

log = logging.getLogger("gateway.datasource.traffic")

MAX_CALLERS = 10_000  # callers whose windows are kept (least recently active dropped)
CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


class Circuit:
    """The state machine: closed, open for ``cooldown`` seconds, then half-open for one probe at a time."""

    def __init__(self, cooldown: float, clock: Callable[[], float]) -> None:
        self.cooldown = cooldown
        self._clock = clock
        self.state = CLOSED
        self._opened_at = 0.0
        self._probing = False

    def admit(self) -> bool | None:
        """None: refused; False: admitted; True: admitted as the half-open probe."""
        if self.state == OPEN and self._clock() - self._opened_at >= self.cooldown:
            self.state = HALF_OPEN
        if self.state == CLOSED:
            return False
        if self.state == HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return None

    @property
    def current(self) -> str:
        """The state as a caller would find it now (open turns half-open once the cooldown is over)."""
        if self.state == OPEN and self._clock() - self._opened_at >= self.cooldown:
            return HALF_OPEN
        return self.state

    def retry_in(self) -> float:
        """Seconds until a probe may go (while open)."""
        return max(0.0, self.cooldown - (self._clock() - self._opened_at))

    def trip(self) -> None:
        self.state, self._opened_at, self._probing = OPEN, self._clock(), False

    def close(self) -> None:
        self.state, self._probing = CLOSED, False

    def abandon(self) -> None:
        """The probe was cancelled before it said anything: let another one go."""
        self._probing = False


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an upstream call may not go now: ``scope`` is "upstream" (everyone) or "caller" (this caller)."""

    scope: str
    retry_after: float


@dataclass(frozen=True, slots=True)
class Ticket:
    """An admitted call: which breakers it probes (their state changes only on their probe's outcome)."""

    caller: str
    probes_upstream: bool = False
    probes_caller: bool = False


@dataclass
class _CallerState:
    window: RollingWindow
    circuit: Circuit


class Breakers:
    def __init__(self, *, window: float, min_calls: int, failure_rate: float, min_callers: int,
                 caller_min_calls: int, cooldown: float, clock: Callable[[], float],
                 on_change: Callable[[str, str], None] = lambda scope, state: None) -> None:
        self.min_calls = min_calls
        self.failure_rate = failure_rate
        self.min_callers = min_callers
        self.caller_min_calls = caller_min_calls
        self._window_seconds = window
        self._cooldown = cooldown
        self._clock = clock
        self._on_change = on_change
        self.window = RollingWindow(window, clock)
        self.upstream = Circuit(cooldown, clock)
        self._callers: OrderedDict[str, _CallerState] = OrderedDict()

    @property
    def state(self) -> str:
        """The upstream breaker's state: "closed", "open" or "half-open"."""
        return self.upstream.current

    def paused_callers(self) -> int:
        return sum(1 for s in self._callers.values() if s.circuit.current != CLOSED)

    def admit(self, caller: str) -> Ticket | Refusal:
        """A ticket for one upstream call by ``caller``, or why it may not go now."""
        upstream = self.upstream.admit()
        if upstream is None:
            return Refusal("upstream", self.upstream.retry_in())
        state = self._callers.get(caller)
        own = False
        if state is not None:
            own = state.circuit.admit()
            if own is None:
                if upstream:
                    self.upstream.abandon()
                return Refusal("caller", state.circuit.retry_in())
        return Ticket(caller, probes_upstream=upstream, probes_caller=own)

    def caller_refusal(self, caller: str) -> Refusal | None:
        """Why ``caller``'s own breaker refuses it now (open, its cooldown not over), without admitting
        anything: None when a call (or a half-open probe) could go."""
        state = self._callers.get(caller)
        if state is None or state.circuit.current != OPEN:
            return None
        return Refusal("caller", state.circuit.retry_in())

    def abandon(self, ticket: Ticket) -> None:
        if ticket.probes_upstream:
            self.upstream.abandon()
        if ticket.probes_caller and (state := self._callers.get(ticket.caller)) is not None:
            state.circuit.abandon()

    def record(self, ticket: Ticket, outcome: Outcome) -> None:
        failed = outcome.failed
        unreachable = outcome is Outcome.UNREACHABLE
        self.window.add(ticket.caller, failed, unreachable)
        if ticket.probes_upstream:
            if failed:
                self._trip_upstream()
            else:
                self._close_upstream()
        elif failed and self.upstream.state == CLOSED and self._upstream_down(self.window.totals()):
            self._trip_upstream()
        if unreachable or self.upstream.state != CLOSED:
            failed = False  # the upstream's failure, not this caller's
        self._record_caller(ticket, failed)

    def readiness(self) -> dict:
        t = self.window.totals()
        return {"breaker": self.state, "window": {"seconds": self._window_seconds, "calls": t.calls,
                                                  "failureRate": round(t.failure_rate, 3),
                                                  "callers": len(t.callers), "failingCallers": len(t.failing)},
                "pausedCallers": self.paused_callers()}

    def spread_needed(self) -> int:
        """Distinct callers whose answered failures (or 429s) say "everyone": several, or all active ones."""
        return max(2, min(self.min_callers, len(self.window.totals().callers)))

    # --- the rules --------------------------------------------------------------------------------------

    def _upstream_down(self, t: Totals) -> bool:
        if t.calls < self.min_calls or t.failures < self.failure_rate * t.calls:
            return False
        spread = min(self.min_callers, len(t.callers))
        if t.unreachable < self.failure_rate * t.calls:
            spread = max(2, spread)  # answered failures may be one caller's queries: need another caller
        return len(t.failing) >= spread

    def _record_caller(self, ticket: Ticket, failed: bool) -> None:
        state = self._callers.get(ticket.caller)
        if state is None:
            if not failed:
                return  # callers are tracked from their first failure: a healthy caller costs nothing
            state = self._callers[ticket.caller] = _CallerState(
                RollingWindow(self._window_seconds, self._clock, track_callers=False),
                Circuit(self._cooldown, self._clock))
            while len(self._callers) > MAX_CALLERS:
                self._callers.popitem(last=False)
        self._callers.move_to_end(ticket.caller)
        state.window.add(None, failed)
        circuit = state.circuit
        if ticket.probes_caller:
            if failed:
                circuit.trip()
                self._on_change("caller", OPEN)
            else:
                circuit.close()
                state.window.clear()
                self._on_change("caller", CLOSED)
            return
        if failed and circuit.state == CLOSED:
            t = state.window.totals()
            if t.calls >= self.caller_min_calls and t.failures >= self.failure_rate * t.calls:
                circuit.trip()
                self._on_change("caller", OPEN)
                log.warning("caller paused", extra={"fields": {"caller": ticket.caller[:8], "calls": t.calls,
                                                               "failures": t.failures}})

    def _trip_upstream(self) -> None:
        self.upstream.trip()
        # The failures were the upstream's: no caller stays paused for them once it is back.
        self._callers.clear()
        self._on_change("upstream", OPEN)
        t = self.window.totals()
        log.warning("upstream breaker open", extra={"fields": {"calls": t.calls, "failures": t.failures,
                                                               "failing_callers": len(t.failing)}})

    def _close_upstream(self) -> None:
        self.upstream.close()
        self.window.clear()  # a fresh start: the failures that opened it are history
        self._on_change("upstream", CLOSED)
        log.info("upstream breaker closed")
