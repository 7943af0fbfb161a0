"""The Python HTTP ceiling: a bare Starlette app answering POST /graphql with fixed bytes; with ``--proxy``, the
floor of a miss: the same app forwarding each request to the upstream.

It does no GraphQL and no upstream call; it returns the gateway's own answer (read once from a file)
with the same Content-Type, served by uvicorn with the gateway's settings (one process, whatever
event loop and HTTP parser uvicorn picks, access log off, keep-alive 75 s, no server header). Its
req/s is what this machine's Python HTTP stack can do for that response: the gateway can only
approach it.

With ``--proxy URL`` it does what any Python gateway must do on a cache miss and nothing else: for each
POST /graphql, one GET of ``URL`` (a page of the upstream) with the request's ``Authorization``, on a kept-alive
aiohttp session (the gateway's client), answering the upstream's bytes as they came. Its added latency over the
upstream's own is the least a Python gateway on this machine can add.

    python -m bench.ceiling --port 8300 --body answer.json [--content-type "application/json"]
    python -m bench.ceiling --port 8301 --proxy http://127.0.0.1:8200/user/leads?page=1&per_page=15
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def create_app(body: bytes, content_type: str) -> Starlette:
    async def graphql(request: Request) -> Response:
        await request.body()  # read the request, as any server must
        return Response(body, headers={"content-type": content_type})

    async def readyz(request: Request) -> Response:
        return Response(b"ok", media_type="text/plain")

    return Starlette(routes=[Route("/graphql", graphql, methods=["POST"]),
                             Route("/readyz", readyz, methods=["GET"])])


def create_proxy(url: str) -> Starlette:
    import aiohttp

    sessions: list[aiohttp.ClientSession] = []

    async def graphql(request: Request) -> Response:
        await request.body()
        if not sessions:
            sessions.append(aiohttp.ClientSession())
        headers = {"Authorization": request.headers.get("authorization", "")}
        async with sessions[0].get(url, headers=headers) as answer:
            return Response(await answer.read(), status_code=answer.status,
                            headers={"content-type": answer.headers.get("content-type", "application/json")})

    async def readyz(request: Request) -> Response:
        return Response(b"ok", media_type="text/plain")

    return Starlette(routes=[Route("/graphql", graphql, methods=["POST"]),
                             Route("/readyz", readyz, methods=["GET"])])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ceiling", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body", type=Path, help="file holding the response body")
    parser.add_argument("--content-type", default="application/json")
    parser.add_argument("--proxy", help="forward each request to this upstream URL instead (the floor of a miss)")
    args = parser.parse_args(argv)
    if (args.body is None) == (args.proxy is None):
        parser.error("give --body or --proxy")
    app = create_proxy(args.proxy) if args.proxy else create_app(args.body.read_bytes(), args.content_type)
    # The settings of gateway/cli.py's uvicorn.run, minus what only the gateway has (lifespan work, grace).
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False,
                timeout_keep_alive=75, proxy_headers=False, server_header=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
