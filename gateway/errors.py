"""The gateway's error family: every error a client may see carries a contract code.

Each layer raises these; the GraphQL layer's formatter turns them into ``errors[].extensions``
and masks anything that is not a ``GatewayError`` as ``INTERNAL_SERVER_ERROR``.
"""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    """Base class: ``message`` is safe to show to the client; ``extensions`` goes into the response."""

    code = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extensions: dict[str, Any] = {"code": self.code, **extensions}


class BadUserInput(GatewayError):
    """Invalid arguments or cursors, or a request the upstream rejected with 422."""

    code = "BAD_USER_INPUT"


class Unauthenticated(GatewayError):
    """No bearer token, or the upstream answered 401."""

    code = "UNAUTHENTICATED"


class UpstreamError(GatewayError):
    """Base class of failures of the upstream call itself."""


class Forbidden(UpstreamError):
    code = "FORBIDDEN"


class RateLimited(UpstreamError):
    code = "RATE_LIMITED"


class UpstreamTimeout(UpstreamError):
    code = "UPSTREAM_TIMEOUT"


class UpstreamUnavailable(UpstreamError):
    code = "UPSTREAM_UNAVAILABLE"


class UpstreamBadResponse(UpstreamError):
    code = "UPSTREAM_BAD_RESPONSE"


class UpstreamUnauthenticated(Unauthenticated, UpstreamError):
    """401 from the upstream: the token was sent but refused."""


class UpstreamRejected(BadUserInput, UpstreamError):
    """422 from the upstream: Laravel's validation errors, passed on field by field."""


_BY_CODE: dict[str, type[GatewayError]] = {
    "BAD_USER_INPUT": UpstreamRejected,
    "UNAUTHENTICATED": UpstreamUnauthenticated,
    "FORBIDDEN": Forbidden,
    "RATE_LIMITED": RateLimited,
    "UPSTREAM_TIMEOUT": UpstreamTimeout,
    "UPSTREAM_UNAVAILABLE": UpstreamUnavailable,
    "UPSTREAM_BAD_RESPONSE": UpstreamBadResponse,
}


def error_to_note(error: GatewayError) -> dict[str, Any]:
    """A JSON-safe description of an error, so another instance can re-raise it (coalesced failures)."""
    return {"message": error.message, "extensions": error.extensions}


def error_from_note(note: dict[str, Any]) -> GatewayError:
    extensions = dict(note.get("extensions") or {})
    cls = _BY_CODE.get(extensions.pop("code", ""), UpstreamUnavailable)
    return cls(str(note.get("message", "The upstream call failed.")), **extensions)
