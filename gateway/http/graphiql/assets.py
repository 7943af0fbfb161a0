"""GraphiQL's browser bundles, served by the gateway itself so GraphiQL works with no internet.

The bundles are third-party files and are not committed: ``graphiql/build.mjs`` (after
``npm ci --prefix graphiql``, from the pinned ``graphiql/package-lock.json``) copies them into
``gateway/static/graphiql/`` under the versioned names below. Each is checked against its pinned
subresource-integrity hash (the ones strawberry's GraphiQL template ships) before it is used:

- every file present and intact: the page links ``graphql/assets/<name>`` (relative to ``/graphql``,
  so it also works behind a proxy that mounts the gateway under a prefix) and nothing else;
- otherwise: the page falls back to the same files on unpkg, with ``integrity=`` attributes.

Names carry the package version and the content is fixed by its hash, so responses are cacheable
forever (``immutable``); they are compressed with gzip when the client accepts it.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import logging
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

log = logging.getLogger("gateway.http.graphiql.page")

#: Where the build step puts the files (a package-data folder of the wheel; gitignored).
STATIC_DIR = Path(__file__).resolve().parents[2] / "static" / "graphiql"

#: URL path the files are served under; the page links them relative to ``/graphql``.
ROUTE_PREFIX = "/graphql/assets"
RELATIVE_PREFIX = "graphql/assets"

CACHE_CONTROL = "public, max-age=31536000, immutable"
CONTENT_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


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


class _Loaded:
    """An intact file: its bytes, its entity tag, and (made on first use) its gzip encoding."""

    def __init__(self, body: bytes, etag: str) -> None:
        self.body = body
        self.etag = etag

    @cached_property
    def gzipped(self) -> bytes:
        return gzip.compress(self.body, compresslevel=6, mtime=0)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


@lru_cache(maxsize=32)
def _load(path: str, integrity: str, stamp: tuple[int, int]) -> _Loaded | None:
    """The file when its bytes match ``integrity`` (checked once per path, size and mtime), else None."""
    try:
        body = Path(path).read_bytes()
    except OSError:
        return None
    algorithm, _, expected = integrity.partition("-")
    if base64.b64encode(hashlib.new(algorithm, body).digest()).decode() != expected:
        log.warning("GraphiQL asset %s does not match its pinned hash; rebuild it (npm ci --prefix graphiql "
                    "&& node graphiql/build.mjs)", path)
        return None
    return _Loaded(body, f'"{expected[:32]}"')


def load(asset: Asset, directory: Path | None = None) -> _Loaded | None:
    path = (directory or STATIC_DIR) / asset.name
    stamp = _stamp(path)
    return None if stamp is None else _load(str(path), asset.integrity, stamp)


def local_assets_available(directory: Path | None = None) -> bool:
    """True when every asset is built and intact: the page then references only the gateway's own URLs."""
    return all(load(a, directory) is not None for a in ASSETS)


async def serve_asset(request: Request) -> Response:
    asset = BY_NAME.get(request.path_params["name"])
    loaded = await run_in_threadpool(load, asset) if asset is not None else None  # hashing: off the loop
    if loaded is None:
        return Response("Not found.", status_code=404, media_type="text/plain; charset=utf-8",
                        headers={"Cache-Control": "no-store"})
    headers = {"Cache-Control": CACHE_CONTROL, "Vary": "Accept-Encoding",
               "X-Content-Type-Options": "nosniff"}
    media_type = CONTENT_TYPES[Path(asset.name).suffix]
    zipped = _accepts_gzip(request.headers.get("accept-encoding", ""))
    headers["ETag"] = loaded.etag[:-1] + '-gzip"' if zipped else loaded.etag  # one tag per representation
    if headers["ETag"] in _etags(request.headers.get("if-none-match", "")):
        return Response(status_code=304, headers=headers)
    if not zipped:
        return Response(loaded.body, headers=headers, media_type=media_type)
    headers["Content-Encoding"] = "gzip"
    return Response(await run_in_threadpool(lambda: loaded.gzipped), headers=headers, media_type=media_type)


def asset_routes(enabled: bool = True) -> list[BaseRoute]:
    """The route serving the bundles (none when GraphiQL is turned off)."""
    return [Route(f"{ROUTE_PREFIX}/{{name}}", serve_asset, methods=["GET"])] if enabled else []  # and HEAD


def _etags(header: str) -> set[str]:
    """The tags of ``If-None-Match`` (weak comparison, as RFC 9110 asks for it)."""
    return {t.strip().removeprefix("W/") for t in header.split(",") if t.strip()}


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
