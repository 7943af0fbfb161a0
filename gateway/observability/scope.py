"""What one HTTP request carries for its log line and metrics: its id and what it cost.

Held in a context variable set by the request middleware (``http/middleware.py``), so the upstream
client can forward the request id and every layer can count what the request cost, without every
signature in between passing them along. Tasks started during the request inherit it.

Nothing here decides what a request answers: deadlines, freshness and warnings are passed and
returned explicitly (``datasource/source.py``).
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass(slots=True)  # one per request: slots make it and its counters cheaper
class RequestScope:
    request_id: str
    executed: bool = False  # a GraphQL operation ran (set by the GraphQL layer)
    operation: str | None = None
    operation_type: str | None = None  # "query", "mutation" (the result cache stores answers to queries only)
    upstream_calls: int = 0
    cache_hits: int = 0
    error_codes: list[str] = field(default_factory=list)


_current: ContextVar[RequestScope | None] = ContextVar("leads_gateway_request", default=None)


def current() -> RequestScope | None:
    return _current.get()


def enter(scope: RequestScope):
    """Make ``scope`` current; returns the token for ``leave``."""
    return _current.set(scope)


def leave(token) -> None:
    _current.reset(token)
