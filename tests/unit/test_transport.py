"""The lean httpx transport against real sockets: scripted HTTP/1.1 servers on loopback answer each way the
transport must handle (chunked, close-delimited, interim answers, idle connections closed, garbage,
silence), and the exceptions are httpx's own."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from gateway.upstream.transport import LeanTransport

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"a\": [1]}\n"


class Scripted:
    """A loopback server: each accepted connection gets the next script, which reads and writes on it."""

    def __init__(self, *scripts):
        self.scripts = list(scripts)
        self.connections = 0
        self.requests: list[bytes] = []

    async def __aenter__(self):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc):
        self.server.close()

    async def _serve(self, reader, writer):
        self.connections += 1
        script = self.scripts[min(self.connections - 1, len(self.scripts) - 1)]
        try:
            await script(self, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
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


def client_of(transport: LeanTransport, timeout: float = 2.0) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=transport, timeout=timeout)  # closing it closes the transport's pool


async def get(server, client: httpx.AsyncClient, **kwargs):
    return await client.get(f"{server.url}/user/leads?page=1", **kwargs)


async def test_keep_alive_reuses_one_connection_and_sends_a_well_formed_request():
    async with Scripted(answers(OK, OK, OK)) as server:
        transport = LeanTransport()
        async with httpx.AsyncClient(transport=transport) as client:
            for _ in range(3):
                response = await client.get(f"{server.url}/user/leads?page=1", headers={"Authorization": "Bearer t"})
                assert response.status_code == 200 and response.json() == {"a": [1]}
        assert server.connections == 1
        head = server.requests[0].decode()
        assert head.startswith("GET /user/leads?page=1 HTTP/1.1\r\n")
        assert f"Host: {server.url.removeprefix('http://')}" in head and "Authorization: Bearer t" in head


async def test_chunked_bodies_and_interim_answers():
    chunked = (b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
               b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"4;ext=1\r\n{\"a\"\r\n6\r\n: [1]}\r\n0\r\nX-Trailer: 1\r\n\r\n")
    async with Scripted(answers(chunked, OK)) as server, client_of(LeanTransport()) as client:
        assert (await get(server, client)).json() == {"a": [1]}
        assert (await get(server, client)).json() == {"a": [1]}  # the connection is still in step
        assert server.connections == 1


async def test_a_body_delimited_by_close_and_connection_close_are_not_reused():
    close_delimited = b"HTTP/1.1 200 OK\r\n\r\n{\"a\": [2]}"
    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 10\r\n\r\n{\"a\": [3]}"
    async with Scripted(answers(close_delimited, then_close=True), answers(closing, then_close=True),
                        answers(OK, OK)) as server, client_of(LeanTransport()) as client:
        assert (await get(server, client)).json() == {"a": [2]}
        assert (await get(server, client)).json() == {"a": [3]}
        assert (await get(server, client)).json() == {"a": [1]}
        assert (await get(server, client)).json() == {"a": [1]}  # that last one is kept alive
        assert server.connections == 3


async def test_an_idle_connection_closed_by_the_server_is_replaced_transparently():
    async with Scripted(answers(OK, then_close=True), answers(OK)) as server, \
            client_of(LeanTransport()) as client:
        assert (await get(server, client)).status_code == 200
        await asyncio.sleep(0.05)  # the server has closed the kept-alive connection meanwhile
        assert (await get(server, client)).status_code == 200
        assert server.connections == 2


async def test_a_reused_connection_closed_without_an_answer_is_retried_once_on_a_new_one():
    async def ok_then_hang_up(server, reader, writer):
        await server.request(reader)
        writer.write(OK)
        await writer.drain()
        await server.request(reader)  # the second request on this connection: closed unanswered

    async with Scripted(ok_then_hang_up, answers(OK)) as server, client_of(LeanTransport()) as client:
        assert (await get(server, client)).status_code == 200
        assert (await get(server, client)).status_code == 200
        assert server.connections == 2 and len(server.requests) == 3


async def test_a_new_connection_closed_without_an_answer_is_a_protocol_error():
    async def hang_up(server, reader, writer):
        await server.request(reader)

    async with Scripted(hang_up) as server, client_of(LeanTransport()) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await get(server, client)
        assert server.connections == 1  # a new connection's silence is not retried


@pytest.mark.parametrize("garbage", [
    b"HTTP/1.1 abc OK\r\n\r\n",
    b"SMTP ready\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
])
async def test_malformed_answers_are_protocol_errors(garbage):
    async with Scripted(answers(garbage)) as server, client_of(LeanTransport()) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await get(server, client)


async def test_a_truncated_body_is_a_read_error():
    truncated = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"
    async with Scripted(answers(truncated, then_close=True)) as server, client_of(LeanTransport()) as client:
        with pytest.raises(httpx.ReadError):
            await get(server, client)


async def test_silence_is_a_read_timeout_and_the_connection_is_dropped():
    async def silent(server, reader, writer):
        await server.request(reader)
        await asyncio.sleep(5)

    async with Scripted(silent, answers(OK)) as server, client_of(LeanTransport(), timeout=0.2) as client:
        with pytest.raises(httpx.ReadTimeout):
            await get(server, client)
        assert (await get(server, client)).status_code == 200
        assert server.connections == 2


async def test_refused_connections_are_connect_errors():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        async with httpx.AsyncClient(transport=LeanTransport()) as client:
            with pytest.raises(httpx.ConnectError):
                await client.get(f"http://127.0.0.1:{port}/")


async def slow(server, reader, writer):
    """Answers after 0.3 s."""
    await server.request(reader)
    await asyncio.sleep(0.3)
    writer.write(OK)
    await writer.drain()
    await reader.read()


async def test_the_pool_bound_makes_callers_wait_then_time_out():
    async with Scripted(slow) as server:
        transport = LeanTransport(max_connections=1)
        async with httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(2.0, pool=0.1)) as client:
            first = asyncio.ensure_future(client.get(f"{server.url}/"))
            await asyncio.sleep(0.05)
            with pytest.raises(httpx.PoolTimeout):
                await client.get(f"{server.url}/")
            assert (await first).status_code == 200
        assert server.connections == 1


async def test_cancellation_drops_the_half_used_connection():
    async with Scripted(slow, answers(OK)) as server:
        transport = LeanTransport()
        async with httpx.AsyncClient(transport=transport) as client:
            task = asyncio.ensure_future(client.get(f"{server.url}/"))
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert (await client.get(f"{server.url}/")).json() == {"a": [1]}  # not the late answer
        assert server.connections == 2
