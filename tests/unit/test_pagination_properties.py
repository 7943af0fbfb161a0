"""pagination.py against brute-force models: plan(), the whole Relay window, cursors, page links.

The models here are written from the definitions (the Relay Cursor Connections spec, "upstream page
k of size p holds [(k-1)p, kp)"), not from the gateway's code: a DP over positions for the fewest
pages, literal enumeration for tiny cases, and ``ApplyCursorsToEdges`` on a Python list.
"""

from __future__ import annotations

import asyncio
import base64
import math
import random
from collections import Counter
from itertools import combinations

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from gateway.errors import BadUserInput
from gateway.leads.filter import ALL_LEADS, ListFilter
from gateway.datasource.reader import LeadReader
from gateway.leads.pagination import (
    Cursor,
    PageRef,
    WindowRequest,
    collect,
    decode_cursor,
    encode_cursor,
    page_links,
    plan,
    resolve_window,
)
from tests.unit.test_reader import InMemoryUpstream, make_records

FAST = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
FP = ALL_LEADS.fingerprint


# --- brute-force models of page covers ---------------------------------------------------------------

def covered_positions(pages, have=()) -> set[int]:
    out: set[int] = set()
    for ref in pages:
        out.update(range((ref.page - 1) * ref.per_page, ref.page * ref.per_page))
    for a, b in have:
        out.update(range(a, b))
    return out


def min_pages(start: int, stop: int, max_per_page: int, have=()) -> int:
    """Fewest pages covering [start, stop) with ``have`` free: f(x) = 1 + min over pages holding x of
    f(that page's end), f(x) = f(x+1) on a free position, f(stop) = 0."""
    free = set()
    for a, b in have:
        free.update(range(max(a, start), min(b, stop)))
    f = {stop: 0}
    for x in range(stop - 1, start - 1, -1):
        if x in free:
            f[x] = f[x + 1]
        else:
            f[x] = 1 + min(f[min(stop, (x // p + 1) * p)] for p in range(1, max_per_page + 1))
    return f[start]


def one_page_fits(start: int, stop: int, max_per_page: int) -> bool:
    """Some page of size <= max_per_page holds [start, stop): first and last position on the same page."""
    return any(start // p == (stop - 1) // p for p in range(1, max_per_page + 1))


def pages_touching(start: int, stop: int, max_per_page: int) -> list[tuple[int, int]]:
    """Every (k, p) page that intersects [start, stop), as position ranges."""
    out = []
    for p in range(1, max_per_page + 1):
        for k in range(start // p + 1, (stop - 1) // p + 2):
            out.append(((k - 1) * p, k * p))
    return out


def enumerated_min(start: int, stop: int, max_per_page: int) -> int | None:
    """1 or 2 by literal enumeration of all sets of one or two pages; None when neither suffices."""
    need = set(range(start, stop))
    pages = pages_touching(start, stop, max_per_page)
    if any(need <= set(range(a, b)) for a, b in pages):
        return 1
    if any(need <= set(range(a, b)) | set(range(c, d)) for (a, b), (c, d) in combinations(pages, 2)):
        return 2
    return None


def check_plan_shape(pages, max_per_page):
    for ref in pages:
        assert isinstance(ref, PageRef)
        assert ref.page >= 1
        assert 1 <= ref.per_page <= max_per_page


have_ranges = st.lists(
    st.tuples(st.integers(0, 600), st.integers(0, 80)).map(lambda t: (t[0], t[0] + t[1])), max_size=4)


# --- plan() -------------------------------------------------------------------------------------

@FAST
@given(start=st.integers(0, 300), n=st.integers(1, 250),
       max_per_page=st.one_of(st.integers(1, 30), st.just(100)), have=st.one_of(st.just([]), have_ranges))
@example(start=1, n=100, max_per_page=100, have=[])  # crosses the boundary at 100 of every page size
@example(start=99, n=2, max_per_page=100, have=[])
@example(start=95, n=10, max_per_page=100, have=[(0, 100)])
def test_plan_covers_the_window_with_the_fewest_pages(start, n, max_per_page, have):
    stop = start + n
    pages = plan(start, stop, max_per_page, have)
    check_plan_shape(pages, max_per_page)
    assert set(range(start, stop)) <= covered_positions(pages, have)
    assert len(pages) == min_pages(start, stop, max_per_page, have)
    if not have and one_page_fits(start, stop, max_per_page):
        assert len(pages) == 1


@FAST
@given(start=st.integers(0, 30), n=st.integers(1, 12), max_per_page=st.integers(1, 8))
def test_plan_matches_literal_enumeration_on_tiny_windows(start, n, max_per_page):
    stop = start + n
    pages = plan(start, stop, max_per_page)
    assert set(range(start, stop)) <= covered_positions(pages)
    best = enumerated_min(start, stop, max_per_page)
    if best is None:
        assert len(pages) >= 3
    else:
        assert len(pages) == best
    assert min_pages(start, stop, max_per_page) == len(pages)  # the DP model agrees with enumeration


@FAST
@given(start=st.integers(0, 5000), n=st.integers(1, 100))
def test_plan_never_needs_more_than_two_pages_for_a_window_of_at_most_100(start, n):
    # Two pages of 100 always suffice; one suffices exactly when some page holds the window.
    pages = plan(start, start + n, 100)
    assert len(pages) == (1 if one_page_fits(start, start + n, 100) else 2)


@FAST
@given(start=st.integers(0, 500), max_per_page=st.one_of(st.integers(1, 30), st.just(100)))
def test_plan_of_an_empty_window_asks_for_one_page_holding_its_start(start, max_per_page):
    (ref,) = plan(start, start, max_per_page)
    assert ref.start <= start < ref.stop
    assert 1 <= ref.per_page <= max_per_page
    assert plan(start, start, max_per_page, have=[(start, start + 1)]) == []  # the total is in hand


def test_plan_with_everything_in_hand_asks_for_nothing():
    assert plan(10, 40, 100, have=[(0, 25), (20, 50)]) == []


def test_plan_examples_by_hand():
    assert plan(0, 15) == [PageRef(1, 15)]
    # [105, 115): no page of size <= 12 holds both 105 and 114; page 9 of size 13 is [104, 117).
    assert plan(105, 115) == [PageRef(9, 13)]
    assert len(plan(1, 101)) == 2


# --- resolve_window / WindowRequest.bounds ----------------------------------------------------------

def test_resolve_window_rejects_first_and_last_together():
    with pytest.raises(BadUserInput) as err:
        resolve_window(first=1, after=None, last=1, before=None, fingerprint=FP, max_size=100)
    assert err.value.extensions["code"] == "BAD_USER_INPUT"


@pytest.mark.parametrize("kw", [{"first": -1}, {"last": -1}, {"first": 101}, {"last": 101}])
def test_resolve_window_rejects_out_of_range_sizes(kw):
    args = {"first": None, "last": None, **kw}
    with pytest.raises(BadUserInput) as err:
        resolve_window(after=None, before=None, fingerprint=FP, max_size=100, **args)
    assert err.value.extensions["argument"] == next(iter(kw))


@pytest.mark.parametrize("max_size, expected", [(100, 15), (15, 15), (7, 7)])
def test_default_window_is_15_or_the_max(max_size, expected):
    r = resolve_window(first=None, after=None, last=None, before=None, fingerprint=FP, max_size=max_size)
    assert (r.first, r.last, r.size) == (expected, None, expected)
    assert r.bounds() == (0, expected)


def test_resolve_window_turns_cursors_into_bounds():
    r = resolve_window(first=5, after=encode_cursor(9, FP, 50), last=None, before=encode_cursor(12, FP, 50),
                       fingerprint=FP, max_size=100)
    assert (r.lo, r.hi) == (10, 12)
    assert r.bounds() == (10, 12)
    assert not r.needs_total


def test_resolve_window_refuses_a_cursor_of_another_filter():
    other = ListFilter(status="completed").fingerprint
    with pytest.raises(BadUserInput) as err:
        resolve_window(first=5, after=encode_cursor(3, other, 10), last=None, before=None, fingerprint=FP,
                       max_size=100)
    assert err.value.extensions["argument"] == "after"


def test_last_without_before_needs_the_total():
    r = resolve_window(first=None, after=None, last=10, before=None, fingerprint=FP, max_size=100)
    assert r.needs_total
    with pytest.raises(ValueError):
        r.bounds()
    assert r.bounds(35) == (25, 35)
    assert r.bounds(4) == (0, 4)


@FAST
@given(lo=st.integers(0, 300), hi=st.one_of(st.none(), st.integers(0, 300)), size=st.integers(0, 100),
       use_first=st.booleans(), total=st.integers(0, 300))
def test_bounds_is_the_relay_window_on_an_unbounded_list(lo, hi, size, use_first, total):
    # Model: positions lo..(hi or total)-1, then the first/last `size` of them.
    req = WindowRequest(lo=lo, hi=hi, first=size if use_first else None, last=None if use_first else size)
    start, stop = req.bounds(total)
    upper = hi if hi is not None else (math.inf if use_first else total)
    positions = range(lo, int(min(upper, lo + 1000)))
    chosen = list(positions)[:size] if use_first else (list(positions)[-size:] if size else [])
    assert start <= stop
    if chosen:
        assert (start, stop) == (chosen[0], chosen[-1] + 1)
    else:
        assert start == stop


# --- the whole Relay window vs a literal model on a Python list -----------------------------------

def relay_model(length: int, first, after, last, before):
    """The Relay spec on a list of positions 0..length-1 whose cursors are positions.

    Both cursors are looked up in the whole list (as graphql-relay-js's connectionFromArray does), so
    ``after`` >= ``before`` gives nothing rather than ignoring ``before``. Returns (positions returned, hasPrevious, hasNext) where hasPrevious/hasNext are the gateway's
    global definitions: some lead exists before the first / after the last returned one. For an
    empty result the window is the point just after ``after`` (or the start, or the end for `last`)."""
    if first is None and last is None:
        first = 15
    all_edges = list(range(length))
    edges = list(all_edges)
    # ApplyCursorsToEdges
    if after is not None and after in all_edges:
        edges = [e for e in edges if all_edges.index(e) > all_edges.index(after)]
    if before is not None and before in all_edges:
        edges = [e for e in edges if all_edges.index(e) < all_edges.index(before)]
    bounded = list(edges)
    if first is not None:
        edges = edges[:first]
    if last is not None:
        edges = edges[len(edges) - last:] if last < len(edges) else edges
    if edges:
        return edges, edges[0] > 0, edges[-1] < length - 1
    if bounded:
        point = bounded[0] if first is not None else bounded[-1] + 1
    else:
        point = after + 1 if after is not None else 0
    return [], point > 0 and length > 0, point < length


def expected_calls(length: int, first, after, last, before) -> int:
    """Fewest upstream calls for the window, knowing only the arguments (not the list's length)."""
    if first is None and last is None:
        first = 15
    lo = after + 1 if after is not None else 0
    if first is not None:
        hi = lo + first if before is None else min(lo + first, before)
        return 1 if hi <= lo else min_pages(lo, hi, 100)
    if before is not None:
        start = max(lo, before - last)
        return 1 if before <= start else min_pages(start, before, 100)
    # `last` without `before`: one probe page (1, 100) for the total, then whatever it lacks.
    start = max(lo, length - last)
    if start >= length:
        return 1  # empty: the probe already told the total
    return 1 + min_pages(start, length, 100, have=[(0, 100)])


@st.composite
def relay_args(draw):
    length = draw(st.integers(0, 400))
    kind = draw(st.sampled_from(["first", "last", "default"]))
    size = draw(st.integers(0, 100))
    position = st.integers(0, length - 1) if length else st.nothing()
    after = draw(st.one_of(st.none(), st.just(-1), position)) if length else draw(st.one_of(st.none(), st.just(-1)))
    before = draw(st.one_of(st.none(), position)) if length else None
    first = size if kind == "first" else None
    last = size if kind == "last" else None
    return length, first, after, last, before


async def run_window(length, first, after, last, before, records=None):
    records = records if records is not None else make_records(length)
    upstream = InMemoryUpstream(records)
    request = resolve_window(first=first, last=last, fingerprint=FP, max_size=100,
                             after=None if after is None else encode_cursor(after, FP, length),
                             before=None if before is None else encode_cursor(before, FP, length))
    window = await LeadReader(upstream).window(ALL_LEADS, request)
    return window, upstream


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(args=relay_args())
@example(args=(101, None, None, 10, None))
@example(args=(300, 100, 0, None, None))
@example(args=(20, None, 15, 10, None))
@example(args=(20, None, 15, 10, 5))
@example(args=(0, None, -1, 5, None))
def test_window_matches_the_relay_spec_with_minimal_calls(args):
    length, first, after, last, before = args
    records = make_records(length)
    window, upstream = asyncio.run(run_window(length, first, after, last, before, records))
    positions, has_previous, has_next = relay_model(length, first, after, last, before)

    assert [r.id for r in window.leads] == [records[i].id for i in positions]
    if positions:
        assert window.start == positions[0]  # edge cursors are start + i: they must name the right leads
    assert window.total == length
    assert (window.has_previous, window.has_next) == (has_previous, has_next)
    assert window.warnings == ()

    calls = len(upstream.calls)
    assert calls == expected_calls(length, first, after, last, before)
    if last is not None and before is None and length <= 100:
        assert calls == 1


@pytest.mark.parametrize("length, last, after", [(100, 0, None), (300, 0, None), (300, 5, 299)])
async def test_empty_last_window_after_the_probe_needs_no_second_call(length, last, after):
    window, upstream = await run_window(length, None, after, last, None)
    assert window.leads == ()
    assert len(upstream.calls) == 1


# --- cursors -----------------------------------------------------------------------------------------

fingerprints = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)


@FAST
@given(position=st.integers(-1, 10**12), fp=fingerprints, total=st.integers(0, 10**12))
def test_cursor_round_trip(position, fp, total):
    value = encode_cursor(position, fp, total)
    assert value.isascii() and "=" not in value and "+" not in value and "/" not in value  # URL-safe
    assert decode_cursor(value, fp, "after") == Cursor(position, fp, total)


@FAST
@given(position=st.integers(-1, 10**6), fp=fingerprints, other=fingerprints, total=st.integers(0, 10**6))
def test_cursor_of_another_filter_is_refused(position, fp, other, total):
    assume(fp != other)
    with pytest.raises(BadUserInput) as err:
        decode_cursor(encode_cursor(position, fp, total), other, "before")
    assert err.value.extensions == {"code": "BAD_USER_INPUT", "argument": "before"}


def _decodes_or_bad_input(value: str) -> None:
    try:
        cursor = decode_cursor(value, FP, "after")
    except BadUserInput as exc:
        assert exc.extensions["code"] == "BAD_USER_INPUT"
        return
    # Only a real cursor of this filter may decode.
    assert cursor.fingerprint == FP and cursor.position >= -1 and cursor.total >= 0


@FAST
@given(value=st.text())
def test_garbage_text_is_bad_user_input(value):
    _decodes_or_bad_input(value)


@FAST
@given(raw=st.binary(max_size=60))
def test_garbage_base64_is_bad_user_input(raw):
    _decodes_or_bad_input(base64.urlsafe_b64encode(raw).decode().rstrip("="))


@FAST
@given(pos=st.text(max_size=8), total=st.text(max_size=8), fp=st.sampled_from([FP, "x", ""]))
def test_cursor_shaped_garbage_is_bad_user_input(pos, total, fp):
    value = base64.urlsafe_b64encode(f"lg1:{pos}:{total}:{fp}".encode("utf-8", "surrogatepass")).decode()
    _decodes_or_bad_input(value)


@pytest.mark.parametrize("raw", ["lg1:-2:10:" + FP, "lg1:3:-1:" + FP, "lg2:3:10:" + FP, "lg1:3:" + FP,
                                 "lg1:x:10:" + FP, "", "lg1:"])
def test_specific_bad_cursors(raw):
    value = base64.urlsafe_b64encode(raw.encode()).decode()
    with pytest.raises(BadUserInput):
        decode_cursor(value, FP, "after")


# --- collect() ---------------------------------------------------------------------------------------

@FAST
@given(length=st.integers(0, 200), pages=st.lists(st.tuples(st.integers(0, 220), st.integers(0, 60)), max_size=5),
       start=st.integers(0, 220), n=st.integers(0, 120))
def test_collect_returns_the_known_positions_in_order(length, pages, start, n):
    data = [f"lead-{i}" for i in range(length)]
    given_pages = [(offset, data[offset: offset + size]) for offset, size in pages]
    known = set()
    for offset, items in given_pages:
        known.update(range(offset, offset + len(items)))
    assert collect(given_pages, start, start + n) == [data[i] for i in range(start, start + n) if i in known]


# --- page_links() ------------------------------------------------------------------------------------

@FAST
@given(start=st.integers(0, 3000), size=st.integers(0, 120), total=st.integers(0, 3000))
@example(start=0, size=10, total=0)
@example(start=95, size=10, total=100)
@example(start=500, size=10, total=100)
def test_page_links(start, size, total):
    links = page_links(start, size, total)
    s = max(size, 1)
    count = max(1, math.ceil(total / s))
    assert links.size == s and links.page_count == count
    cur = links.current
    if start < count * s:
        assert (cur - 1) * s <= start < cur * s  # the current page holds the window's start
    else:
        assert cur == count  # a start past the end: the last page
    band = [link.page for link in links.around]
    assert len(band) == min(5, count)
    assert band == list(range(band[0], band[0] + len(band)))  # consecutive
    assert 1 <= band[0] and band[-1] <= count and cur in band
    assert (links.first is None) == (1 in band)
    assert (links.last is None) == (count in band)
    assert (links.previous.page if links.previous else None) == (cur - 1 if cur > 1 else None)
    assert (links.next.page if links.next else None) == (cur + 1 if cur < count else None)
    everything = [links.first, links.last, links.previous, links.next, *links.around]
    for link in filter(None, everything):
        assert link.after_position + 1 == (link.page - 1) * s
        assert link.is_current == (link.page == cur)
    if links.first is not None:
        assert links.first.page == 1
    if links.last is not None:
        assert links.last.page == count


def test_page_links_band_is_centred_when_it_can_be():
    links = page_links(start=50, size=10, total=200)  # page 6 of 20
    assert [link.page for link in links.around] == [4, 5, 6, 7, 8]
    assert links.first.page == 1 and links.last.page == 20


# --- figure: upstream calls per window ---------------------------------------------------------------

def test_report_calls_distribution():
    """10,000 random windows (list up to 1,000, size 1..100, pages up to 100): calls per window.

    Run with ``-s`` to see the figure."""
    rng = random.Random(20250630)
    by_kind: dict[str, Counter] = {k: Counter() for k in ("first/after", "last/before", "last alone")}
    records = make_records(1000)

    async def main():
        for _ in range(10_000):
            length = rng.randint(0, 1000)
            n = rng.randint(1, 100)
            kind = rng.choice(list(by_kind))
            after = before = first = last = None
            if kind == "first/after":
                first, after = n, rng.randint(-1, length - 1) if length else None
            elif kind == "last/before":
                last, before = n, rng.randint(0, length - 1) if length else None
            else:
                last = n
            window, upstream = await run_window(length, first, after, last, before, records[:length])
            by_kind[kind][len(upstream.calls)] += 1

    asyncio.run(main())
    total = sum(by_kind.values(), Counter())
    print("\nupstream calls per window (10,000 random windows, L<=1000, n<=100, max_per_page=100)")
    for name, counter in [*by_kind.items(), ("all", total)]:
        n = sum(counter.values())
        row = "  ".join(f"{k} call{'s' if k > 1 else ''}: {counter[k]:5d} ({100 * counter[k] / n:4.1f}%)"
                        for k in sorted(counter))
        print(f"  {name:12s} n={n:5d}  {row}")
    assert sum(total.values()) == 10_000
    assert max(by_kind["first/after"]) <= 2 and max(by_kind["last/before"]) <= 2
    assert max(by_kind["last alone"]) <= 3
