"""Per-request context: who the caller is, and the loaders that dedupe upstream calls in one operation."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from functools import partial

from starlette.requests import Request
from strawberry.dataloader import DataLoader

from gateway.cache import PageCache
from gateway.config import UPSTREAM_MAX_PER_PAGE, Settings
from gateway.errors import Unauthenticated
from gateway.leads import LeadReader
from gateway.upstream.client import LeadsAPI, PageRequest
from gateway.upstream.models import LeadPage, LeadRecord


def bearer_token(request: Request, demo_token: str | None) -> str | None:
    """The caller's bearer token; ``demo_token`` stands in for a missing header in ``--demo`` mode."""
    header = request.headers.get("authorization")
    if header is None:
        return demo_token
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None  # a malformed header is never replaced by the demo token
    return token.strip()


@dataclass
class GatewayContext:
    """What resolvers see as ``info.context``."""

    request: Request
    settings: Settings
    api: LeadsAPI
    cache: PageCache
    token: str | None
    warnings: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._caller: str | None = None
        self.page_loader: DataLoader[PageRequest, LeadPage] = DataLoader(load_fn=self._load_pages)
        self.reader = LeadReader(self.page_loader.load, max_per_page=UPSTREAM_MAX_PER_PAGE,
                                 lookup_max_pages=self.settings.lookup_max_pages, warnings=self.warnings)
        self.lead_loader: DataLoader[int, LeadRecord | None] = DataLoader(load_fn=self._load_leads)

    async def _load_pages(self, requests: list[PageRequest]) -> list[LeadPage | BaseException]:
        if self.token is None:
            raise Unauthenticated("A bearer token is required: send `Authorization: Bearer <token>`.")
        if self._caller is None:
            self._caller = self.cache.caller(self.token)
        calls = (self.cache.get_or_fetch(self._caller, r, partial(self.api.fetch_page, self.token, r))
                 for r in requests)
        return await asyncio.gather(*calls, return_exceptions=True)

    async def _load_leads(self, ids: list[int]) -> list[LeadRecord | None]:
        result = await self.reader.find(ids)
        return [result.found.get(i) for i in ids]
