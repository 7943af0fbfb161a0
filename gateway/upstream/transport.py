"""A lean HTTP/1.1 transport for httpx: keep-alive requests over asyncio streams.

httpx's default transport (httpcore, over anyio and h11) cost about 1 ms of CPU per upstream call here,
several times the cost of the exchange itself (a GET and an ~8 kB JSON answer on a kept-alive
connection), and it showed as a few ms of added latency on every cache miss. The gateway only ever sends
small GETs to one upstream, so this transport does just that, behind httpx's public transport interface:
the client code, its timeouts and its exceptions stay httpx's.

What it does: HTTP/1.1 over TCP or TLS, a pool of keep-alive connections per origin bounded by
``max_connections`` (``pool`` timeout while waiting for one), ``Content-Length``, chunked and
read-until-close bodies, 1xx responses skipped, ``Connection: close`` honoured. A reused connection that
the server closed while idle is detected (no byte of an answer) and the request is sent once more on a
new connection, as httpcore does. The ``read`` timeout bounds the whole answer (head and body).

What it maps: connect failures to ``httpx.ConnectError``/``ConnectTimeout``, a slow answer to
``ReadTimeout``, a broken connection to ``ReadError``/``WriteError``, anything malformed to
``RemoteProtocolError``: the same exceptions the client code already handles. No HTTP/2, no proxies
(``app.py`` keeps httpx's own transport when proxy variables are set), no request bodies beyond bytes.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable

import httpx

MAX_HEAD_BYTES = 64 * 1024


class _Stale(Exception):
    """A reused connection was closed by the server before any byte of the answer."""


class _Connection:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @property
    def usable(self) -> bool:
        return not self.writer.is_closing() and not self.reader.at_eof()

    def close(self) -> None:
        self.writer.close()


class LeanTransport(httpx.AsyncBaseTransport):
    def __init__(self, *, max_connections: int = 32, ssl_context: ssl.SSLContext | None = None) -> None:
        self._max_connections = max_connections
        self._slots: asyncio.Semaphore | None = None  # made on first use, in the serving event loop
        self._ssl_context = ssl_context
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        url = request.url
        if url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"Unsupported URL scheme {url.scheme!r}.", request=request)
        origin = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        data = _serialise(request, await request.aread())
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._max_connections)
        try:
            async with asyncio.timeout(timeouts.get("pool")):
                await self._slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout("No upstream connection became free in time.", request=request) from None
        try:
            for _ in range(2):
                connection = self._reuse(origin)
                reused = connection is not None
                if connection is None:
                    connection = await self._connect(origin, timeouts.get("connect"), request)
                try:
                    status, reason, headers, body, keep = await _exchange(connection, data, request, timeouts)
                except _Stale:
                    connection.close()
                    if reused:
                        continue  # closed while idle: once more on a new connection
                    raise httpx.RemoteProtocolError("The server closed the connection without answering.",
                                                    request=request) from None
                except BaseException:
                    connection.close()  # half-read or cancelled: never reused
                    raise
                if keep:
                    self._idle.setdefault(origin, []).append(connection)
                else:
                    connection.close()
                return httpx.Response(status, headers=headers, content=body, request=request,
                                      extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason})
            raise httpx.RemoteProtocolError("The server closed the connection without answering.", request=request)
        finally:
            self._slots.release()

    def _reuse(self, origin: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            if connection.usable:
                return connection
            connection.close()
        return None

    async def _connect(self, origin: tuple[str, str, int], timeout: float | None,
                       request: httpx.Request) -> _Connection:
        scheme, host, port = origin
        tls = None
        if scheme == "https":
            tls = self._ssl_context or httpx.create_ssl_context()
            self._ssl_context = tls
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=tls, server_hostname=host if tls else None, limit=MAX_HEAD_BYTES)
        except TimeoutError:
            raise httpx.ConnectTimeout("Timed out connecting to the upstream.", request=request) from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(f"Could not connect to the upstream: {exc.__class__.__name__}.",
                                     request=request) from None
        return _Connection(reader, writer)

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()


def _serialise(request: httpx.Request, body: bytes) -> bytes:
    url = request.url
    lines = [b"%s %s HTTP/1.1" % (request.method.encode("ascii"), url.raw_path)]
    names = set()
    for name, value in request.headers.raw:
        names.add(name.lower())
        lines.append(name + b": " + value)
    if b"host" not in names:
        lines.insert(1, b"Host: " + url.netloc)
    if body and b"content-length" not in names and b"transfer-encoding" not in names:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


async def _exchange(connection: _Connection, data: bytes, request: httpx.Request,
                    timeouts: dict) -> tuple[int, bytes, list[tuple[bytes, bytes]], bytes, bool]:
    reader, writer = connection.reader, connection.writer
    try:
        writer.write(data)
        async with asyncio.timeout(timeouts.get("write")):
            await writer.drain()
    except TimeoutError:
        raise httpx.WriteTimeout("Timed out sending the request.", request=request) from None
    except OSError:
        raise _Stale from None
    try:
        async with asyncio.timeout(timeouts.get("read")):
            return await _read_response(reader, request)
    except TimeoutError:
        raise httpx.ReadTimeout("Timed out waiting for the upstream's answer.", request=request) from None
    except (_Stale, httpx.HTTPError):
        raise
    except (OSError, asyncio.IncompleteReadError) as exc:
        raise httpx.ReadError(f"The connection broke while reading the answer: {exc.__class__.__name__}.",
                              request=request) from None
    except (ValueError, asyncio.LimitOverrunError, UnicodeDecodeError) as exc:
        raise httpx.RemoteProtocolError(f"Malformed HTTP answer: {exc.__class__.__name__}.",
                                        request=request) from None


async def _read_response(reader: asyncio.StreamReader, request: httpx.Request):
    first = True
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if first and not exc.partial:
                raise _Stale from None
            raise
        except ConnectionResetError:
            if first:
                raise _Stale from None
            raise
        first = False
        status_line, *header_lines = head[:-4].split(b"\r\n")
        version, _, rest = status_line.partition(b" ")
        code, _, reason = rest.partition(b" ")
        if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit():
            raise ValueError("bad status line")
        status = int(code)
        headers = _headers(header_lines)
        if 100 <= status < 200 and status != 101:
            continue  # an interim answer (100 Continue, 103 Early Hints): the real one follows
        break
    connection_tokens = {t.strip().lower() for name, value in headers if name.lower() == b"connection"
                         for t in value.split(b",")}
    keep = b"close" not in connection_tokens and (version == b"HTTP/1.1" or b"keep-alive" in connection_tokens)
    if request.method == "HEAD" or status in (204, 304):
        return status, reason, headers, b"", keep
    encoding = b",".join(value for name, value in headers if name.lower() == b"transfer-encoding").lower()
    if encoding:
        if not encoding.rstrip().endswith(b"chunked"):
            raise ValueError("unsupported transfer-encoding")
        return status, reason, headers, await _chunked(reader), keep
    lengths = {value.strip() for name, value in headers if name.lower() == b"content-length"}
    if lengths:
        if len(lengths) != 1 or not next(iter(lengths)).isdigit():
            raise ValueError("bad content-length")
        return status, reason, headers, await reader.readexactly(int(next(iter(lengths)))), keep
    return status, reason, headers, await reader.read(), False  # delimited by the end of the connection


def _headers(lines: Iterable[bytes]) -> list[tuple[bytes, bytes]]:
    headers = []
    for line in lines:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            raise ValueError("bad header line")
        headers.append((name, value.strip()))
    return headers


async def _chunked(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, ignored
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        if await reader.readexactly(2) != b"\r\n":
            raise ValueError("bad chunk")
