"""Relay windows over a page-numbered list: cursors, window resolution, page planning, slicing.

Pure functions only (no I/O, no strawberry), property-tested against brute-force models.

Positions are 0-based offsets in the upstream's ordering for one filter. A window is the half-open
range ``[start, stop)`` of positions the client asked for. Upstream page ``k`` of size ``p`` holds
positions ``[(k-1)*p, k*p)``; ``p`` may be anything from 1 to 100, so one window can often be served
by a single well-chosen page.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gateway.errors import BadUserInput

DEFAULT_WINDOW = 15  # the upstream's own default page size
CURSOR_PREFIX = "lg1:"


# --- cursors -------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Cursor:
    """An opaque cursor: a position, the filter it belongs to, and the total it was issued under."""

    position: int
    fingerprint: str
    total: int


def encode_cursor(position: int, fingerprint: str, total: int) -> str:
    raw = f"{CURSOR_PREFIX}{position}:{total}:{fingerprint}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(value: str, fingerprint: str, argument: str) -> Cursor:
    """Decode ``value`` or raise ``BadUserInput``; a cursor from another filter is refused."""
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        if not raw.startswith(CURSOR_PREFIX):
            raise ValueError
        pos, total, fp = raw[len(CURSOR_PREFIX):].split(":", 2)
        cursor = Cursor(int(pos), fp, int(total))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadUserInput(f"`{argument}` is not a valid cursor.", argument=argument) from None
    if cursor.position < -1 or cursor.total < 0:
        raise BadUserInput(f"`{argument}` is not a valid cursor.", argument=argument)
    if cursor.fingerprint != fingerprint:
        raise BadUserInput(f"`{argument}` is a cursor from a different filter; cursors only work with the "
                           "filter they were issued for.", argument=argument)
    return cursor


# --- the client's arguments ---------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class WindowRequest:
    """Validated Relay arguments: bounds from the cursors, then ``first`` or ``last``.

    ``lo``/``hi`` are the positions strictly after ``after`` and strictly before ``before``
    (``hi`` None: up to the end of the list). ``size`` is the requested page size.
    """

    lo: int
    hi: int | None
    first: int | None
    last: int | None
    after: Cursor | None = None
    before: Cursor | None = None

    @property
    def size(self) -> int:
        return self.first if self.first is not None else self.last  # type: ignore[return-value]

    @property
    def needs_total(self) -> bool:
        """``last`` without ``before``: the window's position depends on the list's length."""
        return self.last is not None and self.hi is None

    def bounds(self, total: int | None = None) -> tuple[int, int]:
        """The window ``[start, stop)``; ``total`` is needed only when ``needs_total``."""
        if self.first is not None:
            stop = self.lo + self.first
            if self.hi is not None:
                stop = min(stop, self.hi)
            return self.lo, max(self.lo, stop)
        hi = self.hi if self.hi is not None else total
        if hi is None:
            raise ValueError("bounds() needs the total for `last` without `before`")
        start = max(self.lo, hi - self.last)  # type: ignore[operator]
        return start, max(start, hi)


    def bounds_within(self, total: int) -> tuple[int, int]:
        """``bounds`` with ``before`` capped at the end of a list of ``total`` leads."""
        hi = total if self.hi is None else min(self.hi, total)
        return WindowRequest(self.lo, hi, self.first, self.last).bounds(total)


def resolve_window(*, first: int | None, after: str | None, last: int | None, before: str | None,
                   fingerprint: str, max_size: int) -> WindowRequest:
    """Validate Relay arguments (no I/O). Neither ``first`` nor ``last``: the first 15."""
    if first is not None and last is not None:
        raise BadUserInput("Pass either `first` or `last`, not both.", argument="first")
    for name, value in (("first", first), ("last", last)):
        if value is not None and value < 0:
            raise BadUserInput(f"`{name}` must not be negative.", argument=name)
        if value is not None and value > max_size:
            raise BadUserInput(f"`{name}` must be at most {max_size}.", argument=name, maximum=max_size)
    if first is None and last is None:
        first = min(DEFAULT_WINDOW, max_size)
    a = decode_cursor(after, fingerprint, "after") if after is not None else None
    b = decode_cursor(before, fingerprint, "before") if before is not None else None
    lo = a.position + 1 if a else 0
    hi = max(b.position, 0) if b else None
    return WindowRequest(lo=lo, hi=hi, first=first, last=last, after=a, before=b)


# --- planning ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, order=True)
class PageRef:
    """Upstream page ``page`` of size ``per_page``: positions ``[(page-1)*per_page, page*per_page)``."""

    page: int
    per_page: int

    @property
    def start(self) -> int:
        return (self.page - 1) * self.per_page

    @property
    def stop(self) -> int:
        return self.page * self.per_page


def plan(start: int, stop: int, max_per_page: int = 100,
         have: Iterable[tuple[int, int]] = ()) -> list[PageRef]:
    """The fewest upstream pages that cover ``[start, stop)``, given ranges already in hand.

    Greedy interval cover, which is optimal: at the first uncovered position ``x``, take a page that
    contains ``x`` and reaches furthest right (among equals the smallest, i.e. the least over-fetch);
    if some page reaches ``stop``, take the smallest such page instead. An empty window still asks
    for one row, because the caller needs the list's total.
    """
    if stop <= start:
        stop = start + 1
    ranges = sorted((a, b) for a, b in have if b > a)
    pages: list[PageRef] = []
    x = start
    while x < stop:
        covered = next((b for a, b in ranges if a <= x < b), None)
        if covered is not None:
            x = covered
            continue
        best: PageRef | None = None
        for p in range(1, max_per_page + 1):
            ref = PageRef(x // p + 1, p)
            if ref.stop >= stop:  # the smallest page that finishes the window
                best = ref
                break
            if best is None or ref.stop > best.stop:
                best = ref
        assert best is not None
        pages.append(best)
        x = best.stop
    return pages


def probe_page(max_per_page: int = 100) -> PageRef:
    """First request of a ``last``-without-``before`` window: the largest first page, which both
    reports the total and, for lists up to ``max_per_page`` long, already holds the whole window."""
    return PageRef(1, max_per_page)


# --- slicing -------------------------------------------------------------------------------------

def collect(pages: Iterable[tuple[int, Sequence]], start: int, stop: int) -> list:
    """Items at positions ``[start, stop)`` from pages given as ``(offset, items)``, in order.

    Positions missing from the pages (the list shrank between calls) are simply absent.
    """
    found: dict[int, object] = {}
    for offset, items in pages:
        lo = max(start, offset)
        hi = min(stop, offset + len(items))
        for pos in range(lo, hi):
            found.setdefault(pos, items[pos - offset])
    return [found[pos] for pos in range(start, stop) if pos in found]


# --- page numbers for table UIs -----------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PageLink:
    """Page ``page`` (1-based) for page size ``size``, reached with ``after`` = a cursor at
    ``after_position`` (-1 for page 1: "before the first lead")."""

    page: int
    after_position: int
    is_current: bool


@dataclass(frozen=True, slots=True)
class PageLinks:
    size: int
    page_count: int
    current: int
    first: PageLink | None
    around: tuple[PageLink, ...]
    last: PageLink | None
    previous: PageLink | None
    next: PageLink | None


def page_links(start: int, size: int, total: int, around: int = 5) -> PageLinks:
    """Artsy-style page cursors for pages of ``size`` around the window that starts at ``start``.

    ``first``/``last`` are given only when the ``around`` band does not already include them.
    """
    size = max(size, 1)
    count = max(1, -(-total // size))
    current = min(start // size + 1, count)

    def link(k: int) -> PageLink:
        return PageLink(page=k, after_position=(k - 1) * size - 1, is_current=k == current)

    lo = max(1, min(current - around // 2, count - around + 1))
    hi = min(count, lo + around - 1)
    band = tuple(link(k) for k in range(lo, hi + 1))
    return PageLinks(
        size=size, page_count=count, current=current,
        first=link(1) if lo > 1 else None,
        around=band,
        last=link(count) if hi < count else None,
        previous=link(current - 1) if current > 1 else None,
        next=link(current + 1) if current < count else None,
    )
