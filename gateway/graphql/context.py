"""Per-request context: the caller's ``LeadsSource`` and a batcher for lookups by id.

``ContextFactory`` is what the HTTP layer holds: it makes a context per operation from what the request
said (token, ``no-cache``, deadline), names the caller for keys of its own (the result cache) and says
whether the caller is refused upstream calls right now (so that the view refuses before executing).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field

from strawberry.dataloader import DataLoader

from gateway.datasource.source import LeadsSource, LeadsSources
from gateway.errors import GatewayError
from gateway.leads.records import LeadRecord


@dataclass
class GatewayContext:
    """What resolvers see as ``info.context``."""

    source: LeadsSource
    max_page_size: int
    # Live transports (subscriptions): what a new source per event needs, and this connection's bound.
    sources: LeadsSources | None = None
    token: str | None = None
    max_subscriptions: int = 0  # at once on a WebSocket
    connection_params: dict | None = None  # a WebSocket's `connection_init` payload (strawberry sets it)
    # Lookups by id from every resolver of one operation (``node``, ``nodes``, federation entities) share
    # one scan of the caller's list.
    lead_loader: DataLoader[int, LeadRecord | None] = field(init=False)

    def __post_init__(self) -> None:
        # The loader gets the source, not this context: a bound method of the context would make a
        # reference cycle (context -> loader -> context), and everything the request read would then wait
        # for the cyclic collector instead of going when the request ends.
        self.lead_loader = DataLoader(load_fn=functools.partial(_load_leads, self.source))

    @property
    def streaming(self) -> bool:
        """A subscription's context (WebSocket, SSE, multipart), not one request's."""
        return self.sources is not None

    @property
    def warnings(self) -> list[dict]:
        """The operation's warnings, for ``extensions.warnings`` of the response."""
        return self.source.warnings

    def connect(self, token: str | None) -> None:
        """A WebSocket's caller, once its `connection_init` named it."""
        self.token = token
        self.renew()

    def renew(self) -> None:
        """A fresh source for the next event of a subscription: each event reads under the caller's scope of
        the moment (a write in between is seen) and keeps nothing of the previous one."""
        self.release()
        self.source = self.sources.open(self.token, deadline=time.monotonic() + self.sources.settings.request_timeout)
        self.lead_loader = DataLoader(load_fn=functools.partial(_load_leads, self.source))

    def release(self) -> None:
        """The operation is answered: drop what it read (pages, looked-up leads) now, not at the cyclic
        collector's next pass (``LeadsSource.release``)."""
        self.lead_loader.clear_all()
        self.source.release()


async def _load_leads(source: LeadsSource, ids: list[int]) -> list[LeadRecord | None]:
    result = await source.leads_by_id(ids)
    return [result.found.get(i) for i in ids]


class ContextFactory:
    def __init__(self, sources: LeadsSources, *, max_page_size: int) -> None:
        self.sources = sources
        self.max_page_size = max_page_size

    def caller(self, token: str) -> str:
        """The caller's key part (an HMAC of the token), for keys of the layers above."""
        return self.sources.caller(token)

    async def scope(self, caller: str) -> str:
        """The caller's scope now (HMAC and generation): the key part of cached answers, which a write by this
        caller changes on every instance (``LeadsSources.scope``)."""
        return await self.sources.scope(caller)

    def refusal(self, caller: str) -> GatewayError | None:
        """Whether the caller is refused upstream calls right now (see ``LeadsSources.refusal``)."""
        return self.sources.refusal(caller)

    def live(self, token: str | None = None) -> GatewayContext:
        """The context of a WebSocket connection (its token comes with `connection_init`), or of one SSE or
        multipart subscription request."""
        return GatewayContext(self.sources.open(token), self.max_page_size, sources=self.sources, token=token,
                              max_subscriptions=self.sources.settings.live_max_per_connection)

    def create(self, token: str | None, *, fresh: bool, deadline: float | None,
               scope: str | None = None) -> GatewayContext:
        return GatewayContext(self.sources.open(token, fresh=fresh, deadline=deadline, scope=scope),
                              self.max_page_size)
