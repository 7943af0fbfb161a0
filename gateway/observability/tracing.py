"""Optional OpenTelemetry spans (``pip install leads-gateway[otel]``): one per GraphQL operation and one
per upstream call. Without the package every helper here is a no-op.

The gateway only uses the OpenTelemetry API; configure the SDK and exporter the usual way (e.g. run
under ``opentelemetry-instrument`` with ``OTEL_EXPORTER_OTLP_ENDPOINT``). Attributes never carry a
token or filter values (phone numbers are personal data).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

try:
    from opentelemetry import trace
except ImportError:  # the extra is not installed
    trace = None

_tracer = trace.get_tracer("leads-gateway") if trace is not None else None


@contextlib.contextmanager
def span(name: str, **attributes) -> Iterator[object | None]:
    if _tracer is None:
        yield None
        return
    clean = {k: v for k, v in attributes.items() if v is not None}
    with _tracer.start_as_current_span(name, attributes=clean) as current:
        yield current


def set_attributes(current: object | None, **attributes) -> None:
    if current is not None:
        current.set_attributes({k: v for k, v in attributes.items() if v is not None})
