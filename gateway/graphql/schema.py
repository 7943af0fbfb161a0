"""The strawberry schema and the SDL printed by ``leads-gateway schema``."""

from __future__ import annotations

import logging

import strawberry
from graphql import GraphQLError
from strawberry.federation.schema import FederationAny
from strawberry.printer import print_schema
from strawberry.types import Info
from strawberry.types import ExecutionContext

from gateway.observability import scope as request_scope
from gateway.config import Settings
from gateway.graphql.extensions.documents import DocumentCache
from gateway.graphql.extensions.errors import ErrorFormatter, ResponseWarnings, is_expected
from gateway.graphql.extensions.limits import limit_extensions
from gateway.graphql.extensions.recorder import OperationRecorder
from gateway.graphql.execution import compat
from gateway.graphql.execution.fast import FastExecutionContext
from gateway.graphql.execution.lean import lean_resolvers
from gateway.graphql.mutation import Mutation
from gateway.graphql.query import Query
from gateway.graphql.scalars import SCALAR_OVERRIDES
from gateway.graphql.subscription import Subscription
from gateway.graphql.types import Campaign, Lead

log = logging.getLogger("gateway.errors")
ENTITY_TYPES = ("Lead", "Campaign")


class GatewaySchema(strawberry.federation.Schema):
    documents: DocumentCache | None = None  # set by build_schema when the cache is on

    def entities_resolver(self, info: Info, representations: list[FederationAny]) -> list[FederationAny]:
        # A representation this subgraph cannot own (not an object, no or another __typename) resolves to
        # null for that entry, like an unknown id, instead of failing the whole batch.
        picked = [(i, r) for i, r in enumerate(representations)
                  if isinstance(r, dict) and r.get("__typename") in ENTITY_TYPES]
        resolved = super().entities_resolver(info, [r for _, r in picked])
        results: list = [None] * len(representations)
        for (i, _), value in zip(picked, resolved, strict=True):
            results[i] = value
        return results

    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        # Client mistakes and upstream failures are answers, not incidents: only log the unexpected,
        # with the full traceback (the client sees a masked INTERNAL_SERVER_ERROR).
        for error in errors:
            if not is_expected(error):
                scope = request_scope.current()
                log.error("unexpected error", exc_info=error.original_error, extra={"fields": {
                    "request_id": scope.request_id if scope else None, "path": error.path}})


def build_schema(settings: Settings | None = None) -> GatewaySchema:
    """The schema; with ``settings``, also the extensions enforcing their request limits and introspection switch.

    The fast path (``FastExecutionContext`` and lean resolvers) and the document cache rely on library
    internals: each is used only when ``compat.verdict()`` found those the tested ones (and the fast path
    only when ``settings.fast_execution``); otherwise strawberry and graphql-core do that work themselves.
    """
    checked = compat.verdict()
    fast = checked.fast_path and (settings is None or settings.fast_execution)
    # OperationRecorder first: leaving the operation after ErrorFormatter, it records the final codes.
    extensions: list = [OperationRecorder, ErrorFormatter, ResponseWarnings]
    documents = None
    if settings is not None:
        extensions += limit_extensions(settings)
        if settings.document_cache_bytes > 0 and checked.hooks:  # after the limits: they run on every request
            documents = DocumentCache(settings.document_cache_bytes)
            extensions.append(documents.extension())
    built = GatewaySchema(query=Query, mutation=Mutation, subscription=Subscription, types=[Lead, Campaign], scalar_overrides=SCALAR_OVERRIDES,
                          extensions=extensions, federation_version="2.5",
                          execution_context_class=FastExecutionContext if fast else None)
    built.documents = documents
    if fast:
        lean_resolvers(built)
    return built


schema = build_schema()  # without limits: what ``sdl()`` prints; each HTTP view builds its own


def sdl() -> str:
    """The subgraph SDL, exactly as ``{ _service { sdl } }`` returns it (what composition consumes)."""
    return print_schema(schema).rstrip() + "\n"
