"""A new lead as the client described it: validated, canonical, and mapped to and from the upstream.

Pure (no I/O, no strawberry): ``new_lead`` checks a client's input before any upstream call and
returns either a ``NewLead`` or the ``Problem``s to report (``userErrors``); ``problems_from_rejection``
turns the upstream's Laravel 422 ``errors`` into the same ``Problem``s, with paths into the GraphQL input.

Codes are stable (clients switch on them): ``REQUIRED``, ``INVALID``, ``TOO_LONG``, ``TOO_MANY``,
``DUPLICATE``, ``UNKNOWN_CAMPAIGN``, ``IDEMPOTENCY_KEY_REUSED``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

# E.164: "+", a country code not starting with 0, at most 15 digits in all. Fewer than 7 digits is no
# diallable number anywhere. Spaces, dashes, dots and parentheses (how people write numbers) are dropped.
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_SEPARATORS = re.compile(r"[ \-.()\u00a0]")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

TEXT_MAX = 255  # the upstream's string columns
VARIABLES_MAX_KEYS = 50
VARIABLES_MAX_BYTES = 16 * 1024  # the encoded JSON of one lead's or contact's variables
VARIABLE_NAME_MAX = 64
SECONDARY_MAX = 10
IDEMPOTENCY_KEY_MAX = 255

REQUIRED, INVALID, TOO_LONG, TOO_MANY = "REQUIRED", "INVALID", "TOO_LONG", "TOO_MANY"
DUPLICATE, UNKNOWN_CAMPAIGN, IDEMPOTENCY_KEY_REUSED = "DUPLICATE", "UNKNOWN_CAMPAIGN", "IDEMPOTENCY_KEY_REUSED"

Path = tuple[str, ...]
INPUT: Path = ("input",)


@dataclass(frozen=True, slots=True)
class Problem:
    """Something the caller can fix: where in the input (None: not one field), what, and a stable code."""

    field: Path | None
    message: str
    code: str


@dataclass(frozen=True, slots=True)
class NewContact:
    phone_number: str
    variables: dict[str, Any]


@dataclass(frozen=True, slots=True)
class NewLead:
    """A validated lead to create; ``body`` is what ``POST /user/lead`` is sent."""

    phone_number: str
    campaign_id: int
    variables: dict[str, Any]
    allow_duplicate: bool
    secondary_contacts: tuple[NewContact, ...]

    @property
    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"phone_number": self.phone_number, "campaign_id": self.campaign_id,
                                "variables": self.variables, "allow_dupplicate": self.allow_duplicate}
        if self.secondary_contacts:
            body["secondary_contacts"] = [{"phone_number": c.phone_number, "variables": c.variables}
                                          for c in self.secondary_contacts]
        return body

    @property
    def fingerprint(self) -> str:
        """A digest of the canonical body: two inputs that would create the same lead share it (an
        idempotency key reused with another input is told apart by it)."""
        canonical = json.dumps(self.body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class ContactInput:
    """The fields of ``SecondaryContactInput`` (as the GraphQL layer hands them over)."""

    phone_number: str
    customer_name: str | None = None
    email: str | None = None
    variables: Any = None


@dataclass(frozen=True, slots=True)
class LeadInput:
    """The fields of ``CreateLeadInput`` (as the GraphQL layer hands them over)."""

    phone_number: str
    campaign_id: int
    customer_name: str | None = None
    email: str | None = None
    variables: Any = None
    allow_duplicate: bool | None = None
    secondary_contacts: tuple[ContactInput, ...] | None = None
    idempotency_key: str | None = None


def new_lead(given: LeadInput) -> NewLead | list[Problem]:
    """The lead to create, or every problem with the input (all reported at once, like Laravel does)."""
    problems: list[Problem] = []
    phone = _phone(given.phone_number, (*INPUT, "phoneNumber"), problems)
    if given.campaign_id < 1:
        problems.append(Problem((*INPUT, "campaignId"), "campaignId must be a positive campaign id.", INVALID))
    variables = _variables(given.variables, given.customer_name, given.email, INPUT, problems)
    contacts: list[NewContact] = []
    if given.secondary_contacts is not None and len(given.secondary_contacts) > SECONDARY_MAX:
        problems.append(Problem((*INPUT, "secondaryContacts"),
                                f"At most {SECONDARY_MAX} secondary contacts per lead.", TOO_MANY))
    else:
        for i, contact in enumerate(given.secondary_contacts or ()):
            where = (*INPUT, "secondaryContacts", str(i))
            contact_phone = _phone(contact.phone_number, (*where, "phoneNumber"), problems)
            contact_variables = _variables(contact.variables, contact.customer_name, contact.email, where, problems)
            contacts.append(NewContact(contact_phone, contact_variables))
    key = given.idempotency_key
    if key is not None and not 1 <= len(key) <= IDEMPOTENCY_KEY_MAX:
        problems.append(Problem((*INPUT, "idempotencyKey"),
                                f"idempotencyKey must have 1 to {IDEMPOTENCY_KEY_MAX} characters.", INVALID))
    if problems:
        return problems
    return NewLead(phone, given.campaign_id, variables, bool(given.allow_duplicate), tuple(contacts))


def _phone(value: str, where: Path, problems: list[Problem]) -> str:
    compact = _SEPARATORS.sub("", value.strip())
    if not compact:
        problems.append(Problem(where, "A phone number is required.", REQUIRED))
    elif not _E164.fullmatch(compact):
        problems.append(Problem(where, "Not an E.164 phone number: a +, the country code and the number, "
                                       "at most 15 digits (e.g. +14155550100).", INVALID))
    return compact


def _variables(variables: Any, customer_name: str | None, email: str | None, where: Path,
               problems: list[Problem]) -> dict[str, Any]:
    """The upstream ``variables``: the free-form object with ``customerName``/``email`` laid over it."""
    out: dict[str, Any] = {}
    if variables is not None:
        if not isinstance(variables, dict):
            problems.append(Problem((*where, "variables"), "variables must be a JSON object of named values.",
                                    INVALID))
        elif len(variables) > VARIABLES_MAX_KEYS:
            problems.append(Problem((*where, "variables"), f"At most {VARIABLES_MAX_KEYS} variables.", TOO_MANY))
        else:
            for name, value in variables.items():
                if not name or len(name) > VARIABLE_NAME_MAX:
                    problems.append(Problem((*where, "variables", name[:VARIABLE_NAME_MAX]),
                                            f"Variable names have 1 to {VARIABLE_NAME_MAX} characters.", INVALID))
                elif isinstance(value, str) and len(value) > TEXT_MAX * 4:
                    problems.append(Problem((*where, "variables", name),
                                            f"At most {TEXT_MAX * 4} characters.", TOO_LONG))
            out.update(variables)
    for name, value, field in (("customer_name", customer_name, "customerName"), ("email", email, "email")):
        if value is None:
            continue
        value = value.strip()
        if len(value) > TEXT_MAX:
            problems.append(Problem((*where, field), f"At most {TEXT_MAX} characters.", TOO_LONG))
        elif field == "email" and value and not _EMAIL.fullmatch(value):
            problems.append(Problem((*where, field), "Not an email address.", INVALID))
        if value:
            out[name] = value
    try:
        size = len(json.dumps(out, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    except (TypeError, ValueError):
        size = VARIABLES_MAX_BYTES + 1
    if size > VARIABLES_MAX_BYTES:
        problems.append(Problem((*where, "variables"), f"The variables take at most {VARIABLES_MAX_BYTES} bytes "
                                                       "as JSON.", TOO_LONG))
    return out


# --- the upstream's 422 -------------------------------------------------------------------------------

_FIELDS = {"phone_number": "phoneNumber", "campaign_id": "campaignId", "allow_dupplicate": "allowDuplicate",
           "secondary_contacts": "secondaryContacts", "variables": "variables"}
_VARIABLE_FIELDS = {"customer_name": "customerName", "email": "email"}


def input_path(upstream_field: str) -> Path | None:
    """``secondary_contacts.0.phone_number`` -> ``("input", "secondaryContacts", "0", "phoneNumber")``;
    None for a field the input has no place for."""
    parts = upstream_field.split(".")
    path: list[str] = list(INPUT)
    if parts[0] == "secondary_contacts" and len(parts) >= 3 and parts[1].isdigit():
        path += ["secondaryContacts", parts[1]]
        parts = parts[2:]
    if parts[0] == "variables" and len(parts) >= 2:
        name = ".".join(parts[1:])
        return (*path, _VARIABLE_FIELDS[name]) if name in _VARIABLE_FIELDS else (*path, "variables", name)
    if len(parts) == 1 and parts[0] in _FIELDS:
        return (*path, _FIELDS[parts[0]])
    return None


def _code(upstream_field: str, message: str) -> str:
    text = message.lower()
    if "already been taken" in text or "already exists" in text or "duplicate" in text:
        return DUPLICATE
    if upstream_field == "campaign_id" and "selected" in text and "invalid" in text:
        return UNKNOWN_CAMPAIGN
    if "required" in text:
        return REQUIRED
    if "greater than" in text or "too long" in text:
        return TOO_LONG
    return INVALID


def problems_from_rejection(message: str, errors: dict[str, list[str]]) -> list[Problem]:
    """Laravel's ``{"message", "errors": {field: [messages]}}`` as problems with paths into the input
    (a field the input has no place for keeps ``field`` null and names itself in the message)."""
    problems = []
    for upstream_field, messages in errors.items():
        path = input_path(upstream_field)
        for text in messages:
            shown = text if path is not None else f"{upstream_field}: {text}"
            problems.append(Problem(path, shown, _code(upstream_field, text)))
    if not problems:
        problems.append(Problem(None, message or "The upstream refused the lead.", INVALID))
    return problems
