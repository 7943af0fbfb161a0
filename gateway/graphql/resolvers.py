"""Root resolvers: GraphQL arguments -> validated filter and window (no I/O on bad input) -> reader."""

from __future__ import annotations

import asyncio

import strawberry

from gateway.errors import BadUserInput
from gateway.leads.filter import ALL_LEADS, ListFilter
from gateway.graphql.context import GatewayContext
from gateway.graphql.types import Campaign, Lead, LeadConnection, LeadFilter, Node
from gateway.leads.ids import fits_graphql_int, from_global_id
from gateway.leads.pagination import resolve_window


def to_query(f: LeadFilter | None) -> ListFilter:
    if f is None:
        return ALL_LEADS
    return ListFilter.build(status=f.status.value if f.status else None, campaign_id=f.campaign_id,
                           phone_number=f.phone_number, date_from=f.created_from, date_to=f.created_to)


async def resolve_connection(info: strawberry.Info, filter: LeadFilter | None, first: int | None, after: str | None,
                             last: int | None, before: str | None, *, campaign_id: int | None = None) -> LeadConnection:
    ctx: GatewayContext = info.context
    query = to_query(filter)
    if campaign_id is not None:
        query = query.with_campaign(campaign_id)
    request = resolve_window(first=first, after=after, last=last, before=before, fingerprint=query.fingerprint,
                             max_size=ctx.settings.max_page_size)
    window = await ctx.reader.window(query, request)
    return LeadConnection.from_window(window, request.size)


async def resolve_lead(info: strawberry.Info, database_id: int) -> Lead | None:
    ctx: GatewayContext = info.context
    record = await ctx.lead_loader.load(database_id)
    return Lead.from_record(record) if record else None


async def resolve_campaign(info: strawberry.Info, database_id: int) -> Campaign:
    ctx: GatewayContext = info.context
    page = await ctx.reader.campaign_leads_page(database_id)
    name = next((lead.campaign.name for lead in page.items if lead.campaign is not None), None)
    return Campaign.build(database_id, name)


async def resolve_node(info: strawberry.Info, global_id: str) -> Node | None:
    type_name, database_id = from_global_id(global_id)
    if not fits_graphql_int(database_id):
        return None
    if type_name == "Lead":
        return await resolve_lead(info, database_id)
    if type_name == "Campaign":
        return await resolve_campaign(info, database_id)
    return None


async def resolve_entity(info: strawberry.Info, type_name: str, global_id: str | None,
                         database_id: int | None) -> Lead | Campaign | None:
    """A federation representation by ``id`` or ``databaseId``. Anything that names no object of this
    type for this caller (unknown, malformed, another type's id) is null for that entry only."""
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
    if not fits_graphql_int(database_id):
        return None
    if type_name == "Lead":
        return await resolve_lead(info, database_id)
    return await resolve_campaign(info, database_id)


async def resolve_nodes(info: strawberry.Info, ids: list[str]) -> list[Node | None]:
    for global_id in ids:  # validate every id before any upstream call
        from_global_id(global_id)
    return list(await asyncio.gather(*(resolve_node(info, i) for i in ids)))
