"""Compact JSON for cached pages (never pickle: a shared Redis must not be a code-execution path)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime

from gateway.leads.records import CampaignRef, ContactRecord, LeadPage, LeadRecord


@dataclass(frozen=True, slots=True)
class Entry:
    """A cached page and when it was fetched (epoch seconds, shared by every instance)."""

    page: LeadPage
    fetched_at: float


def _contact(c: ContactRecord) -> list:
    return [c.id, c.phone_number, c.variables, c.status, c.created_at.isoformat(), c.updated_at.isoformat()]


def _lead(r: LeadRecord) -> list:
    campaign = None if r.campaign is None else [r.campaign.id, r.campaign.name]
    return [r.id, r.campaign_id, r.phone_number, r.variables, r.status, r.created_at.isoformat(),
            r.updated_at.isoformat(), campaign, [_contact(c) for c in r.secondary_contacts]]


def encode_lead(record: LeadRecord) -> list:
    """One lead as compact JSON-ready data (idempotency records keep the lead they answered with)."""
    return _lead(record)


def decode_lead(data: list) -> LeadRecord:
    """The inverse of ``encode_lead``; ``ValueError`` on anything else."""
    try:
        return _record(data)
    except (KeyError, TypeError, IndexError, AttributeError, OverflowError, RecursionError) as exc:
        raise ValueError(f"malformed lead: {type(exc).__name__}") from None


def _record(data: list) -> LeadRecord:
    i, cid, phone, variables, status, created, updated, camp, contacts = data
    return LeadRecord(id=i, campaign_id=cid, phone_number=phone, variables=variables, status=status,
                      created_at=datetime.fromisoformat(created), updated_at=datetime.fromisoformat(updated),
                      campaign=None if camp is None else CampaignRef(camp[0], camp[1]),
                      secondary_contacts=tuple(
                          ContactRecord(c[0], c[1], c[2], c[3], datetime.fromisoformat(c[4]),
                                        datetime.fromisoformat(c[5])) for c in contacts))


def encode(entry: Entry) -> str:
    p = entry.page
    return json.dumps({"v": 1, "at": entry.fetched_at, "page": p.page, "per_page": p.per_page, "total": p.total,
                       "last_page": p.last_page, "items": [_lead(r) for r in p.items]},
                      separators=(",", ":"), ensure_ascii=False)


def decode(raw: str | bytes) -> Entry:
    """The inverse of ``encode``; raises ``ValueError`` on anything else (the caller treats it as a miss)."""
    try:
        d = json.loads(raw)
        if d.get("v") != 1:
            raise ValueError("unknown cache entry version")
        items = tuple(_record(item) for item in d["items"])
        page = LeadPage(page=d["page"], per_page=d["per_page"], total=d["total"], last_page=d["last_page"],
                        items=items)
        at = float(d["at"])
        if not math.isfinite(at):
            raise ValueError("malformed cache entry: fetched_at is not finite")
        return Entry(page=page, fetched_at=at)
    except (KeyError, TypeError, IndexError, AttributeError, OverflowError, RecursionError) as exc:
        # Whatever a corrupted (or hostile) entry in a shared Redis holds, it is a miss, never a crash.
        raise ValueError(f"malformed cache entry: {type(exc).__name__}") from None
