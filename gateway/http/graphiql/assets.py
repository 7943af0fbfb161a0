"""GraphiQL's browser bundles, served by the gateway itself so GraphiQL works with no internet.

The bundles are third-party files and are not committed: ``graphiql/build.mjs`` (after
``npm ci --prefix graphiql``, from the pinned ``graphiql/package-lock.json``) copies them into
``gateway/static/graphiql/`` under the versioned names below. Each is checked against its pinned
subresource-integrity hash (the ones strawberry's GraphiQL template ships) before it is used:

- every file present and intact: the page links ``graphql/assets/<name>`` (relative to ``/graphql``,
  so it also works behind a proxy that mounts the gateway under a prefix) and nothing else;
- otherwise: the page falls back to the same files on unpkg, with ``integrity=`` attributes.

File serving is Starlette's: ``StaticFiles`` (HEAD, ``ETag``/``Last-Modified`` and 304s, ranges), limited
to the pinned, intact names. Compression is ours: Starlette's ``GZipMiddleware`` compresses every response
anew, which measured ~120 ms of CPU per request for the 3.5 MB graphiql bundle (187 ms end to end against
17 ms for identity) on a public, unauthenticated URL; here each file version is gzipped once, in a worker
thread, and the copy is served from a small cache. Names carry the package version and the content is
fixed by its hash, so responses are cacheable forever (``immutable``).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import logging
import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import NotModifiedResponse, StaticFiles
from starlette.types import Scope

log = logging.getLogger("gateway.http.graphiql.page")

#: Where the build step puts the files (a package-data folder of the wheel; gitignored).
STATIC_DIR = Path(__file__).resolve().parents[2] / "static" / "graphiql"

#: URL path the files are served under; the page links them relative to ``/graphql``.
ROUTE_PREFIX = "/graphql/assets"
RELATIVE_PREFIX = "graphql/assets"

CACHE_CONTROL = "public, max-age=31536000, immutable"
CONTENT_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
#: On every response of a file, 304s included: its bytes depend on Accept-Encoding (RFC 9110 §12.5.5).
HEADERS = {"Cache-Control": CACHE_CONTROL, "X-Content-Type-Options": "nosniff", "Vary": "Accept-Encoding"}

#: zlib's default: on the 3.5 MB graphiql bundle about 120 ms of CPU against 250 ms at level 9, for 0.7 %
#: more bytes. Paid once per file version (``_gzipped``), not per request.
GZIP_LEVEL = 6


@dataclass(frozen=True)
class Asset:
    name: str  # file name in STATIC_DIR and in the URL; carries the version
    package: str  # npm package
    version: str  # exact version, as in graphiql/package-lock.json
    path: str  # file inside the package
    integrity: str  # SRI hash of the file (sha384, as strawberry's template pins it)

    @property
    def kind(self) -> str:
        return "style" if self.name.endswith(".css") else "script"

    @property
    def cdn_url(self) -> str:
        return f"https://unpkg.com/{self.package}@{self.version}/{self.path}"

    @property
    def local_url(self) -> str:
        return f"{RELATIVE_PREFIX}/{self.name}"


# In the order the page loads them. Keep in step with graphiql/package.json and graphiql/build.mjs
# (tests/integration/test_graphiql_assets.py checks all three agree).
ASSETS: tuple[Asset, ...] = (
    Asset("graphiql-3.8.3.min.css", "graphiql", "3.8.3", "graphiql.min.css",
          "sha384-Mq3vbRBY71jfjQAt/DcjxUIYY33ksal4cgdRt9U/hNPvHBCaT2JfJ/PTRiPKf0aM"),
    Asset("plugin-explorer-1.0.2.css", "@graphiql/plugin-explorer", "1.0.2", "dist/style.css",
          "sha384-5DFJlDPW2tSATRbM8kzoP1j194jexLswuNmClWoRr2Q0x7R68JIQzPHZ02Faktwi"),
    Asset("react-18.2.0.production.min.js", "react", "18.2.0", "umd/react.production.min.js",
          "sha384-tMH8h3BGESGckSAVGZ82T9n90ztNXxvdwvdM6UoR56cYcf+0iGXBliJ29D+wZ/x8"),
    Asset("react-dom-18.2.0.production.min.js", "react-dom", "18.2.0", "umd/react-dom.production.min.js",
          "sha384-bm7MnzvK++ykSwVJ2tynSE5TRdN+xL418osEVF2DE/L/gfWHj91J2Sphe582B1Bh"),
    Asset("graphiql-3.8.3.min.js", "graphiql", "3.8.3", "graphiql.min.js",
          "sha384-HbRVEFG0JGJZeAHCJ9Xm2+tpknBQ7QZmNlO/DgZtkZ0aJSypT96YYGRNod99l9Ie"),
    Asset("plugin-explorer-1.0.2.umd.js", "@graphiql/plugin-explorer", "1.0.2", "dist/index.umd.js",
          "sha384-2oonKe47vfHIZnmB6ZZ10vl7T0Y+qrHQF2cmNTaFDuPshpKqpUMGMc9jgj9MLDZ9"),
)
BY_NAME = {a.name: a for a in ASSETS}


def _matches(body: bytes, integrity: str) -> bool:
    algorithm, _, expected = integrity.partition("-")
    return base64.b64encode(hashlib.new(algorithm, body).digest()).decode() == expected


@lru_cache(maxsize=32)
def _intact(path: str, integrity: str, stamp: tuple[int, int]) -> bool:
    """Whether the file's bytes match ``integrity``: read and hashed once per path, size and mtime."""
    try:
        body = Path(path).read_bytes()
    except OSError:
        return False
    if not _matches(body, integrity):
        log.warning("GraphiQL asset %s does not match its pinned hash; rebuild it (npm ci --prefix graphiql "
                    "&& node graphiql/build.mjs)", path)
        return False
    return True


@lru_cache(maxsize=16)
def _gzipped(path: str, integrity: str, stamp: tuple[int, int]) -> bytes:
    """The file gzipped: read, checked and compressed once per path, size and mtime (blocking).

    Raises ``OSError``/``ValueError`` (not cached) when the file went away or changed since ``verify``.
    Sixteen entries hold the six assets (about 1.1 MB compressed) with room for a rebuild."""
    body = Path(path).read_bytes()
    if not _matches(body, integrity):
        raise ValueError(f"{path} changed and does not match its pinned hash")
    return gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)


_GZIP_LOCKS: dict[str, threading.Lock] = {}


def gzipped(path: str, integrity: str, stamp: tuple[int, int]) -> bytes:
    """``_gzipped``, with concurrent first requests for a file waiting for one compression, not each making one."""
    with _GZIP_LOCKS.setdefault(path, threading.Lock()):
        return _gzipped(path, integrity, stamp)


def verify(asset: Asset, directory: Path | None = None) -> os.stat_result | None:
    """The file's ``stat`` when it is present and intact, else None (blocking: it may hash the file)."""
    path = (directory or STATIC_DIR) / asset.name
    try:
        st = path.stat()
    except OSError:
        return None
    return st if _intact(str(path), asset.integrity, (st.st_size, st.st_mtime_ns)) else None


def local_assets_available(directory: Path | None = None) -> bool:
    """True when every asset is built and intact: the page then references only the gateway's own URLs."""
    return all(verify(a, directory) is not None for a in ASSETS)


class PinnedFiles(StaticFiles):
    """``StaticFiles`` serving only the names in ``ASSETS`` whose bytes match their pin, with ``HEADERS``.

    Clients that accept gzip get a copy compressed once per file version (``gzipped``), with a weak
    ``ETag`` (``W/`` and the identity tag, as nginx and Django do: a strong tag names exact bytes, RFC 9110
    §8.8.3.3; weak, it still revalidates, as ``If-None-Match`` compares weakly). Range requests, and
    clients refusing gzip, get Starlette's identity responses. ``STATIC_DIR`` is read per request (a build
    while the gateway runs takes effect). Anything else is a 404 with ``Cache-Control: no-store``: the
    file may be built a moment later."""

    def __init__(self) -> None:
        super().__init__(directory=None, check_dir=False)

    async def get_response(self, path: str, scope: Scope) -> Response:
        if scope["method"] not in ("GET", "HEAD"):
            raise HTTPException(status_code=405, headers={"Allow": "GET, HEAD"})
        asset = BY_NAME.get(path)
        stat_result = await run_in_threadpool(verify, asset) if asset is not None else None  # hashing: off the loop
        if stat_result is None:
            return _not_found()
        full_path = STATIC_DIR / asset.name
        request = Headers(scope=scope)
        if "range" in request or not _accepts_gzip(request.get("accept-encoding", "")):
            return self.file_response(full_path, stat_result, scope)
        return await self.gzip_response(full_path, asset, stat_result, scope)

    def file_response(self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope,
                      status_code: int = 200) -> Response:
        """The library's, with our headers and media type (also on its 304s, which keep Cache-Control)."""
        response = FileResponse(full_path, status_code, headers=HEADERS, stat_result=stat_result,
                                media_type=CONTENT_TYPES[Path(full_path).suffix])
        if self.is_not_modified(response.headers, Headers(scope=scope)):
            return NotModifiedResponse(response.headers)
        return response

    async def gzip_response(self, full_path: Path, asset: Asset, stat_result: os.stat_result,
                            scope: Scope) -> Response:
        """The gzip representation: 200 from the cached copy (HEAD: its headers), or 304 when it matches."""
        identity = FileResponse(full_path, headers=HEADERS, stat_result=stat_result)  # its tag, Last-Modified
        headers = {**HEADERS, "ETag": "W/" + identity.headers["etag"],
                   "Last-Modified": identity.headers["last-modified"]}
        if self.is_not_modified(identity.headers, Headers(scope=scope)):  # weak comparison, as for identity
            return NotModifiedResponse(Headers(headers))
        stamp = (stat_result.st_size, stat_result.st_mtime_ns)
        try:
            body = await run_in_threadpool(gzipped, str(full_path), asset.integrity, stamp)
        except (OSError, ValueError):  # replaced since verify(): the next request sees the new version
            return _not_found()
        response = Response(body, headers={**headers, "Content-Encoding": "gzip"},
                            media_type=CONTENT_TYPES[full_path.suffix])
        if scope["method"] == "HEAD":
            response.body = b""  # Content-Length stays the gzip body's
        return response


def _not_found() -> Response:
    return Response("Not found.", status_code=404, media_type="text/plain; charset=utf-8",
                    headers={"Cache-Control": "no-store"})


def asset_routes(enabled: bool = True) -> list[BaseRoute]:
    """The bundles under ``/graphql/assets/`` (nothing when GraphiQL is turned off)."""
    return [Mount(ROUTE_PREFIX, app=PinnedFiles())] if enabled else []


def _accepts_gzip(header: str) -> bool:
    """Whether ``Accept-Encoding`` allows gzip (named, or through ``*``, and not with ``q=0``)."""
    weights: dict[str, float] = {}
    for part in header.split(","):
        coding, _, params = part.strip().partition(";")
        q = params.strip()
        weights[coding.strip().lower()] = _float(q[2:]) if q.startswith("q=") else 1.0
    return weights.get("gzip", weights.get("*", 0.0)) > 0


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 1.0
