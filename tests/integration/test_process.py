"""The gateway as an operator runs it: graceful shutdown on SIGTERM, several worker processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(upstream_url: str, *args: str, **env: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    full_env = {**{k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")},
                "GATEWAY_UPSTREAM_URL": upstream_url, **env}
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--port", str(port), *args],
                            env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "the gateway did not start"
        time.sleep(0.1)


def test_sigterm_finishes_in_flight_requests_then_exits(upstream, fresh_upstream, token):
    fresh_upstream.options.latency = 1.5
    proc, url = start(upstream.url, GATEWAY_SHUTDOWN_GRACE="10")
    result: dict = {}

    def slow_query():
        result["response"] = httpx.post(f"{url}/graphql", json={"query": "{ leads(first: 2) { totalCount } }"},
                                        headers={"Authorization": f"Bearer {token}"}, timeout=20)

    client = threading.Thread(target=slow_query)
    client.start()
    time.sleep(0.5)  # the request is now waiting on the slow upstream
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    try:
        httpx.get(f"{url}/healthz", timeout=2)
        refused = False
    except httpx.TransportError:
        refused = True
    client.join(20)
    proc.wait(20)
    output = proc.stdout.read()
    assert result["response"].status_code == 200
    assert result["response"].json()["data"]["leads"]["totalCount"] > 0  # finished, not cut off
    assert refused, "new connections must be refused once shutting down"
    assert '"msg": "stopped"' in output  # the lifespan shutdown ran: clients closed


def test_the_grace_period_bounds_the_wait(upstream, fresh_upstream, token):
    fresh_upstream.options.latency = 10
    proc, url = start(upstream.url, GATEWAY_SHUTDOWN_GRACE="1")
    threading.Thread(target=lambda: _quietly(lambda: httpx.post(
        f"{url}/graphql", json={"query": "{ leads { totalCount } }"},
        headers={"Authorization": f"Bearer {token}"}, timeout=20)), daemon=True).start()
    time.sleep(0.5)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(15)
    assert time.monotonic() - started < 5
    fresh_upstream.options.latency = 0


def _quietly(call):
    try:
        call()
    except httpx.HTTPError:
        pass


def test_several_workers(upstream, fresh_upstream, token):
    proc, url = start(upstream.url, "--workers", "2")
    try:
        deadline = time.monotonic() + 20
        workers: set[int] = set()
        while len(workers) < 2 and time.monotonic() < deadline:
            workers = {pid for pid in _children(proc.pid)}
            time.sleep(0.2)
        assert len(workers) >= 2, "expected two worker processes"
        for _ in range(6):
            body = httpx.post(f"{url}/graphql", json={"query": "{ leads(first: 2) { totalCount } }"},
                              headers={"Authorization": f"Bearer {token}"}).json()
            assert body["data"]["leads"]["totalCount"] > 0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() and not _is_zombie(pid) for pid in workers):
        assert time.monotonic() < deadline, "workers outlived the supervisor"
        time.sleep(0.1)


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            cmdline = (entry / "cmdline").read_bytes() if (entry / "cmdline").exists() else b""
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"spawn_main" in cmdline:
                found.append(int(entry.name))  # uvicorn's workers (multiprocessing spawn), not its helpers
    return found


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_the_worker_factory_takes_what_start_up_built_out_of_the_collectors_sight(monkeypatch):
    """``app_from_env`` (uvicorn's factory, once per worker) freezes the objects built at start-up, so that
    full collections under load do not scan them (docs/ISOLATION.md: 50-170 ms pauses without it)."""
    import gc

    from gateway.cli import app_from_env

    monkeypatch.setenv("GATEWAY_UPSTREAM_URL", "http://127.0.0.1:9")
    gc.unfreeze()
    try:
        app_from_env()
        assert gc.get_freeze_count() > 50_000
    finally:
        gc.unfreeze()
