"""One formatter for every error a client sees: contract codes kept, everything unexpected masked.

Request errors get their code from graphql-core's message wording, which ``compat`` recognises."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from gateway.errors import GatewayError
from gateway.graphql.execution import compat

log = logging.getLogger("gateway.errors")
INTERNAL_MESSAGE = "Internal server error."


def format_error(error: GraphQLError) -> GraphQLError:
    original = error.original_error
    if isinstance(original, GatewayError):
        return error  # graphql-core already copied the GatewayError's extensions
    if error.path is None:
        # Before execution (parse, validation, variable coercion): the document or its inputs are at fault.
        if (error.extensions or {}).get("code"):
            return error  # already carries its code (the request limits: QUERY_TOO_COMPLEX)
        if compat.is_syntax_error(error.message):
            code = "GRAPHQL_PARSE_FAILED"
        elif original is not None or compat.is_bad_value(error.message):
            code = "BAD_USER_INPUT"
        else:
            code = "GRAPHQL_VALIDATION_FAILED"
        return GraphQLError(error.message, nodes=error.nodes, source=error.source, positions=error.positions,
                            extensions={**(error.extensions or {}), "code": code})
    return GraphQLError(INTERNAL_MESSAGE, nodes=error.nodes, source=error.source, positions=error.positions,
                        path=error.path, extensions={"code": "INTERNAL_SERVER_ERROR"})


def is_expected(error: GraphQLError) -> bool:
    """Only unexpected errors deserve a stack trace in the logs; client and upstream faults do not."""
    return error.path is None or isinstance(error.original_error, GatewayError)


class ErrorFormatter(SchemaExtension):
    """Applies ``format_error`` to the operation's result, after strawberry has logged the originals."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is not None and getattr(result, "errors", None):
            result.errors = [format_error(e) for e in result.errors]


class ResponseWarnings(SchemaExtension):
    """Puts the request's warnings (list shifted, lookup truncated, ...) into the response ``extensions``."""

    def get_results(self) -> dict:
        warnings = getattr(self.execution_context.context, "warnings", None)
        return {"warnings": list(warnings)} if warnings else {}


def drop_tracebacks(errors: list[GraphQLError]) -> None:
    """The answer is built and nothing reads these errors' tracebacks any more; each holds every frame the
    error went through, with the request's whole state, in reference cycles (a frame that raised an error
    it holds), left to the cyclic collector's next full pass otherwise (docs/ISOLATION.md)."""
    for error in errors:
        seen: set[int] = set()
        exc: BaseException | None = error
        while exc is not None and id(exc) not in seen:
            seen.add(id(exc))
            exc.__traceback__ = None
            exc = exc.__cause__ or exc.__context__ or getattr(exc, "original_error", None)
