"""Typed records for the upstream's Laravel paginator, parsed once at the edge.

Every Laravel quirk the gateway tolerates is handled here and nowhere else:
- PHP's empty object serialised as an empty list (``"variables": []``, ``"campaign": []``);
- nullable relations (``campaign: null``, ``secondary_contacts: null`` or absent);
- ``from``/``to`` null on an empty page (not used: offsets come from ``current_page``/``per_page``);
- numbers sent as numeric strings (``"per_page": "15"``, as some database drivers produce);
- ``data`` as an object keyed by index (a filtered collection that was not re-indexed);
- ``variables`` as a JSON-encoded string (a model attribute without a cast);
- timestamps ``YYYY-MM-DD HH:MM:SS`` without an offset, in UTC (ISO-8601 with ``T``/``Z`` accepted too).
Anything else that is not the documented shape raises ``UpstreamBadResponse``.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from gateway.errors import UpstreamBadResponse
from gateway.leads.records import STATUSES, CampaignRef, ContactRecord, LeadPage, LeadRecord

_STATUS_SET = frozenset(STATUSES)
_INTEGER = re.compile(r"-?[0-9]+")  # ASCII digits only: str.isdigit() also accepts "²"


class _Bad(Exception):
    """Internal: a shape problem at ``path``; turned into UpstreamBadResponse by parse_page."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = path, problem

    def within(self, parent: str) -> _Bad:
        """The same problem, its path prefixed (paths are only spelled out when something is wrong)."""
        return _Bad(f"{parent}.{self.path}", self.problem)


def parse_page(payload: Any) -> LeadPage:
    """Parse a decoded paginator body into a ``LeadPage`` or raise ``UpstreamBadResponse``."""
    try:
        return _page(payload)
    except _Bad as exc:
        raise UpstreamBadResponse(f"The upstream returned a leads page that is not the documented shape ({exc}).") from None
    except (ValueError, TypeError, OverflowError, RecursionError):
        # A shape no rule above anticipated is still the upstream's fault, not an internal error.
        raise UpstreamBadResponse("The upstream returned a leads page that is not the documented shape.") from None


def parse_created(payload: Any) -> LeadRecord:
    """The answer of ``POST /user/lead`` (``{"message", "data": {lead}}``, the lead in the list's shape, ids
    possibly as strings) as a ``LeadRecord``, or ``UpstreamBadResponse``."""
    try:
        if not isinstance(payload, dict) or not isinstance(payload.get("data"), dict):
            raise _Bad("$", "expected an object with the created lead in `data`")
        return _lead(payload["data"], 0)
    except _Bad as exc:
        raise UpstreamBadResponse(f"The upstream's answer to a create is not the documented shape ({exc}).") from None
    except (ValueError, TypeError, OverflowError, RecursionError):
        raise UpstreamBadResponse("The upstream's answer to a create is not the documented shape.") from None


def _page(p: Any) -> LeadPage:
    if not isinstance(p, dict):
        raise _Bad("$", "expected a paginator object")
    page = _int(p.get("current_page"), "current_page", minimum=1)
    per_page = _int(p.get("per_page"), "per_page", minimum=1)
    total = _int(p.get("total"), "total", minimum=0)
    raw_last = p.get("last_page")
    last_page = _int(raw_last, "last_page", minimum=1) if raw_last is not None else max(1, -(-total // per_page))
    rows = _list(p.get("data"), "data", required=True)
    items = tuple(_lead(row, i) for i, row in enumerate(rows))
    if len(items) > per_page:
        raise _Bad("data", f"{len(items)} rows on a page of {per_page}")
    return LeadPage(page=page, per_page=per_page, total=total, last_page=last_page, items=items)


def _lead(r: Any, index: int) -> LeadRecord:
    try:
        if not isinstance(r, dict):
            raise _Bad("$", "expected an object")
        campaign_id = r.get("campaign_id")
        return LeadRecord(
            id=_id(r.get("id"), "id"),
            campaign_id=None if campaign_id is None else _id(campaign_id, "campaign_id"),
            phone_number=_str(r.get("phone_number"), "phone_number"),
            variables=_variables(r.get("variables"), "variables"),
            status=_status(r.get("status"), "status"),
            created_at=_timestamp(r.get("created_at"), "created_at"),
            updated_at=_timestamp(r.get("updated_at"), "updated_at"),
            campaign=_campaign(r.get("campaign"), "campaign"),
            secondary_contacts=tuple(
                _contact(c, i) for i, c in enumerate(_list(r.get("secondary_contacts"), "secondary_contacts"))),
        )
    except _Bad as exc:
        raise (_Bad(f"data[{index}]", exc.problem) if exc.path == "$" else exc.within(f"data[{index}]")) from None


def _contact(r: Any, index: int) -> ContactRecord:
    try:
        if not isinstance(r, dict):
            raise _Bad("$", "expected an object")
        return ContactRecord(
            id=_id(r.get("id"), "id"),
            phone_number=_str(r.get("phone_number"), "phone_number"),
            variables=_variables(r.get("variables"), "variables"),
            status=_status(r.get("status"), "status"),
            created_at=_timestamp(r.get("created_at"), "created_at"),
            updated_at=_timestamp(r.get("updated_at"), "updated_at"),
        )
    except _Bad as exc:
        where = f"secondary_contacts[{index}]"
        raise (_Bad(where, exc.problem) if exc.path == "$" else exc.within(where)) from None


def _campaign(c: Any, path: str) -> CampaignRef | None:
    if c is None or c == []:  # null relation, or PHP's empty array
        return None
    if not isinstance(c, dict):
        raise _Bad(path, "expected an object or null")
    name = c.get("name")
    if name is not None and not isinstance(name, str):
        raise _Bad(f"{path}.name", "expected a string or null")
    return CampaignRef(id=_id(c.get("id"), f"{path}.id"), name=name)


def _int(v: Any, path: str, minimum: int | None = None) -> int:
    if isinstance(v, bool):
        raise _Bad(path, "expected an integer")
    if isinstance(v, int):
        out = v
    elif isinstance(v, str) and _INTEGER.fullmatch(v.strip()):
        out = int(v)
    elif isinstance(v, float) and v.is_integer():
        out = int(v)
    else:
        raise _Bad(path, "expected an integer")
    if minimum is not None and out < minimum:
        raise _Bad(path, f"expected an integer >= {minimum}")
    return out


GRAPHQL_INT_MAX = 2**31 - 1


def _id(v: Any, path: str) -> int:
    """An upstream id: it must fit GraphQL's 32-bit ``Int`` (``databaseId: Int!``), else the page is refused
    here with a clear error rather than failing later while the response is serialised."""
    out = _int(v, path)
    if not -GRAPHQL_INT_MAX - 1 <= out <= GRAPHQL_INT_MAX:
        raise _Bad(path, "id does not fit a 32-bit GraphQL Int")
    return out


def _str(v: Any, path: str) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, int) and not isinstance(v, bool):  # a phone number stored as a number
        return str(v)
    raise _Bad(path, "expected a string")


def _list(v: Any, path: str, required: bool = False) -> list:
    if v is None and not required:
        return []
    if isinstance(v, list):
        return v
    if isinstance(v, dict) and all(isinstance(k, str) and k.isascii() and k.isdigit() for k in v):
        # A collection that kept its keys (e.g. filtered or sorted without ->values()): PHP encodes it in
        # collection order, which json.loads keeps; the keys are the old positions, not the order.
        return list(v.values())
    raise _Bad(path, "expected a list")


def _variables(v: Any, path: str) -> dict[str, Any]:
    if v is None or v == []:
        return {}
    if isinstance(v, str):
        try:
            v = json.loads(v)
        except ValueError:
            raise _Bad(path, "expected an object or a JSON-encoded object") from None
        if v == [] or v is None:
            return {}
    if isinstance(v, dict):
        return v
    raise _Bad(path, "expected an object")


def _status(v: Any, path: str) -> str:
    if isinstance(v, str):
        s = v.strip().lower().replace("_", "-")
        if s in _STATUS_SET:
            return s
    raise _Bad(path, "expected one of " + ", ".join(STATUSES))


def _timestamp(v: Any, path: str) -> datetime:
    if not isinstance(v, str):
        raise _Bad(path, "expected a timestamp string")
    try:
        dt = datetime.fromisoformat(v.strip())
    except ValueError:
        raise _Bad(path, "expected YYYY-MM-DD HH:MM:SS") from None
    # Laravel serialises UTC without an offset; an explicit offset is honoured and normalised.
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
