"""Live changes of the demo upstream's leads: status moves, ``updated_at`` bumps and deletions, per token.

The dataset (gateway/demo/data.py) is deterministic and shared, and the leads ``POST /user/lead`` created
live in the WriteStore; this module keeps what happened to them since, per token, so that subscriptions
polling ``GET /user/leads`` have something to see and tests something to assert. No HTTP here:
gateway/demo/app.py applies ``LiveState.rows`` before filtering and paging, runs the mover and serves the
``/_demo/leads`` control calls.

The list endpoint is benchmarked, so a token nothing happened to costs one dict lookup (its rows are handed
back as they are), and a changed token has a view of its own, built once (proportional to its leads) and
then patched in place per change (a binary search by id) and per lead created since.
"""

from __future__ import annotations

import bisect
import random
from datetime import datetime
from typing import Any, Callable, Sequence

from gateway.demo.data import STATUSES

Row = tuple[dict, str]  # a lead next to its JSON, as the list endpoint joins them

#: Where a lead can go from each status, the usual way first (what one step without a choice takes), with
#: the weights the mover draws by: a lead is scheduled, processed, and then done, or rescheduled and
#: processed again, or given up on; a fresh lead is sometimes blacklisted. The last three are final.
TRANSITIONS: dict[str, tuple[tuple[str, float], ...]] = {
    "created": (("scheduled", 0.9), ("blacklisted", 0.1)),
    "scheduled": (("processing", 1.0),),
    "processing": (("completed", 0.6), ("rescheduled", 0.3), ("reached-max-retries", 0.1)),
    "rescheduled": (("scheduled", 1.0),),
    "completed": (),
    "reached-max-retries": (),
    "blacklisted": (),
}
assert set(TRANSITIONS) == set(STATUSES), "every status of the dataset needs its transitions"

MAX_TOKENS = 10_000  # tokens the mover remembers (oldest forgotten first): fuzzers send many


class FinalStatus(ValueError):
    """A step was asked of a lead whose status has none after it."""


def is_final(status: str) -> bool:
    return not TRANSITIONS.get(status, ())


def next_status(status: str) -> str:
    """The usual next status (the control call without a status); FinalStatus when there is none."""
    choices = TRANSITIONS.get(status, ())
    if not choices:
        raise FinalStatus(f"The lead's status {status} has no next status.")
    return choices[0][0]


def step(status: str, rng: random.Random) -> str:
    """One move of the mover: the next status drawn by the transitions' weights (one draw per move)."""
    choices = TRANSITIONS.get(status, ())
    if not choices:
        raise FinalStatus(f"The lead's status {status} has no next status.")
    return rng.choices([target for target, _ in choices], weights=[weight for _, weight in choices])[0]


def timestamp(now: datetime) -> str:
    """The dataset's format: ``YYYY-MM-DD HH:MM:SS``, UTC, no offset."""
    return now.strftime("%Y-%m-%d %H:%M:%S")


def _lead_id(row: Row) -> int:
    return row[0]["id"]


class _View:
    """One changed token's rows: the dataset's and the created ones (ids ascending), changes applied."""

    def __init__(self, rows: list[Row], created_seen: int) -> None:
        self.rows = rows
        self.created_seen = created_seen  # how many of the WriteStore's leads ``rows`` already holds

    def index(self, lead_id: int) -> int | None:
        position = bisect.bisect_left(self.rows, lead_id, key=_lead_id)
        return position if position < len(self.rows) and _lead_id(self.rows[position]) == lead_id else None


class LiveState:
    """The changes of one demo app, per token, and the tokens seen (the mover moves only theirs).

    ``dataset_rows(token)`` and ``created_rows(token)`` give the token's untouched rows (the cached dataset's,
    the WriteStore's, which only grows until a reset); ``encode`` is the upstream's JSON encoder. Each token
    draws its moves from its own RNG seeded with ``seed`` and the token, so a token's changes depend only on
    how many moves it was asked for, not on the other tokens.
    """

    def __init__(self, encode: Callable[[Any], str], dataset_rows: Callable[[str], Sequence[Row]],
                 created_rows: Callable[[str], Sequence[Row]], seed: int = 0) -> None:
        self.encode = encode
        self.dataset_rows = dataset_rows
        self.created_rows = created_rows
        self.seed = seed
        self.tokens: dict[str, None] = {}  # first seen first
        self.rounds = 0  # mover rounds run
        self.moves = 0  # status changes made, all sources
        self._views: dict[str, _View] = {}
        self._rngs: dict[str, random.Random] = {}

    def reset(self) -> None:
        """Forget every change, every token seen and the draws made."""
        self.tokens.clear()
        self._views.clear()
        self._rngs.clear()
        self.rounds = 0
        self.moves = 0

    def seen(self, token: str) -> None:
        """Note a token that called: the mover moves its leads from now on."""
        if token not in self.tokens:
            self.tokens[token] = None
            if len(self.tokens) > MAX_TOKENS:
                del self.tokens[next(iter(self.tokens))]

    def changed(self, token: str) -> bool:
        return token in self._views

    def rows(self, token: str) -> Sequence[Row]:
        """``token``'s rows as the list shows them, ids ascending, before filtering and paging.
        Shared, not copied: do not mutate it, and do not keep it across an ``await``."""
        view = self._view(token, make=False) if token in self._views else None
        if view is None:
            base, created = self.dataset_rows(token), self.created_rows(token)
            return base + tuple(created) if created else base
        return view.rows

    def lead(self, token: str, lead_id: int) -> dict | None:
        """The lead as the list shows it; None when ``token`` has no such lead (or it was deleted)."""
        rows = self.rows(token)
        position = bisect.bisect_left(rows, lead_id, key=_lead_id)
        return rows[position][0] if position < len(rows) and _lead_id(rows[position]) == lead_id else None

    def set_status(self, token: str, lead_id: int, status: str | None, now: datetime) -> dict | None:
        """Give the lead ``status`` (None: its usual next one, FinalStatus when it has none) and ``updated_at``
        ``now``; the lead as changed, or None when ``token`` has no such lead."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"unknown status {status!r}; expected one of {', '.join(STATUSES)}")
        view = self._view(token)
        position = view.index(lead_id)
        if position is None:
            return None
        lead = view.rows[position][0]
        return self._change(view, position, status if status is not None else next_status(lead["status"]), now)

    def delete(self, token: str, lead_id: int) -> bool:
        """Take the lead out of ``token``'s list; False when it has no such lead."""
        view = self._view(token)
        position = view.index(lead_id)
        if position is None:
            return False
        del view.rows[position]
        return True

    def advance(self, token: str, count: int, now: datetime) -> list[int]:
        """Move up to ``count`` random leads of ``token`` that are not final one step each; their ids, ascending."""
        rows = self.rows(token)
        movable = [position for position, row in enumerate(rows) if not is_final(row[0]["status"])]
        if not movable or count < 1:
            return []
        rng = self._rngs.get(token)
        if rng is None:
            rng = self._rngs[token] = random.Random(f"{self.seed}:{token}")
        chosen = sorted(rng.sample(movable, min(count, len(movable))))
        view = self._view(token)  # the positions hold: making the view copies the same rows in the same order
        moved = []
        for position in chosen:
            lead = view.rows[position][0]
            self._change(view, position, step(lead["status"], rng), now)
            moved.append(lead["id"])
        return moved

    def round(self, count: int, now: datetime) -> dict[str, list[int]]:
        """One round of the mover: ``advance`` every token seen, in the order they were first seen."""
        self.rounds += 1
        moved = {token: self.advance(token, count, now) for token in list(self.tokens)}
        return {token: ids for token, ids in moved.items() if ids}

    def _view(self, token: str, make: bool = True) -> _View | None:
        """``token``'s own rows (made on its first change unless not ``make``), with the leads created since
        added (they are newer than any change). After a WriteStore reset without ours, the changes go too."""
        view = self._views.get(token)
        created = self.created_rows(token)
        if view is not None and len(created) < view.created_seen:
            del self._views[token]
            view = None
        if view is None:
            if not make:
                return None
            view = self._views[token] = _View([*self.dataset_rows(token), *created], len(created))
        elif len(created) > view.created_seen:
            view.rows.extend(created[view.created_seen:])
            view.created_seen = len(created)
        return view

    def _change(self, view: _View, position: int, status: str, now: datetime) -> dict:
        lead = {**view.rows[position][0], "status": status, "updated_at": timestamp(now)}
        view.rows[position] = (lead, self.encode(lead))
        self.moves += 1
        return lead
