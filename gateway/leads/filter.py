"""``ListFilter``: the caller's filter as canonical upstream URL parameters (no I/O, no strawberry)."""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import urlencode
from dataclasses import dataclass
from datetime import date

from gateway.errors import BadUserInput
from gateway.leads.records import STATUSES

PHONE_MAX_LENGTH = 255  # the upstream's validation limit


@dataclass(frozen=True, slots=True)
class ListFilter:
    """A validated filter. ``params`` is sorted, so equal filters give equal keys and cursors."""

    status: str | None = None
    campaign_id: int | None = None
    phone_number: str | None = None
    date_from: date | None = None
    date_to: date | None = None

    def __post_init__(self) -> None:
        if self.status is not None and self.status not in STATUSES:
            raise BadUserInput(f"Unknown lead status {self.status!r}.", field="filter.status")
        if self.phone_number is not None and not _encodable(self.phone_number):
            raise BadUserInput("filter.phoneNumber is not valid Unicode text.", field="filter.phoneNumber")
        if self.phone_number is not None and len(self.phone_number) > PHONE_MAX_LENGTH:
            raise BadUserInput(f"filter.phoneNumber may have at most {PHONE_MAX_LENGTH} characters.",
                               field="filter.phoneNumber")
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise BadUserInput("filter.createdFrom must not be after filter.createdTo.",
                               field="filter.createdFrom")

    @classmethod
    def build(cls, *, status: str | None = None, campaign_id: int | None = None, phone_number: str | None = None,
              date_from: date | None = None, date_to: date | None = None) -> ListFilter:
        # Laravel's ConvertEmptyStringsToNull makes an empty phone filter mean "no filter"; mirror it.
        phone = phone_number.strip() if phone_number is not None else None
        return cls(status=status, campaign_id=campaign_id, phone_number=phone or None,
                   date_from=date_from, date_to=date_to)

    @property
    def params(self) -> tuple[tuple[str, str], ...]:
        pairs = [
            ("campaign_id", None if self.campaign_id is None else str(self.campaign_id)),
            ("date_from", None if self.date_from is None else self.date_from.isoformat()),
            ("date_to", None if self.date_to is None else self.date_to.isoformat()),
            ("phone_number", self.phone_number),
            ("status", self.status),
        ]
        return tuple((k, v) for k, v in pairs if v is not None)

    @property
    def fingerprint(self) -> str:
        """A short digest of ``params``; cursors carry it so one filter's cursor is refused by another."""
        raw = urlencode(self.params).encode()  # escaped, so no two filters share an encoding
        return base64.urlsafe_b64encode(hashlib.sha256(raw).digest()[:6]).decode()

    def with_campaign(self, campaign_id: int) -> ListFilter:
        """This filter narrowed to one campaign (``Campaign.leads``)."""
        if self.campaign_id is not None and self.campaign_id != campaign_id:
            raise BadUserInput(
                f"filter.campaignId ({self.campaign_id}) differs from this campaign ({campaign_id}).",
                field="filter.campaignId")
        return ListFilter(self.status, campaign_id, self.phone_number, self.date_from, self.date_to)


def _encodable(text: str) -> bool:
    """False for strings JSON can carry but UTF-8 cannot (lone surrogates such as "\ud800")."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


ALL_LEADS = ListFilter()
