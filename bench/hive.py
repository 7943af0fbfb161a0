"""Hive Gateway as the benchmark's peer: the same leads, served by a stock GraphQL gateway.

``bench/hive/`` holds an npm project (versions pinned by its package-lock.json): Hive Gateway
(``@graphql-hive/gateway``) serving a supergraph that Mesh Compose (``@graphql-mesh/compose-cli``
with ``@omnigraph/openapi``) generates from ``openapi.json``, our OpenAPI 3 description of
``GET /user/leads``. The client's Authorization header is forwarded to the upstream, and the
optional response cache is keyed by it (one entry per tenant), like the gateway's own cache.

    python -m bench.hive                     # smoke: install, compose, serve, check the cache
    python -m bench.hive --compare-gateway   # also check that the gateway returns the same 15 leads

Only the npm registry is needed (for ``install()``); everything else runs offline on loopback.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import httpx

from bench.common import children_of, free_port, stop, wait_up

HIVE_DIR = Path(__file__).resolve().parent / "hive"
REPO_DIR = HIVE_DIR.parent.parent
_GATEWAY_BIN = HIVE_DIR / "node_modules" / "@graphql-hive" / "gateway" / "dist" / "bin.js"
_COMPOSE_BIN = HIVE_DIR / "node_modules" / "@graphql-mesh" / "compose-cli" / "esm" / "bin.js"

# The same data as the gateway's benchmark query (page 1, 15 per page, the total, and per lead its id,
# customer name, phone number, status, creation time, campaign name and secondary contacts' phone
# numbers and statuses), in the upstream's own shape: Mesh maps the REST fields one to one.
# current_page/last_page stand in for pageInfo.hasNextPage.
QUERY = ("query { leads(page: 1, per_page: 15) { total current_page last_page "
         "data { id phone_number status created_at variables { customer_name } campaign { name } "
         "secondary_contacts { phone_number status } } } }")

# The gateway's benchmark query, for the comparison in the smoke.
GATEWAY_QUERY = ("query { leads(first: 15) { totalCount pageInfo { hasNextPage endCursor } "
                 "nodes { id databaseId customerName phoneNumber status createdAt campaign { name } "
                 "secondaryContacts { phoneNumber status } } } }")


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not on PATH (Hive Gateway needs Node.js >= 20)")
    return node


def install() -> None:
    """``npm ci`` in bench/hive when node_modules is missing or was installed from another lockfile."""
    digest = hashlib.sha256((HIVE_DIR / "package-lock.json").read_bytes()).hexdigest()[:16]
    stamp = HIVE_DIR / "node_modules" / f".installed-{digest}"  # the same stamp as ./dev's ensure_node_deps
    if stamp.exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not on PATH; it is needed once to install bench/hive's packages")
    subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=HIVE_DIR, check=True)
    stamp.touch()


def compose(upstream_url: str, out_dir: Path) -> Path:
    """Compose the supergraph for the upstream at ``upstream_url`` (e.g. http://127.0.0.1:PORT) into
    ``out_dir/supergraph.graphql`` and return that path. The URL is baked into the supergraph."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = (out_dir / "supergraph.graphql").resolve()
    env = {**os.environ, "LEADS_UPSTREAM_URL": upstream_url.rstrip("/")}
    result = subprocess.run([_node(), str(_COMPOSE_BIN), "--config-path", "mesh.config.ts", "--output", str(out)],
                            cwd=HIVE_DIR, env=env, capture_output=True, text=True)
    if result.returncode != 0 or not out.exists():
        raise RuntimeError(f"mesh-compose failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return out


def start(port: int, upstream_url: str, *, cache: bool, log_path: Path | None = None,
          supergraph: Path | None = None) -> subprocess.Popen:
    """Start Hive Gateway on 127.0.0.1:``port`` (GraphQL at /graphql) in front of ``upstream_url``.

    Composes first unless ``supergraph`` (from ``compose()`` for the same URL) is given. Returns at
    once; wait for ``ready_url(port)`` to answer 200 (about 1 s). Output goes to ``log_path`` (else
    discarded). One Node process: --fork 1 makes the CLI serve from the process started here.
    """
    if supergraph is None:
        supergraph = compose(upstream_url, HIVE_DIR / ".run" / f"port-{port}")
    env = {key: value for key, value in os.environ.items()
           if key not in ("FORK", "DEBUG", "OPENTELEMETRY", "HIVE_ACCESS_TOKEN", "HIVE_USAGE_ACCESS_TOKEN",
                          "HIVE_TRACE_ACCESS_TOKEN", "HIVE_TARGET", "HIVE_CDN_ENDPOINT", "HIVE_CDN_KEY",
                          "APOLLO_KEY", "APOLLO_GRAPH_REF", "CONFIG_PATH", "HOST", "PORT")}
    env.update(HIVE_RESPONSE_CACHE="1" if cache else "0", NODE_ENV="production")
    command = [_node(), str(_GATEWAY_BIN), "supergraph", str(supergraph), "--config-path", "gateway.config.ts",
               "--fork", "1", "--host", "127.0.0.1", "--port", str(port)]
    if log_path is None:
        return subprocess.Popen(command, cwd=HIVE_DIR, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(log_path, "ab") as log:  # the child keeps its own descriptor
        return subprocess.Popen(command, cwd=HIVE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)


def ready_url(port: int) -> str:
    """Answers 200 once Hive Gateway has loaded the supergraph."""
    return f"http://127.0.0.1:{port}/readiness"


def graphql_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/graphql"


def lead_rows_hive(answer: dict) -> list[tuple]:
    """(id, customer name, phone, status, campaign name, secondary contacts) per lead of a QUERY answer,
    with statuses in the gateway's enum spelling so both answers compare equal."""
    rows = []
    for lead in answer["data"]["leads"]["data"]:
        rows.append((lead["id"], (lead["variables"] or {}).get("customer_name"), lead["phone_number"],
                     lead["status"].upper().replace("-", "_"), (lead["campaign"] or {}).get("name"),
                     tuple((c["phone_number"], c["status"].upper().replace("-", "_"))
                           for c in lead["secondary_contacts"])))
    return rows


def lead_rows_gateway(answer: dict) -> list[tuple]:
    """The same rows from an answer of the gateway's GATEWAY_QUERY."""
    return [(lead["databaseId"], lead["customerName"], lead["phoneNumber"], lead["status"],
             (lead["campaign"] or {}).get("name"),
             tuple((c["phoneNumber"], c["status"]) for c in lead["secondaryContacts"]))
            for lead in answer["data"]["leads"]["nodes"]]


# ---------------------------------------------------------------------------- smoke

def _tail(log: Path | None) -> str:
    return log.read_text(errors="replace")[-3000:] if log and log.exists() else ""


def _post(client: httpx.Client, url: str, query: str, token: str) -> tuple[dict, int]:
    response = client.post(url, json={"query": query}, headers={"Authorization": f"Bearer {token}"})
    response.raise_for_status()
    answer = response.json()
    if answer.get("errors"):
        raise RuntimeError(f"GraphQL errors from {url}: {answer['errors']}")
    return answer, len(response.content)


def smoke(compare_gateway: bool = False) -> int:
    install()
    failures: list[str] = []
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="bench-hive-") as tmp:
        tmp_dir = Path(tmp)
        try:
            up_port, hive_port = free_port(), free_port()
            upstream = f"http://127.0.0.1:{up_port}"
            up_log = tmp_dir / "upstream.log"
            with open(up_log, "wb") as log:
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "gateway.cli", "demo-upstream", "--port", str(up_port),
                     "--latency-ms", "0", "--log-level", "warning"],
                    cwd=REPO_DIR, stdout=log, stderr=subprocess.STDOUT))
            wait_up(f"{upstream}/healthz", procs[-1], timeout=60, describe=partial(_tail, up_log))

            started = time.monotonic()
            supergraph = compose(upstream, tmp_dir)
            composed = time.monotonic()
            hive_log = tmp_dir / "hive.log"
            hive = start(hive_port, upstream, cache=True, log_path=hive_log, supergraph=supergraph)
            procs.append(hive)
            wait_up(ready_url(hive_port), hive, timeout=60, describe=partial(_tail, hive_log))
            print(f"composed in {composed - started:.1f} s, Hive ready in {time.monotonic() - composed:.1f} s")
            if children_of(hive.pid):
                failures.append(f"Hive Gateway (pid {hive.pid}) has child processes {children_of(hive.pid)}")

            def calls() -> int:
                return httpx.get(f"{upstream}/_demo/calls").json()["calls"]

            with httpx.Client(timeout=30) as client:
                url = graphql_url(hive_port)
                before = calls()
                first, size_a = _post(client, url, QUERY, "bench-1")
                after_first = calls()
                again, _ = _post(client, url, QUERY, "bench-1")
                after_repeat = calls()
                other, size_b = _post(client, url, QUERY, "bench-2")
                after_other = calls()
                print(f"Hive answer: bench-1 {size_a} bytes, bench-2 {size_b} bytes; upstream calls "
                      f"first {after_first - before}, repeat {after_repeat - after_first}, "
                      f"other token {after_other - after_repeat}")
                if after_first - before != 1:
                    failures.append(f"the first request made {after_first - before} upstream calls, expected 1")
                if after_repeat != after_first:
                    failures.append("a repeated request with the same token called the upstream (cache miss)")
                if after_other - after_repeat != 1:
                    failures.append("a request with another token did not call the upstream (cache shared?)")
                if again != first:
                    failures.append("the cached answer differs from the first one")
                rows_a, rows_b = lead_rows_hive(first), lead_rows_hive(other)
                if len(rows_a) != 15 or not first["data"]["leads"]["total"]:
                    failures.append(f"expected 15 leads and a total, got {len(rows_a)} leads")
                if {row[0] for row in rows_a} & {row[0] for row in rows_b}:
                    failures.append("two tenants got the same lead ids")

                if compare_gateway:
                    gw_port = free_port()
                    gw_log = tmp_dir / "gateway.log"
                    with open(gw_log, "wb") as log:
                        procs.append(subprocess.Popen(
                            [sys.executable, "-m", "gateway.cli", "serve", "--port", str(gw_port),
                             "--log-level", "warning"],
                            cwd=REPO_DIR, env={**os.environ, "GATEWAY_UPSTREAM_URL": upstream},
                            stdout=log, stderr=subprocess.STDOUT))
                    wait_up(f"http://127.0.0.1:{gw_port}/healthz", procs[-1], timeout=60, describe=partial(_tail, gw_log))
                    gateway, gw_size = _post(client, graphql_url(gw_port), GATEWAY_QUERY, "bench-1")
                    same = lead_rows_gateway(gateway) == rows_a
                    same_total = gateway["data"]["leads"]["totalCount"] == first["data"]["leads"]["total"]
                    print(f"gateway answer: bench-1 {gw_size} bytes; same 15 leads as Hive: {same}, "
                          f"same total: {same_total}")
                    if not (same and same_total):
                        failures.append("Hive and the gateway disagree on bench-1's first page")
        finally:
            for proc in reversed(procs):
                stop(proc)
    for failure in failures:
        print(f"FAIL: {failure}", file=sys.stderr)
    print("ok" if not failures else f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Smoke test of the Hive Gateway benchmark peer")
    parser.add_argument("--compare-gateway", action="store_true",
                        help="also start the gateway and check that it returns the same leads")
    sys.exit(smoke(parser.parse_args().compare_gateway))
