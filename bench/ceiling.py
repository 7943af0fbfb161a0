"""The Python HTTP ceiling: a bare Starlette app answering POST /graphql with fixed bytes.

It does no GraphQL and no upstream call; it returns the gateway's own answer (read once from a file)
with the same Content-Type, served by uvicorn with the gateway's settings (one process, whatever
event loop and HTTP parser uvicorn picks, access log off, keep-alive 75 s, no server header). Its
req/s is what this machine's Python HTTP stack can do for that response: the gateway can only
approach it.

    python -m bench.ceiling --port 8300 --body answer.json [--content-type "application/json"]
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ceiling", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body", type=Path, required=True, help="file holding the response body")
    parser.add_argument("--content-type", default="application/json")
    args = parser.parse_args(argv)
    app = create_app(args.body.read_bytes(), args.content_type)
    # The settings of gateway/cli.py's uvicorn.run, minus what only the gateway has (lifespan work, grace).
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False,
                timeout_keep_alive=75, proxy_headers=False, server_header=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
