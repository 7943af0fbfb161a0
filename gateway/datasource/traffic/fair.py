"""``FairLimiter``: the upstream's concurrency, shared fairly between callers, and adapted to the upstream.

- **A share per caller.** One caller holds at most ``share`` of the slots (``cap``), whether or not others
  are waiting at that moment: a quiet caller that arrives during another's flood of slow queries finds a
  free slot at once instead of waiting for one of the slow queries to end (Netflix's partitioned limiter
  and Kubernetes' API Priority and Fairness reserve capacity the same way). ``share = 1`` gives it all.
- **Per-caller queues, served round-robin** (APF's fair queuing, with equal weights): when a slot frees,
  the next caller in turn that is under its cap gets it, so a caller with a hundred waiting calls does not
  go before one with a single waiting call. A queue holds at most ``queue_max`` calls and a call waits at
  most ``queue_timeout`` seconds (between 80 % and all of it, drawn per call, so that calls queued
  together do not all give up at once); past either it is refused (``Rejected``, which the client turns into
  ``RATE_LIMITED`` with ``retryAfter``).
- **AIMD.** The total limit shrinks by ``BACKOFF`` on every outcome that says the upstream is overloaded
  (no answer, 502/503/504, and timeouts or 429s when more than one caller gets them: one caller's slow
  queries or per-user throttling are its own business), and grows back by one slot per ``limit`` successes, up to the
  configured concurrency, never below ``min_limit``.
"""

from __future__ import annotations

import asyncio
import random
from collections import OrderedDict, deque
from collections.abc import Callable

from gateway.datasource.traffic.outcome import Outcome

BACKOFF = 0.9  # Netflix's AIMDLimit default backoff ratio
QUEUE_TIMEOUT_SPREAD = 0.2  # a call's longest wait: between 80 % and all of queue_timeout
QUEUE_FULL_RETRY = 1.0  # seconds: a slot frees as soon as one of the caller's calls ends


class Rejected(Exception):
    """No slot for this call: ``reason`` is "queue_full" or "queue_timeout"."""

    def __init__(self, reason: str, retry_after: float) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class FairLimiter:
    def __init__(self, limit: int, *, share: float, queue_max: int, queue_timeout: float,
                 clock: Callable[[], float], window: float = 10.0, min_limit: int | None = None,
                 spread: Callable[[], float] = lambda: random.uniform(1 - QUEUE_TIMEOUT_SPREAD, 1.0)) -> None:
        self._wait_spread = spread
        self.max_limit = limit
        self.min_limit = min(limit, min_limit if min_limit is not None else max(1, limit // 8))
        self.limit = float(limit)
        self.share = share
        self.queue_max = queue_max
        self.queue_timeout = queue_timeout
        self._clock = clock
        self._window = window
        self.total = 0  # slots held
        self._held: dict[str, int] = {}
        self._queues: OrderedDict[str, deque[asyncio.Future]] = OrderedDict()
        self._troubled: dict[str, float] = {}  # caller -> when it last saw a timeout or a 429

    @property
    def capacity(self) -> int:
        return max(1, int(self.limit))

    @property
    def cap(self) -> int:
        """Slots one caller may hold."""
        return max(1, int(self.limit * self.share))

    @property
    def queued(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def queue_full(self, caller: str) -> bool:
        """``caller``'s queue is at its bound: its next call would be refused."""
        queue = self._queues.get(caller)
        return queue is not None and len(queue) >= self.queue_max

    def held(self, caller: str) -> int:
        return self._held.get(caller, 0)

    async def acquire(self, caller: str, timeout: float) -> None:
        """Take a slot for ``caller``, waiting at most ``timeout`` seconds (``TimeoutError`` past it; a wait
        cut short by ``queue_timeout`` instead is ``Rejected``)."""
        if self.total < self.capacity and self.held(caller) < self.cap and caller not in self._queues:
            self._take(caller)
            return
        queue = self._queues.get(caller)
        if queue is None:
            queue = self._queues[caller] = deque()
        if len(queue) >= self.queue_max:
            if not queue:
                del self._queues[caller]
            raise Rejected("queue_full", QUEUE_FULL_RETRY)
        waiter = asyncio.get_running_loop().create_future()
        queue.append(waiter)
        # Each call's longest wait is drawn from the last fifth of queue_timeout: calls queued in one burst
        # must not all give up (and be answered, and be resent) in the same instant, a stall for everyone.
        longest = self.queue_timeout * self._wait_spread()
        by_queue = longest <= timeout
        try:
            async with asyncio.timeout(min(timeout, longest)):
                await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self.release(caller, None)  # granted as the wait ended: give it back to the next in line
            else:
                self._forget(caller, waiter)
            if isinstance(exc, TimeoutError) and by_queue:
                raise Rejected("queue_timeout", max(1.0, self.queue_timeout)) from None
            raise

    def release(self, caller: str, outcome: Outcome | None) -> None:
        """Give back ``caller``'s slot; ``outcome`` (None: cancelled, says nothing) adapts the limit."""
        held = self._held[caller] - 1
        if held:
            self._held[caller] = held
        else:
            del self._held[caller]
        self.total -= 1
        if outcome is not None:
            self._adapt(caller, outcome)
        self._dispatch()

    def _take(self, caller: str) -> None:
        self._held[caller] = self._held.get(caller, 0) + 1
        self.total += 1

    def _forget(self, caller: str, waiter: asyncio.Future) -> None:
        queue = self._queues.get(caller)
        if queue is not None:
            try:
                queue.remove(waiter)
            except ValueError:
                pass
            if not queue:
                del self._queues[caller]

    def _dispatch(self) -> None:
        """Hand free slots to waiting callers in turn (a caller served goes to the back of the line)."""
        while self.total < self.capacity and self._queues:
            for caller, queue in self._queues.items():
                while queue and queue[0].done():  # cancelled waiters
                    queue.popleft()
                if queue and self.held(caller) < self.cap:
                    queue.popleft().set_result(None)
                    self._take(caller)
                    if queue:
                        self._queues.move_to_end(caller)
                    else:
                        del self._queues[caller]
                    break
            else:
                # Nobody could be served: drop emptied queues and stop (callers at their cap wait for a release).
                for caller in [c for c, q in self._queues.items() if not q]:
                    del self._queues[caller]
                return

    def _adapt(self, caller: str, outcome: Outcome) -> None:
        if outcome.overload or (outcome in (Outcome.TIMEOUT, Outcome.SLOW_DOWN) and self._spread(caller)):
            self.limit = max(float(self.min_limit), self.limit * BACKOFF)
        elif outcome is Outcome.OK and self.limit < self.max_limit:
            self.limit = min(float(self.max_limit), self.limit + 1.0 / self.limit)

    def _spread(self, caller: str) -> bool:
        """Note that ``caller`` saw a timeout or a 429; True when another caller did too, within the window."""
        now = self._clock()
        self._troubled[caller] = now
        for other, when in list(self._troubled.items()):
            if when <= now - self._window:
                del self._troubled[other]
        return len(self._troubled) >= 2
