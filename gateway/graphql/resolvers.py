"""What root and nested fields fetch: GraphQL arguments -> validated filter and window (no I/O on bad
input) -> the request's ``LeadsSource``. They return domain values (windows, records); the types in
``types.py`` wrap them."""

from __future__ import annotations

import strawberry

from gateway.datasource.reader import Window
from gateway.errors import BadUserInput
from gateway.graphql.context import GatewayContext
from gateway.datasource.writes import WriteResult
from gateway.graphql.inputs import CreateLeadInput, LeadFilter, to_filter, to_lead_input
from gateway.leads.ids import fits_graphql_int, from_global_id
from gateway.leads.pagination import resolve_window
from gateway.leads.records import LeadRecord
from gateway.leads.writes import new_lead


async def window(info: strawberry.Info, filter: LeadFilter | None, first: int | None, after: str | None,
                 last: int | None, before: str | None, *, campaign_id: int | None = None) -> tuple[Window, int]:
    """The window the arguments ask for, and its page size."""
    ctx: GatewayContext = info.context
    lead_filter = to_filter(filter, campaign_id)
    request = resolve_window(first=first, after=after, last=last, before=before,
                             fingerprint=lead_filter.fingerprint, max_size=ctx.max_page_size)
    return await ctx.source.window(lead_filter, request), request.size


async def lead(info: strawberry.Info, database_id: int) -> LeadRecord | None:
    ctx: GatewayContext = info.context
    return await ctx.lead_loader.load(database_id)


async def campaign_name(info: strawberry.Info, database_id: int) -> str | None:
    """A campaign's name, from the first of its leads that carries it (None when it has none)."""
    ctx: GatewayContext = info.context
    page = await ctx.source.campaign_page(database_id)
    return next((lead.campaign.name for lead in page.items if lead.campaign is not None), None)


def entity_id(type_name: str, global_id: str | None, database_id: int | None) -> int | None:
    """The database id a federation representation names for ``type_name``, by ``id`` or ``databaseId``;
    None when it names no object of that type (unknown, malformed, another type's id)."""
    if not isinstance(global_id, str):
        global_id = None
    if not fits_graphql_int(database_id):
        database_id = None
    if database_id is None and global_id is not None:
        try:
            kind, database_id = from_global_id(global_id)
        except BadUserInput:
            return None
        if kind != type_name:
            return None
    return database_id if fits_graphql_int(database_id) else None


async def create_lead(info: strawberry.Info, given: CreateLeadInput) -> WriteResult:
    """Check the input (problems come back without any upstream call), then create the lead."""
    ctx: GatewayContext = info.context
    checked = new_lead(to_lead_input(given))
    if isinstance(checked, list):
        return WriteResult(problems=tuple(checked))
    return await ctx.source.create_lead(checked, given.idempotency_key)


async def placed(info: strawberry.Info, lead_id: int) -> tuple[int, int]:
    """(position, total) of a new lead in the caller's unfiltered list; when it is not where new leads go
    (near the end), the end of the list, where it will be by the next read."""
    ctx: GatewayContext = info.context
    where = await ctx.source.place(lead_id)
    return (where.position if where.position is not None else max(0, where.total - 1)), where.total
