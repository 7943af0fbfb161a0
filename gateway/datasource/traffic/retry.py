"""When to try an upstream call again (in the spirit of Hive's useUpstreamRetry).

Retried: what ``Outcome.retryable`` says (no answer, 502/503/504, 429), with exponential backoff and full
jitter, at most ``retries`` times, honouring ``Retry-After`` up to a cap, and never past the request's
deadline. A refusal by the gateway itself (a breaker, a full queue) is not an upstream outcome and is never
retried: waiting out an open breaker would only turn fail-fast into fail-slow.
"""

from __future__ import annotations

import random

from gateway.datasource.traffic.outcome import Outcome

BACKOFF_BASE = 0.1  # seconds; attempt n waits up to BACKOFF_BASE * 2**n
BACKOFF_MAX = 2.0


def retry_delay(outcome: Outcome, retry_after: float | None, attempt: int, retry_after_max: float,
                rng: random.Random | None = None) -> float | None:
    """Seconds to wait before attempt ``attempt + 1``, or None when this outcome should not be retried."""
    if not outcome.retryable:
        return None
    backoff = (rng.uniform if rng is not None else random.uniform)(0, min(BACKOFF_MAX, BACKOFF_BASE * 2 ** attempt))
    if retry_after is not None:
        if retry_after > retry_after_max:
            return None  # the upstream asks for longer than we may wait: tell the client instead
        return max(float(retry_after), backoff)
    return backoff
