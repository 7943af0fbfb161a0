"""The ``Query`` root type."""

from __future__ import annotations

from typing import Annotated

import strawberry

from gateway.graphql import resolvers
from gateway.graphql.types import AfterArg, BeforeArg, Campaign, FilterArg, FirstArg, LastArg, Lead, LeadConnection, Node


@strawberry.type(description="Read access to the caller's leads and campaigns.")
class Query:
    @strawberry.field(description="Relay cursor connection over the upstream's page-numbered list.\n"
                                  "Without first/last it returns the first 15 leads (the upstream default).")
    async def leads(self, info: strawberry.Info, filter: FilterArg = None, first: FirstArg = None,
                    after: AfterArg = None, last: LastArg = None, before: BeforeArg = None) -> LeadConnection:
        return await resolvers.resolve_connection(info, filter, first, after, last, before)

    @strawberry.field(description="One lead by its upstream id; null when it does not exist for this caller. "
                                  "The upstream has no by-id call: this scans the caller's list, at most "
                                  "GATEWAY_LOOKUP_MAX_PAGES pages of 100 (see README).")
    async def lead(self, info: strawberry.Info,
                   database_id: Annotated[int, strawberry.argument(description="The upstream lead id.")]) -> Lead | None:
        return await resolvers.resolve_lead(info, database_id)

    @strawberry.field(description="One campaign by its upstream id; its name comes from the campaign's first leads "
                                  "(null when it has none).")
    async def campaign(self, info: strawberry.Info,
                       database_id: Annotated[int, strawberry.argument(description="The upstream campaign id.")]
                       ) -> Campaign | None:
        return await resolvers.resolve_campaign(info, database_id)

    @strawberry.field(description="Any object by its global id; null for an unknown type or a missing object.")
    async def node(self, info: strawberry.Info,
                   id: Annotated[strawberry.ID, strawberry.argument(description="A global id.")]) -> Node | None:
        return await resolvers.resolve_node(info, id)

    @strawberry.field(description="Objects by global ids, in the same order; null entries for unknown ones.")
    async def nodes(self, info: strawberry.Info,
                    ids: Annotated[list[strawberry.ID], strawberry.argument(description="Global ids.")]
                    ) -> list[Node | None]:
        return await resolvers.resolve_nodes(info, ids)
