"""parse_page: the documented body, every tolerated Laravel quirk, and every bad shape.

A bad shape must become ``UpstreamBadResponse`` whose message names the field path (so an operator
can find the problem) but never echoes the offending value (it may be personal data).
"""

from __future__ import annotations

import copy
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.errors import UpstreamBadResponse
from gateway.leads.records import CampaignRef, ContactRecord, LeadPage, LeadRecord
from gateway.datasource.parse import parse_page

SEED = Path(os.environ.get("LEADS_SHARED_DIR", Path(__file__).resolve().parents[3] / "shared")) / "seed-leads-endpoint.txt"
T0 = datetime(2025, 6, 30, 11, 18, 4, tzinfo=UTC)


def documented_body() -> dict:
    """The first JSON example of the vendor page, read from the page itself."""
    text = SEED.read_text(encoding="utf-8")
    body, _ = json.JSONDecoder().raw_decode(text, text.index('{\n  "current_page"'))
    return body


def lead(**overrides) -> dict:
    row = {
        "id": 1, "campaign_id": 1, "phone_number": "+1234567890",
        "variables": {"customer_name": "John Doe"}, "status": "created",
        "created_at": "2025-06-30 11:18:04", "updated_at": "2025-06-30 11:18:04",
        "campaign": {"id": 1, "name": "My new campaign"},
        "secondary_contacts": [],
    }
    row.update(overrides)
    return row


def contact(**overrides) -> dict:
    row = {"id": 2, "phone_number": "+1234567899", "variables": {}, "status": "created",
           "created_at": "2025-06-30 11:18:04", "updated_at": "2025-06-30 11:18:04"}
    row.update(overrides)
    return row


def page(rows=None, **overrides) -> dict:
    body = {"current_page": 1, "data": [lead()] if rows is None else rows, "from": 1, "to": 1,
            "last_page": 1, "per_page": 15, "total": 1}
    body.update(overrides)
    return body


def one(row: dict) -> LeadRecord:
    (record,) = parse_page(page([row])).items
    return record


# --- the documented example ------------------------------------------------------------------------

def test_documented_example_parses_to_the_documented_values():
    result = parse_page(documented_body())
    assert isinstance(result, LeadPage)
    assert (result.page, result.per_page, result.total, result.last_page, result.offset) == (1, 15, 150, 10, 0)
    assert result.items == (
        LeadRecord(
            id=1, campaign_id=1, phone_number="+1234567890",
            variables={"customer_name": "John Doe", "email": "john.doe@example.com"},
            status="created", created_at=T0, updated_at=T0,
            campaign=CampaignRef(id=1, name="My new campaign"),
            secondary_contacts=(ContactRecord(
                id=2, phone_number="+1234567899",
                variables={"customer_name": "Jane Doe Secondary", "email": "jane.doe.secondary@example.com"},
                status="created", created_at=T0, updated_at=T0),),
        ),
    )


def test_offset_comes_from_page_and_per_page():
    result = parse_page(page([lead()] * 3, current_page=4, per_page=25, total=200, last_page=8))
    assert result.offset == 75


# --- quirks, one at a time ---------------------------------------------------------------------------

@pytest.mark.parametrize("value", [[], None, "[]", "null", "{}"])
def test_empty_variables_in_every_spelling(value):
    assert one(lead(variables=value)).variables == {}


def test_variables_as_a_json_string():
    encoded = json.dumps({"customer_name": "Ann", "email": "ann@example.com"})
    assert one(lead(variables=encoded)).variables == {"customer_name": "Ann", "email": "ann@example.com"}


@pytest.mark.parametrize("value", [None, []])
def test_campaign_null_or_empty_array_is_no_campaign(value):
    r = one(lead(campaign=value, campaign_id=9))
    assert r.campaign is None
    assert r.campaign_id == 9  # the id survives a missing relation


def test_campaign_without_a_name():
    assert one(lead(campaign={"id": 4, "name": None})).campaign == CampaignRef(4, None)


def test_campaign_id_null():
    assert one(lead(campaign_id=None, campaign=None)).campaign_id is None


def test_secondary_contacts_null():
    assert one(lead(secondary_contacts=None)).secondary_contacts == ()


def test_secondary_contacts_absent():
    row = lead()
    del row["secondary_contacts"]
    assert one(row).secondary_contacts == ()


def test_secondary_contacts_as_an_index_keyed_object():
    row = lead(secondary_contacts={"0": contact(id=5), "3": contact(id=6)})
    assert [c.id for c in one(row).secondary_contacts] == [5, 6]


def test_data_as_an_index_keyed_object_in_key_order():
    # A filtered collection that was not re-indexed: keys ascending with gaps; "10" after "9", not after "1".
    rows = {"1": lead(id=11), "2": lead(id=12), "9": lead(id=19), "10": lead(id=20)}
    result = parse_page(page(rows))
    assert [r.id for r in result.items] == [11, 12, 19, 20]


def test_data_as_an_index_keyed_object_keeps_the_document_order():
    # e.g. `$leads->sortByDesc('created_at')` without `->values()`: json_encode keeps PHP's order.
    rows = {"2": lead(id=30), "0": lead(id=10), "1": lead(id=20)}
    assert [r.id for r in parse_page(page(rows)).items] == [30, 10, 20]


def test_numeric_strings_and_integral_floats():
    body = page([lead(id="7", campaign_id="3", campaign={"id": "3", "name": "c"})],
                current_page="2", per_page="15", total="16", last_page="2")
    result = parse_page(body)
    assert (result.page, result.per_page, result.total, result.last_page) == (2, 15, 16, 2)
    assert (result.items[0].id, result.items[0].campaign_id, result.items[0].campaign.id) == (7, 3, 3)
    assert parse_page(page(per_page=15.0)).per_page == 15


def test_phone_number_sent_as_a_number():
    assert one(lead(phone_number=359888123456)).phone_number == "359888123456"


def test_missing_last_page_is_derived_from_total():
    body = page([], total=31, per_page=10)
    del body["last_page"]
    assert parse_page(body).last_page == 4


def test_empty_page_with_from_and_to_null():
    body = page([], current_page=3, per_page=10, total=20, last_page=2, **{"from": None, "to": None})
    result = parse_page(body)
    assert result.items == ()
    assert (result.page, result.offset, result.total) == (3, 20, 20)


def test_empty_list():
    result = parse_page(page([], total=0, last_page=1, **{"from": None, "to": None}))
    assert result.items == () and result.total == 0


@pytest.mark.parametrize("raw, expected", [
    ("2025-06-30 11:18:04", T0),
    ("2025-06-30T11:18:04Z", T0),
    ("2025-06-30T11:18:04.000000Z", T0),
    ("2025-06-30T13:18:04+02:00", T0),
    ("2025-06-30T06:18:04-05:00", T0),
])
def test_timestamps_are_utc(raw, expected):
    r = one(lead(created_at=raw, updated_at=raw))
    assert r.created_at == expected
    assert r.created_at.utcoffset() == timedelta(0)  # offset-aware, in UTC
    assert r.created_at.hour == 11


def test_naive_timestamp_is_taken_as_utc_not_local_time():
    r = one(lead(created_at="2025-01-15 23:30:00"))
    assert r.created_at.tzinfo is not None
    assert r.created_at == datetime(2025, 1, 15, 23, 30, tzinfo=UTC)


@pytest.mark.parametrize("raw, expected", [("reached_max_retries", "reached-max-retries"),
                                           ("Completed", "completed"), ("blacklisted", "blacklisted")])
def test_status_spellings(raw, expected):
    assert one(lead(status=raw)).status == expected


def test_extra_fields_are_ignored():
    row = lead(deleted_at=None, notes="x")
    assert one(row).id == 1
    assert parse_page(page(links=[], path="https://x", next_page_url=None)).total == 1


# --- bad shapes --------------------------------------------------------------------------------------

SECRET = "SECRET-9f3a"  # stands for personal data: must never be echoed in an error message


def _with(path: tuple, value):
    body = page([lead(secondary_contacts=[contact()])], per_page=15)
    target = body
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return body


_DELETE = object()

BAD = [
    # (where, value, the path the message must name)
    (("current_page",), SECRET, "current_page"),
    (("current_page",), 0, "current_page"),
    (("current_page",), _DELETE, "current_page"),
    (("per_page",), SECRET, "per_page"),
    (("per_page",), 0, "per_page"),
    (("per_page",), True, "per_page"),
    (("total",), -1, "total"),
    (("total",), 1.5, "total"),
    (("total",), None, "total"),
    (("last_page",), SECRET, "last_page"),
    (("data",), _DELETE, "data"),
    (("data",), SECRET, "data"),
    (("data",), {"a": SECRET}, "data"),
    (("data", 0), SECRET, "data[0]"),
    (("data", 0, "id"), SECRET, "data[0].id"),
    (("data", 0, "id"), None, "data[0].id"),
    (("data", 0, "campaign_id"), SECRET, "data[0].campaign_id"),
    (("data", 0, "phone_number"), None, "data[0].phone_number"),
    (("data", 0, "phone_number"), [SECRET], "data[0].phone_number"),
    (("data", 0, "variables"), "not json " + SECRET, "data[0].variables"),
    (("data", 0, "variables"), [SECRET], "data[0].variables"),
    (("data", 0, "variables"), json.dumps([SECRET]), "data[0].variables"),
    (("data", 0, "variables"), 42, "data[0].variables"),
    (("data", 0, "status"), SECRET, "data[0].status"),
    (("data", 0, "status"), None, "data[0].status"),
    (("data", 0, "created_at"), SECRET, "data[0].created_at"),
    (("data", 0, "created_at"), 1751282284, "data[0].created_at"),
    (("data", 0, "updated_at"), "30/06/2025 " + SECRET, "data[0].updated_at"),
    (("data", 0, "campaign"), SECRET, "data[0].campaign"),
    (("data", 0, "campaign"), [SECRET], "data[0].campaign"),
    (("data", 0, "campaign", "id"), SECRET, "data[0].campaign.id"),
    (("data", 0, "campaign", "name"), [SECRET], "data[0].campaign.name"),
    (("data", 0, "secondary_contacts"), SECRET, "data[0].secondary_contacts"),
    (("data", 0, "secondary_contacts", 0), SECRET, "data[0].secondary_contacts[0]"),
    (("data", 0, "secondary_contacts", 0, "status"), SECRET, "data[0].secondary_contacts[0].status"),
    (("data", 0, "secondary_contacts", 0, "created_at"), SECRET, "data[0].secondary_contacts[0].created_at"),
    (("data", 0, "secondary_contacts", 0, "phone_number"), None, "data[0].secondary_contacts[0].phone_number"),
]


@pytest.mark.parametrize("where, value, path", BAD, ids=[".".join(map(str, b[0])) + f"={b[1]!r:.20}" for b in BAD])
def test_bad_shape_is_upstream_bad_response_naming_the_path_not_the_value(where, value, path):
    with pytest.raises(UpstreamBadResponse) as err:
        parse_page(_with(where, value))
    message = str(err.value)
    assert err.value.extensions["code"] == "UPSTREAM_BAD_RESPONSE"
    assert f"{path}:" in message
    assert SECRET not in message
    assert err.value.__cause__ is None and err.value.__suppress_context__  # no chained internals


@pytest.mark.parametrize("payload", [None, [], [page()], "page", 5])
def test_not_a_paginator_object(payload):
    with pytest.raises(UpstreamBadResponse):
        parse_page(payload)


def test_more_rows_than_per_page():
    with pytest.raises(UpstreamBadResponse) as err:
        parse_page(page([lead(id=i) for i in range(3)], per_page=2))
    assert "data" in str(err.value)


def test_the_second_row_is_named():
    with pytest.raises(UpstreamBadResponse) as err:
        parse_page(page([lead(), lead(status=SECRET)]))
    assert "data[1].status" in str(err.value) and SECRET not in str(err.value)


@pytest.mark.parametrize("value", ["--5", "\u00b2", "1\u00b2"])
def test_odd_numeric_strings_are_bad_responses(value):
    with pytest.raises(UpstreamBadResponse):
        parse_page(page(per_page=value))


def test_odd_index_keys_are_bad_responses():
    with pytest.raises(UpstreamBadResponse):
        parse_page(page({"\u00b2": lead()}))


# Any single field replaced by any JSON value: parse_page returns a page or raises UpstreamBadResponse,
# never anything else.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text("abcXYZ0123456789 :-+²٣.", max_size=12) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text("ab01", max_size=2), inner, max_size=3),
    max_leaves=8,
)
FIELDS = [("current_page",), ("per_page",), ("total",), ("last_page",), ("data",), ("data", 0),
          *[("data", 0, k) for k in lead()], ("data", 0, "campaign", "id"), ("data", 0, "campaign", "name"),
          *[("data", 0, "secondary_contacts", 0, k) for k in contact()]]


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(where=st.sampled_from(FIELDS), value=json_values)
def test_any_value_anywhere_parses_or_is_a_bad_response(where, value):
    body = _with(where, copy.deepcopy(value))
    try:
        result = parse_page(body)
    except UpstreamBadResponse:
        return
    assert isinstance(result, LeadPage)
