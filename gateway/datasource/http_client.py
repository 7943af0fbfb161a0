"""The pooled HTTP client for the upstream, and one bounded GET.

``build_client``: an ``httpx.AsyncClient`` on aiohttp's HTTP/1.1 stack (``httpx_aiohttp.AiohttpTransport``,
maintained, behind httpx's transport API), keep-alive connections bounded by ``upstream_concurrency``.
httpx's own transport (httpcore) when proxy variables are set (it honours them, ``NO_PROXY`` included) or
when ``GATEWAY_UPSTREAM_TRANSPORT=httpx``. Client CPU per upstream call, through ``get`` (a GET of a 9 kB
JSON answer on kept-alive loopback connections, ``python -m bench.transport_bench``, best of 5 rounds on a
shared 2-vCPU machine, uvloop, sequential/8 concurrent): aiohttp 406/408 µs, httpcore 993/1018 µs, and
the hand-written transport it replaces (``upstream/transport.py``, deleted) 414/374 µs. Across runs httpcore
costs 2-2.5 times aiohttp, and aiohttp 1-1.4 times the hand-written one, which is no longer ours to keep.

``get``: the whole exchange (connect, head, body) within ``timeout`` (expired: ``httpx.ReadTimeout``), the
connection itself within ``CONNECT_TIMEOUT`` (expired: ``httpx.ConnectTimeout``: an unreachable upstream is an
outage, retried, not one slow query), the body streamed and refused past ``max_bytes`` (``BodyTooLarge``; a connection left half-read is dropped).
Every other failure is an ``httpx.HTTPError``: httpx-aiohttp leaves malformed answers as aiohttp's errors
and reports refused or dropped connections as ``ConnectTimeout``; both are corrected here.
"""

from __future__ import annotations

import asyncio
import urllib.parse
import urllib.request

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport
from multidict import CIMultiDictProxy
from yarl import URL

from gateway import __version__

CONNECT_TIMEOUT = 3.0  # seconds: two SYNs (Linux resends the first after 1 s); a longer silence is a dead host


class BodyTooLarge(Exception):
    """The upstream's answer is longer than the limit (by its ``Content-Length`` or as it was read)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"The answer is larger than {limit} bytes.")
        self.limit = limit


def build_client(settings) -> httpx.AsyncClient:
    """The one pooled client for the upstream (close it with ``aclose()``)."""
    limits = httpx.Limits(max_connections=settings.upstream_concurrency,
                          max_keepalive_connections=settings.upstream_concurrency)
    transport = None  # httpx's own, which honours the proxy variables
    if settings.upstream_transport == "aiohttp" and not _proxied():
        transport = AiohttpTransport(limits=limits)
    client = httpx.AsyncClient(limits=limits, transport=transport, follow_redirects=False,
                               headers={"User-Agent": USER_AGENT})
    client.gateway_aiohttp = transport  # whose aiohttp session ``send`` talks to directly (None: through httpx)
    return client


USER_AGENT = f"leads-gateway/{__version__}"


def _proxied() -> bool:
    return any(k in urllib.request.getproxies() for k in ("http", "https", "all"))


async def get(client: httpx.AsyncClient, url: str, *, params, headers, timeout: float,
              max_bytes: int) -> tuple[int, httpx.Headers, bytes]:
    """One GET: its status, headers and (decoded) body, at most ``max_bytes`` long, within ``timeout``."""
    return await send(client, "GET", url, params=params, headers=headers, timeout=timeout, max_bytes=max_bytes)


async def send(client: httpx.AsyncClient, method: str, url: str, *, params=None, content: bytes | None = None,
               headers, timeout: float, max_bytes: int) -> tuple[int, httpx.Headers, bytes]:
    """One request (``content``: its body), with ``get``'s bounds and error mapping. For a POST, only
    ``httpx.ConnectError``/``ConnectTimeout`` say that nothing reached the upstream; after any other
    failure it may have acted on the request."""
    transport = getattr(client, "gateway_aiohttp", None)
    if transport is not None:
        return await _send_aiohttp(_session(transport), method, url, params, content, headers, timeout, max_bytes)
    try:
        async with asyncio.timeout(timeout):
            limits = httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT))
            async with client.stream(method, url, params=params, content=content, headers=headers,
                                     timeout=limits) as response:
                # BodyTooLarge leaves the stream, which drops the half-read connection.
                body = await _bounded_body(response.headers.get("Content-Length", ""), response.aiter_bytes(),
                                           max_bytes)
                return response.status_code, response.headers, body
    except TimeoutError:
        raise httpx.ReadTimeout(f"The upstream did not answer within {timeout:g} s.") from None
    except httpx.ConnectTimeout as exc:
        # httpx-aiohttp 0.2 maps every aiohttp.ClientConnectionError to ConnectTimeout: restore the others.
        cause = exc.__cause__
        if not isinstance(cause, aiohttp.ClientConnectionError) or isinstance(cause, TimeoutError):
            raise
        raise _connection_error(cause) from cause
    except aiohttp.ClientError as exc:  # left unmapped by httpx-aiohttp: a malformed answer
        raise httpx.RemoteProtocolError(f"Malformed HTTP answer: {exc}") from exc


async def _bounded_body(length: str, chunks, max_bytes: int) -> bytes:
    """The body of an answer, ``BodyTooLarge`` as soon as it is known to exceed ``max_bytes``: from its
    ``Content-Length``, else while its chunks arrive (never buffered whole)."""
    if length.isdigit() and int(length) > max_bytes:
        raise BodyTooLarge(max_bytes)
    body, size = [], 0
    async for chunk in chunks:
        size += len(chunk)
        if size > max_bytes:
            raise BodyTooLarge(max_bytes)
        body.append(chunk)
    return b"".join(body)


def _connection_error(exc: aiohttp.ClientConnectionError) -> httpx.TransportError:
    """The httpx error a lost or refused aiohttp connection stands for (what ``client.py`` tells apart)."""
    if isinstance(exc, aiohttp.ClientConnectorError):  # refused, unresolvable, TLS refused
        return httpx.ConnectError(str(exc))
    if isinstance(exc, aiohttp.ServerDisconnectedError):  # closed without (a whole) answer
        return httpx.RemoteProtocolError(str(exc))
    return httpx.ReadError(str(exc))  # reset, broken pipe


def _session(transport: AiohttpTransport) -> aiohttp.ClientSession:
    """The transport's aiohttp session, made on first use as httpx-aiohttp makes it (its public ``client`` and
    ``get_client``): inside the event loop, and closed by the transport when the httpx client closes."""
    session = transport.client
    if not isinstance(session, aiohttp.ClientSession):
        session = transport.client = transport.get_client()
    return session


async def _send_aiohttp(session: aiohttp.ClientSession, method: str, url: str, params, content: bytes | None,
                        headers, timeout: float, max_bytes: int) -> tuple[int, CIMultiDictProxy, bytes]:
    """``send`` on the aiohttp transport's own session, past httpx's request and response models (their URL
    parsing, header objects and stream wrappers were about 1 ms of a call's latency at one connection): the
    same connection pool (the client's ``aclose`` closes it), the same request (httpx's query encoding, its
    default ``User-Agent``, aiohttp's ``Accept-Encoding``), the same bounds and the same httpx exceptions. The
    headers returned are aiohttp's case-insensitive mapping (``get``/``[]`` as httpx's)."""
    if params:
        url = f"{url}?{urllib.parse.urlencode(params)}"
    bound = min(timeout, CONNECT_TIMEOUT)
    connect = _CONNECT_TIMEOUTS.get(bound)
    if connect is None:
        connect = aiohttp.ClientTimeout(total=None, sock_connect=bound)
        if len(_CONNECT_TIMEOUTS) < 64:
            _CONNECT_TIMEOUTS[bound] = connect
    response = None
    try:
        async with asyncio.timeout(timeout):
            response = await session.request(method, URL(url, encoded=True), data=content,
                                             headers={"User-Agent": USER_AGENT, **headers},
                                             allow_redirects=False, timeout=connect)
            try:
                body = await _bounded_body(response.headers.get("Content-Length", ""), response.content.iter_any(),
                                           max_bytes)
            except BaseException:
                response.close()  # a half-read connection is dropped, never reused
                raise
            response.release()
            return response.status, response.headers, body
    except aiohttp.ConnectionTimeoutError as exc:  # before the TimeoutError it also is
        raise httpx.ConnectTimeout(str(exc)) from exc
    except TimeoutError:
        raise httpx.ReadTimeout(f"The upstream did not answer within {timeout:g} s.") from None
    except aiohttp.ClientPayloadError as exc:  # a truncated or garbled body
        raise httpx.ReadError(str(exc)) from exc
    except aiohttp.ClientConnectionError as exc:
        raise _connection_error(exc) from exc
    except aiohttp.ClientError as exc:  # a malformed answer
        raise httpx.RemoteProtocolError(f"Malformed HTTP answer: {exc}") from exc


_CONNECT_TIMEOUTS: dict[float, aiohttp.ClientTimeout] = {}  # by connect bound (few distinct values: the deadlines)
