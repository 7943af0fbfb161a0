"""``LeadWriter``: ``createLead`` without duplicates, with idempotency keys, followed by invalidation.

A POST is never repeated blindly. When its outcome is unknown (a timeout or a connection lost after
sending, a 5xx, an unreadable success), the writer looks for the lead (the list filtered by its phone
number and campaign, created since the attempt, with the same variables) before it tries again or answers:
- found: the lead was created; answered as created;
- not found, ``allowDuplicate`` false: one more POST (``WRITE_ATTEMPTS``), safe because the upstream itself
  refuses a second lead with that phone number in that campaign (a refusal then means the first attempt
  did create it after all: looked for again);
- not found, ``allowDuplicate`` true: no second POST (nothing upstream would stop a late first one from
  making two); the client gets the error with ``outcome: UNKNOWN``.

Idempotency keys (per caller, ``IDEMPOTENCY_SECONDS``, in the cache backend: with Redis every instance
sees them): a record ``{fingerprint, state, ...}`` is written ``pending`` before the POST and ``done``
(the lead, or the userErrors) or ``unknown`` after it. A repeat with a ``done`` record gets the first
outcome; a repeat after ``pending``/``unknown`` (the first call's outcome was never established, or its
instance died) looks for the lead first. Concurrent calls with one key make one POST: in-process through a
single flight, across instances through the store's lease on the record; the others wait for the record.
A record with another input's fingerprint answers ``IDEMPOTENCY_KEY_REUSED``.

Every call that created (or found) a lead invalidates the caller's cached data (``PageCache.invalidate``)
and returns the new scope, so the rest of its request, and every later one on any instance, reads afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gateway.datasource.cache import PageCache
from gateway.datasource.cache.codec import decode_lead, encode_lead
from gateway.datasource.cache.keys import KeyMaker
from gateway.datasource.cache.stores import holding
from gateway.datasource.client import Created, LeadsAPI, PageRequest, Refused, Unknown
from gateway.errors import GatewayError, UpstreamBadResponse, UpstreamTimeout
from gateway.leads.filter import ListFilter
from gateway.leads.pagination import PageRef
from gateway.leads.records import LeadRecord
from gateway.leads.writes import (
    DUPLICATE,
    IDEMPOTENCY_KEY_REUSED,
    INPUT,
    NewLead,
    Problem,
    problems_from_rejection,
)
from gateway.observability.metrics import Stats

log = logging.getLogger("gateway.datasource.writes")

WRITE_ATTEMPTS = 2  # POSTs per call at most: the second only after the lookup proved the first created nothing
IDEMPOTENCY_SECONDS = 24 * 3600
CLOCK_SKEW = timedelta(minutes=2)  # the upstream's clock against ours, when looking for a lead "since" a time
LOOKUP_PAGE = 100
LEASE_SECONDS = 2.0  # renewed while the holder works; how long a crashed holder can keep others waiting
POLL_SECONDS = 0.02
CLOSE_GRACE = 10.0  # at shutdown, how long writes whose clients left may still run


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What a ``createLead`` call came to: the lead or the problems, and the caller's scope afterwards
    (None: nothing was invalidated)."""

    lead: LeadRecord | None = None
    problems: tuple[Problem, ...] = ()
    scope: str | None = None
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class _Attempted:
    """The outcome of the POST protocol, before invalidation."""

    lead: LeadRecord | None = None
    problems: tuple[Problem, ...] = ()
    found: bool = False  # settled by a lookup, not by the upstream's answer


class _OutcomeUnknown(Exception):
    """Inside this module: the protocol could not establish whether the lead exists; ``error`` (its code,
    ``outcome: UNKNOWN``) is what the client gets."""

    def __init__(self, error: GatewayError) -> None:
        super().__init__(error.message)
        self.error = error


class LeadWriter:
    """Per process: shared by every request's ``LeadsSource``."""

    def __init__(self, api: LeadsAPI, cache: PageCache, stats: Stats) -> None:
        self.api = api
        self.cache = cache
        self.stats = stats
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}  # record key -> (its lock, calls using it)
        self._running: set[asyncio.Task] = set()

    async def create(self, token: str, caller: str, lead: NewLead, key: str | None, *,
                     deadline: float | None) -> WriteResult:
        """Create the lead (or replay the key's first outcome). Runs to its end even when the client leaves:
        a write cut off half-way would leave its outcome unknown."""
        task = asyncio.ensure_future(self._create(token, caller, lead, key, deadline))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return await asyncio.shield(task)

    async def _create(self, token: str, caller: str, lead: NewLead, key: str | None,
                      deadline: float | None) -> WriteResult:
        if key is None:
            try:
                return await self._settle(token, caller, lead, None, deadline=deadline)
            except _OutcomeUnknown as exc:
                raise exc.error from None
        record_key = KeyMaker.idempotency(caller, key)
        async with self._lock(record_key, deadline):  # one call per key in this process; the others replay
            result = await self._keyed(token, caller, lead, record_key, deadline)
        if result.lead is not None and result.scope is None:  # a replay: the scope is whatever it is now
            result = WriteResult(result.lead, result.problems, await self.cache.scope(caller), result.replayed)
        return result

    @contextlib.asynccontextmanager
    async def _lock(self, key: str, deadline: float | None):
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                async with asyncio.timeout(left):  # a cancelled acquire never leaves the lock taken
                    await lock.acquire()
            except TimeoutError:
                raise UpstreamTimeout("A createLead call with this idempotencyKey is still running; retry with the "
                                      "same key to get its outcome.", outcome="UNKNOWN") from None
            try:
                yield
            finally:
                lock.release()
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    # --- without a key, or as the key's holder ------------------------------------------------------

    async def _settle(self, token: str, caller: str, lead: NewLead, look_since: float | None, *,
                      deadline: float | None) -> WriteResult:
        """Run the POST protocol and invalidate after a created lead; unknown outcomes raise (counted)."""
        try:
            attempted = await self._attempt(token, caller, lead, look_since, deadline)
        except _OutcomeUnknown:
            self.stats.lead_writes["unknown"] += 1
            raise
        except GatewayError:
            self.stats.lead_writes["failed"] += 1
            raise
        if attempted.lead is None:
            self.stats.lead_writes["refused"] += 1
            return WriteResult(problems=attempted.problems)
        self.stats.lead_writes["found" if attempted.found else "created"] += 1
        return WriteResult(lead=attempted.lead, scope=await self.cache.invalidate(caller))

    async def _attempt(self, token: str, caller: str, lead: NewLead, look_since: float | None,
                       deadline: float | None) -> _Attempted:
        first = look_since if look_since is not None else time.time()
        if look_since is not None:  # an earlier call's outcome was never established
            found = await self._look(token, caller, lead, first, deadline, None)
            if found is not None:
                return _Attempted(lead=found, found=True)
        unknown: Unknown | None = None
        for attempt in range(WRITE_ATTEMPTS):
            try:
                answer = await self.api.create_lead(token, lead.body, caller=caller, deadline=deadline)
            except GatewayError:
                if unknown is None:
                    raise  # certainly nothing created
                # This attempt created nothing, but the one before may have (it was not found, yet).
                raise _OutcomeUnknown(_unknown_error(unknown.error, lead.allow_duplicate)) from None
            if isinstance(answer, Created):
                return _Attempted(lead=answer.lead)
            if isinstance(answer, Refused):
                problems = tuple(problems_from_rejection(answer.message, answer.errors))
                if (unknown is not None or look_since is not None) and any(p.code == DUPLICATE for p in problems):
                    # Refused as a duplicate after an attempt whose outcome was unknown: that one created it.
                    found = await self._look(token, caller, lead, first, deadline, unknown)
                    if found is not None:
                        return _Attempted(lead=found, found=True)
                return _Attempted(problems=problems)
            unknown = answer
            found = await self._look(token, caller, lead, first, deadline, unknown)
            if found is not None:
                return _Attempted(lead=found, found=True)
            if lead.allow_duplicate or attempt + 1 == WRITE_ATTEMPTS:
                break
            log.info("create outcome unknown and the lead not found; sending it again",
                     extra={"fields": {"caller": caller[:8], "error": answer.error.code}})
        assert unknown is not None
        raise _OutcomeUnknown(_unknown_error(unknown.error, lead.allow_duplicate))

    async def _look(self, token: str, caller: str, lead: NewLead, since: float, deadline: float | None,
                    unknown: Unknown | None) -> LeadRecord | None:
        """``_find``, once a POST may have created the lead: a lookup that fails leaves the outcome unknown."""
        try:
            return await self._find(token, caller, lead, since, deadline)
        except GatewayError as exc:
            cause = unknown.error if unknown is not None else exc
            raise _OutcomeUnknown(_unknown_error(cause, True, looked=exc)) from None

    async def _find(self, token: str, caller: str, lead: NewLead, since: float,
                    deadline: float | None) -> LeadRecord | None:
        """The lead this input created since ``since`` (epoch seconds), if the upstream lists one: same phone
        number, campaign and variables, created no earlier than ``since`` (less the clocks' skew)."""
        after = datetime.fromtimestamp(since, UTC) - CLOCK_SKEW
        wanted = ListFilter.build(phone_number=lead.phone_number, campaign_id=lead.campaign_id,
                                  date_from=after.date())
        page = await self.api.fetch_page(token, PageRequest(wanted, PageRef(1, LOOKUP_PAGE)), caller=caller,
                                         deadline=deadline)
        rows = list(page.items)
        if page.last_page > 1:  # ids ascend: the newest leads are on the last page
            last = await self.api.fetch_page(token, PageRequest(wanted, PageRef(page.last_page, LOOKUP_PAGE)),
                                             caller=caller, deadline=deadline)
            rows += last.items
        matches = [r for r in rows if r.phone_number == lead.phone_number and r.campaign_id == lead.campaign_id
                   and r.created_at >= after and _same(r.variables, lead.variables)]
        return max(matches, key=lambda r: r.id, default=None)

    # --- with an idempotency key ----------------------------------------------------------------------

    async def _keyed(self, token: str, caller: str, lead: NewLead, record_key: str,
                     deadline: float | None) -> WriteResult:
        store = self.cache.store
        owner = secrets.token_hex(8)
        while True:
            record = await store.get_record(record_key)
            if _final(record, lead):
                return self._replay(record, lead)
            if not store.shared or await store.try_lease(record_key, owner, LEASE_SECONDS):
                break
            # Another instance holds the key: wait for its record (or for its lease to lapse: it died).
            if deadline is not None and time.monotonic() >= deadline:
                raise UpstreamTimeout("A createLead call with this idempotencyKey is still running; retry with the "
                                      "same key to get its outcome.", outcome="UNKNOWN")
            await asyncio.sleep(POLL_SECONDS)
        async with holding(store, record_key, owner, LEASE_SECONDS) if store.shared else contextlib.nullcontext():
            record = await store.get_record(record_key)  # again, now that this call holds the key
            if _final(record, lead):
                return self._replay(record, lead)
            look_since = float(record["started"]) if record is not None and "started" in record else None
            started = look_since if look_since is not None else time.time()
            await store.put_record(record_key, {"fp": lead.fingerprint, "state": "pending", "started": started},
                                   IDEMPOTENCY_SECONDS)
            try:
                result = await self._settle(token, caller, lead, look_since, deadline=deadline)
            except _OutcomeUnknown as exc:
                await store.put_record(record_key, {"fp": lead.fingerprint, "state": "unknown", "started": started},
                                       IDEMPOTENCY_SECONDS)
                raise exc.error from None
            except GatewayError:
                if look_since is None:  # certainly nothing created by this call: the key is free again
                    await store.delete_record(record_key)
                raise
            done: dict = {"fp": lead.fingerprint, "state": "done"}
            if result.lead is not None:
                done["lead"] = encode_lead(result.lead)
            else:
                done["problems"] = [[list(p.field) if p.field else None, p.message, p.code] for p in result.problems]
            await store.put_record(record_key, done, IDEMPOTENCY_SECONDS)
            return result

    def _replay(self, record: dict, lead: NewLead) -> WriteResult:
        if record.get("fp") != lead.fingerprint:
            self.stats.lead_writes["refused"] += 1
            return WriteResult(problems=(Problem((*INPUT, "idempotencyKey"),
                                                 "This idempotencyKey was used with another input in the last 24 "
                                                 "hours: choose a new key for a new lead.", IDEMPOTENCY_KEY_REUSED),))
        self.stats.lead_writes["replayed"] += 1
        if "lead" in record:
            try:
                return WriteResult(lead=decode_lead(record["lead"]), replayed=True)
            except ValueError:
                pass
        problems = []
        for item in record.get("problems") or ():
            try:
                where, message, code = item
                problems.append(Problem(tuple(where) if where else None, str(message), str(code)))
            except (TypeError, ValueError):
                continue
        if not problems:
            raise UpstreamBadResponse("The stored outcome of this idempotencyKey is unreadable.")
        return WriteResult(problems=tuple(problems), replayed=True)

    async def close(self, grace: float = CLOSE_GRACE) -> None:
        """Let writes still running (their clients may have left) finish for up to ``grace`` seconds: one cut
        off half-way leaves its outcome unknown. Then cancel the rest."""
        if self._running:
            await asyncio.wait(list(self._running), timeout=grace)
        for task in list(self._running):
            task.cancel()


def _final(record: dict | None, lead: NewLead) -> bool:
    """A record that answers this call at once: a settled outcome, or the key used with another input."""
    return record is not None and (record.get("state") == "done" or record.get("fp") != lead.fingerprint)


def _unknown_error(error: GatewayError, allow_duplicate: bool, looked: GatewayError | None = None) -> GatewayError:
    """The error a client gets when the gateway could not establish whether the lead was created."""
    if looked is not None:
        advice = (f"Looking the lead up failed too ({looked.code}). Retry with the same idempotencyKey: the gateway "
                  "then looks for the lead before creating it.")
    elif allow_duplicate:
        advice = ("It was not found afterwards; as duplicates are allowed it was not sent again. Retry with the "
                  "same idempotencyKey: the gateway then looks for the lead before creating it.")
    else:
        advice = ("It was not found afterwards, and a second attempt failed the same way. Retry with the same "
                  "idempotencyKey: the gateway then looks for the lead before creating it.")
    cls = type(error)
    return cls(f"{error.message} Whether the lead was created is unknown. {advice}",
               **{k: v for k, v in error.extensions.items() if k != "code"}, outcome="UNKNOWN")


def _same(got: dict, sent: dict) -> bool:
    """The upstream's copy of the variables we sent (Laravel trims strings and turns empty ones into null)."""
    def norm(value):
        if isinstance(value, str):
            value = value.strip()
            return value or None
        if isinstance(value, dict):
            return {k: norm(v) for k, v in value.items()}
        if isinstance(value, list):
            return [norm(v) for v in value]
        return value
    return norm(got) == norm(sent)
