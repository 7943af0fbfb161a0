"""Deterministic fake leads for the demo upstream, one data set per bearer token.

Every dataset is in exactly the JSON shape the Laravel endpoint returns (the vendor's documented
example of ``GET /user/leads``), including the quirks a real tenant's data has:
PHP's empty object serialised as ``[]``, a deleted campaign (``campaign: null`` with
``campaign_id`` still set), partial ``variables`` and timestamps without an offset.
Ids come from per-token disjoint ranges because the real ids are global
auto-increments shared by all tenants: a gateway that mixes tenants up shows it.
"""

from __future__ import annotations

import functools
import hashlib
import random
import unicodedata
from datetime import datetime, timedelta, timezone

STATUSES = ("created", "scheduled", "processing", "completed", "rescheduled", "reached-max-retries", "blacklisted")

#: The token ``serve --demo`` uses when a request carries none.
DEMO_TOKEN = "demo"

MIN_LEADS = 150
MAX_LEADS = 400

# Ids: one block of 10 000 ids per token (leads at +1..+N, secondary contacts from +5001),
# campaigns at block*10 + 1..7. 90 000 blocks keep every id below 2**31. Leads created later
# (POST /user/lead) continue after +N, their contacts after the dataset's last one: write_id_ranges.
_BLOCKS = 90_000
_BLOCK_SIZE = 10_000
_SECONDARY_OFFSET = 5_000

_STATUS_WEIGHTS = (25, 15, 8, 25, 10, 10, 7)
_CREATED_FROM = datetime(2025, 1, 1, tzinfo=timezone.utc)
_CREATED_SPAN = int((datetime(2025, 7, 1, tzinfo=timezone.utc) - _CREATED_FROM).total_seconds()) - 1

_CAMPAIGN_NAMES = (
    "Spring renewals", "Summer promo 2025", "Q2 win-back", "Dental check-up reminders",
    "Solar leads \u2013 Texas", "Webinar follow-up", "Trial conversions", "Insurance quotes",
    "Abandoned carts", "Event RSVPs", "Membership upsell", "Black Friday early bird",
)
_FIRST_NAMES = (
    "John", "Jane", "Maria", "Jos\u00e9", "Zo\u00eb", "Liam", "Olivia", "Noah", "Emma", "Ava",
    "Lucas", "Mia", "Ethan", "Sofia", "Mateo", "Chlo\u00e9", "Bj\u00f6rn", "Aisha", "Wei",
    "Priya", "Dmitri", "Fatima", "Kenji", "Amara",
)
_LAST_NAMES = (
    "Doe", "Smith", "Garc\u00eda", "M\u00fcller", "O'Brien", "Nguyen", "Kowalski", "Johnson",
    "Brown", "Rossi", "Silva", "Kim", "Patel", "Haddad", "Novak", "Ivanova", "Okafor",
    "Larsen", "Dubois", "Tanaka",
)
_AREA_CODES = ("212", "305", "312", "415", "512", "617", "702", "808", "917", "206")
_MAIL_DOMAINS = ("example.com", "example.org", "example.net")


def _seed(token: str) -> int:
    """A process-independent seed (Python's ``hash()`` is salted per process)."""
    return int.from_bytes(hashlib.sha256(token.encode("utf-8")).digest()[:8], "big")


def _ascii_slug(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if c.isascii() and c.isalnum()).lower()


def _timestamp(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%d %H:%M:%S")


class _Generator:
    """All randomness goes through one seeded ``random.Random`` so a token always yields the same data."""

    def __init__(self, token: str) -> None:
        seed = _seed(token)
        self.rng = random.Random(seed)
        self.base = (seed % _BLOCKS + 1) * _BLOCK_SIZE
        self.campaign_base = (seed % _BLOCKS + 1) * 10
        self.prefixes = ["+1" + area + str(self.rng.randint(200, 999))
                         for area in self.rng.sample(_AREA_CODES, 5)]
        self.phones: set[str] = set()
        self.next_secondary_id = self.base + _SECONDARY_OFFSET + 1

    def phone(self) -> str:
        while True:
            number = self.rng.choice(self.prefixes) + f"{self.rng.randrange(10_000):04d}"
            if number not in self.phones:
                self.phones.add(number)
                return number

    def variables(self, quirk: str | None = None) -> dict | list:
        """``{"customer_name", "email"}``; sometimes only a name; ~5% PHP's empty object ``[]``."""
        rng = self.rng
        if quirk is None:
            roll = rng.random()
            quirk = "empty" if roll < 0.05 else "name-only" if roll < 0.15 else "full"
        if quirk == "empty":
            return []
        first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
        name = f"{first} {last}"
        if quirk == "name-only":
            return {"customer_name": name}
        suffix = str(rng.randint(1, 99)) if rng.random() < 0.4 else ""
        email = f"{_ascii_slug(first)}.{_ascii_slug(last)}{suffix}@{rng.choice(_MAIL_DOMAINS)}"
        return {"customer_name": name, "email": email}

    def status(self) -> str:
        return self.rng.choices(STATUSES, weights=_STATUS_WEIGHTS)[0]

    def updated_after(self, created: datetime, status: str) -> datetime:
        """Untouched leads keep ``updated_at == created_at``; worked ones were updated later."""
        rng = self.rng
        if status == "created" and rng.random() < 0.8:
            return created
        return created + timedelta(seconds=rng.randint(30, 21 * 24 * 3600))

    def secondary_contacts(self, lead_created: datetime) -> list[dict]:
        count = self.rng.choices((0, 1, 2, 3), weights=(60, 25, 10, 5))[0]
        contacts = []
        for _ in range(count):
            created = lead_created + timedelta(seconds=self.rng.randint(0, 5))
            status = self.rng.choices(STATUSES, weights=(60, 10, 5, 15, 5, 3, 2))[0]
            contacts.append({
                "id": self.next_secondary_id,
                "phone_number": self.phone(),
                "variables": self.variables(),
                "status": status,
                "created_at": _timestamp(created),
                "updated_at": _timestamp(self.updated_after(created, status)),
            })
            self.next_secondary_id += 1
        return contacts

    def build(self) -> tuple[dict, ...]:
        rng = self.rng
        count = rng.randint(MIN_LEADS, MAX_LEADS)
        campaigns = [{"id": self.campaign_base + i + 1, "name": name}
                     for i, name in enumerate(rng.sample(_CAMPAIGN_NAMES, rng.randint(3, 6)))]
        deleted_campaign_id = self.campaign_base + len(campaigns) + 1
        campaign_weights = [rng.randint(1, 10) for _ in campaigns]
        # Auto-increment ids: creation times grow with the id.
        created = sorted(_CREATED_FROM + timedelta(seconds=rng.randint(0, _CREATED_SPAN)) for _ in range(count))
        # Force every status and every quirk to occur at least once, at random positions.
        forced_status = dict(zip(rng.sample(range(count), len(STATUSES)), STATUSES))
        empty_vars, name_only, no_campaign = rng.sample(range(count), 3)

        leads = []
        for i in range(count):
            status = forced_status.get(i) or self.status()
            quirk = "empty" if i == empty_vars else "name-only" if i == name_only else None
            if i == no_campaign or rng.random() < 0.03:
                campaign_id, campaign = deleted_campaign_id, None
            else:
                chosen = rng.choices(campaigns, weights=campaign_weights)[0]
                campaign_id, campaign = chosen["id"], dict(chosen)
            leads.append({
                "id": self.base + i + 1,
                "campaign_id": campaign_id,
                "phone_number": self.phone(),
                "variables": self.variables(quirk),
                "status": status,
                "created_at": _timestamp(created[i]),
                "updated_at": _timestamp(self.updated_after(created[i], status)),
                "campaign": campaign,
                "secondary_contacts": self.secondary_contacts(created[i]),
            })
        return tuple(leads)


@functools.lru_cache(maxsize=64)
def dataset_for_token(token: str) -> tuple[dict, ...]:
    """The leads ``token`` owns, sorted by id ascending (the endpoint's order).

    Deterministic across calls and processes. The result is cached and shared: do not mutate it.
    """
    return _Generator(token).build()


def campaigns_for_token(token: str) -> tuple[dict, ...]:
    """The live campaigns (``{"id", "name"}``) that appear in ``token``'s leads, by id."""
    seen = {lead["campaign"]["id"]: lead["campaign"] for lead in dataset_for_token(token) if lead["campaign"]}
    return tuple(dict(seen[key]) for key in sorted(seen))


def write_id_ranges(token: str) -> tuple[range, range]:
    """The ids of ``token``'s block the dataset leaves free: for leads created later (right after its
    highest lead id, up to where the secondary contacts start) and for their secondary contacts (after
    the dataset's last contact, up to the end of the block)."""
    leads = dataset_for_token(token)
    base = leads[0]["id"] - 1
    last_contact = max((contact["id"] for lead in leads for contact in lead["secondary_contacts"]),
                       default=base + _SECONDARY_OFFSET)
    return range(leads[-1]["id"] + 1, base + _SECONDARY_OFFSET + 1), range(last_contact + 1, base + _BLOCK_SIZE)
