"""INTERIM (being replaced by the transport work): the pooled upstream client and a bounded GET."""

from __future__ import annotations

import asyncio

import httpx

from gateway import __version__


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"answer larger than {limit} bytes")
        self.limit = limit


def build_client(settings) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=settings.upstream_concurrency,
                          max_keepalive_connections=settings.upstream_concurrency)
    return httpx.AsyncClient(limits=limits, headers={"User-Agent": f"leads-gateway/{__version__}"},
                             follow_redirects=False)


async def get(client: httpx.AsyncClient, url: str, *, params, headers, timeout: float,
              max_bytes: int) -> tuple[int, httpx.Headers, bytes]:
    try:
        async with asyncio.timeout(timeout):
            async with client.stream("GET", url, params=params, headers=headers, timeout=timeout) as response:
                declared = response.headers.get("content-length")
                if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                    raise BodyTooLarge(max_bytes)
                body = bytearray()
                async for chunk in response.aiter_raw():
                    body += chunk
                    if len(body) > max_bytes:
                        raise BodyTooLarge(max_bytes)
                return response.status_code, response.headers, bytes(body)
    except TimeoutError:
        raise httpx.ReadTimeout("Timed out waiting for the upstream's answer.") from None
