"""A second, small federation subgraph for the end-to-end test: notes about leads.

It extends ``Lead`` and ``Campaign`` (by their ``databaseId`` key) with fields of its own, and
references a ``Lead`` by key from a type of its own (``Note.lead``). Its data derives from the demo
upstream's dataset for the caller's token, which the router forwards here too.
"""

from __future__ import annotations

import strawberry
from starlette.applications import Starlette
from starlette.routing import Route
from strawberry.asgi import GraphQL

from gateway.demo.data import dataset_for_token


def note_text(lead_id: int) -> str:
    return f"Call back lead {lead_id} after lunch"


def has_note(lead_id: int) -> bool:
    return lead_id % 2 == 0


@strawberry.federation.type(keys=["databaseId"], description="A lead, extended with notes.")
class Lead:
    database_id: int = strawberry.federation.field(description="The upstream lead id (the key).")

    @strawberry.field(description="Notes about this lead.")
    def notes(self) -> list[Note]:
        if not has_note(self.database_id):
            return []
        return [Note(id=strawberry.ID(f"note-{self.database_id}"), text=note_text(self.database_id),
                     lead=Lead(database_id=self.database_id))]

    @classmethod
    def resolve_reference(cls, databaseId: int) -> Lead:  # noqa: N803
        return cls(database_id=databaseId)


@strawberry.federation.type(keys=["databaseId"], description="A campaign, extended with a budget.")
class Campaign:
    database_id: int = strawberry.federation.field(description="The upstream campaign id (the key).")

    @strawberry.field(description="Budget in cents (made up from the id).")
    def budget(self) -> int:
        return self.database_id * 100

    @classmethod
    def resolve_reference(cls, databaseId: int) -> Campaign:  # noqa: N803
        return cls(database_id=databaseId)


@strawberry.type(description="A note about a lead.")
class Note:
    id: strawberry.ID
    text: str
    lead: Lead


def token_of(info: strawberry.Info) -> str | None:
    header = info.context["request"].headers.get("authorization", "")
    return header[7:] if header.lower().startswith("bearer ") else None


@strawberry.type
class Query:
    @strawberry.field(description="Notes of the caller's first three leads and of its last one.")
    def notes(self, info: strawberry.Info) -> list[Note]:
        token = token_of(info)
        if token is None:
            raise PermissionError("notes need a bearer token")
        rows = dataset_for_token(token)
        picked = [r["id"] for r in rows[:3]] + [rows[-1]["id"]]
        return [Note(id=strawberry.ID(f"note-{i}"), text=note_text(i), lead=Lead(database_id=i)) for i in picked]


schema = strawberry.federation.Schema(query=Query, types=[Lead, Campaign, Note], federation_version="2.5")
app = Starlette(routes=[Route("/graphql", GraphQL(schema, graphql_ide=None), methods=["GET", "POST"])])
