"""Opaque global ids (``base64url("Lead:123")``): stable across restarts, typed, round-tripping."""

from __future__ import annotations

import base64
import binascii
import re

from gateway.errors import BadUserInput

_RAW = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*):(-?\d{1,18})$")


GRAPHQL_INT = range(-(2**31), 2**31)


def fits_graphql_int(value: object) -> bool:
    """Ids outside GraphQL's 32-bit ``Int`` name no object the upstream can give us."""
    return isinstance(value, int) and not isinstance(value, bool) and value in GRAPHQL_INT


def to_global_id(type_name: str, database_id: int) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{database_id}".encode()).decode().rstrip("=")


def from_global_id(global_id: str) -> tuple[str, int]:
    """``(type name, database id)``; a malformed id is ``BAD_USER_INPUT``."""
    try:
        raw = base64.urlsafe_b64decode(global_id + "=" * (-len(global_id) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    match = _RAW.fullmatch(raw)
    # Only the spelling we issue: no second encoding of the same object (stray newlines, loose base64).
    if not match or to_global_id(match.group(1), int(match.group(2))) != global_id.rstrip("="):
        raise BadUserInput(f"{global_id!r} is not a valid global id.", argument="id")
    return match.group(1), int(match.group(2))
