"""Cache and coalescing keys: a keyed hash of the caller, the upstream path, canonical parameters.

``lg1:<caller>.<generation>:/user/leads?<filter params>`` names a *group* (one caller, one filter); a
page key adds ``#page=<k>&per_page=<p>``. ``<caller>.<generation>`` is the caller's *scope*: a write bumps
the generation, and every key of the caller's cached data changes at once (``page_cache.py``). Records
that must outlive that (idempotency keys) use the bare caller: ``lg1:<caller>:idempotency:<sha256>``. The caller part is ``HMAC-SHA256(secret, token)``: the token itself never
reaches a key, a value, a log or a metric, and without the secret a key cannot be tied to a token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlencode

from gateway.leads.filter import ListFilter
from gateway.leads.pagination import PageRef

PREFIX = "lg1"
CALLERS_REMEMBERED = 10_000
LEADS_PATH = "/user/leads"


class KeyMaker:
    def __init__(self, secret: str | None) -> None:
        # Unset: random per process. Correct, but entries are then private to this process.
        self._secret = (secret or secrets.token_hex(32)).encode()
        self._callers: dict[str, str] = {}  # token -> caller: one HMAC per token, not per request

    def caller(self, token: str) -> str:
        caller = self._callers.get(token)
        if caller is None:
            caller = hmac.new(self._secret, token.encode(), hashlib.sha256).hexdigest()[:32]
            if len(self._callers) >= CALLERS_REMEMBERED:
                self._callers.clear()  # bounded; a full recompute is cheap and rare
            self._callers[token] = caller
        return caller

    def document(self, digest: str) -> str:
        """The record of a document registered by its sha256 (APQ): keyed with the secret, so that only
        instances sharing it share registrations (documents are the same for every caller)."""
        return f"{PREFIX}:apq:{hmac.new(self._secret, digest.encode(), hashlib.sha256).hexdigest()[:32]}"

    @staticmethod
    def scope(caller: str, generation: int) -> str:
        return f"{caller}.{generation}"

    @staticmethod
    def caller_of(scope: str) -> str:
        """The bare caller of a scope."""
        return scope.rpartition(".")[0] or scope

    @staticmethod
    def idempotency(caller: str, key: str) -> str:
        """The record of a client's idempotency key (hashed: the client chooses it, it may say anything)."""
        return f"{PREFIX}:{caller}:idempotency:{hashlib.sha256(key.encode('utf-8', 'surrogatepass')).hexdigest()[:32]}"

    @staticmethod
    def group(caller: str, lead_filter: ListFilter) -> str:
        return f"{PREFIX}:{caller}:{LEADS_PATH}?{urlencode(lead_filter.params)}"

    @staticmethod
    def page(group: str, ref: PageRef) -> str:
        return f"{group}#page={ref.page}&per_page={ref.per_page}"
