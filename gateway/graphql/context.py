"""Per-request context: who the caller is, and the loaders that dedupe upstream calls in one operation."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from functools import partial

from starlette.requests import Request
from strawberry.dataloader import DataLoader

from gateway.datasource.cache import PageCache
from gateway.config import UPSTREAM_MAX_PER_PAGE, Settings
from gateway.errors import Unauthenticated
from gateway.datasource.reader import LeadReader
from gateway.datasource.client import LeadsAPI, PageRequest
from gateway.leads.filter import ListFilter
from gateway.leads.records import LeadPage, LeadRecord


def bearer_token(request: Request, demo_token: str | None) -> str | None:
    """The caller's bearer token; ``demo_token`` stands in for a missing header in ``--demo`` mode."""
    header = request.headers.get("authorization")
    if header is None:
        return demo_token
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None  # a malformed header is never replaced by the demo token
    return token.strip()


def wants_fresh(request: Request) -> bool:
    """``Cache-Control: no-cache`` (or HTTP/1.0 ``Pragma: no-cache``): do not answer from cached pages."""
    directives = request.headers.get("cache-control", "") + "," + request.headers.get("pragma", "")
    return any(d.strip().lower() == "no-cache" for d in directives.split(","))


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
        self.bypass_cache = wants_fresh(self.request)
        self.page_loader: DataLoader[PageRequest, LeadPage] = DataLoader(load_fn=self._load_pages)
        self.reader = LeadReader(self.page_loader.load, cached_pages=self._fresh_pages, seen_leads=self._seen_leads,
                                 count_reuse=self.cache.count_reuse,
                                 max_per_page=UPSTREAM_MAX_PER_PAGE,
                                 lookup_max_pages=self.settings.lookup_max_pages, warnings=self.warnings)
        self.lead_loader: DataLoader[int, LeadRecord | None] = DataLoader(load_fn=self._load_leads)

    @property
    def caller(self) -> str:
        """The caller's key part (an HMAC of the token); no token, no upstream call."""
        if self.token is None:
            raise Unauthenticated("A bearer token is required: send `Authorization: Bearer <token>`.")
        if self._caller is None:
            self._caller = self.cache.caller(self.token)
        return self._caller

    async def _fresh_pages(self, query: ListFilter) -> list[LeadPage]:
        caller = self.caller
        return [] if self.bypass_cache else await self.cache.fresh_pages(caller, query)

    def _seen_leads(self, ids) -> dict[int, LeadRecord]:
        return {} if self.bypass_cache else self.cache.seen_leads(self.caller, ids)

    async def _load_pages(self, requests: list[PageRequest]) -> list[LeadPage | BaseException]:
        caller = self.caller
        calls = (self._load_page(caller, r) for r in requests)
        return await asyncio.gather(*calls, return_exceptions=True)

    async def _load_page(self, caller: str, request: PageRequest) -> LeadPage:
        served = await self.cache.get_or_fetch(caller, request.query, request.page,
                                               partial(self.api.fetch_page, self.token, request),
                                               bypass=self.bypass_cache)
        if served.stale == "upstream-error":
            self._warn_stale(served.age, served.error_code)
        return served.page

    def _warn_stale(self, age: float, error_code: str | None) -> None:
        for w in self.warnings:
            if w["code"] == "STALE_DATA":
                w["ageSeconds"] = max(w["ageSeconds"], round(age, 1))
                return
        self.warnings.append({
            "code": "STALE_DATA",
            "message": "The upstream failed; some leads come from a cached page past its freshness lifetime.",
            "upstreamError": error_code, "ageSeconds": round(age, 1)})

    async def _load_leads(self, ids: list[int]) -> list[LeadRecord | None]:
        result = await self.reader.find(ids)
        return [result.found.get(i) for i in ids]
