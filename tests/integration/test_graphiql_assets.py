"""GraphiQL's bundles served by the gateway (gateway/http/graphiql/assets.py), and the page that links them.

With the bundles built (npm ci --prefix graphiql && node graphiql/build.mjs, which ./dev does), the page
references only the gateway's own URLs; without them (or with a file that fails its pinned hash) it
falls back to the pinned CDN URLs with subresource integrity.
"""

from __future__ import annotations

import base64
import concurrent.futures
import gzip
import hashlib
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from gateway.http.graphiql import assets as graphiql_assets
from gateway.config import Settings
from gateway.demo.data import DEMO_TOKEN, campaigns_for_token, dataset_for_token
from gateway.http.graphiql.page import EXAMPLE_MUTATION, EXAMPLE_QUERY, graphiql_html
from gateway.http.graphiql.assets import ASSETS, CACHE_CONTROL, local_assets_available
from tests.conftest import skip_or_fail

ROOT = Path(__file__).resolve().parents[2]
NPM_DIR = ROOT / "graphiql"
HTML = {"Accept": "text/html"}
TYPES = {"script": "text/javascript; charset=utf-8", "style": "text/css; charset=utf-8"}


class Links(HTMLParser):
    """Every URL-valued attribute of the page's tags, with the tag."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "src" in attrs or "href" in attrs:
            self.links.append((tag, attrs))


def links(html: str) -> list[tuple[str, dict]]:
    parser = Links()
    parser.feed(html)
    return parser.links


def sri(body: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(body).digest()).decode()


def js_string(html: str, name: str) -> str:
    match = re.search(rf"const {name} = (\".*?(?<!\\)\");", html)
    assert match, f"{name} is not in the page"
    return json.loads(match.group(1))


@pytest.fixture
def built():
    if not local_assets_available():
        skip_or_fail("GraphiQL's bundles are not built (npm ci --prefix graphiql && node graphiql/build.mjs)")


@pytest.fixture
def absent(monkeypatch, tmp_path):
    """The bundles' folder does not exist (a checkout where the build step never ran)."""
    monkeypatch.setattr(graphiql_assets, "STATIC_DIR", tmp_path / "absent")


# --- the pins ----------------------------------------------------------------------------------------


def test_pins_agree_with_package_json_lockfile_and_build_script():
    pins = {a.package: a.version for a in ASSETS}
    package = json.loads((NPM_DIR / "package.json").read_text())
    assert package["dependencies"] == pins  # exact versions, no ranges
    lock = json.loads((NPM_DIR / "package-lock.json").read_text())
    assert {p: lock["packages"][f"node_modules/{p}"]["version"] for p in pins} == pins
    script = (NPM_DIR / "build.mjs").read_text()
    for a in ASSETS:
        assert f'["{a.package}", "{a.path}",' in script, a
        assert a.name.endswith(a.path.rsplit("/", 1)[-1].split(".", 1)[-1]) and a.version in a.name


def test_cdn_fallback_pins_are_strawberrys_where_it_uses_the_same_files():
    """strawberry's template pins the same files with the same hashes (while it uses these versions)."""
    template = resources.files("strawberry").joinpath("static/graphiql.html").read_text()
    pinned = {attrs.get("src") or attrs.get("href"): attrs.get("integrity") for _, attrs in links(template)}
    shared = [a for a in ASSETS if a.cdn_url in pinned]
    for a in shared:
        assert pinned[a.cdn_url] == a.integrity, a.cdn_url
    if len(shared) < len(ASSETS):
        pytest.skip(f"strawberry's template moved on; {len(shared)} of {len(ASSETS)} URLs are shared")


# --- served by the gateway ---------------------------------------------------------------------------


@pytest.mark.parametrize("asset", ASSETS, ids=lambda a: a.name)
def test_asset_served_with_type_cache_headers_and_pinned_content(gateway, built, asset):
    url = f"/graphql/assets/{asset.name}"
    plain = gateway.client.get(url, headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200
    assert plain.headers["content-type"] == TYPES[asset.kind]
    assert plain.headers["cache-control"] == CACHE_CONTROL == "public, max-age=31536000, immutable"
    assert plain.headers["x-content-type-options"] == "nosniff"
    assert "content-encoding" not in plain.headers
    assert sri(plain.content) == asset.integrity
    assert int(plain.headers["content-length"]) == len(plain.content)

    zipped = gateway.client.get(url, headers={"Accept-Encoding": "gzip"})
    assert zipped.status_code == 200 and zipped.headers["content-encoding"] == "gzip"
    assert zipped.headers["vary"] == "Accept-Encoding" and zipped.headers["cache-control"] == CACHE_CONTROL
    assert sri(zipped.content) == asset.integrity  # httpx decoded it: the same bytes
    assert zipped.headers["etag"] != plain.headers["etag"]  # two representations, two tags

    for response in (plain, zipped):
        again = gateway.client.get(url, headers={"If-None-Match": response.headers["etag"],
                                                  "Accept-Encoding": response.headers.get("content-encoding",
                                                                                          "identity")})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["cache-control"] == CACHE_CONTROL

    head = gateway.client.head(url, headers={"Accept-Encoding": "identity"})
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == plain.headers["content-length"]


@pytest.mark.parametrize(("header", "gzip"), [("gzip, deflate, br", True), ("identity", False), ("", False),
                                              ("*", True), ("gzip;q=0, *", False), ("br, *;q=0.1", True),
                                              ("*;q=0", False)])
def test_accept_encoding(header, gzip):
    assert graphiql_assets._accepts_gzip(header) is gzip


@pytest.mark.parametrize("path", ["nope.js", "manifest.json", "THIRD-PARTY-LICENSES.txt", "..%2Fgraphiql.py",
                                  "%2E%2E/app.py", "react-18.2.0.production.min.js/x"])
def test_only_the_pinned_files_are_served(gateway, path):
    response = gateway.client.get(f"/graphql/assets/{path}")
    assert response.status_code == 404


@pytest.mark.parametrize(("accept", "encoded"), [("gzip;q=0, identity", False), ("*", True),
                                                ("br, gzip;q=0.5", True)])
def test_encoding_follows_accept_encoding_and_304s_repeat_tag_and_vary(gateway, built, accept, encoded):
    """q-values count (gzip;q=0 refuses gzip); the gzip body's tag is weak (its bytes are not the file's),
    and a 304 carries the tag and Vary of the 200 it stands for, so caches can match it."""
    asset = ASSETS[-1]
    url = f"/graphql/assets/{asset.name}"
    response = gateway.client.get(url, headers={"Accept-Encoding": accept})
    assert response.status_code == 200 and sri(response.content) == asset.integrity
    assert (response.headers.get("content-encoding") == "gzip") is encoded
    assert response.headers["etag"].startswith("W/") is encoded
    again = gateway.client.get(url, headers={"Accept-Encoding": accept, "If-None-Match": response.headers["etag"]})
    assert again.status_code == 304
    assert again.headers["etag"] == response.headers["etag"] and again.headers["vary"] == "Accept-Encoding"


def test_gzip_copy_is_made_once_per_file_and_decodes_to_the_file(gateway, built):
    """The URL is public: compressing the 3.5 MB bundle per request would be a cheap way to burn the gateway's
    CPU. The gzip copy is made once (the second GET and concurrent first GETs reuse it); gzip and identity
    decode to the same pinned bytes; gzip;q=0 and Range requests get identity; HEAD gets the gzip headers."""
    asset = graphiql_assets.BY_NAME["graphiql-3.8.3.min.js"]
    url = f"/graphql/assets/{asset.name}"
    cache = graphiql_assets._gzipped

    def raw_get(headers: dict) -> tuple[httpx.Response, bytes]:
        with gateway.client.stream("GET", url, headers=headers) as response:
            return response, b"".join(response.iter_raw())

    cache.cache_clear()
    first, first_raw = raw_get({"Accept-Encoding": "gzip"})
    assert (cache.cache_info().misses, cache.cache_info().hits) == (1, 0)
    second, second_raw = raw_get({"Accept-Encoding": "gzip"})
    assert (cache.cache_info().misses, cache.cache_info().hits) == (1, 1)  # not compressed again
    assert second_raw == first_raw and int(first.headers["content-length"]) == len(first_raw) < 1_000_000

    plain, plain_raw = raw_get({"Accept-Encoding": "identity"})
    refused, refused_raw = raw_get({"Accept-Encoding": "gzip;q=0"})
    for identity, body in ((plain, plain_raw), (refused, refused_raw)):
        assert identity.status_code == 200 and "content-encoding" not in identity.headers
        assert body == gzip.decompress(first_raw) and sri(body) == asset.integrity
        assert identity.headers["etag"] == plain.headers["etag"] and not identity.headers["etag"].startswith("W/")
    assert first.headers["etag"] == "W/" + plain.headers["etag"]
    for name in ("content-type", "cache-control", "x-content-type-options", "vary", "last-modified"):
        assert first.headers[name] == plain.headers[name], name

    ranged = gateway.client.get(url, headers={"Accept-Encoding": "gzip", "Range": "bytes=0-99"})
    assert ranged.status_code == 206 and "content-encoding" not in ranged.headers
    assert ranged.content == plain_raw[:100]
    head = gateway.client.head(url, headers={"Accept-Encoding": "gzip"})
    assert head.status_code == 200 and head.content == b"" and head.headers["content-encoding"] == "gzip"
    assert head.headers["content-length"] == first.headers["content-length"]

    cache.cache_clear()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        bodies = list(pool.map(lambda _: raw_get({"Accept-Encoding": "gzip"})[1], range(8)))
    assert bodies == [first_raw] * 8 and cache.cache_info().misses == 1  # one compression for all eight


def test_a_file_that_fails_its_hash_is_not_served(gateway, built, monkeypatch, tmp_path):
    for a in ASSETS:
        shutil.copy(graphiql_assets.STATIC_DIR / a.name, tmp_path / a.name)
    victim = tmp_path / ASSETS[0].name
    victim.write_bytes(victim.read_bytes() + b"/* tampered */")
    monkeypatch.setattr(graphiql_assets, "STATIC_DIR", tmp_path)
    refused = gateway.client.get(f"/graphql/assets/{ASSETS[0].name}")
    assert refused.status_code == 404 and refused.headers["cache-control"] == "no-store"
    assert gateway.client.get(f"/graphql/assets/{ASSETS[1].name}").status_code == 200


def test_page_links_only_local_assets_when_built(gateway, built):
    page = gateway.client.get("/graphql", headers=HTML)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert not re.search(r"https?:|//[a-z0-9]", page.text, re.I), "the page names a non-local URL"
    found = [(tag, attrs) for tag, attrs in links(page.text) if attrs.get("href") != "data:,"]
    assert [attrs.get("src") or attrs.get("href") for _, attrs in found] == [
        f"graphql/assets/{a.name}" for a in ASSETS]
    for (tag, attrs), asset in zip(found, ASSETS, strict=True):
        assert tag == ("link" if asset.kind == "style" else "script")
        assert attrs["integrity"] == asset.integrity
        # Relative to /graphql, so they resolve under /graphql/assets/ (and under a proxy's prefix too).
        url = urljoin(f"{gateway.url}/graphql", attrs.get("src") or attrs.get("href"))
        assert url == f"{gateway.url}/graphql/assets/{asset.name}"
        assert gateway.client.get(url).status_code == 200


# --- the CDN fallback --------------------------------------------------------------------------------


def _assert_cdn_page(html: str) -> None:
    found = [(tag, attrs) for tag, attrs in links(html) if attrs.get("href") != "data:,"]
    assert [attrs.get("src") or attrs.get("href") for _, attrs in found] == [a.cdn_url for a in ASSETS]
    for (_, attrs), asset in zip(found, ASSETS, strict=True):
        assert attrs["integrity"] == asset.integrity and "crossorigin" in attrs
    assert "graphql/assets/" not in html


def test_page_falls_back_to_the_cdn_with_integrity_when_not_built(gateway, absent):
    page = gateway.client.get("/graphql", headers=HTML)
    assert page.status_code == 200
    _assert_cdn_page(page.text)
    for a in ASSETS:
        assert a.cdn_url.startswith(f"https://unpkg.com/{a.package}@{a.version}/")
        assert f'src="{a.cdn_url}" integrity="{a.integrity}"' in page.text or \
               f'href="{a.cdn_url}" integrity="{a.integrity}"' in page.text
    assert gateway.client.get(f"/graphql/assets/{ASSETS[0].name}").status_code == 404


def test_a_file_that_fails_its_hash_is_never_used(tmp_path, caplog):
    """All files present but one altered: not served, and the page uses the CDN for everything."""
    for a in ASSETS:
        (tmp_path / a.name).write_bytes(b"/* not the pinned file */")
    assert not local_assets_available(tmp_path)
    _assert_cdn_page(graphiql_html(demo=False, assets_dir=tmp_path))
    assert "does not match its pinned hash" in caplog.text


def test_altered_built_file_falls_back(monkeypatch, tmp_path, built):
    for a in ASSETS:
        shutil.copy(graphiql_assets.STATIC_DIR / a.name, tmp_path / a.name)
    assert local_assets_available(tmp_path)
    assert "graphql/assets/" in graphiql_html(demo=True, assets_dir=tmp_path)
    victim = tmp_path / ASSETS[-1].name
    victim.write_bytes(victim.read_bytes() + b"\n// tampered")
    assert not local_assets_available(tmp_path)
    _assert_cdn_page(graphiql_html(demo=True, assets_dir=tmp_path))


# --- the page itself ---------------------------------------------------------------------------------


def test_graphiql_false_turns_page_and_assets_off(make_gateway):
    settings = Settings.from_env({"GATEWAY_GRAPHIQL": "false"})
    assert settings.graphiql is False
    gw = make_gateway(graphiql=settings.graphiql)
    page = gw.client.get("/graphql", headers=HTML)
    assert "<html" not in page.text.lower() and not page.headers["content-type"].startswith("text/html")
    for a in ASSETS:
        assert gw.client.get(f"/graphql/assets/{a.name}").status_code == 404


@pytest.mark.parametrize("demo", [False, True])
def test_headers_editor_default_and_example_query(make_gateway, demo):
    gw = make_gateway(cache_ttl=0, **({"demo_token": DEMO_TOKEN} if demo else {}))
    page = gw.client.get("/graphql", headers=HTML)
    assert page.status_code == 200
    headers = json.loads(js_string(page.text, "DEFAULT_HEADERS"))
    assert headers == ({} if demo else {"Authorization": "Bearer YOUR_API_TOKEN"})
    assert js_string(page.text, "EXAMPLE_QUERY") == EXAMPLE_QUERY
    assert "</script" not in js_string(page.text, "EXAMPLE_QUERY")
    # The example mutation is a second default tab in demo mode only (elsewhere it would write to the real API).
    assert "defaultTabs: defaultTabs," in page.text
    if not demo:
        assert "const EXAMPLE_MUTATION = null;" in page.text
        assert "const EXAMPLE_MUTATION_VARIABLES = null;" in page.text
        assert "const EXAMPLE_SUBSCRIPTION = null;" in page.text


def test_demo_page_example_subscription_is_valid():
    """The demo page's third tab: one subscription on `leads`, valid against the schema (GraphiQL runs it over
    the WebSocket: tests/e2e/test_graphiql_live.py runs subscriptions there)."""
    from graphql import OperationType, parse, validate

    from gateway.graphql.schema import schema
    from gateway.http.graphiql.page import EXAMPLE_SUBSCRIPTION

    text = js_string(graphiql_html(demo=True), "EXAMPLE_SUBSCRIPTION")
    assert text == EXAMPLE_SUBSCRIPTION
    document = parse(text)
    assert validate(schema._schema, document) == []
    [operation] = document.definitions
    assert operation.operation == OperationType.SUBSCRIPTION
    assert [f.name.value for f in operation.selection_set.selections] == ["leads"]


def test_demo_page_example_mutation_is_valid_and_creates_a_lead():
    """The demo page's second tab: a createLead mutation valid against the schema, whose variables create a lead
    for the "demo" caller (who GraphiQL is without a token), once however often it is run."""
    from graphql import OperationType, parse, validate
    from graphql.execution.values import get_variable_values

    from gateway.app import create_app
    from gateway.demo.app import create_demo_app
    from gateway.graphql.schema import schema
    from gateway.serving import start_in_thread
    from tests.conftest import Gateway

    page = graphiql_html(demo=True)
    document_text = js_string(page, "EXAMPLE_MUTATION")
    assert document_text == EXAMPLE_MUTATION
    variables = json.loads(js_string(page, "EXAMPLE_MUTATION_VARIABLES"))
    # Valid against the gateway's schema, one mutation operation selecting createLead, its variables accepted.
    document = parse(document_text)
    assert validate(schema._schema, document) == []
    [operation] = document.definitions
    assert operation.operation == OperationType.MUTATION
    assert [f.name.value for f in operation.selection_set.selections] == ["createLead"]
    assert not isinstance(get_variable_values(schema._schema, operation.variable_definitions, variables), list)
    # Values that work for the demo tenant: one of its campaigns, a number it does not have there.
    lead = variables["input"]
    assert lead["campaignId"] in [c["id"] for c in campaigns_for_token(DEMO_TOKEN)]
    assert lead["phoneNumber"] not in {r["phone_number"] for r in dataset_for_token(DEMO_TOKEN)}
    assert lead["idempotencyKey"]

    # Run as GraphiQL runs it in demo mode (no Authorization header), against a private demo upstream: the
    # "demo" tenant of the shared one stays as other tests expect it.
    upstream_server = start_in_thread(create_demo_app())
    settings = Settings(upstream_url=upstream_server.url, upstream_retries=0, demo_token=DEMO_TOKEN, cache_ttl=30)
    gw = Gateway(start_in_thread(create_app(settings)), settings)
    try:
        before = gw.gql("{ leads(last: 1) { totalCount } }")["data"]["leads"]["totalCount"]
        answers = [gw.gql(document_text, variables) for _ in range(2)]
        after = gw.gql("{ leads(last: 1) { totalCount edges { cursor node { databaseId } } } }")["data"]["leads"]
    finally:
        gw.close()
        upstream_server.stop()
    for body in answers:
        assert "errors" not in body, body
        assert body["data"]["createLead"]["userErrors"] == []
    created = answers[0]["data"]["createLead"]
    assert answers[1]["data"]["createLead"] == created  # the same idempotencyKey: the same lead, not a second one
    assert created["lead"]["phoneNumber"] == lead["phoneNumber"]
    assert created["lead"]["customerName"] == lead["customerName"]
    assert created["lead"]["campaign"]["databaseId"] == lead["campaignId"]
    assert after["totalCount"] == before + 1 == len(dataset_for_token(DEMO_TOKEN)) + 1
    assert after["edges"] == [{"cursor": created["leadEdge"]["cursor"],
                               "node": {"databaseId": created["lead"]["databaseId"]}}]


def test_build_script_produces_the_pinned_files(tmp_path):
    """graphiql/build.mjs copies exactly the pinned files, under the names the gateway serves."""
    node = shutil.which("node")
    if node is None:
        skip_or_fail("node is not installed")
    if not (NPM_DIR / "node_modules" / "graphiql").exists():
        skip_or_fail("graphiql/node_modules is missing (npm ci --prefix graphiql)")
    out = tmp_path / "out"
    run = subprocess.run([node, str(NPM_DIR / "build.mjs"), str(out)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert [(m["name"], m["package"], m["version"], m["file"], m["integrity"]) for m in manifest] == [
        (a.name, a.package, a.version, a.path, a.integrity) for a in ASSETS]
    assert local_assets_available(out)
    assert "MIT" in (out / "THIRD-PARTY-LICENSES.txt").read_text()
    # Run again over its own output (replaces it); a folder that is not its own is left alone.
    assert subprocess.run([node, str(NPM_DIR / "build.mjs"), str(out)], capture_output=True).returncode == 0
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    refused = subprocess.run([node, str(NPM_DIR / "build.mjs"), str(tmp_path / "other")], capture_output=True,
                             text=True)
    assert refused.returncode != 0 and (tmp_path / "other" / "keep.txt").read_text() == "mine"
