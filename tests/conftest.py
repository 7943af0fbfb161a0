"""Shared fixtures: the demo upstream and the gateway, each a real uvicorn server on a loopback port."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from gateway.app import create_app
from gateway.config import Settings
from gateway.demo.app import DemoOptions, create_demo_app
from gateway.serving import RunningServer, start_in_thread

# .ci/run sets this so that a test which would skip for a missing service fails instead.
REQUIRE_SERVICES = os.environ.get("GATEWAY_REQUIRE_SERVICES") == "1"


def skip_or_fail(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (GATEWAY_REQUIRE_SERVICES=1 turns this skip into a failure)")
    pytest.skip(reason)


@dataclass
class Upstream:
    app: object
    server: RunningServer

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def options(self) -> DemoOptions:
        return self.app.state.options

    def calls(self, token: str | None = None) -> list:
        return [c for c in self.app.state.calls if token is None or c.token == token]

    def reset(self) -> None:
        self.app.state.reset()
        self.app.state.options = DemoOptions()


@dataclass
class Gateway:
    server: RunningServer
    settings: Settings
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.server.url, timeout=30)

    @property
    def url(self) -> str:
        return self.server.url

    def post(self, query: str, variables: dict | None = None, token: str | None = None,
             headers: dict | None = None) -> httpx.Response:
        h = {"Authorization": f"Bearer {token}"} if token else {}
        h.update(headers or {})
        return self.client.post("/graphql", json={"query": query, "variables": variables or {}}, headers=h)

    def gql(self, query: str, variables: dict | None = None, token: str | None = None, **kw) -> dict:
        response = self.post(query, variables, token, **kw)
        assert response.status_code == 200, response.text
        return response.json()

    def close(self) -> None:
        self.client.close()
        self.server.stop()


@pytest.fixture(scope="session")
def upstream() -> Iterator[Upstream]:
    app = create_demo_app()
    server = start_in_thread(app)
    yield Upstream(app, server)
    server.stop()


@pytest.fixture(autouse=False)
def fresh_upstream(upstream: Upstream) -> Upstream:
    upstream.reset()
    return upstream


@pytest.fixture(scope="session")
def make_gateway(upstream: Upstream):
    """Start a gateway with settings overrides; stopped at the end of the session."""
    started: list[Gateway] = []

    def make(**overrides) -> Gateway:
        settings = Settings(upstream_url=upstream.url).with_(**overrides)
        gw = Gateway(start_in_thread(create_app(settings)), settings)
        started.append(gw)
        return gw

    yield make
    for gw in started:
        gw.close()


@pytest.fixture(scope="session")
def gateway(make_gateway) -> Gateway:
    """The default gateway, with page caching off (TTL 0) so upstream calls can be counted per query."""
    return make_gateway(cache_ttl=0)


@pytest.fixture
def token() -> str:
    """A fresh tenant per test: its own dataset, its own cache keys."""
    return f"tenant-{uuid.uuid4().hex[:8]}"
