"""The GraphQL HTTP endpoint: strawberry's ASGI view with the gateway's context and GraphiQL page."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from strawberry.asgi import GraphQL

from gateway.config import Settings
from gateway.graphiql import graphiql_html
from gateway.graphql.context import GatewayContext, bearer_token
from gateway.graphql.schema import schema


class GatewayGraphQL(GraphQL):
    """strawberry's ASGI view, with the gateway's context and GraphiQL page."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(schema, graphql_ide="graphiql" if settings.graphiql else None)
        self.settings = settings

    async def get_context(self, request: Request, response: Response) -> GatewayContext:  # type: ignore[override]
        state = request.app.state
        return GatewayContext(request=request, settings=self.settings, api=state.api, cache=state.cache,
                              token=bearer_token(request, self.settings.demo_token))

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:  # type: ignore[override]
        return HTMLResponse(graphiql_html(demo=self.settings.demo_token is not None))
