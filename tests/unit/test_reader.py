"""``LeadReader`` over an in-memory upstream: the window logic, call counts and warnings.

``InMemoryUpstream`` is the reader's ``PageSource`` with only the network faked: it slices a Python list
of ``LeadRecord`` exactly as Laravel's ``paginate(per_page)`` would (page ``k`` of size ``p`` = items
``[(k-1)p, kp)``), and it refuses what the real upstream would refuse with a 422 (``per_page`` outside
1..100, ``page`` < 1). It has no cache: nothing cached, nothing seen.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from gateway.leads.filter import ALL_LEADS, ListFilter
from gateway.datasource.reader import LOOKUP_CONCURRENCY, LeadReader
from gateway.leads.pagination import encode_cursor, resolve_window
from gateway.datasource.cache import Served
from gateway.datasource.client import PageRequest
from gateway.leads.pagination import PageRef
from gateway.leads.records import LeadPage, LeadRecord

UPSTREAM_MAX_PER_PAGE = 100
BASE_TIME = datetime(2025, 6, 30, 11, 18, 4, tzinfo=UTC)
FETCHED_AT = 1_750_000_000.0  # the n-th call's page was fetched at FETCHED_AT + n


def make_records(n: int, first_id: int = 1000) -> list[LeadRecord]:
    """``n`` distinct leads; ids deliberately differ from positions so the two cannot be confused."""
    return [
        LeadRecord(id=first_id + 7 * i, campaign_id=None, phone_number=f"+1555{i:07d}", variables={},
                   status="created", created_at=BASE_TIME + timedelta(minutes=i),
                   updated_at=BASE_TIME + timedelta(minutes=i), campaign=None, secondary_contacts=())
        for i in range(n)
    ]


class InMemoryUpstream:
    """A page-numbered list, served as the Laravel paginator would; records every call."""

    def __init__(self, records: list[LeadRecord], *, totals: list[int] | None = None) -> None:
        self.records = list(records)
        self.calls: list[PageRequest] = []
        self._totals = list(totals) if totals else None  # optional: the list changes between calls

    async def load(self, lead_filter: ListFilter, ref: PageRef) -> Served:
        request = PageRequest(lead_filter, ref)
        self.calls.append(request)
        page, per_page = request.page.page, request.page.per_page
        if not 1 <= per_page <= UPSTREAM_MAX_PER_PAGE or page < 1:
            raise AssertionError(f"the upstream would answer 422 to page={page} per_page={per_page}")
        records = self.records
        if self._totals:
            records = records[: self._totals.pop(0)]
        await asyncio.sleep(0)  # let concurrent calls interleave, as real I/O would
        lo = (page - 1) * per_page
        total = len(records)
        return Served(LeadPage(page=page, per_page=per_page, total=total, last_page=max(1, -(-total // per_page)),
                               items=tuple(records[lo: lo + per_page])), fetched_at=FETCHED_AT + len(self.calls))

    async def cached(self, lead_filter: ListFilter) -> list[Served]:
        return []

    def seen(self, ids) -> dict:
        return {}


def ids(records) -> list[int]:
    return [r.id for r in records]


async def read(n_leads: int, *, query: ListFilter = ALL_LEADS, cursor_total: int | None = None,
               first=None, after=None, last=None, before=None, max_size: int = 100):
    """Run one window over a list of ``n_leads``; ``after``/``before`` are positions, turned into cursors."""
    records = make_records(n_leads)
    upstream = InMemoryUpstream(records)
    fp = query.fingerprint
    t = n_leads if cursor_total is None else cursor_total
    request = resolve_window(first=first, last=last, fingerprint=fp, max_size=max_size,
                             after=None if after is None else encode_cursor(after, fp, t),
                             before=None if before is None else encode_cursor(before, fp, t))
    reader = LeadReader(upstream)
    window = await reader.window(query, request)
    return window, upstream, records, reader


# --- window(): first/after ------------------------------------------------------------------------

async def test_first_page_is_one_call_of_exactly_the_window():
    window, up, records, _ = await read(250, first=15)
    assert ids(window.leads) == ids(records[:15])
    assert len(up.calls) == 1
    assert (window.start, window.total) == (0, 250)
    assert window.has_next and not window.has_previous


async def test_default_window_is_the_first_15():
    window, up, records, _ = await read(40)
    assert ids(window.leads) == ids(records[:15])
    assert len(up.calls) == 1


async def test_first_after_in_the_middle():
    window, up, records, _ = await read(250, first=10, after=104)
    assert ids(window.leads) == ids(records[105:115])
    assert window.start == 105
    assert window.has_previous and window.has_next
    assert len(up.calls) == 1  # [105, 115) fits one page (page 9 of size 13 is [104, 117))
    ref = up.calls[0].page
    assert ref.start <= 105 and ref.stop >= 115


async def test_first_after_straddling_every_small_page_size_still_one_call():
    # [95, 105) crosses the boundary at 100 of every page size dividing 100, but page 2 of size 53
    # ([53, 106)) holds it: one call.
    window, up, records, _ = await read(300, first=10, after=94)
    assert ids(window.leads) == ids(records[95:105])
    assert len(up.calls) == 1


async def test_window_of_100_crossing_every_page_boundary_needs_two_calls():
    # [1, 101): a single page would have to be of size >= 101; two calls is the minimum.
    window, up, records, _ = await read(300, first=100, after=0)
    assert ids(window.leads) == ids(records[1:101])
    assert len(up.calls) == 2


async def test_first_running_past_the_end_is_truncated_and_has_no_next():
    window, up, records, _ = await read(20, first=15, after=9)
    assert ids(window.leads) == ids(records[10:20])
    assert not window.has_next and window.has_previous


async def test_window_ending_exactly_at_the_end_has_no_next():
    window, _, records, _ = await read(30, first=15, after=14)
    assert ids(window.leads) == ids(records[15:30])
    assert not window.has_next


async def test_window_ending_one_before_the_end_has_next():
    window, _, records, _ = await read(31, first=15, after=14)
    assert window.has_next


async def test_after_the_last_lead_is_empty():
    window, up, _, _ = await read(30, first=10, after=29)
    assert window.leads == ()
    assert not window.has_next and window.has_previous
    assert window.total == 30
    assert len(up.calls) == 1


async def test_after_a_cursor_past_the_end_is_empty_and_still_one_call():
    window, up, _, _ = await read(30, first=10, after=500)
    assert window.leads == ()
    assert not window.has_next
    assert window.has_previous  # there are leads, all before the window
    assert len(up.calls) == 1


async def test_first_zero_is_empty_but_reports_the_total_and_both_directions():
    window, up, _, _ = await read(30, first=0, after=9)
    assert window.leads == ()
    assert window.total == 30
    assert window.has_previous and window.has_next
    assert len(up.calls) == 1  # the total needs one (small) page


async def test_empty_list():
    window, up, _, _ = await read(0, first=10)
    assert window.leads == () and window.total == 0
    assert not window.has_next and not window.has_previous
    assert len(up.calls) == 1


async def test_first_with_before_stops_at_before():
    window, _, records, _ = await read(100, first=50, after=9, before=20)
    assert ids(window.leads) == ids(records[10:20])
    assert window.has_next and window.has_previous


# --- window(): last/before -------------------------------------------------------------------------

async def test_last_before():
    window, up, records, _ = await read(250, last=10, before=150)
    assert ids(window.leads) == ids(records[140:150])
    assert window.start == 140
    assert window.has_previous and window.has_next
    assert len(up.calls) == 1


async def test_last_before_near_the_start_is_clipped_at_zero():
    window, _, records, _ = await read(250, last=10, before=4)
    assert ids(window.leads) == ids(records[:4])
    assert not window.has_previous and window.has_next


async def test_last_before_and_after_keeps_only_between():
    window, _, records, _ = await read(250, last=10, after=144, before=150)
    assert ids(window.leads) == ids(records[145:150])
    assert window.has_previous and window.has_next


@pytest.mark.parametrize("n", [0, 1, 7, 99, 100])
async def test_last_alone_on_a_short_list_is_exactly_one_call(n):
    window, up, records, _ = await read(n, last=10)
    assert ids(window.leads) == ids(records[max(0, n - 10):])
    assert len(up.calls) == 1
    assert not window.has_next
    assert window.has_previous == (n > 10)


@pytest.mark.parametrize("n, expected_calls", [(101, 2), (250, 2), (1000, 2)])
async def test_last_alone_on_a_long_list_probes_then_reads_the_tail(n, expected_calls):
    window, up, records, _ = await read(n, last=10)
    assert ids(window.leads) == ids(records[n - 10:])
    assert len(up.calls) == expected_calls
    assert (up.calls[0].page.page, up.calls[0].page.per_page) == (1, 100)  # the probe
    tail = up.calls[1].page
    assert tail.start <= max(100, n - 10) and tail.stop >= n  # one page holds what the probe lacks
    assert window.has_previous and not window.has_next


async def test_last_alone_whose_window_overlaps_the_probe_reuses_it():
    # [95, 105): positions 95..99 are in the probe page, so only [100, 105) is fetched.
    window, up, records, _ = await read(105, last=10)
    assert ids(window.leads) == ids(records[95:105])
    assert len(up.calls) == 2
    assert up.calls[1].page.start <= 100 and up.calls[1].page.stop >= 105


async def test_last_zero_is_empty_at_the_end():
    window, up, _, _ = await read(30, last=0)
    assert window.leads == ()
    assert window.has_previous and not window.has_next
    assert len(up.calls) == 1


async def test_last_after_without_before_is_the_tail_after_the_cursor():
    window, _, records, _ = await read(30, last=10, after=25)
    assert ids(window.leads) == ids(records[26:30])
    assert window.has_previous and not window.has_next


async def test_last_before_a_stale_cursor_past_the_end_returns_the_tail():
    # The cursor was issued at position 50 of a 60-lead list; the list now has 10 leads.
    # Every lead is before position 50, so `last: 5` must be the last 5 of them.
    window, _, records, _ = await read(10, last=5, before=50, cursor_total=60)
    assert ids(window.leads) == ids(records[5:10])


async def test_every_request_stays_within_the_upstream_limits():
    for first in (1, 15, 99, 100):
        for after in (-1, 0, 98, 99, 100, 199, 555):
            _, up, _, _ = await read(700, first=first, after=after)
            assert all(1 <= c.page.per_page <= 100 and c.page.page >= 1 for c in up.calls)
            assert all(c.filter == ALL_LEADS for c in up.calls)


async def test_window_passes_the_filter_to_every_call():
    q = ListFilter(status="completed", campaign_id=3)
    _, up, _, _ = await read(500, query=q, last=30)
    assert up.calls and all(c.filter == q for c in up.calls)


# --- warnings --------------------------------------------------------------------------------------

async def test_cursor_issued_under_another_total_warns_list_shifted():
    window, _, _, reader = await read(40, first=5, after=9, cursor_total=55)
    codes = [w["code"] for w in window.warnings]
    assert codes == ["LIST_SHIFTED"]
    (w,) = window.warnings
    assert (w["cursorTotal"], w["total"]) == (55, 40)
    assert window.fetched_at == FETCHED_AT + 1  # the one page it was built from


async def test_before_cursor_with_another_total_warns_too():
    window, _, _, _ = await read(40, last=5, before=20, cursor_total=39)
    assert [w["code"] for w in window.warnings] == ["LIST_SHIFTED"]


async def test_cursor_issued_under_the_same_total_does_not_warn():
    window, _, _, reader = await read(40, first=5, after=9, before=30)
    assert window.warnings == ()


async def test_pages_with_different_totals_warn_list_changed():
    records = make_records(300)
    upstream = InMemoryUpstream(records, totals=[300, 290])  # the list shrinks between the two calls
    reader = LeadReader(upstream)
    request = resolve_window(first=100, after=encode_cursor(0, ALL_LEADS.fingerprint, 300), last=None,
                             before=None, fingerprint=ALL_LEADS.fingerprint, max_size=100)
    window = await reader.window(ALL_LEADS, request)
    assert len(upstream.calls) == 2
    assert "LIST_CHANGED" in [w["code"] for w in window.warnings]


# --- find(): bounded scan by id --------------------------------------------------------------------

async def _find(n_leads: int, wanted: list[int], *, max_pages: int = 10):
    records = make_records(n_leads)
    upstream = InMemoryUpstream(records)
    reader = LeadReader(upstream, lookup_max_pages=max_pages)
    result = await reader.find(wanted)
    return result, upstream, records, reader


async def test_find_on_the_first_page_is_one_call():
    records = make_records(1000)
    result, up, _, reader = await _find(1000, [records[3].id, records[77].id])
    assert set(result.found) == {records[3].id, records[77].id}
    assert result.found[records[77].id] == records[77]
    assert result.complete and result.warnings == ()
    assert len(up.calls) == 1
    assert all(c.filter == ALL_LEADS and c.page.per_page == 100 for c in up.calls)


async def test_find_stops_after_the_batch_holding_the_last_wanted_id():
    records = make_records(1000)  # 10 pages of 100
    result, up, _, _ = await _find(1000, [records[150].id])  # on page 2
    assert set(result.found) == {records[150].id}
    assert result.complete
    assert len(up.calls) <= 1 + LOOKUP_CONCURRENCY < 10  # did not read the whole list
    assert sorted(c.page.page for c in up.calls) == list(range(1, len(up.calls) + 1))  # in order


async def test_find_missing_id_in_a_list_within_the_limit_is_complete_without_warning():
    result, up, _, reader = await _find(1000, [1])  # id 1 does not exist; the list is 10 pages
    assert result.found == {} and result.complete
    assert sorted(c.page.page for c in up.calls) == list(range(1, 11))  # every page read once
    assert result.warnings == ()
    assert (result.scanned, result.total) == (1000, 1000)


async def test_find_cut_by_the_limit_warns_lookup_truncated():
    records = make_records(2000)  # 20 pages, limit 10
    result, up, _, reader = await _find(2000, [records[1500].id])
    assert result.found == {} and not result.complete
    assert len(up.calls) == 10
    assert max(c.page.page for c in up.calls) == 10
    assert [w["code"] for w in result.warnings] == ["LOOKUP_TRUNCATED"]
    assert (result.scanned, result.total) == (1000, 2000)


async def test_find_in_a_long_list_that_finds_everything_does_not_warn():
    records = make_records(2000)
    result, up, _, reader = await _find(2000, [records[0].id, records[250].id])
    assert result.complete and len(result.found) == 2
    assert result.warnings == ()
    assert len(up.calls) < 10


async def test_find_respects_a_small_limit():
    records = make_records(500)
    result, up, _, reader = await _find(500, [records[499].id], max_pages=2)
    assert len(up.calls) == 2 and not result.complete
    assert [w["code"] for w in result.warnings] == ["LOOKUP_TRUNCATED"]


async def test_find_in_an_empty_list():
    result, up, _, reader = await _find(0, [5])
    assert result.found == {} and result.complete
    assert len(up.calls) == 1 and result.warnings == ()


# --- place(): a new lead's position in the unfiltered list ---------------------------------------------

def pages_read(upstream: InMemoryUpstream) -> list[int]:
    return [c.page.page for c in upstream.calls]


@pytest.mark.parametrize("n", [1, 60, 100, 101, 250, 300])
async def test_a_new_lead_is_placed_at_the_end_of_the_list(n):
    records = make_records(n)
    upstream = InMemoryUpstream(records)
    placed = await LeadReader(upstream).place(records[-1].id)
    assert (placed.position, placed.total) == (n - 1, n)
    last_page = -(-n // 100)
    assert pages_read(upstream) == ([1] if last_page == 1 else [1, last_page])


@pytest.mark.parametrize("n", [101, 250, 300])
async def test_with_the_old_total_the_last_page_is_read_at_once(n):
    records = make_records(n)
    upstream = InMemoryUpstream(records)
    placed = await LeadReader(upstream).place(records[-1].id, total_hint=n - 1)
    assert (placed.position, placed.total) == (n - 1, n)
    assert sorted(pages_read(upstream)) == [1, -(-n // 100)]  # the guessed page, and no other


async def test_a_wrong_hint_still_places_the_lead_or_says_it_could_not():
    records = make_records(250)
    upstream = InMemoryUpstream(records)
    placed = await LeadReader(upstream).place(records[-1].id, total_hint=10)  # the list grew since
    assert (placed.position, placed.total) == (249, 250)
    earlier = await LeadReader(InMemoryUpstream(records)).place(records[0].id)  # not near the end
    assert (earlier.position, earlier.total) == (0, 250)  # found on the first page
    missing = await LeadReader(InMemoryUpstream(records)).place(1)
    assert (missing.position, missing.total) == (None, 250)
