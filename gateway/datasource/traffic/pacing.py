"""``Pacer``: the upstream said 429, so we slow down for as long as it asked (``Retry-After``).

A 429 pauses the caller it answered. When 429s are spread over callers the way an outage must be to open
the upstream's breaker (``needed`` distinct callers within ``window`` seconds: several, or every active
caller when fewer are active, never fewer than two), the upstream is throttling everyone, and everyone is
paused; two busy tenants throttled among many active ones are only those two.
A paused call waits out the pause when it is short (within ``wait_max`` and the request's deadline) and is
otherwise refused at once with ``RATE_LIMITED`` and the time left, without calling the upstream.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

DEFAULT_PAUSE = 1.0  # seconds, for a 429 without a usable Retry-After
MAX_CALLERS = 10_000


class Pacer:
    def __init__(self, clock: Callable[[], float], window: float = 10.0) -> None:
        self._clock = clock
        self._window = window
        self._until: OrderedDict[str, float] = OrderedDict()  # caller -> end of its pause
        self._everyone_until = 0.0
        self._recent: dict[str, float] = {}  # caller -> when it last got a 429

    def slow_down(self, caller: str, retry_after: float | None, needed: int = 2) -> bool:
        """Record a 429 for ``caller``; True when it paused everyone (``needed`` callers had 429s)."""
        now = self._clock()
        until = now + (DEFAULT_PAUSE if retry_after is None else max(0.0, float(retry_after)))
        self._until[caller] = max(until, self._until.get(caller, 0.0))
        self._until.move_to_end(caller)
        while len(self._until) > MAX_CALLERS:
            self._until.popitem(last=False)
        self._recent[caller] = now
        for other, when in list(self._recent.items()):
            if when <= now - self._window:
                del self._recent[other]
        if len(self._recent) >= max(2, needed):
            self._everyone_until = max(self._everyone_until, until)
            return True
        return False

    def remaining(self, caller: str) -> tuple[float, str]:
        """Seconds ``caller`` must still wait, and whose pause it is ("caller" or "upstream")."""
        now = self._clock()
        own = self._until.get(caller, 0.0) - now
        if own <= 0 and caller in self._until:
            del self._until[caller]
        everyone = self._everyone_until - now
        if everyone > 0 and everyone >= own:
            return everyone, "upstream"
        return max(0.0, own), "caller"

    def paused(self) -> int:
        now = self._clock()
        return sum(1 for until in self._until.values() if until > now)
