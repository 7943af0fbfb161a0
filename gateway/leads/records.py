"""The caller's leads as typed, immutable records: what every layer passes around (no I/O, no parsing).

``datasource/parse.py`` builds them from the upstream's JSON; the GraphQL types wrap them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

STATUSES = ("created", "scheduled", "processing", "completed", "rescheduled",
            "reached-max-retries", "blacklisted")


@dataclass(frozen=True, slots=True)
class CampaignRef:
    id: int
    name: str | None


@dataclass(frozen=True, slots=True)
class ContactRecord:
    id: int
    phone_number: str
    variables: dict[str, Any]
    status: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True, weakref_slot=True)  # weakly referable: views built from it die with it
class LeadRecord:
    id: int
    campaign_id: int | None
    phone_number: str
    variables: dict[str, Any]
    status: str
    created_at: datetime
    updated_at: datetime
    campaign: CampaignRef | None
    secondary_contacts: tuple[ContactRecord, ...]


@dataclass(frozen=True, slots=True)
class LeadPage:
    """One upstream page; ``offset`` is the list position of ``items[0]``."""

    page: int
    per_page: int
    total: int
    last_page: int
    items: tuple[LeadRecord, ...]

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page
