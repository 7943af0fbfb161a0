"""What one HTTP request carries through every layer: its id, its deadline, and what it cost.

Held in a context variable set by the request middleware, so the upstream client can forward the
request id and respect the deadline, and the cache can count hits, without every signature in
between passing them along. Tasks started during the request (DataLoader batches) inherit it.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass
class RequestScope:
    request_id: str
    deadline: float | None = None  # time.monotonic() by which the operation must be answered
    executed: bool = False  # a GraphQL operation ran (set by the GraphQL layer)
    operation: str | None = None
    upstream_calls: int = 0
    cache_hits: int = 0
    error_codes: list[str] = field(default_factory=list)
    # When the oldest page (or remembered lead) this request's answer was built from was fetched (epoch
    # seconds); None: no upstream data. An answer is only as fresh as its oldest page (the result cache).
    data_fetched_at: float | None = None

    def note_data(self, fetched_at: float) -> None:
        if self.data_fetched_at is None or fetched_at < self.data_fetched_at:
            self.data_fetched_at = fetched_at

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()


_current: ContextVar[RequestScope | None] = ContextVar("leads_gateway_request", default=None)


def current() -> RequestScope | None:
    return _current.get()


def enter(scope: RequestScope):
    """Make ``scope`` current; returns the token for ``leave``."""
    return _current.set(scope)


def leave(token) -> None:
    _current.reset(token)


def remaining(default: float) -> float:
    """Seconds left before the current request's deadline (``default`` outside a request)."""
    scope = _current.get()
    left = scope.remaining() if scope is not None else None
    return default if left is None else left
