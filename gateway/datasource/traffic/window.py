"""``RollingWindow``: upstream calls of the last ``seconds``, in ten buckets (the breakers' evidence).

Each bucket counts calls, failures and calls that found the upstream unreachable, and which callers made
calls and which had failures: the global breaker asks how widely failures are spread, not only how many.
Old buckets are dropped as time passes, so a window costs O(buckets) whatever the traffic.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

BUCKETS = 10


@dataclass(slots=True)
class _Bucket:
    start: float
    calls: int = 0
    failures: int = 0
    unreachable: int = 0
    callers: set = field(default_factory=set)
    failing: set = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class Totals:
    calls: int
    failures: int
    unreachable: int
    callers: frozenset  # callers with at least one call in the window
    failing: frozenset  # callers with at least one failure in the window

    @property
    def failure_rate(self) -> float:
        return self.failures / self.calls if self.calls else 0.0


class RollingWindow:
    def __init__(self, seconds: float, clock: Callable[[], float], *, track_callers: bool = True) -> None:
        self.seconds = seconds
        self._width = seconds / BUCKETS
        self._clock = clock
        self._track = track_callers
        self._buckets: deque[_Bucket] = deque()

    def add(self, caller: str | None, failed: bool, unreachable: bool = False) -> None:
        bucket = self._current()
        bucket.calls += 1
        if self._track:
            bucket.callers.add(caller)
        if failed:
            bucket.failures += 1
            bucket.unreachable += unreachable
            if self._track:
                bucket.failing.add(caller)

    def totals(self) -> Totals:
        self._expire(self._clock())
        calls = failures = unreachable = 0
        callers: set = set()
        failing: set = set()
        for b in self._buckets:
            calls += b.calls
            failures += b.failures
            unreachable += b.unreachable
            callers |= b.callers
            failing |= b.failing
        return Totals(calls, failures, unreachable, frozenset(callers), frozenset(failing))

    def clear(self) -> None:
        self._buckets.clear()

    def _current(self) -> _Bucket:
        now = self._clock()
        self._expire(now)
        if not self._buckets or now >= self._buckets[-1].start + self._width:
            self._buckets.append(_Bucket(now - (now % self._width) if self._width > 0 else now))
        return self._buckets[-1]

    def _expire(self, now: float) -> None:
        while self._buckets and self._buckets[0].start <= now - self.seconds:
            self._buckets.popleft()
