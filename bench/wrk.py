"""Driving ``wrk`` (the Debian package) from Python: a Lua script per request shape, a run, its parsed figures.

wrk sends the same request over and over on each connection; the Lua script sets its method, body and
headers. Its report is parsed from the text it prints with ``--latency`` (units converted to ms).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

WRK_MISSING = "wrk is not installed (apt-get install wrk; ./dev test installs it when run as root)"


def wrk_path() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise RuntimeError(WRK_MISSING)
    return path


def version() -> str:
    out = subprocess.run([wrk_path(), "--version"], capture_output=True, text=True, timeout=10)
    first = (out.stdout or out.stderr).splitlines()[0]
    return " ".join(first.split()[:2])  # "wrk debian/4.1.0-3+b2"


def lua_string(value: str) -> str:
    """A Lua string literal of ``value`` (byte escapes for anything but printable ASCII)."""
    out = []
    for byte in value.encode():
        char = chr(byte)
        if char in '\\"':
            out.append("\\" + char)
        elif 32 <= byte < 127:
            out.append(char)
        else:
            out.append(f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


def script(method: str, headers: dict[str, str], body: str | None = None, tokens: list[str] | None = None) -> str:
    """The Lua script of a request; with ``tokens``, successive requests take turns over those bearer tokens
    (requests formatted once, in ``init``: the per-request cost in wrk stays a table lookup)."""
    lines = [f"wrk.method = {lua_string(method)}"]
    if body is not None:
        lines.append(f"wrk.body = {lua_string(body)}")
    lines += [f"wrk.headers[{lua_string(k)}] = {lua_string(v)}" for k, v in headers.items()]
    if tokens:
        lines += [
            "local tokens = {" + ", ".join(lua_string(t) for t in tokens) + "}",
            "local requests, turn = {}, 0",
            "function init(args)",
            "  for k, token in ipairs(tokens) do",
            '    wrk.headers["Authorization"] = "Bearer " .. token',
            "    requests[k] = wrk.format()",
            "  end",
            "end",
            "function request()",
            "  turn = turn % #requests + 1",
            "  return requests[turn]",
            "end",
        ]
    return "\n".join(lines) + "\n"


@dataclass
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    text: str

    @property
    def ok(self) -> bool:
        return self.requests > 0 and self.non_2xx == 0 and self.socket_errors == 0


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def to_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def parse(text: str) -> WrkResult:
    def find(pattern: str, default: str | None = None) -> str:
        match = re.search(pattern, text, re.MULTILINE)
        if match:
            return match.group(1)
        if default is None:
            raise ValueError(f"wrk output without {pattern!r}:\n{text}")
        return default

    requests = int(find(r"^\s*(\d+) requests in "))
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return WrkResult(
        requests=requests,
        seconds=to_ms(find(r"^\s*\d+ requests in ([\d.]+\w+),")) / 1000,
        rps=float(find(r"^Requests/sec:\s+([\d.]+)")),
        p50_ms=to_ms(find(r"^\s+50%\s+(\S+)")),
        p99_ms=to_ms(find(r"^\s+99%\s+(\S+)")),
        non_2xx=int(find(r"Non-2xx or 3xx responses: (\d+)", "0")),
        socket_errors=sum(int(g) for g in socket.groups()) if socket else 0,
        text=text,
    )


def run(url: str, script_path: Path, *, connections: int, seconds: int, timeout_s: int = 10) -> WrkResult:
    """One wrk run of ``seconds`` (whole seconds: wrk's -d takes no fractions), one thread: the machine's
    cores are shared with the servers under test."""
    cmd = [wrk_path(), "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", f"{timeout_s}s",
           "-s", str(script_path), url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + timeout_s + 30)
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed ({out.returncode}): {' '.join(cmd)}\n{out.stdout}{out.stderr}")
    return parse(out.stdout)
