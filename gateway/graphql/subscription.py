"""The ``Subscription`` root type (``contract-live.graphql``): live ``leads`` windows and ``lead``s.

Arguments are checked, and the subscription admitted, before anything is watched: a bad argument, a missing
token or a bound reached is an error result, not a stream. Then every state the caller's poller group
yields (``datasource/live/``) becomes one event, with a fresh source for the fields nested under it; a final
state (the upstream refused the token, or the first read failed) is the last event, as a field error.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Annotated

import strawberry

from gateway.datasource.live import LeadWatch, WindowWatch
from gateway.errors import GatewayError
from gateway.graphql.context import GatewayContext
from gateway.graphql.execution.fast import share_results
from gateway.graphql.inputs import AfterArg, FilterArg, FirstArg, to_filter
from gateway.graphql.types import Lead, LeadConnection
from gateway.leads.pagination import resolve_window


def _admit(ctx: GatewayContext) -> tuple[str, str]:
    """The caller (``UNAUTHENTICATED`` without a token) and its token, when it may open one more subscription
    (``RATE_LIMITED`` over its bound; a WebSocket's own bound is the transport's: ``http/live.py``)."""
    caller = ctx.source.caller
    ctx.sources.live.check(caller)
    return caller, ctx.token


async def _events(ctx: GatewayContext, caller: str, token: str, watch, convert: Callable) -> AsyncIterator:
    async with ctx.sources.live.subscribe(token, caller, watch) as states:
        async for state in states:
            if isinstance(state.value, GatewayError):
                yield state.value  # the field's error; the subscription ends after it
                return
            ctx.renew()
            payload = state.memo.get("payload")
            if payload is None:  # one per state, shared by its subscribers (and so is its execution)
                payload = state.memo["payload"] = share_results(convert(state.value))
            yield payload


@strawberry.type(description="Live data: each field sends its value at once, then again whenever it changes "
                             "(the gateway polls the upstream once per GATEWAY_LIVE_INTERVAL for all "
                             "subscribers of the same caller and arguments).")
class Subscription:
    @strawberry.subscription(description="Live Query.leads: the window is sent at once, then again each time "
                                         "anything in it changes (a lead's fields, leads entering or leaving the "
                                         "window, totalCount, pageInfo). Nothing is sent while it stays the same.")
    async def leads(self, info: strawberry.Info, filter: FilterArg = None, first: FirstArg = None,
                    after: AfterArg = None) -> AsyncGenerator[LeadConnection, None]:
        ctx: GatewayContext = info.context
        lead_filter = to_filter(filter, None)
        request = resolve_window(first=first, after=after, last=None, before=None,
                                 fingerprint=lead_filter.fingerprint, max_size=ctx.max_page_size)
        caller, token = _admit(ctx)
        return _events(ctx, caller, token, WindowWatch(lead_filter, request),
                       lambda window: LeadConnection.from_window(window, request.size))

    @strawberry.subscription(description="Live Query.lead: sent at once, then whenever the lead changes; null "
                                         "once it is gone. Found once in the caller's list, then watched with a "
                                         "filter on its phone number, campaign and creation day.")
    async def lead(self, info: strawberry.Info,
                   database_id: Annotated[int, strawberry.argument(description="The upstream lead id.")]
                   ) -> AsyncGenerator[Lead | None, None]:
        ctx: GatewayContext = info.context
        caller, token = _admit(ctx)
        # Lead.build, not from_record: a payload of its own, never one a query's answer also holds.
        return _events(ctx, caller, token, LeadWatch(database_id),
                       lambda record: Lead.build(record) if record is not None else None)
