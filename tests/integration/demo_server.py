"""Fixtures of the modules that test the demo upstream itself (test_demo_upstream.py, test_demo_writes.py):
a demo upstream of their own, on a loopback port, and a client for it. Imported by those modules."""

from __future__ import annotations

import httpx
import pytest

from gateway.demo.app import DemoOptions, create_demo_app
from gateway.serving import start_in_thread


@pytest.fixture(scope="module")
def app():
    return create_demo_app()


@pytest.fixture(scope="module")
def server(app):
    running = start_in_thread(app)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=10) as http:
        yield http


@pytest.fixture(autouse=True)
def _fresh_state(app):
    """Each test starts with default options, no recorded calls or created leads, a fresh fault draw sequence."""
    app.state.options = DemoOptions()
    app.state.reset()
    yield
    app.state.options = DemoOptions()
