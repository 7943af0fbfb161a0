"""Impatience: a caller that comes back before its retryAfter has its refusal held; one that waits does not."""

from __future__ import annotations

import asyncio
import time

from gateway.http.impatience import Impatience


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_only_a_caller_that_comes_back_early_is_held_and_never_past_its_due_time_or_the_maximum():
    clock = Clock()
    impatience = Impatience(clock, hold_max=1.0, spread=lambda: 1.0)
    assert impatience.hold_for("a") == 0.0  # never refused: never held
    impatience.told("a", 3)
    assert impatience.hold_for("a") == 1.0  # came back at once: held the maximum
    clock.now += 2.5
    assert impatience.hold_for("a") == 0.5  # only until it was due
    assert impatience.hold_for("b") == 0.0  # another caller's refusals are its own
    clock.now += 0.5
    assert impatience.hold_for("a") == 0.0  # waited as told: answered at once
    impatience.told("a", 5)
    impatience.told("a", 1)  # a shorter retryAfter does not bring the due time forward
    clock.now += 4
    assert impatience.hold_for("a") == 1.0
    # Held refusals are spread over the second half of the hold, so that they do not all return at once.
    spread = Impatience(clock, hold_max=1.0, spread=lambda: 0.5)
    spread.told("a", 3)
    assert spread.hold_for("a") == 0.5


async def test_holds_are_real_waits_and_bounded_in_number():
    impatience = Impatience(hold_max=0.2, max_held=2, spread=lambda: 1.0)
    for caller in "abc":
        impatience.told(caller, 10)
    started = time.monotonic()
    waited = await asyncio.gather(*(impatience.hold(c) for c in "abc"))
    elapsed = time.monotonic() - started
    assert sorted(waited) == [0.0, 0.2, 0.2]  # the third found two held already: answered at once
    assert 0.19 <= elapsed < 0.5
    assert impatience.holding == 0
