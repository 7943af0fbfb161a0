"""``DateTime`` and ``Date`` as the contract describes them (strict, offset-aware)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import strawberry

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _parse_date(value: object) -> date:
    if not isinstance(value, str) or not _DATE.match(value):
        raise ValueError(f"Date must be a YYYY-MM-DD string, got {value!r}")
    return date.fromisoformat(value)


def _parse_datetime(value: object) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"DateTime must be an ISO-8601 string, got {value!r}")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("DateTime needs an explicit offset, e.g. 2025-06-30T11:18:04+00:00")
    return parsed


def _serialize_datetime(value: datetime) -> str:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


DateScalar = strawberry.scalar(
    name="Date",
    description="Calendar date, YYYY-MM-DD.",
    serialize=date.isoformat,
    parse_value=_parse_date,
)

DateTimeScalar = strawberry.scalar(
    name="DateTime",
    description="Date-time in ISO-8601 with an explicit offset, e.g. 2025-06-30T11:18:04+00:00.",
    serialize=_serialize_datetime,
    parse_value=_parse_datetime,
)

SCALAR_OVERRIDES = {date: DateScalar, datetime: DateTimeScalar}
