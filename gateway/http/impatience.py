"""Callers that come back before the ``retryAfter`` they were given: their refusals are held a moment.

Why: a refusal answered at once still costs the gateway about a tenth of a millisecond (HTTP, a lookup,
the JSON), and a client that ignores ``retryAfter`` and resends at once turns that into a busy loop of
thousands of refusals a second, a core's worth, which the other callers' requests then wait behind
(docs/ISOLATION.md). Holding such a caller's refusal until its ``retryAfter`` is due (at most
``HOLD_MAX``) bounds it at about one request per connection per hold, for the price of a sleeping
coroutine. Each hold is drawn between half and all of that time, so that refusals held together do not
all come back at the same instant. A caller that waits as told is never held: its refusals stay instant
(fail fast). At most ``MAX_HELD`` refusals are held at once; past that they are answered at once.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import OrderedDict
from collections.abc import Callable

HOLD_MAX = 1.0  # seconds
MAX_HELD = 1_000  # refusals held at once, over all callers
MAX_CALLERS = 10_000  # callers whose due time is remembered (least recently refused dropped)


class Impatience:
    def __init__(self, clock: Callable[[], float] = time.monotonic, *, hold_max: float = HOLD_MAX,
                 max_held: int = MAX_HELD, spread: Callable[[], float] = lambda: random.uniform(0.5, 1.0)) -> None:
        self._clock = clock
        self._spread = spread
        self.hold_max = hold_max
        self.max_held = max_held
        self.holding = 0  # refusals being held now
        self._due: OrderedDict[str, float] = OrderedDict()  # caller -> when it was told it may come back

    def hold_for(self, caller: str) -> float:
        """Seconds to hold a refusal for ``caller`` now: 0 unless it came back before it was told to."""
        due = self._due.get(caller)
        if due is None:
            return 0.0
        left = due - self._clock()
        if left <= 0:
            del self._due[caller]
            return 0.0
        return 0.0 if self.holding >= self.max_held else min(left, self.hold_max) * self._spread()

    async def hold(self, caller: str) -> float:
        """Wait as long as ``hold_for`` says; the seconds waited."""
        seconds = self.hold_for(caller)
        if seconds > 0:
            self.holding += 1
            try:
                await asyncio.sleep(seconds)
            finally:
                self.holding -= 1
        return seconds

    def told(self, caller: str, retry_after: float) -> None:
        """``caller`` was just refused and told to come back in ``retry_after`` seconds."""
        due = self._clock() + retry_after
        if due > self._due.get(caller, 0.0):
            self._due[caller] = due
        self._due.move_to_end(caller)
        while len(self._due) > MAX_CALLERS:
            self._due.popitem(last=False)
