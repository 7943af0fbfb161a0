"""The HTTP surface: GraphiQL, health, demo mode, caching and coalescing, the CLI."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import httpx

from gateway.demo.data import DEMO_TOKEN, dataset_for_token

Q = "{ leads(first: 4) { totalCount nodes { databaseId } } }"


def test_graphiql_opens_on_the_example_query(gateway):
    page = gateway.client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "leads(first: 5" in page.text and "pageInfo" in page.text
    assert "Bearer YOUR_API_TOKEN" in page.text  # outside demo mode the headers editor shows the way


def test_graphiql_can_be_turned_off(make_gateway):
    gw = make_gateway(graphiql=False)
    page = gw.client.get("/graphql", headers={"Accept": "text/html"})
    assert "<html" not in page.text.lower()


def test_health_endpoints(gateway):
    assert gateway.client.get("/healthz").json() == {"status": "ok"}
    ready = gateway.client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert {k: body[k] for k in ("status", "cache")} == {"status": "ready", "cache": {"backend": "memory", "state": "up"}}
    upstream = body["upstream"]
    assert upstream["breaker"] == "closed" and upstream["pausedCallers"] == 0 and upstream["slowedDownCallers"] == 0
    assert upstream["concurrency"] == {"limit": 32, "max": 32, "perCaller": 16, "inFlight": 0, "queued": 0}
    assert upstream["window"]["seconds"] == 10.0


def test_demo_mode_serves_requests_without_a_token(make_gateway, fresh_upstream):
    gw = make_gateway(cache_ttl=0, demo_token=DEMO_TOKEN)
    body = gw.gql(Q)
    assert [n["databaseId"] for n in body["data"]["leads"]["nodes"]] == [r["id"] for r in dataset_for_token(DEMO_TOKEN)[:4]]
    assert [c.token for c in fresh_upstream.calls()] == [DEMO_TOKEN]
    # An explicit token still wins, and a malformed header is not silently replaced by the demo token.
    gw.gql(Q, token="mine")
    assert fresh_upstream.calls()[-1].token == "mine"
    assert gw.gql(Q, headers={"Authorization": "Basic x"})["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "YOUR_API_TOKEN" not in gw.client.get("/graphql", headers={"Accept": "text/html"}).text


def test_pages_are_cached_per_caller(make_gateway, fresh_upstream, token):
    gw = make_gateway(cache_ttl=30)
    other = token + "-b"
    first = gw.gql(Q, token=token)
    again = gw.gql(Q, token=token)
    assert first == again and len(fresh_upstream.calls(token)) == 1
    # Another caller asking the very same query is never served the first caller's page.
    theirs = gw.gql(Q, token=other)
    assert len(fresh_upstream.calls(other)) == 1
    assert [n["databaseId"] for n in theirs["data"]["leads"]["nodes"]] == [r["id"] for r in dataset_for_token(other)[:4]]
    assert theirs != first


def test_cache_ttl_expires(make_gateway, fresh_upstream, token):
    gw = make_gateway(cache_ttl=0.3)
    gw.gql(Q, token=token)
    time.sleep(0.5)
    gw.gql(Q, token=token)
    assert len(fresh_upstream.calls(token)) == 2


async def test_concurrent_identical_queries_make_one_upstream_call(gateway, fresh_upstream, token):
    """Coalescing stays on with caching off (TTL 0): a burst of the same query is one upstream call."""
    fresh_upstream.options.latency = 0.2
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        responses = await asyncio.gather(*(
            client.post("/graphql", json={"query": Q}, headers={"Authorization": f"Bearer {token}"})
            for _ in range(12)))
    bodies = [r.json() for r in responses]
    assert all(b == bodies[0] for b in bodies) and "errors" not in bodies[0]
    assert len(fresh_upstream.calls(token)) == 1


def test_aliases_asking_for_the_same_page_make_one_call(gateway, fresh_upstream, token):
    body = gateway.gql("{ a: leads(first: 10) { totalCount } b: leads(first: 10) { nodes { id } } "
                       "c: leads(first: 5) { nodes { id } } }", token=token)
    assert "errors" not in body
    # a and b share page (1, 10); c is a different page (1, 5).
    assert sorted((c.params["page"], c.params["per_page"]) for c in fresh_upstream.calls(token)) == [("1", "10"), ("1", "5")]


def test_serve_demo_command_works_as_the_readme_says(tmp_path):
    """`leads-gateway serve --demo` as a newcomer runs it: a real process, real ports, data without a token."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--demo", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                body = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": Q}, timeout=5).json()
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read()
                assert time.monotonic() < deadline, "serve --demo did not come up within 20 s"
                time.sleep(0.2)
        assert body["data"]["leads"]["totalCount"] == len(dataset_for_token(DEMO_TOKEN))
        html = httpx.get(f"http://127.0.0.1:{port}/graphql", headers={"Accept": "text/html"}).text
        assert "leads(first: 5" in html
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status reports the signal.
    assert proc.returncode in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in proc.stdout.read()


def test_a_bad_environment_is_a_clear_startup_error():
    env = {**os.environ, "GATEWAY_MAX_PAGE_SIZE": "lots"}
    out = subprocess.run([sys.executable, "-m", "gateway.cli", "serve"], env=env, capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 2
    assert "GATEWAY_MAX_PAGE_SIZE must be an integer" in out.stderr
    assert "Traceback" not in out.stderr


def test_demo_upstream_command_with_fault_flags():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "demo-upstream", "--port", str(port),
                             "--fault", "429", "--retry-after", "9"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/user/leads", headers={"Authorization": "Bearer x"})
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        assert response.status_code == 429 and response.headers["Retry-After"] == "9"
    finally:
        proc.terminate()
        proc.wait(10)
    bad = subprocess.run([sys.executable, "-m", "gateway.cli", "demo-upstream", "--fault-rate", "2"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "fault_rate must be between 0 and 1" in bad.stderr
    assert "Traceback" not in bad.stderr
