"""Result cache: a repeat of the same query by the same caller, within the TTL, answered from stored bytes.

In process only (never Redis: a result is cheap to recompute from the shared page cache, and the final
bytes of one caller's answer are the last thing to put on a network). A bounded LRU, by total bytes
(``GATEWAY_RESULT_CACHE_BYTES``, 0: off); an entry expires ``GATEWAY_CACHE_TTL`` after the oldest page it
was built from was fetched, or after its computation started if that is earlier (TTL 0: off), so it is
never served later than the page cache would serve its pages. The clock is the page cache's (epoch
seconds, ``time.time``), since pages carry their fetch time in it.

Key: the caller's HMAC (the page cache's ``KeyMaker``, never the token) and a SHA-256 of the exact
document text, the canonical JSON of the variables and extensions, the operation name and the
negotiated response media type. Only clean answers are stored (see ``view.py``): 200, executed, no
``errors``, no ``extensions.warnings``, built only from fresh pages.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson

ENTRY_OVERHEAD = 200  # bytes counted per entry on top of its key and body (object headers, dict slot)


@dataclass(frozen=True, slots=True)
class CachedResult:
    body: bytes
    status: int
    content_type: str
    operation: str | None  # the operation's name as execution resolved it (for logs and metrics)
    expires: float  # clock(): epoch seconds

    @property
    def size(self) -> int:
        return len(self.body) + ENTRY_OVERHEAD


def result_key(caller: str, query: str, variables: dict[str, Any] | None, operation_name: str | None,
               extensions: dict[str, Any] | None, media: str) -> str:
    """``<caller>:<sha256>``: the caller in clear (an HMAC already), everything else hashed."""
    parts = [query, variables or {}, operation_name, extensions or {}, media]
    try:  # orjson is several times faster; what it refuses (lone surrogates, huge integers) takes json
        canonical = b"o" + orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONEncodeError, TypeError):
        canonical = b"j" + json.dumps(parts, sort_keys=True, separators=(",", ":"),
                                      ensure_ascii=False).encode("utf-8", "surrogatepass")
    digest = hashlib.sha256(canonical).hexdigest()
    return f"{caller}:{digest}"


class ResultCache:
    def __init__(self, *, max_bytes: int, ttl: float, clock=time.time) -> None:
        self.max_bytes = max_bytes
        self.ttl = ttl
        self.clock = clock
        self.bytes = 0
        self._entries: OrderedDict[str, CachedResult] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0 and self.ttl > 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> CachedResult | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires <= self.clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, key: str, body: bytes, status: int, content_type: str, operation: str | None,
            fresh_from: float) -> bool:
        """Store an answer whose oldest data is from ``fresh_from`` (``clock()``); False when not kept."""
        if not self.enabled:
            return False
        entry = CachedResult(body, status, content_type, operation, fresh_from + self.ttl)
        size = entry.size + len(key)
        if size > self.max_bytes or entry.expires <= self.clock():
            return False
        if key in self._entries:
            self._drop(key)
        self._entries[key] = entry
        self.bytes += size
        while self.bytes > self.max_bytes:
            oldest = next(iter(self._entries))
            self._drop(oldest)
        return True

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key)
        self.bytes -= entry.size + len(key)

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0
