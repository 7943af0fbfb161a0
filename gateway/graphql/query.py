"""The ``Query`` root type."""

from __future__ import annotations

import asyncio
from typing import Annotated

import strawberry

from gateway.graphql import resolvers
from gateway.graphql.inputs import AfterArg, BeforeArg, FilterArg, FirstArg, LastArg
from gateway.graphql.types import Campaign, Lead, LeadConnection, Node
from gateway.leads.ids import fits_graphql_int, from_global_id


async def _node(info: strawberry.Info, global_id: str) -> Node | None:
    type_name, database_id = from_global_id(global_id)
    if not fits_graphql_int(database_id):
        return None
    if type_name == "Lead":
        return await Lead.fetch(info, database_id)
    if type_name == "Campaign":
        return await Campaign.fetch(info, database_id)
    return None


@strawberry.type(description="Read access to the caller's leads and campaigns.")
class Query:
    @strawberry.field(description="Relay cursor connection over the upstream's page-numbered list.\n"
                                  "Without first/last it returns the first 15 leads (the upstream default).")
    async def leads(self, info: strawberry.Info, filter: FilterArg = None, first: FirstArg = None,
                    after: AfterArg = None, last: LastArg = None, before: BeforeArg = None) -> LeadConnection:
        return LeadConnection.from_window(*await resolvers.window(info, filter, first, after, last, before))

    @strawberry.field(description="One lead by its upstream id; null when it does not exist for this caller. "
                                  "The upstream has no by-id call: this scans the caller's list, at most "
                                  "GATEWAY_LOOKUP_MAX_PAGES pages of 100 (see README).")
    async def lead(self, info: strawberry.Info,
                   database_id: Annotated[int, strawberry.argument(description="The upstream lead id.")]) -> Lead | None:
        return await Lead.fetch(info, database_id)

    @strawberry.field(description="One campaign by its upstream id; its name comes from the campaign's first leads "
                                  "(null when it has none).")
    async def campaign(self, info: strawberry.Info,
                       database_id: Annotated[int, strawberry.argument(description="The upstream campaign id.")]
                       ) -> Campaign | None:
        return await Campaign.fetch(info, database_id)

    @strawberry.field(description="Any object by its global id; null for an unknown type or a missing object.")
    async def node(self, info: strawberry.Info,
                   id: Annotated[strawberry.ID, strawberry.argument(description="A global id.")]) -> Node | None:
        return await _node(info, id)

    @strawberry.field(description="Objects by global ids, in the same order; null entries for unknown ones.")
    async def nodes(self, info: strawberry.Info,
                    ids: Annotated[list[strawberry.ID], strawberry.argument(description="Global ids.")]
                    ) -> list[Node | None]:
        for global_id in ids:  # every id validated before any upstream call
            from_global_id(global_id)
        return list(await asyncio.gather(*(_node(info, i) for i in ids)))
