"""Documents registered by Apollo's automatic persisted queries (APQ), by the sha256 of their text.

Held in process, least recently used first out, up to ``max_bytes`` of text; with a shared cache backend
(Redis) also there, for ``ttl`` seconds, so that a document registered on one instance runs by its hash on
every other. A text read back from the backend is used only if it still hashes to its key: the backend is
trusted with availability, not with which document runs.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict

from gateway.datasource.cache.keys import KeyMaker

log = logging.getLogger("gateway.cache")


class DocumentStore:
    def __init__(self, store, keys: KeyMaker, *, max_bytes: int, ttl: float) -> None:
        self.store = store
        self.keys = keys
        self.shared = getattr(store, "backend", "memory") != "memory"  # Redis (while down: its fallback answers)
        self.max_bytes = max_bytes
        self.ttl = ttl
        self.bytes = 0
        self._texts: OrderedDict[str, str] = OrderedDict()  # digest -> text

    def __len__(self) -> int:
        return len(self._texts)

    async def get(self, digest: str) -> str | None:
        text = self._texts.get(digest)
        if text is not None:
            self._texts.move_to_end(digest)
            return text
        if not self.shared:
            return None
        record = await self.store.get_record(self.keys.document(digest))
        text = record.get("text") if record else None
        if not isinstance(text, str) or _sha256(text) != digest:
            if text is not None:
                log.warning("dropping a registered document that does not match its hash")
            return None
        self._keep(digest, text)
        return text

    async def put(self, digest: str, text: str) -> None:
        known = digest in self._texts
        self._keep(digest, text)
        if self.shared and not known:
            await self.store.put_record(self.keys.document(digest), {"text": text}, self.ttl)

    def _keep(self, digest: str, text: str) -> None:
        if digest in self._texts:
            self._texts.move_to_end(digest)
            return
        if len(text) > self.max_bytes:
            return
        self._texts[digest] = text
        self.bytes += len(text)
        while self.bytes > self.max_bytes:
            _, old = self._texts.popitem(last=False)
            self.bytes -= len(old)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
