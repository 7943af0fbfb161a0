"""What a live subscription watches, how subscribers are grouped, and the state a poll yields (no I/O).

A *group* is one caller's one watch: every subscriber of it, on every instance, shares one poller. Its id
is a digest of the caller's key part (an HMAC of the token, never the token) and the watch's canonical
key, so it can name Redis keys and channels without telling anything about either.

A poll's outcome is a ``State``: the window (or the lead) encoded canonically, and the digest of that
encoding. Two polls that read the same leads give the same digest; the poller pushes only when it changes
(Hasura's "hash of the last result").
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from urllib.parse import urlencode

import orjson

from gateway.datasource.cache.codec import decode_lead, encode_lead
from gateway.datasource.reader import Window
from gateway.errors import GatewayError, error_from_note, error_to_note
from gateway.leads.filter import ListFilter
from gateway.leads.pagination import WindowRequest
from gateway.leads.records import LeadRecord


@dataclass(frozen=True, slots=True)
class WindowWatch:
    """``Subscription.leads``: a window of a filtered list (``first`` leads after a position)."""

    filter: ListFilter
    request: WindowRequest

    @property
    def key(self) -> str:
        return f"w?{urlencode(self.filter.params)}#{self.request.lo}+{self.request.first}"


@dataclass(frozen=True, slots=True)
class LeadWatch:
    """``Subscription.lead``: one lead by id."""

    lead_id: int

    @property
    def key(self) -> str:
        return f"l#{self.lead_id}"


Watch = WindowWatch | LeadWatch


def group_id(caller: str, watch: Watch) -> str:
    """The group's name: the same for every instance sharing a cache secret, opaque to anyone else."""
    return hashlib.sha256(f"{caller}\0{watch.key}".encode()).hexdigest()[:32]


def narrow_filter(lead: LeadRecord) -> ListFilter:
    """A filter that matches almost only this lead (its phone number, campaign and creation day), so a
    watched lead is read with one small page instead of a scan of the caller's list."""
    day = lead.created_at.date()
    return ListFilter(campaign_id=lead.campaign_id, phone_number=lead.phone_number, date_from=day, date_to=day)


@dataclass(frozen=True, slots=True)
class State:
    """One poll's outcome: a window, a lead (or None: gone), or an error that ends the subscriptions.

    ``body`` is the canonical encoding, ``digest`` its hash: what is compared and what is published."""

    body: bytes
    digest: str
    value: Window | LeadRecord | GatewayError | None = field(compare=False)
    # What the layers above build once from ``value`` for every subscriber of this state (its GraphQL payload).
    memo: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def final(self) -> bool:
        """An error: the subscribers get it and their subscriptions end."""
        return isinstance(self.value, GatewayError)


def _state(data: dict, value) -> State:
    body = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    return State(body, hashlib.sha256(body).hexdigest()[:32], value)


def window_state(window: Window) -> State:
    # Only what subscribers see: positions, total and the leads (not fetch times nor warnings).
    return _state({"w": [window.start, window.stop, window.total, [encode_lead(r) for r in window.leads]]}, window)


def lead_state(lead: LeadRecord | None) -> State:
    return _state({"l": encode_lead(lead) if lead is not None else None}, lead)


def error_state(error: GatewayError) -> State:
    return _state({"e": error_to_note(error)}, error)


def decode_state(body: bytes, watch: Watch) -> State:
    """A state published by another instance; ``ValueError`` when it is not one."""
    try:
        data = orjson.loads(body)
        if "e" in data:
            return State(body, hashlib.sha256(body).hexdigest()[:32], error_from_note(data["e"]))
        if isinstance(watch, LeadWatch):
            raw = data["l"]
            return State(body, hashlib.sha256(body).hexdigest()[:32], decode_lead(raw) if raw is not None else None)
        start, stop, total, leads = data["w"]
        window = Window(watch.filter, int(start), int(stop), int(total), tuple(decode_lead(r) for r in leads))
        return State(body, hashlib.sha256(body).hexdigest()[:32], window)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed live state: {type(exc).__name__}") from None
