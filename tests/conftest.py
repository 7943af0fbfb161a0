"""Shared fixtures: the demo upstream and the gateway, each a real uvicorn server on a loopback port."""

from __future__ import annotations

import json
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

# The gateways' execution, "fast" (gateway/graphql/execution/fast.py) or "library" (graphql-core's own
# executor): GATEWAY_FAST_EXECUTION=0 makes "library" the default. The GraphQL-facing integration modules
# below run every test that starts a gateway under both, in the same run (ids ``[fast]`` / ``[library]``).
FAST_BY_DEFAULT = Settings.from_env({"GATEWAY_FAST_EXECUTION": os.environ.get("GATEWAY_FAST_EXECUTION", "")}
                                   ).fast_execution
BOTH_EXECUTIONS = {"test_connection.py", "test_persisted.py", "test_nested.py", "test_errors.py", "test_entities.py", "test_limits.py",
                   "test_documents.py", "test_result_cache.py", "test_http_protocol.py", "test_writes.py"}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.path.name in BOTH_EXECUTIONS and "make_gateway" in metafunc.fixturenames:
        # Session scope: pytest groups the tests per execution, so each gateway starts once per execution.
        metafunc.parametrize("execution", ["fast", "library"], indirect=True, scope="session")


def pytest_report_header() -> str:
    return f"gateway execution by default: {'fast' if FAST_BY_DEFAULT else 'library'} (GATEWAY_FAST_EXECUTION)"


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

    def writes(self, token: str | None = None) -> list:
        """The ``POST /user/lead`` requests received (``gateway.demo.writes.WriteCall``: token, body, status,
        lead_id, fault, request_id), oldest first."""
        return [w for w in self.app.state.write_calls if token is None or w.token == token]

    def reset(self) -> None:
        """Default options; no recorded calls or writes, no created leads."""
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
        h.setdefault("Content-Type", "application/json")
        # json.dumps escapes non-ASCII (as browsers may), so even lone surrogates can be sent.
        body = json.dumps({"query": query, "variables": variables or {}})
        return self.client.post("/graphql", content=body, headers=h)

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
def execution(request: pytest.FixtureRequest) -> str:
    """How the gateways execute operations: "fast" or "library" (parametrised in ``BOTH_EXECUTIONS``)."""
    return getattr(request, "param", "fast" if FAST_BY_DEFAULT else "library")


@pytest.fixture(scope="session")
def make_gateway(upstream: Upstream, execution: str):
    """Start a gateway with settings overrides; stopped at the end of the session (or of its execution)."""
    started: list[Gateway] = []

    def make(**overrides) -> Gateway:
        # Tests count upstream calls exactly and share gateways across fault tests: no retries and no
        # breaker unless a test asks for them (the resilience tests do).
        settings = Settings(upstream_url=upstream.url, upstream_retries=0, breaker_min_calls=1_000_000,
                            caller_breaker_min_calls=1_000_000,
                            fast_execution=execution == "fast")
        settings = settings.with_(**overrides)
        gw = Gateway(start_in_thread(create_app(settings)), settings)
        started.append(gw)
        return gw

    yield make
    for gw in started:  # all at once: each takes a tick of its event loop to notice (once per execution)
        gw.server.server.should_exit = True
    for gw in started:
        gw.close()


@pytest.fixture(scope="session")
def gateway(make_gateway) -> Gateway:
    """The default gateway, with page caching off (TTL 0) so upstream calls can be counted per query."""
    return make_gateway(cache_ttl=0)


@pytest.fixture
def token() -> str:
    """A fresh tenant per test: its own dataset, its own cache keys. Datasets are random per tenant, so pick
    one that has what the tests rely on (a phone containing "55", a Laravel quirk among its first 100 leads),
    which nearly all have: without this a test fails about once in 500 runs."""
    from gateway.demo.data import dataset_for_token

    while True:
        candidate = f"tenant-{uuid.uuid4().hex[:8]}"
        rows = dataset_for_token(candidate)
        if any("55" in r["phone_number"] for r in rows) and any(
                r["variables"] == [] or r["campaign"] is None for r in rows[:100]):
            return candidate


def _redis_answers(host: str, port: int) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis the suite shares (127.0.0.1:6379 unless GATEWAY_TEST_REDIS_URL says otherwise).
    Tests never flush it: every gateway they start has its own random cache secret, hence its own keys."""
    from urllib.parse import urlparse

    url = os.environ.get("GATEWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    u = urlparse(url)
    if not _redis_answers(u.hostname, u.port or 6379):
        skip_or_fail(f"no Redis answers at {url}")
    return url


class RedisProcess:
    """A private redis-server on a free loopback port, which a test may stop and start again."""

    def __init__(self, binary: str) -> None:
        import socket

        self.binary = binary
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import subprocess
        import time

        self.proc = subprocess.Popen([self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not _redis_answers("127.0.0.1", self.port):
            assert self.proc.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def private_redis() -> Iterator[RedisProcess]:
    import shutil

    binary = shutil.which("redis-server")
    if binary is None:
        skip_or_fail("redis-server is not installed (apt-get install redis-server)")
    server = RedisProcess(binary)
    server.start()
    yield server
    server.stop()
