"""The ``Mutation`` root type: writes, checked here and carried out by the datasource's ``LeadWriter``."""

from __future__ import annotations

from typing import Annotated

import strawberry

from gateway.graphql import resolvers
from gateway.graphql.inputs import CreateLeadInput
from gateway.graphql.types import CreateLeadPayload


@strawberry.type(description="Writes to the caller's leads.")
class Mutation:
    @strawberry.mutation(description="Creates a lead (POST /user/lead). Afterwards every instance's queries of this "
                                     "caller see it. Never creates it twice: an unknown outcome (timeout, lost "
                                     "answer) is settled by looking the lead up before anything is sent again.")
    async def create_lead(self, info: strawberry.Info,
                          input: Annotated[CreateLeadInput, strawberry.argument(description="The lead to create.")]
                          ) -> CreateLeadPayload:
        result = await resolvers.create_lead(info, input)
        if result.lead is None:
            return CreateLeadPayload.refused(result.problems)
        return CreateLeadPayload.created(result.lead)
