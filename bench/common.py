"""Helpers the benchmarks share: free loopback ports and waiting for a server they started."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, proc: subprocess.Popen, timeout: float = 30, describe: Callable[[], str] = lambda: "") -> None:
    """Return once ``url`` answers 200; raise (with ``describe()``, e.g. the log's tail) if ``proc`` dies first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not come up\n{describe()}")
        time.sleep(0.1)
