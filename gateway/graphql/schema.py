"""The strawberry schema and the SDL printed by ``leads-gateway schema``."""

from __future__ import annotations

import logging

import strawberry
from strawberry.printer import print_schema
from graphql import GraphQLError
from strawberry.types import ExecutionContext

from gateway.graphql.errors import ErrorFormatter, ResponseWarnings, is_expected
from gateway.graphql.query import Query
from gateway.graphql.scalars import SCALAR_OVERRIDES
from gateway.graphql.types import Campaign, Lead

log = logging.getLogger("gateway.errors")


class GatewaySchema(strawberry.federation.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        # Client mistakes and upstream failures are answers, not incidents: only log the unexpected,
        # with the full traceback (the client sees a masked INTERNAL_SERVER_ERROR).
        for error in errors:
            if not is_expected(error):
                log.error("unexpected error in %s", error.path, exc_info=error.original_error)


def build_schema() -> GatewaySchema:
    return GatewaySchema(query=Query, types=[Lead, Campaign], scalar_overrides=SCALAR_OVERRIDES,
                         extensions=[ErrorFormatter, ResponseWarnings], federation_version="2.5")


schema = build_schema()


def sdl() -> str:
    """The subgraph SDL, exactly as ``{ _service { sdl } }`` returns it (what composition consumes)."""
    return print_schema(schema).rstrip() + "\n"
