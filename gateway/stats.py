"""Counters of upstream and cache activity (exposed by the metrics endpoint; read by tests meanwhile)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Stats:
    upstream_requests: Counter = field(default_factory=Counter)  # by outcome: "ok" or an error code
    cache_hits: int = 0
    cache_misses: int = 0
    stale_served: Counter = field(default_factory=Counter)  # by reason: "revalidating", "upstream-error"
    coalesced_waiters: Counter = field(default_factory=Counter)  # by scope: "process", "instances"

    def snapshot(self) -> dict:
        return {
            "upstream_requests": dict(self.upstream_requests),
            "cache_hits": self.cache_hits,
            "cache_misses": self.cache_misses,
            "stale_served": dict(self.stale_served),
            "coalesced_waiters": dict(self.coalesced_waiters),
        }
