"""The page cache: see ``page_cache.py`` for the freshness rules, ``keys.py`` for what keys contain."""

from __future__ import annotations

from gateway.datasource.cache.page_cache import PageCache, Served
from gateway.datasource.cache.stores import MemoryStore, RedisStore, ResilientStore
from gateway.config import Settings
from gateway.observability.metrics import Stats

__all__ = ["PageCache", "Served", "build_page_cache"]


def build_page_cache(settings: Settings, stats: Stats) -> PageCache:
    local = MemoryStore(max_leads=settings.cache_max_leads)
    if settings.cache_url.startswith("redis://"):
        store = ResilientStore(RedisStore(settings.cache_url), fallback=local)
    else:
        store = local
    return PageCache(store, ttl=settings.cache_ttl, swr=settings.cache_swr,
                     stale_if_error=settings.cache_stale_if_error, secret=settings.cache_secret,
                     wait_limit=settings.upstream_timeout, stats=stats)
