"""``POST /user/lead`` of the demo upstream: validation, creation and write faults, as the Laravel app does them.

No HTTP here: gateway/demo/app.py reads the request (auth, ``TrimStrings``/``ConvertEmptyStringsToNull``,
the JSON body), asks this module what to answer, and answers (latency, a late or dropped answer).

Imitated on purpose, because the gateway must cope with them:

- the FormRequest's rules in Laravel 10/11's order and English messages: all rules run (no ``bail``),
  except that a failed ``required`` stops its attribute's other rules (Laravel's implicit rules do);
  wildcard rules are expanded per element and their messages name the raw attribute
  (``The secondary_contacts.0.phone_number field is required.``: Laravel displays an implicit
  attribute as it is, without the ``snake``/underscore replacement it applies to plain attributes);
  ``distinct`` flags every element of a duplicated value with PHP's loose comparison; ``integer`` is
  ``filter_var(FILTER_VALIDATE_INT)`` (``true``, ``5.0`` and ``"5"`` pass); ``boolean`` is strict
  (``true``, ``false``, ``0``, ``1``, ``"0"``, ``"1"``);
- the controller's duplicate check (same phone number in the same campaign, unless
  ``allow_dupplicate``) as a 422 on ``phone_number``;
- PHP arrays: an empty object or list is stored and answered as ``[]``, ``{"0": .., "1": ..}`` as a list;
- the vendor's documented answer: ``{"message": "Lead created successfully", "data": {lead}}`` with
  ``id`` and ``campaign_id`` as strings, while the list shows them as numbers.

Ids: a created lead gets the next id after the token's highest lead id, its secondary contacts ids from a
part of the token's id block the dataset never uses (``gateway.demo.data.write_id_ranges``).
"""

from __future__ import annotations

import collections
import contextvars
import functools
import logging
import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Collection

from gateway.demo.data import campaigns_for_token, dataset_for_token, write_id_ranges

#: What ``DemoOptions.write_fault`` / ``token_write_faults`` accept.
WRITE_FAULTS = ("500", "503", "429", "lost", "lost-before", "late", "500-after")
#: Faults answered instead of the request: nothing is created.
FAULTS_INSTEAD = ("500", "503", "429")
#: Faults that drop the connection after the answer's head (the client gets a transport error).
FAULTS_DROPPING = ("lost", "lost-before")

MAX_SECONDARY_CONTACTS = 10
CREATED_MESSAGE = "Lead created successfully"
TAKEN_MESSAGE = "The phone number has already been taken."

_PHP_INT_MAX = 2**63 - 1
_PHP_INT_MIN = -(2**63)
_PHP_TRIM = " \t\n\r\x00\x0b"  # PHP's trim()
_FILTER_TRIM = " \t\n\r\x0b"  # what FILTER_VALIDATE_INT ignores around the number
_INTEGER_RE = re.compile(r"[+-]?(?:0|[1-9][0-9]*)")
_CANONICAL_KEY_RE = re.compile(r"0|-?[1-9][0-9]*")  # PHP turns such array keys into ints
_NUMERIC_RE = re.compile(r"[ \t\n\r\v\f]*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[ \t\n\r\v\f]*")
# /^\+[1-9][0-9]{6,14}$/ -- PCRE's "$" also matches before a final newline.
_PHONE_RE = re.compile(r"\+[1-9][0-9]{6,14}\n?")

_MISSING = object()


# ---------------------------------------------------------------------------- PHP semantics

def php_filter_int(value: Any) -> int | None:
    """``filter_var($value, FILTER_VALIDATE_INT)`` for a JSON-decoded value (None: not an integer)."""
    if isinstance(value, bool):
        return 1 if value else None  # (string) true is "1", (string) false is ""
    if isinstance(value, int):
        return value if _PHP_INT_MIN <= value <= _PHP_INT_MAX else None  # json_decode made a float of it
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        text = format(value, ".14G")  # PHP's (string) of a float: precision 14, "1.0E+14" past that
    elif isinstance(value, str):
        text = value.strip(_FILTER_TRIM)
    else:
        return None
    if not _INTEGER_RE.fullmatch(text):
        return None
    number = int(text)
    return number if _PHP_INT_MIN <= number <= _PHP_INT_MAX else None


def _php_string(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else ""
    if value is None:
        return ""
    return str(value)


def _php_size(value: Any) -> int:
    """Laravel's ``getSize`` without numeric rules: an array's count, else ``mb_strlen``."""
    if isinstance(value, (list, dict)):
        return len(value)
    return len(_php_string(value))


def _php_number(text: str) -> int | float | None:
    if not _NUMERIC_RE.fullmatch(text):
        return None
    stripped = text.strip(" \t\n\r\v\f")
    return int(stripped) if _INTEGER_RE.fullmatch(stripped) else float(stripped)


def _php_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value not in ("", "0")
    if isinstance(value, (list, dict)):
        return bool(value)
    return bool(value)


def php_loose_equal(a: Any, b: Any) -> bool:
    """PHP 8's ``==`` (what ``in_array`` without ``strict`` uses) for JSON-decoded values."""
    if a is None and isinstance(b, str):
        return b == ""
    if b is None and isinstance(a, str):
        return a == ""
    if a is None or b is None or isinstance(a, bool) or isinstance(b, bool):
        return _php_bool(a) == _php_bool(b)
    a_array, b_array = isinstance(a, (list, dict)), isinstance(b, (list, dict))
    if a_array or b_array:
        if not (a_array and b_array):
            return False
        a_items, b_items = dict(_php_items(a)), dict(_php_items(b))
        return a_items.keys() == b_items.keys() and all(php_loose_equal(a_items[k], b_items[k]) for k in a_items)
    if isinstance(a, str) and isinstance(b, str):
        a_number, b_number = _php_number(a), _php_number(b)
        if a_number is not None and b_number is not None:
            return a_number == b_number
        return a == b
    if isinstance(a, str) or isinstance(b, str):  # a number and a string
        number, text = (b, a) if isinstance(a, str) else (a, b)
        parsed = _php_number(text)
        return parsed == number if parsed is not None else _php_string(number) == text
    return a == b


def _php_key(key: str) -> int | str:
    if _CANONICAL_KEY_RE.fullmatch(key) and _PHP_INT_MIN <= int(key) <= _PHP_INT_MAX:
        return int(key)
    return key


def _php_items(value: list | dict) -> list[tuple[int | str, Any]]:
    if isinstance(value, list):
        return list(enumerate(value))
    items: dict[int | str, Any] = {}
    for key, item in value.items():
        items[_php_key(key)] = item  # "1" and 1 are one key: the last value at the first place
    return list(items.items())


def php_array(value: Any) -> list | dict:
    """What ``json_encode`` gives back for a ``json_decode``-d array stored and read again: ``[]`` when
    empty (or absent), a list when the keys are 0..n-1 in order (``{"0": "a"}`` -> ``["a"]``)."""
    if value is None or value is _MISSING:
        return []
    items = _php_items(value)
    if [key for key, _ in items] == list(range(len(items))):
        return [php_array(item) if isinstance(item, (list, dict)) else item for _, item in items]
    return {str(key): php_array(item) if isinstance(item, (list, dict)) else item for key, item in items}


# ---------------------------------------------------------------------------- validation

def _blank(value: Any) -> bool:
    """``validateRequired`` fails: absent, null, an empty (after PHP's trim) string, an empty array."""
    if value is _MISSING or value is None:
        return True
    if isinstance(value, str):
        return value.strip(_PHP_TRIM) == ""
    if isinstance(value, (list, dict)):
        return not value
    return False


def _runs(value: Any) -> bool:
    """Whether a non-implicit rule of a ``nullable`` attribute runs (``isValidatable``)."""
    if value is _MISSING or value is None:
        return False
    return not (isinstance(value, str) and value.strip(_PHP_TRIM) == "")


def _is_true(value: Any) -> bool:
    """``allow_dupplicate`` after it passed ``boolean``: true, 1 or "1"."""
    return value is True or (type(value) is int and value == 1) or value == "1"


def _boolean_ok(value: Any) -> bool:
    return isinstance(value, bool) or (type(value) is int and value in (0, 1)) or value in ("0", "1")


def _phone_rules(attribute: str, shown: str, value: Any, fail: Callable[[str, str], None]) -> bool:
    """``required|string|max:255|regex:/^\\+[1-9][0-9]{6,14}$/``; False when ``required`` failed (and stopped)."""
    if _blank(value):
        fail(attribute, f"The {shown} field is required.")
        return False
    if not isinstance(value, str):
        fail(attribute, f"The {shown} field must be a string.")
    if _php_size(value) > 255:
        fail(attribute, f"The {shown} field must not be greater than 255 characters.")
    if not (isinstance(value, str) and _PHONE_RE.fullmatch(value)):
        fail(attribute, f"The {shown} field format is invalid.")
    return True


def _elements(value: Any) -> list[tuple[str, Any]]:
    """``secondary_contacts.*`` expanded: one ``(key, element)`` per element of an array, none otherwise."""
    if isinstance(value, (list, dict)):
        return [(str(key), element) for key, element in _php_items(value)]
    return []


def validate(data: dict[str, Any], campaign_ids: Collection[int]) -> dict[str, list[str]]:
    """The FormRequest's errors (attribute -> messages, in Laravel's order); empty when the input passes.

    ``data`` is the request input after the middleware; ``campaign_ids`` the caller's campaigns (``exists``).
    """
    errors: dict[str, list[str]] = {}

    def fail(attribute: str, message: str) -> None:
        errors.setdefault(attribute, []).append(message)

    _phone_rules("phone_number", "phone number", data.get("phone_number", _MISSING), fail)

    campaign_id = data.get("campaign_id", _MISSING)  # required|integer|exists:campaigns,id
    if _blank(campaign_id):
        fail("campaign_id", "The campaign id field is required.")
    else:
        number = php_filter_int(campaign_id)
        if number is None:
            fail("campaign_id", "The campaign id field must be an integer.")
        elif number not in campaign_ids:  # exists runs only when the attribute has no error yet
            fail("campaign_id", "The selected campaign id is invalid.")

    variables = data.get("variables", _MISSING)  # nullable|array
    if _runs(variables) and not isinstance(variables, (list, dict)):
        fail("variables", "The variables field must be an array.")

    allow = data.get("allow_dupplicate", _MISSING)  # nullable|boolean
    if _runs(allow) and not _boolean_ok(allow):
        fail("allow_dupplicate", "The allow dupplicate field must be true or false.")

    contacts = data.get("secondary_contacts", _MISSING)  # nullable|array|max:10
    if _runs(contacts):
        if not isinstance(contacts, (list, dict)):
            fail("secondary_contacts", "The secondary contacts field must be an array.")
        if _php_size(contacts) > MAX_SECONDARY_CONTACTS:  # the "array" message: the attribute has the array rule
            fail("secondary_contacts",
                 f"The secondary contacts field must not have more than {MAX_SECONDARY_CONTACTS} items.")

    # Wildcard rules, expanded in rule order: every element's phone_number, then every element's variables.
    elements = _elements(contacts)
    # distinct compares with the other elements' values (Arr::dot: a key that is absent, or holds a
    # non-empty array, is not among them).
    phones = {key: element["phone_number"] for key, element in elements
              if isinstance(element, dict) and "phone_number" in element
              and not (isinstance(element["phone_number"], (list, dict)) and element["phone_number"])}
    for key, element in elements:
        attribute = f"secondary_contacts.{key}.phone_number"
        value = element.get("phone_number", _MISSING) if isinstance(element, dict) else _MISSING
        if _phone_rules(attribute, attribute, value, fail):  # required|string|max:255|regex|distinct
            if any(php_loose_equal(value, other) for other_key, other in phones.items() if other_key != key):
                fail(attribute, f"The {attribute} field has a duplicate value.")
    for key, element in elements:  # nullable|array
        attribute = f"secondary_contacts.{key}.variables"
        value = element.get("variables", _MISSING) if isinstance(element, dict) else _MISSING
        if _runs(value) and not isinstance(value, (list, dict)):
            fail(attribute, f"The {attribute} field must be an array.")
    return errors


def allows_duplicate(data: dict[str, Any]) -> bool:
    return _is_true(data.get("allow_dupplicate"))


# ---------------------------------------------------------------------------- creation

@dataclass
class WriteCall:
    """One ``POST /user/lead`` the demo upstream received (tests assert what the gateway sent and got).

    ``status`` is the status line the client was sent (for "lost"/"lost-before": the one of the answer cut
    short); ``lead_id`` the lead created (None: none); ``fault`` the write fault injected (None: none).
    """

    token: str | None
    body: dict
    status: int
    lead_id: int | None
    fault: str | None
    request_id: str | None = None  # the X-Request-ID the caller sent


@functools.lru_cache(maxsize=64)
def _dataset_keys(token: str) -> frozenset[tuple[str, int]]:
    return frozenset((lead["phone_number"], lead["campaign_id"]) for lead in dataset_for_token(token))


@functools.lru_cache(maxsize=64)
def _campaigns(token: str) -> dict[int, dict]:
    return {campaign["id"]: campaign for campaign in campaigns_for_token(token)}


def campaign_ids(token: str) -> Collection[int]:
    return _campaigns(token).keys()


def _timestamp(now: datetime) -> str:
    return now.strftime("%Y-%m-%d %H:%M:%S")


class WriteStore:
    """The leads created on one demo app (per token, in id order) and what ``/_demo/writes`` reports.

    ``encode`` is the upstream's JSON encoder: each created lead is kept next to its encoding, like the
    dataset's rows, so that ``GET /user/leads`` pages join cached strings.
    """

    def __init__(self, encode: Callable[[Any], str], max_calls: int = 100_000) -> None:
        self.encode = encode
        self.calls: collections.deque[WriteCall] = collections.deque(maxlen=max_calls)  # bounded: benchmarks
        self.posts = 0  # POST /user/lead requests received
        self.created = 0  # leads created
        self._rows: dict[str, list[tuple[dict, str]]] = {}
        self._keys: dict[str, set[tuple[str, int]]] = {}
        self._next_ids: dict[str, list[int]] = {}  # token -> [next lead id, next secondary contact id]

    def reset(self) -> None:
        """Forget every created lead and record (in place: ``app.state.write_calls`` is ``self.calls``)."""
        self.calls.clear()
        self.posts = 0
        self.created = 0
        self._rows.clear()
        self._keys.clear()
        self._next_ids.clear()

    def rows(self, token: str) -> list[tuple[dict, str]]:
        """``(lead, its JSON)`` of the leads created for ``token``, in id order."""
        return self._rows.get(token, [])

    def leads(self, token: str) -> list[dict]:
        return [lead for lead, _ in self.rows(token)]

    def taken(self, token: str, phone_number: str, campaign_id: int) -> bool:
        """Whether ``token`` has a lead (dataset or created) with this phone number in this campaign."""
        key = (phone_number, campaign_id)
        return key in _dataset_keys(token) or key in self._keys.get(token, ())

    def create(self, token: str, data: dict[str, Any], now: datetime, *, commit: bool = True) -> dict | None:
        """The lead ``data`` (validated input) describes, appended to ``token``'s leads unless ``commit`` is
        false (then nothing is kept and no id is used). None when the token's id block is used up."""
        lead_ids, contact_ids = write_id_ranges(token)
        next_lead, next_contact = self._next_ids.get(token) or [lead_ids.start, contact_ids.start]
        contacts_given = [element for _, element in _elements(data.get("secondary_contacts"))]
        if next_lead >= lead_ids.stop or next_contact + len(contacts_given) > contact_ids.stop:
            return None
        stamp = _timestamp(now)
        campaign_id = php_filter_int(data["campaign_id"])
        contacts = []
        for offset, element in enumerate(contacts_given):
            contacts.append({
                "id": next_contact + offset,
                "phone_number": element["phone_number"],
                "variables": php_array(element.get("variables")),
                "status": "created",
                "created_at": stamp,
                "updated_at": stamp,
            })
        lead = {
            "id": next_lead,
            "campaign_id": campaign_id,
            "phone_number": data["phone_number"],
            "variables": php_array(data.get("variables")),
            "status": "created",
            "created_at": stamp,
            "updated_at": stamp,
            "campaign": dict(_campaigns(token)[campaign_id]),
            "secondary_contacts": contacts,
        }
        if commit:
            self._next_ids[token] = [next_lead + 1, next_contact + len(contacts)]
            self._rows.setdefault(token, []).append((lead, self.encode(lead)))
            self._keys.setdefault(token, set()).add((lead["phone_number"], campaign_id))
            self.created += 1
        return lead


def created_answer(lead: dict) -> dict:
    """The 201 body: the vendor's documented quirk has ``id`` and ``campaign_id`` as strings here."""
    data = dict(lead)
    data["id"] = str(lead["id"])
    data["campaign_id"] = str(lead["campaign_id"])
    return {"message": CREATED_MESSAGE, "data": data}


# ---------------------------------------------------------------------------- write faults

def take_write_fault(options: Any, token: str) -> str | None:
    """The write fault this POST of ``token`` gets: its entry in ``options.token_write_faults``, else
    ``options.write_fault``; counted down in ``options.write_fault_times`` when that is not None
    (at 0 no more faults)."""
    kind = options.token_write_faults.get(token, options.write_fault)
    if kind is None:
        return None
    if kind not in WRITE_FAULTS:  # set on a running server without validation
        raise ValueError(f"unknown demo write fault {kind!r}")
    times = options.write_fault_times
    if times is not None:
        if times <= 0:
            return None
        options.write_fault_times = times - 1
    return kind


_DROPPED = contextvars.ContextVar("demo_write_dropped", default=False)
_UVICORN_INCOMPLETE = "ASGI callable returned without completing response."


class _QuietIntendedDrops(logging.Filter):
    """Drop uvicorn's error line for an answer the demo cut short on purpose (and only for that one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (_DROPPED.get() and record.getMessage() == _UVICORN_INCOMPLETE)


def install_quiet_drops() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(existing, _QuietIntendedDrops) for existing in logger.filters):
        logger.addFilter(_QuietIntendedDrops())


async def drop_connection(send: Callable, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    """Send the answer's head (its full ``content-length``) and half its body, then stop without completing:
    the server (uvicorn) closes the connection, and the client sees it lost mid-answer. (An app that stops
    before sending the head gets a 500 sent for it, which is why the head goes out.)"""
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
    _DROPPED.set(True)  # the task's context: uvicorn logs its complaint in this task, after we return
