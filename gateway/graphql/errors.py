"""One formatter for every error a client sees: contract codes kept, everything unexpected masked."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from gateway.errors import GatewayError

log = logging.getLogger("gateway.errors")
INTERNAL_MESSAGE = "Internal server error."


def format_error(error: GraphQLError) -> GraphQLError:
    original = error.original_error
    if isinstance(original, GatewayError):
        return error  # graphql-core already copied the GatewayError's extensions
    if original is None:
        # Raised by graphql-core itself: syntax, validation, or variable coercion.
        if error.extensions and error.extensions.get("code"):
            return error
        if error.message.startswith("Syntax Error"):
            code = "GRAPHQL_PARSE_FAILED"
        elif error.message.startswith("Variable '$"):
            code = "BAD_USER_INPUT"
        else:
            code = "GRAPHQL_VALIDATION_FAILED"
        error.extensions = {**(error.extensions or {}), "code": code}
        return error
    if type(original).__name__ == "StrawberryInputCoercionError" or isinstance(original, ValueError) and error.path is None:
        # A scalar refused an argument literal or variable (e.g. a malformed Date).
        return GraphQLError(error.message, nodes=error.nodes, source=error.source, positions=error.positions,
                            path=error.path, extensions={"code": "BAD_USER_INPUT"})
    return GraphQLError(INTERNAL_MESSAGE, nodes=error.nodes, source=error.source, positions=error.positions,
                        path=error.path, extensions={"code": "INTERNAL_SERVER_ERROR"})


def is_expected(error: GraphQLError) -> bool:
    """Errors worth a stack trace in the logs are the unexpected ones only."""
    original = error.original_error
    return original is None or isinstance(original, GatewayError)


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
