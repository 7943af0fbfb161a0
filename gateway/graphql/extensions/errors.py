"""One formatter for every error a client sees: contract codes kept, everything unexpected masked."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from gateway.errors import GatewayError

log = logging.getLogger("gateway.errors")
INTERNAL_MESSAGE = "Internal server error."


# graphql-core's messages for argument and variable values that do not fit their types.
_BAD_VALUE_PREFIXES = ("Variable '$", "Argument '", "Expected value of type", "Expected type", "Value '", "Int cannot",
                       "String cannot", "Boolean cannot", "ID cannot", "Enum '", "Field '")


# Messages that start like a value problem but are about the document ("Variable '$v' is never used.").
_DOCUMENT_PROBLEMS = ("is never used.", "is not defined.", "is not defined by operation", "cannot be non-input type")


def format_error(error: GraphQLError) -> GraphQLError:
    original = error.original_error
    if isinstance(original, GatewayError):
        return error  # graphql-core already copied the GatewayError's extensions
    if error.path is None:
        # Before execution (parse, validation, variable coercion): the document or its inputs are at fault.
        if (error.extensions or {}).get("code"):
            return error  # already carries its code (the request limits: QUERY_TOO_COMPLEX)
        if error.message.startswith("Syntax Error"):
            code = "GRAPHQL_PARSE_FAILED"
        elif original is not None or (error.message.startswith(_BAD_VALUE_PREFIXES)
                                      and not error.message.endswith(_DOCUMENT_PROBLEMS)):
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
