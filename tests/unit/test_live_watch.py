"""``datasource/live/watch.py`` (no I/O): how subscribers are grouped (``group_id``), the state a poll yields
(``window_state`` / ``lead_state`` / ``error_state``: canonical body and digest), a published state read
back by another instance (``decode_state``), and the narrow filter a watched lead is polled with."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timezone

import pytest

from gateway.datasource.live.watch import (
    LeadWatch,
    WindowWatch,
    decode_state,
    error_state,
    group_id,
    lead_state,
    narrow_filter,
    window_state,
)
from gateway.datasource.reader import Window
from gateway.errors import GatewayError, RateLimited, Unauthenticated, UpstreamUnauthenticated
from gateway.leads.filter import ListFilter
from gateway.leads.pagination import WindowRequest
from gateway.leads.records import CampaignRef, ContactRecord, LeadRecord

T0 = datetime(2026, 3, 14, 9, 26, 53, tzinfo=timezone.utc)
T1 = datetime(2026, 3, 14, 10, 0, 0, tzinfo=timezone.utc)


def lead(i: int, status: str = "created", **changes) -> LeadRecord:
    record = LeadRecord(id=i, campaign_id=7, phone_number=f"+1555{i:07d}", variables={"customer_name": f"n{i}"},
                        status=status, created_at=T0, updated_at=T0, campaign=CampaignRef(7, "Spring"),
                        secondary_contacts=(ContactRecord(i * 10, "+15550000000", {}, "created", T0, T0),))
    return dataclasses.replace(record, **changes) if changes else record


def window(leads, *, total: int = 50, start: int = 0, flt: ListFilter | None = None, **extra) -> Window:
    leads = tuple(leads)
    return Window(flt or ListFilter(), start, start + len(leads), total, leads, **extra)


def request(lo: int = 0, first: int = 5) -> WindowRequest:
    return WindowRequest(lo=lo, hi=None, first=first, last=None)


# --- group_id ---------------------------------------------------------------------------------------

def test_group_id_is_equal_for_equal_caller_and_watch():
    a = WindowWatch(ListFilter(status="created", campaign_id=3), request(0, 5))
    b = WindowWatch(ListFilter(campaign_id=3, status="created"), request(0, 5))  # built apart, equal
    assert group_id("caller-1", a) == group_id("caller-1", b)
    assert group_id("caller-1", LeadWatch(42)) == group_id("caller-1", LeadWatch(42))
    gid = group_id("caller-1", a)
    assert len(gid) == 32 and all(c in "0123456789abcdef" for c in gid)


@pytest.mark.parametrize("other", [
    ("caller-2", WindowWatch(ListFilter(status="created"), request(0, 5))),  # another caller
    ("caller-1", WindowWatch(ListFilter(status="completed"), request(0, 5))),  # another filter
    ("caller-1", WindowWatch(ListFilter(), request(0, 5))),  # no filter
    ("caller-1", WindowWatch(ListFilter(status="created"), request(5, 5))),  # another position
    ("caller-1", WindowWatch(ListFilter(status="created"), request(0, 6))),  # another size
    ("caller-1", LeadWatch(42)),  # a lead, not a window
])
def test_group_id_differs_for_another_caller_or_watch(other):
    base = group_id("caller-1", WindowWatch(ListFilter(status="created"), request(0, 5)))
    assert group_id(*other) != base


def test_group_id_differs_per_lead_and_does_not_show_the_caller():
    assert group_id("caller-1", LeadWatch(1)) != group_id("caller-1", LeadWatch(2))
    assert "caller-1" not in group_id("caller-1", LeadWatch(1))


# --- states -----------------------------------------------------------------------------------------

def test_window_state_digest_is_stable_and_ignores_what_subscribers_do_not_see():
    leads = [lead(i) for i in range(1, 6)]
    first, again = window_state(window(leads)), window_state(window([lead(i) for i in range(1, 6)]))
    assert first.body == again.body and first.digest == again.digest
    # warnings (and fetch times) are not part of what is compared
    assert window_state(window(leads, warnings=({"code": "STALE"},))).digest == first.digest
    assert not first.final and first.value.leads == tuple(leads)


@pytest.mark.parametrize("change", [
    lambda ls: [ls[0], dataclasses.replace(ls[1], status="completed"), *ls[2:]],  # a lead's status
    lambda ls: [ls[0], dataclasses.replace(ls[1], updated_at=T1), *ls[2:]],  # a lead's other field
    lambda ls: ls[:-1],  # a lead left the window
    lambda ls: [*ls[:-1], lead(99)],  # another lead entered it
])
def test_window_state_digest_changes_when_the_window_does(change):
    leads = [lead(i) for i in range(1, 6)]
    assert window_state(window(change(leads))).digest != window_state(window(leads)).digest


def test_window_state_digest_changes_with_total_and_position():
    leads = [lead(i) for i in range(1, 6)]
    base = window_state(window(leads)).digest
    assert window_state(window(leads, total=51)).digest != base
    assert window_state(window(leads, start=5)).digest != base


def test_lead_state_digest_changes_with_status_and_when_gone():
    one = lead(3)
    assert lead_state(one).digest == lead_state(lead(3)).digest
    assert lead_state(dataclasses.replace(one, status="scheduled")).digest != lead_state(one).digest
    gone = lead_state(None)
    assert gone.value is None and not gone.final and gone.digest != lead_state(one).digest


def test_error_state_is_final():
    state = error_state(UpstreamUnauthenticated("The upstream refused the token."))
    assert state.final and isinstance(state.value, GatewayError)
    assert not window_state(window([lead(1)])).final and not lead_state(None).final


# --- decode_state -------------------------------------------------------------------------------------

def test_decode_state_round_trips_a_window():
    flt = ListFilter(status="created")
    watch = WindowWatch(flt, request(10, 3))
    state = window_state(window([lead(11), lead(12, "completed"), lead(13)], total=40, start=10, flt=flt))
    back = decode_state(state.body, watch)
    assert back.body == state.body and back.digest == state.digest and not back.final
    w = back.value
    assert (w.start, w.stop, w.total, w.filter) == (10, 13, 40, flt)
    assert w.leads == state.value.leads


def test_decode_state_round_trips_a_lead_and_a_gone_lead():
    state = lead_state(lead(5, "processing"))
    back = decode_state(state.body, LeadWatch(5))
    assert back.digest == state.digest and back.value == state.value
    gone = decode_state(lead_state(None).body, LeadWatch(5))
    assert gone.value is None and gone.digest == lead_state(None).digest


@pytest.mark.parametrize("error", [
    UpstreamUnauthenticated("The upstream refused the token."),
    Unauthenticated("A bearer token is required."),
    RateLimited("Slow down.", retryAfter=3),
])
def test_decode_state_round_trips_an_error(error):
    state = error_state(error)
    back = decode_state(state.body, WindowWatch(ListFilter(), request()))
    assert back.final and back.digest == state.digest
    assert isinstance(back.value, GatewayError)
    assert back.value.extensions.get("code") == error.extensions.get("code")
    assert str(back.value) == str(error)


@pytest.mark.parametrize("body", [b"", b"not json", b"[]", b"{}", b'{"w": 3}', b'{"w": [0, 1]}', b'{"l": [1]}',
                                  b'{"w": [0, 1, 2, [[1, 2]]]}'])
def test_decode_state_rejects_what_is_not_a_state(body):
    watch = WindowWatch(ListFilter(), request()) if not body.startswith(b'{"l"') else LeadWatch(1)
    with pytest.raises(ValueError):
        decode_state(body, watch)


def test_a_window_body_is_not_taken_for_a_lead():
    body = window_state(window([lead(1)])).body
    with pytest.raises(ValueError):
        decode_state(body, LeadWatch(1))


# --- narrow_filter ------------------------------------------------------------------------------------

def test_narrow_filter_is_phone_campaign_and_creation_day():
    record = lead(8, created_at=datetime(2026, 1, 31, 23, 59, 59, tzinfo=timezone.utc))
    flt = narrow_filter(record)
    assert flt == ListFilter(campaign_id=7, phone_number=record.phone_number, date_from=date(2026, 1, 31),
                             date_to=date(2026, 1, 31))
    params = dict(flt.params)
    assert params["phone_number"] == record.phone_number and params["campaign_id"] == "7"
    assert params["date_from"] == params["date_to"] == "2026-01-31"
    assert "status" not in params  # a status change must not hide the lead from its own poll


def test_narrow_filter_without_a_campaign():
    flt = narrow_filter(lead(8, campaign_id=None, campaign=None))
    assert flt.campaign_id is None and "campaign_id" not in dict(flt.params)
    assert flt.phone_number == lead(8).phone_number
