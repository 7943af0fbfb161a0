"""Run an ASGI app with uvicorn in a background thread (demo upstream beside the gateway, tests)."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

import uvicorn


@dataclass
class RunningServer:
    """A uvicorn server running in a daemon thread; ``url`` has no trailing slash."""

    server: uvicorn.Server
    thread: threading.Thread
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        # As a SIGTERM would (gateway/app.py): open subscriptions end first, so their streams do not hold the server.
        drain = getattr(getattr(self.server.config.app, "state", None), "drain", None)
        if callable(drain):
            drain()
        self.server.should_exit = True
        self.thread.join(timeout)


def start_in_thread(app, host: str = "127.0.0.1", port: int = 0, *, log_level: str = "warning") -> RunningServer:
    """Start ``app`` on ``host:port`` (``0`` picks a free port) and return once it accepts connections."""
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets whose protocol says TCP, and
    # without it Nagle + delayed ACKs stall every response by ~40 ms.
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    # log_config=None: a server started beside another must not reconfigure the process's logging.
    config = uvicorn.Config(app, log_level=log_level, lifespan="on", access_log=False, log_config=None)
    server = uvicorn.Server(config)
    # Signal handlers can only be installed from the main thread.
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                              name=f"uvicorn:{bound_port}")
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"server on {host}:{bound_port} failed to start")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"server on {host}:{bound_port} did not start within 15 s")
        time.sleep(0.01)
    return RunningServer(server=server, thread=thread, host=host, port=bound_port)
