"""The object types of the public contract (``schema.graphql``, checked against the shared contract) and
a few additions.

Objects wrap the domain's records and windows and are built eagerly from them, so most fields are plain
attributes that graphql-core reads without a resolver call. Fields that fetch call ``resolvers.py``.
"""

from __future__ import annotations

import functools
import weakref
from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from gateway.datasource.reader import Window
from gateway.graphql import resolvers
from gateway.graphql.inputs import AfterArg, BeforeArg, FilterArg, FirstArg, LastArg, LeadStatus
from gateway.leads.filter import ALL_LEADS
from gateway.leads.ids import to_global_id
from gateway.leads.pagination import PageLinks, encode_cursor, page_links
from gateway.leads.records import CampaignRef, ContactRecord, LeadRecord
from gateway.leads.writes import Problem


def _text(variables: dict[str, Any], key: str) -> str | None:
    value = variables.get(key)
    if value is None or isinstance(value, (dict, list)):
        return None
    return value if isinstance(value, str) else str(value)


@strawberry.interface(description="Relay object identification.")
class Node:
    id: strawberry.ID = strawberry.field(description="Opaque, globally unique ID (not the upstream integer id).")


@strawberry.type(description="A further phone number to try for a lead, with its own call status.")
class SecondaryContact:
    id: strawberry.ID = strawberry.field(description="Opaque, globally unique ID.")
    database_id: int = strawberry.field(description="The upstream integer id.")
    phone_number: str = strawberry.field(description="The phone number to call.")
    variables: JSON = strawberry.field(description="The upstream `variables` map (an empty object when none).")
    customer_name: str | None = strawberry.field(description="`variables.customer_name`, when present.")
    email: str | None = strawberry.field(description="`variables.email`, when present.")
    status: LeadStatus = strawberry.field(description="Call status of this contact.")
    created_at: datetime = strawberry.field(description="When the contact was created (UTC).")
    updated_at: datetime = strawberry.field(description="When the contact last changed (UTC).")

    @classmethod
    def from_record(cls, r: ContactRecord) -> SecondaryContact:
        return cls(id=strawberry.ID(to_global_id("SecondaryContact", r.id)), database_id=r.id,
                   phone_number=r.phone_number, variables=r.variables,
                   customer_name=_text(r.variables, "customer_name"), email=_text(r.variables, "email"),
                   status=LeadStatus(r.status), created_at=r.created_at, updated_at=r.updated_at)


@strawberry.federation.type(keys=["id", "databaseId"],
                            description="A campaign: the calling job that leads belong to.")
class Campaign(Node):
    database_id: int = strawberry.field(description="The upstream integer id (`campaign_id`).")
    name: str | None = strawberry.field(
        description="Null when the gateway cannot learn the name (e.g. the campaign has no leads).")

    @strawberry.field(description="This campaign's leads. `filter.campaignId`, if given, must equal this campaign.")
    async def leads(self, info: strawberry.Info, filter: FilterArg = None, first: FirstArg = None,
                    after: AfterArg = None, last: LastArg = None, before: BeforeArg = None) -> LeadConnection:
        window, page_size = await resolvers.window(info, filter, first, after, last, before,
                                                   campaign_id=self.database_id)
        return LeadConnection.from_window(window, page_size)

    @classmethod
    async def resolve_reference(cls, info: strawberry.Info, id: strawberry.ID | None = None,
                                databaseId: int | None = None, **_: Any) -> Campaign | None:  # noqa: N803
        """Federation entity resolution, by either key."""
        database_id = resolvers.entity_id("Campaign", id, databaseId)
        return None if database_id is None else await cls.fetch(info, database_id)

    @classmethod
    async def fetch(cls, info: strawberry.Info, database_id: int) -> Campaign:
        """The campaign with this id (its name from its first leads)."""
        return cls.build(database_id, await resolvers.campaign_name(info, database_id))

    @classmethod
    def build(cls, database_id: int, name: str | None) -> Campaign:
        return cls(id=strawberry.ID(to_global_id("Campaign", database_id)), database_id=database_id, name=name)

    @classmethod
    def from_ref(cls, ref: CampaignRef) -> Campaign:
        return cls.build(ref.id, ref.name)


@strawberry.federation.type(keys=["id", "databaseId"],
                            description="A lead: a person the AI agent calls, with its campaign and secondary contacts.")
class Lead(Node):
    database_id: int = strawberry.field(description="The upstream integer id.")
    phone_number: str = strawberry.field(description="The phone number to call.")
    variables: JSON = strawberry.field(
        description="The upstream `variables` map passed to the AI agent (an empty object when none).")
    customer_name: str | None = strawberry.field(description="`variables.customer_name`, when present.")
    email: str | None = strawberry.field(description="`variables.email`, when present.")
    status: LeadStatus = strawberry.field(description="Call status of the lead.")
    created_at: datetime = strawberry.field(description="When the lead was created (UTC).")
    updated_at: datetime = strawberry.field(description="When the lead last changed (UTC).")
    campaign_id: int | None = strawberry.field(
        description="The upstream `campaign_id`, present even when the campaign itself is gone.")
    campaign: Campaign | None = strawberry.field(
        description="Null only when the upstream returns no campaign for the lead.")
    secondary_contacts: list[SecondaryContact] = strawberry.field(
        description="Further numbers to try for this lead (possibly none).")

    @classmethod
    async def resolve_reference(cls, info: strawberry.Info, id: strawberry.ID | None = None,
                                databaseId: int | None = None, **_: Any) -> Lead | None:  # noqa: N803
        """Federation entity resolution, by either key; a router's batch shares one lookup."""
        database_id = resolvers.entity_id("Lead", id, databaseId)
        return None if database_id is None else await cls.fetch(info, database_id)

    @classmethod
    async def fetch(cls, info: strawberry.Info, database_id: int) -> Lead | None:
        """The caller's lead with this id; None when it has none."""
        record = await resolvers.lead(info, database_id)
        return cls.from_record(record) if record else None

    @classmethod
    def from_record(cls, r: LeadRecord) -> Lead:
        """The record's Lead, built once per record object (see ``_LeadViews``)."""
        return _VIEWS.get(r)

    @classmethod
    def build(cls, r: LeadRecord) -> Lead:
        return cls(id=strawberry.ID(to_global_id("Lead", r.id)), database_id=r.id, phone_number=r.phone_number,
                   variables=r.variables, customer_name=_text(r.variables, "customer_name"),
                   email=_text(r.variables, "email"), status=LeadStatus(r.status), created_at=r.created_at,
                   updated_at=r.updated_at, campaign_id=r.campaign_id,
                   campaign=Campaign.from_ref(r.campaign) if r.campaign else None,
                   secondary_contacts=[SecondaryContact.from_record(c) for c in r.secondary_contacts])


class _LeadViews:
    """``Lead`` objects kept per record object: a cached page's records are served again and again, and
    building a lead's objects cost more than the rest of its answer. Resolvers never change a Lead, so
    requests share them. Keyed by ``id(record)`` with a weak reference to the record: an entry lives
    exactly as long as its record (the cache's bound is the only bound), and dies with it."""

    def __init__(self) -> None:
        self._by_id: dict[int, tuple[weakref.ref, Lead]] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, record: LeadRecord) -> Lead:
        key = id(record)
        hit = self._by_id.get(key)
        if hit is not None and hit[0]() is record:
            return hit[1]
        view = Lead.build(record)
        self._by_id[key] = (weakref.ref(record, functools.partial(self._forget, key)), view)
        return view

    def _forget(self, key: int, ref: weakref.ref) -> None:
        hit = self._by_id.get(key)
        if hit is not None and hit[0] is ref:  # not an entry made since for a new record at the same address
            del self._by_id[key]


_VIEWS = _LeadViews()


@strawberry.type(description="Relay page information, exact in both directions.")
class PageInfo:
    has_next_page: bool = strawberry.field(description="Leads exist after the last edge of this window.")
    has_previous_page: bool = strawberry.field(description="Leads exist before the first edge of this window.")
    start_cursor: str | None = strawberry.field(description="Cursor of the first edge; null when there are no edges.")
    end_cursor: str | None = strawberry.field(description="Cursor of the last edge; null when there are no edges.")


@strawberry.type(description="A lead and its position in the list.")
class LeadEdge:
    cursor: str = strawberry.field(description="Opaque cursor of this lead, for `after`/`before`.")
    node: Lead = strawberry.field(description="The lead.")


@strawberry.type(description="A numbered page of the current page size, for table UIs.")
class PageCursor:
    page: int = strawberry.field(description="1-based page number.")
    cursor: str = strawberry.field(description="Pass as `after` with `first: pageSize` to get this page.")
    is_current: bool = strawberry.field(description="This page holds the start of the current window.")


@strawberry.type(description="Page numbers over the list at the current page size (Artsy-style `pageCursors`).")
class PageCursors:
    page_size: int = strawberry.field(description="Leads per page (the `first`/`last` of this query).")
    page_count: int = strawberry.field(description="Number of pages of `pageSize` in the whole list (at least 1).")
    current_page: int = strawberry.field(description="The page holding the start of the current window.")
    first: PageCursor | None = strawberry.field(description="Page 1, when `around` does not include it.")
    around: list[PageCursor] = strawberry.field(description="Up to five pages around the current one.")
    last: PageCursor | None = strawberry.field(description="The last page, when `around` does not include it.")
    previous: PageCursor | None = strawberry.field(description="The page before the current one, if any.")
    next: PageCursor | None = strawberry.field(description="The page after the current one, if any.")

    @classmethod
    def from_links(cls, links: PageLinks, fingerprint: str, total: int) -> PageCursors:
        def cur(link):
            if link is None:
                return None
            return PageCursor(page=link.page, cursor=encode_cursor(link.after_position, fingerprint, total),
                              is_current=link.is_current)

        return cls(page_size=links.size, page_count=links.page_count, current_page=links.current,
                   first=cur(links.first), around=[cur(x) for x in links.around], last=cur(links.last),
                   previous=cur(links.previous), next=cur(links.next))


@strawberry.type(description="A Relay cursor connection over the upstream's page-numbered list of leads.")
class LeadConnection:
    edges: list[LeadEdge] = strawberry.field(description="The leads of this window with their cursors.")
    nodes: list[Lead] = strawberry.field(description="The leads of this window (the edges' nodes).")
    page_info: PageInfo = strawberry.field(description="Whether more leads exist on either side, and the end cursors.")
    total_count: int = strawberry.field(description="The upstream `total` for this filter.")
    window: strawberry.Private[Window]
    page_size: strawberry.Private[int]

    @strawberry.field(description="Page numbers and cursors to jump to them, at this query's page size.")
    def page_cursors(self) -> PageCursors:
        w = self.window
        return PageCursors.from_links(page_links(w.start, self.page_size, w.total), w.filter.fingerprint, w.total)

    @classmethod
    def from_window(cls, window: Window, page_size: int) -> LeadConnection:
        fp, total = window.filter.fingerprint, window.total
        nodes = [Lead.from_record(r) for r in window.leads]
        edges = [LeadEdge(cursor=encode_cursor(window.start + i, fp, total), node=n) for i, n in enumerate(nodes)]
        info = PageInfo(has_next_page=window.has_next, has_previous_page=window.has_previous,
                        start_cursor=edges[0].cursor if edges else None,
                        end_cursor=edges[-1].cursor if edges else None)
        return cls(edges=edges, nodes=nodes, page_info=info, total_count=total, window=window, page_size=page_size)


@strawberry.type(description="A problem with the input that the caller can fix.")
class UserError:
    field: list[str] | None = strawberry.field(
        description='Path to the offending input field, e.g. ["input", "phoneNumber"]; null when not about one field.')
    message: str = strawberry.field(description="What is wrong, for people.")
    code: str = strawberry.field(description="INVALID, DUPLICATE, UNKNOWN_CAMPAIGN, IDEMPOTENCY_KEY_REUSED, ...")

    @classmethod
    def from_problem(cls, p: Problem) -> UserError:
        return cls(field=list(p.field) if p.field is not None else None, message=p.message, code=p.code)


@strawberry.type(description="The outcome of `createLead`: the lead, or what to fix.")
class CreateLeadPayload:
    lead: Lead | None = strawberry.field(description="The created lead; null when userErrors is not empty.")
    user_errors: list[UserError] = strawberry.field(
        description="Problems with the input (empty when the lead was created).")
    record: strawberry.Private[LeadRecord | None]

    @strawberry.field(description="The created lead as an edge of the unfiltered Query.leads list (for Relay's "
                                  "@appendEdge); null when userErrors is not empty.")
    async def lead_edge(self, info: strawberry.Info) -> LeadEdge | None:
        if self.record is None:
            return None
        position, total = await resolvers.placed(info, self.record.id)
        return LeadEdge(cursor=encode_cursor(position, ALL_LEADS.fingerprint, total), node=Lead.from_record(self.record))

    @classmethod
    def created(cls, record: LeadRecord) -> CreateLeadPayload:
        return cls(lead=Lead.from_record(record), user_errors=[], record=record)

    @classmethod
    def refused(cls, problems) -> CreateLeadPayload:
        return cls(lead=None, user_errors=[UserError.from_problem(p) for p in problems], record=None)
