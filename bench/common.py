"""Helpers the benchmarks share: free loopback ports, waiting for a server they started, the servers of a run
(``Fleet``: bench/perf.py, bench/isolation.py), the CPU time and memory of a server's process tree, and
stopping that tree."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx


ROOT = Path(__file__).resolve().parents[1]


class BenchError(RuntimeError):
    """Something broke (not a missed target): the run exits 1."""


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


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 10 s: one server process the benchmark started."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# ------------------------------------------------------------- process trees (Linux /proc), for bench/perf.py

def children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` (from every process's ppid in /proc/*/stat)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (uvicorn's workers, node's children)."""
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo += children_of(current)
    return tree


def cpu_ticks(pid: int) -> int:
    """User + system CPU of one process, all its threads, in clock ticks (/proc/<pid>/stat fields 14, 15)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def tree_cpu_seconds(pid: int) -> float:
    return sum(cpu_ticks(p) for p in process_tree(pid)) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float | None:
    """Resident memory (VmRSS) of one process in MB (2**20 bytes)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def die_with_parent() -> None:
    """In a child, before exec: get SIGTERM when the benchmark process dies, however it dies (Linux)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def start_time(pid: int) -> int | None:
    """When the process started (ticks since boot): with the pid, it names one process even if pids are reused."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def stop_tree(proc: subprocess.Popen, grace: float = 10) -> None:
    """Stop ``proc`` and every descendant: SIGTERM to its process group (or to it alone when it shares ours),
    then SIGKILL to whichever of those same processes is left."""
    tree = [(pid, start_time(pid)) for pid in process_tree(proc.pid)] if proc.poll() is None else []
    try:
        if os.getpgid(proc.pid) == proc.pid:
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.terminate()
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        pass
    for pid, started in tree:
        if started is not None and start_time(pid) == started:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass


def machine_busy_seconds() -> float:
    """CPU seconds all processes of the machine have used (/proc/stat: everything but idle and iowait)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    name: str
    proc: subprocess.Popen
    port: int
    log: Path
    env: dict = field(default_factory=dict)  # the GATEWAY_*/DEMO_* variables this run set for it

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tail(self, lines: int = 30) -> str:
        """The log's last ``lines`` (read from its last 64 kB: a gateway's request log grows by megabytes)."""
        try:
            with open(self.log, "rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - 65536))
                return "\n".join(f.read().decode(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise BenchError(f"{self.name} exited ({self.proc.returncode}):\n{self.tail()}")


class Fleet:
    """The servers of a run; ``close`` stops each one's whole process tree (uvicorn workers, node)."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.servers: list[Server] = []
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "DEMO_"))}

    def python(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Server:
        port = free_port()
        log = self.workdir / f"{name.replace(' ', '-')}.log"
        args = [a.replace("{port}", str(port)) for a in args]
        with open(log, "wb") as out:
            # Its own session: a signal to the group reaches uvicorn's workers too.
            proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env={**self.env, **(env or {})},
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True, preexec_fn=die_with_parent)
        return self.add(Server(name, proc, port, log, dict(env or {})))

    def add(self, server: Server) -> Server:
        self.servers.append(server)
        return server

    def stop(self, server: Server) -> None:
        stop_tree(server.proc)

    def close(self) -> None:
        with ThreadPoolExecutor(max(1, len(self.servers))) as pool:  # each may take its grace period
            list(pool.map(lambda server: stop_tree(server.proc), self.servers))
