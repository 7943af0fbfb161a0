"""Records each operation's name and error codes on the request scope (for logs and metrics)."""

from __future__ import annotations

from collections.abc import Iterator

from strawberry.extensions import SchemaExtension

from gateway.observability import scope as request_scope, tracing


class OperationRecorder(SchemaExtension):
    """Registered before ``ErrorFormatter`` so that, leaving the operation after it, it sees final codes."""

    def on_operation(self) -> Iterator[None]:
        if getattr(self.execution_context.context, "streaming", False):
            # A subscription's operation lasts as long as its stream, whose events run in other tasks: no span
            # (OpenTelemetry's context cannot be left from another task); its polls are upstream calls of their own.
            yield
            return
        scope = request_scope.current()
        with tracing.span("graphql.operation",
                          **{"leads_gateway.request_id": scope.request_id if scope else None}) as sp:
            yield
            errors = getattr(self.execution_context.result, "errors", None) or ()
            # The name is known once the document is parsed, i.e. after the yield.
            tracing.set_attributes(sp, **{"graphql.operation.name": self.execution_context.operation_name,
                                          "graphql.error_count": len(errors)})
        if scope is None:
            return
        scope.executed = True
        scope.operation = self.execution_context.operation_name
        try:
            scope.operation_type = self.execution_context.operation_type.value
        except Exception:  # noqa: BLE001 - no operation to pick (a request error): nothing is stored then either
            scope.operation_type = None
        result = self.execution_context.result
        for error in getattr(result, "errors", None) or ():
            code = (error.extensions or {}).get("code")
            if code:
                scope.error_codes.append(code)
