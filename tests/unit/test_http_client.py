"""The upstream client (``build_client``) and its bounded GET (``get``) against real sockets: scripted HTTP/1.1
servers on loopback answer each way the client must handle (chunked, close-delimited, idle connections
closed, garbage, silence, answers too large), on both transports a setting can choose; every failure is an
httpx exception or ``BodyTooLarge``."""

from __future__ import annotations

import asyncio
import gzip
import socket
import time

import httpx
import pytest
from httpx_aiohttp import AiohttpTransport

from gateway import __version__
from gateway.config import Settings
from gateway.datasource import http_client
from gateway.datasource.http_client import BodyTooLarge, build_client, get

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"a\": [1]}\n"
PARAMS = (("status", "new"), ("page", "1"), ("per_page", "2"))


class Scripted:
    """A loopback server: each accepted connection gets the next script, which reads and writes on it."""

    def __init__(self, *scripts):
        self.scripts = list(scripts)
        self.connections = 0
        self.open = 0  # connections open right now, and the most at once
        self.most_open = 0
        self.requests: list[bytes] = []

    async def __aenter__(self):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/user/leads"
        return self

    async def __aexit__(self, *exc):
        self.server.close()

    async def _serve(self, reader, writer):
        self.connections += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        script = self.scripts[min(self.connections - 1, len(self.scripts) - 1)]
        try:
            await script(self, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # cancelled: the test is over
        finally:
            self.open -= 1
            writer.close()

    async def request(self, reader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        self.requests.append(head)
        return head


def answers(*responses: bytes, then_close: bool = False):
    async def script(server, reader, writer):
        for response in responses:
            await server.request(reader)
            writer.write(response)
            await writer.drain()
        if not then_close:
            await reader.read()  # keep the connection open until the client closes it
    return script


async def slow(server, reader, writer):
    """Answers each request after 0.3 s."""
    while True:
        await server.request(reader)
        await asyncio.sleep(0.3)
        writer.write(OK)
        await writer.drain()


@pytest.fixture(autouse=True)
def no_proxy_variables(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(params=["aiohttp", "httpx"])
def transport(request) -> str:
    return request.param


def client_of(transport: str, concurrency: int = 32) -> httpx.AsyncClient:
    return build_client(Settings(upstream_transport=transport, upstream_concurrency=concurrency))


async def fetch(server, client, *, timeout: float = 2.0, max_bytes: int = 1024, headers=None):
    return await get(client, server.url, params=PARAMS, headers=headers or {"Accept": "application/json"},
                     timeout=timeout, max_bytes=max_bytes)


async def test_the_setting_chooses_the_transport():  # in a running loop, like the app's lifespan (aiohttp needs it)
    async with client_of("aiohttp") as aiohttp_client, client_of("httpx") as httpx_client:
        assert isinstance(aiohttp_client._transport, AiohttpTransport)
        assert not isinstance(httpx_client._transport, AiohttpTransport)


async def test_with_a_proxy_variable_set_requests_go_through_the_proxy(transport, monkeypatch):
    async with Scripted(answers(OK)) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url.removesuffix("/user/leads"))
        async with client_of(transport) as client:
            status, _, body = await get(client, "http://upstream.invalid/user/leads", params=PARAMS, headers={},
                                        timeout=2.0, max_bytes=1024)
        assert (status, body) == (200, b"{\"a\": [1]}\n")
        assert proxy.requests[0].startswith(b"GET http://upstream.invalid/user/leads?status=new&page=1")


async def test_keep_alive_reuses_one_connection_and_sends_a_well_formed_request(transport):
    async with Scripted(answers(OK, OK, OK)) as server, client_of(transport) as client:
        for _ in range(3):
            status, headers, body = await fetch(server, client, headers={"Authorization": "Bearer t"})
            assert (status, headers["content-type"], body) == (200, "application/json", b"{\"a\": [1]}\n")
        assert server.connections == 1
        head = server.requests[0].decode().lower()
        assert head.startswith("get /user/leads?status=new&page=1&per_page=2 http/1.1\r\n")
        assert f"host: {server.url.split('/')[2]}" in head and "authorization: bearer t" in head
        assert f"user-agent: leads-gateway/{__version__}" in head


async def test_chunked_bodies_and_interim_answers(transport):
    chunked = (b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
               b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"4;ext=1\r\n{\"a\"\r\n6\r\n: [1]}\r\n0\r\nX-Trailer: 1\r\n\r\n")
    async with Scripted(answers(chunked, OK)) as server, client_of(transport) as client:
        assert (await fetch(server, client))[2] == b"{\"a\": [1]}"
        assert (await fetch(server, client))[2] == b"{\"a\": [1]}\n"  # the connection is still in step
        assert server.connections == 1


async def test_a_body_delimited_by_close_and_connection_close_are_not_reused(transport):
    close_delimited = b"HTTP/1.1 200 OK\r\n\r\n{\"a\": [2]}"
    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 10\r\n\r\n{\"a\": [3]}"
    async with Scripted(answers(close_delimited, then_close=True), answers(closing, then_close=True),
                        answers(OK, OK)) as server, client_of(transport) as client:
        assert (await fetch(server, client))[2] == b"{\"a\": [2]}"
        assert (await fetch(server, client))[2] == b"{\"a\": [3]}"
        assert (await fetch(server, client))[2] == b"{\"a\": [1]}\n"
        assert (await fetch(server, client))[2] == b"{\"a\": [1]}\n"  # that last one is kept alive
        assert server.connections == 3


async def test_a_gzipped_answer_is_decoded(transport):
    body = b"{\"a\": [1, 2, 3]}"
    packed = gzip.compress(body)
    answer = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s" % (len(packed), packed)
    async with Scripted(answers(answer)) as server, client_of(transport) as client:
        assert (await fetch(server, client))[2] == body


async def test_an_idle_connection_closed_by_the_server_is_replaced_transparently(transport):
    async with Scripted(answers(OK, then_close=True), answers(OK)) as server, client_of(transport) as client:
        assert (await fetch(server, client))[0] == 200
        await asyncio.sleep(0.05)  # the server has closed the kept-alive connection meanwhile
        assert (await fetch(server, client))[0] == 200
        assert server.connections == 2


async def test_a_reused_connection_closed_without_an_answer_is_retried_once_on_a_new_one():
    # The race of a keep-alive expiring as the request leaves: aiohttp sends it again, httpcore does not.
    async def ok_then_hang_up(server, reader, writer):
        await server.request(reader)
        writer.write(OK)
        await writer.drain()
        await server.request(reader)  # the second request on this connection: closed unanswered

    async with Scripted(ok_then_hang_up, answers(OK)) as server, client_of("aiohttp") as client:
        assert (await fetch(server, client))[0] == 200
        assert (await fetch(server, client))[0] == 200
        assert server.connections == 2 and len(server.requests) == 3


async def test_a_connection_closed_without_an_answer_is_a_protocol_error(transport):
    async def hang_up(server, reader, writer):
        await server.request(reader)

    async with Scripted(hang_up) as server, client_of(transport) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await fetch(server, client)


async def test_a_refused_connection_is_a_connect_error_not_a_timeout(transport):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        async with client_of(transport) as client:
            with pytest.raises(httpx.ConnectError):
                await get(client, f"http://127.0.0.1:{port}/user/leads", params=PARAMS, headers={}, timeout=2.0,
                          max_bytes=1024)


async def test_a_connection_that_never_completes_is_a_connect_timeout_not_a_read_timeout(transport, monkeypatch):
    # A listener whose accept queue is full: the kernel drops further SYNs, so connect() hangs, as with a dead host.
    monkeypatch.setattr(http_client, "CONNECT_TIMEOUT", 0.3)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        try:
            async with client_of(transport) as client:
                started = time.monotonic()
                with pytest.raises(httpx.ConnectTimeout):
                    await get(client, f"http://127.0.0.1:{port}/user/leads", params=PARAMS, headers={},
                              timeout=2.0, max_bytes=1024)
                assert time.monotonic() - started < 1.0  # the connect bound, not the whole answer's 2 s
        finally:
            for filler in fillers:
                filler.close()


@pytest.mark.parametrize("garbage", [
    b"HTTP/1.1 abc OK\r\n\r\n",
    b"SMTP ready\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
])
async def test_malformed_answers_are_httpx_errors(transport, garbage):
    async with Scripted(answers(garbage)) as server, client_of(transport) as client:
        with pytest.raises(httpx.HTTPError) as caught:
            await fetch(server, client)
        assert not isinstance(caught.value, httpx.TimeoutException)


@pytest.mark.parametrize("truncated", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nshort",
])
async def test_a_truncated_body_is_an_httpx_error(transport, truncated):
    async with Scripted(answers(truncated, then_close=True)) as server, client_of(transport) as client:
        with pytest.raises(httpx.HTTPError) as caught:
            await fetch(server, client)
        assert not isinstance(caught.value, httpx.TimeoutException)


async def test_silence_is_a_read_timeout_within_the_bound_and_the_connection_is_dropped(transport):
    async def silent(server, reader, writer):
        await server.request(reader)
        await asyncio.sleep(5)

    async with Scripted(silent, answers(OK)) as server, client_of(transport) as client:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            await fetch(server, client, timeout=0.2)
        assert 0.15 < time.monotonic() - started < 1.0
        assert (await fetch(server, client))[2] == b"{\"a\": [1]}\n"
        assert server.connections == 2


async def test_the_timeout_bounds_the_whole_answer_not_each_read(transport):
    async def trickle(server, reader, writer):
        await server.request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        for _ in range(100):  # a byte every 50 ms: each read is quick, the answer takes 5 s
            await asyncio.sleep(0.05)
            writer.write(b"x")
            await writer.drain()

    async with Scripted(trickle) as server, client_of(transport) as client:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            await fetch(server, client, timeout=0.3)
        assert time.monotonic() - started < 1.2


def big(length: int, *, chunked: bool = False, declared: bool = True) -> bytes:
    body = b"x" * length
    if chunked:
        return (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                + b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 300]), body[i:i + 300]) for i in range(0, length, 300))
                + b"0\r\n\r\n")
    if declared:
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (length, body)
    return b"HTTP/1.1 200 OK\r\n\r\n" + body


@pytest.mark.parametrize("shape", [{}, {"chunked": True}, {"declared": False}])
async def test_a_body_of_exactly_max_bytes_is_read(transport, shape):
    async with Scripted(answers(big(1024, **shape), then_close=shape.get("declared") is False)) as server, \
            client_of(transport) as client:
        assert (await fetch(server, client, max_bytes=1024))[2] == b"x" * 1024


async def test_a_declared_length_over_max_bytes_is_refused_before_the_body_and_the_connection_dropped(transport):
    async def head_only(server, reader, writer):
        await server.request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1025\r\n\r\n")  # and no body: none is waited for
        await reader.read()

    async with Scripted(head_only, answers(OK)) as server, client_of(transport) as client:
        with pytest.raises(BodyTooLarge) as caught:
            await fetch(server, client, max_bytes=1024, timeout=1.0)
        assert caught.value.limit == 1024
        assert (await fetch(server, client))[2] == b"{\"a\": [1]}\n"
        assert server.connections == 2


@pytest.mark.parametrize("shape", [{"chunked": True}, {"declared": False}])
async def test_an_undeclared_body_over_max_bytes_is_refused_while_read_and_the_connection_dropped(transport, shape):
    answer = big(5000, **shape)

    async def streaming(server, reader, writer):
        await server.request(reader)
        writer.write(answer[:2000])  # past the limit already; the rest comes later (a large answer arriving)
        await writer.drain()
        await asyncio.sleep(1.0)
        writer.write(answer[2000:])
        await reader.read()

    async with Scripted(streaming, answers(OK)) as server, client_of(transport) as client:
        started = time.monotonic()
        with pytest.raises(BodyTooLarge):
            await fetch(server, client, max_bytes=1024)
        assert time.monotonic() - started < 0.8  # refused as soon as read, not once all has come
        assert (await fetch(server, client))[2] == b"{\"a\": [1]}\n"
        assert server.connections == 2  # the half-read connection was not reused


async def test_max_bytes_counts_the_decoded_body(transport):
    packed = gzip.compress(b"0" * 100_000)  # about 100 bytes on the wire
    answer = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s" % (len(packed), packed)
    async with Scripted(answers(answer)) as server, client_of(transport) as client:
        with pytest.raises(BodyTooLarge):
            await fetch(server, client, max_bytes=50_000)


async def test_the_pool_bound_makes_callers_wait_their_turn(transport):
    async with Scripted(slow) as server, client_of(transport, concurrency=2) as client:
        started = time.monotonic()
        results = await asyncio.gather(*(fetch(server, client) for _ in range(5)))
        assert [r[0] for r in results] == [200] * 5
        assert server.most_open == 2 and server.connections == 2
        assert time.monotonic() - started > 0.85  # three rounds of 0.3 s


async def test_cancellation_drops_the_half_used_connection_and_the_pool_stays_usable(transport):
    async with Scripted(slow, answers(OK)) as server, client_of(transport, concurrency=1) as client:
        task = asyncio.ensure_future(fetch(server, client))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The one slot of the pool is free again, and the late answer is not read as this one's.
        assert (await fetch(server, client, timeout=1.0))[2] == b"{\"a\": [1]}\n"
        assert server.connections == 2


async def test_redirects_are_answers_not_followed(transport):
    moved = b"HTTP/1.1 302 Found\r\nLocation: /login\r\nContent-Length: 0\r\n\r\n"
    async with Scripted(answers(moved, OK)) as server, client_of(transport) as client:
        status, headers, body = await fetch(server, client)
        assert (status, headers["location"], body) == (302, "/login", b"")
        assert len(server.requests) == 1
