"""Client CPU per upstream call, by httpx transport: what choosing the upstream client's transport rests on.

A loopback server (uvicorn, in its own process) answers every ``GET /user/leads`` with the same ~8 kB JSON;
a client process per transport and round sends calls through ``gateway.datasource.http_client.get`` (the
gateway's own way: streamed, bounded body) on kept-alive connections, ``--calls`` one after another then
as many again from ``--concurrency`` tasks, and reports its own CPU time (``time.process_time()``: user +
system, all threads) per call. Rows: httpx-aiohttp (the gateway's default), httpx's own transport
(httpcore), and the hand-written HTTP/1.1 transport the gateway used before (``gateway/upstream/
transport.py``, loaded from git history; skipped without it). Each figure is the median of ``--rounds``
fresh client processes, transports taking turns, and the best of them
(CPU time on a shared or virtual machine only grows with noise: the best is the steadiest figure).

    python -m bench.transport_bench [--calls 3000] [--concurrency 8] [--rounds 5] [--loop uvloop|asyncio]
    python -m bench.transport_bench --smoke     # a few calls: checks that it works, not the figures
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import free_port, stop, wait_up

ROOT = Path(__file__).resolve().parents[1]
LEAN_PATH = "gateway/upstream/transport.py"
TRANSPORTS = ("aiohttp", "httpcore", "lean")
DEADLINE = 300  # seconds: the whole run, however it is configured


def body() -> bytes:
    """An ~8 kB JSON page of 20 leads, the shape of the upstream's."""
    leads = [{"id": 1000 + i, "customer_name": f"Customer {i:03d} Lastname", "phone_number": f"+1555000{i:04d}",
              "status": "new", "campaign_id": 7, "campaign": {"id": 7, "name": "Spring outreach"},
              "created_at": "2024-05-01T12:00:00.000000Z", "updated_at": "2024-05-02T12:00:00.000000Z",
              "notes": "x" * 100, "secondary_contacts": [{"phone_number": "+15550009999", "status": "active"}]}
             for i in range(20)]
    return json.dumps({"data": leads, "current_page": 1, "per_page": 20, "total": 400, "last_page": 20}).encode()


# ------------------------------------------------------------------------------------------------ server

def serve(port: int) -> None:
    import uvicorn

    payload = body()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": head})
        await send({"type": "http.response.body", "body": payload})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off")


# ------------------------------------------------------------------------------------------------ client

def lean_transport_class(tmp: Path):
    """``LeanTransport`` from the newest commit that has ``gateway/upstream/transport.py``, or None."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout

    try:
        try:
            source = git("show", f"HEAD:{LEAN_PATH}")
        except subprocess.CalledProcessError:  # deleted: the version before the commit that deleted it
            deleted_in = git("rev-list", "-n", "1", "HEAD", "--", LEAN_PATH).strip()
            source = git("show", f"{deleted_in}^:{LEAN_PATH}")
    except (OSError, subprocess.CalledProcessError):
        return None
    path = tmp / "lean_transport.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("lean_transport", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.LeanTransport


def make_client(name: str, concurrency: int, tmp: Path):
    import httpx

    from gateway.config import Settings
    from gateway.datasource.http_client import build_client

    if name == "aiohttp":
        return build_client(Settings(upstream_transport="aiohttp", upstream_concurrency=concurrency))
    if name == "httpcore":
        return build_client(Settings(upstream_transport="httpx", upstream_concurrency=concurrency))
    lean = lean_transport_class(tmp)
    if lean is None:
        return None
    return httpx.AsyncClient(transport=lean(max_connections=concurrency), follow_redirects=False)


async def measure(name: str, url: str, calls: int, concurrency: int) -> dict | None:
    from gateway.datasource.http_client import get

    params = (("page", "1"), ("per_page", "20"))
    headers = {"Authorization": "Bearer bench", "Accept": "application/json"}

    async def one() -> None:
        status, _, content = await get(client, url, params=params, headers=headers, timeout=5.0, max_bytes=1 << 20)
        assert status == 200 and len(content) > 7000, (status, len(content))

    async def worker(n: int) -> None:
        for _ in range(n):
            await one()

    with tempfile.TemporaryDirectory() as tmp:
        client = make_client(name, concurrency, Path(tmp))
    if client is None:
        return None
    async with client:
        for _ in range(max(20, calls // 20)):  # warm: connections open, code paths hot
            await one()
        await asyncio.gather(*(worker(5) for _ in range(concurrency)))
        result = {}
        for mode, tasks in (("sequential", 1), ("concurrent", concurrency)):
            per_task = max(1, calls // tasks)
            cpu, wall = time.process_time(), time.perf_counter()
            await asyncio.gather(*(worker(per_task) for _ in range(tasks)))
            done = per_task * tasks
            result[mode] = {"cpu_us": (time.process_time() - cpu) / done * 1e6,
                            "wall_us": (time.perf_counter() - wall) / done * 1e6}
    return result


def client_main(name: str, url: str, calls: int, concurrency: int, loop: str) -> None:
    if loop == "uvloop":
        import uvloop
        result = uvloop.run(measure(name, url, calls, concurrency))
    else:
        result = asyncio.run(measure(name, url, calls, concurrency))
    print(json.dumps(result))


# ------------------------------------------------------------------------------------------------ driver

def run_client(name: str, url: str, args, timeout: float) -> dict | None:
    out = subprocess.run([sys.executable, "-m", "bench.transport_bench", "--client", name, "--url", url,
                          "--calls", str(args.calls), "--concurrency", str(args.concurrency), "--loop", args.loop],
                         cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"the {name} client failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=3000, help="calls per mode, per round and transport")
    parser.add_argument("--concurrency", type=int, default=8, help="tasks (and pooled connections) when concurrent")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"),
                        default="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
                        help="the client's event loop (uvicorn runs the gateway on uvloop when installed)")
    parser.add_argument("--transports", default=",".join(TRANSPORTS), help=f"comma-separated of {TRANSPORTS}")
    parser.add_argument("--smoke", action="store_true", help="100 calls, one round")
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve)
    if args.client:
        return client_main(args.client, args.url, args.calls, args.concurrency, args.loop)
    if args.smoke:
        args.calls, args.rounds = 100, 1
    names = [n.strip() for n in args.transports.split(",") if n.strip()]
    if unknown := set(names) - set(TRANSPORTS):
        parser.error(f"unknown transports: {', '.join(sorted(unknown))}")

    started = time.monotonic()
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "bench.transport_bench", "--serve", str(port)], cwd=ROOT,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    results: dict[str, list[dict]] = {n: [] for n in names}
    skipped: set[str] = set()
    try:
        wait_up(f"http://127.0.0.1:{port}/healthz", server)
        url = f"http://127.0.0.1:{port}/user/leads"
        for _ in range(args.rounds):
            for name in names:
                if name in skipped:
                    continue
                left = DEADLINE - (time.monotonic() - started)
                if left <= 0:
                    raise TimeoutError(f"the benchmark ran past {DEADLINE} s")
                result = run_client(name, url, args, timeout=left)
                if result is None:
                    skipped.add(name)
                else:
                    results[name].append(result)
    finally:
        stop(server)

    print(f"\nClient CPU per upstream call: GET of a {len(body())}-byte JSON answer over kept-alive loopback "
          f"connections;\n{args.calls} calls per mode, sequential then {args.concurrency} concurrent tasks, "
          f"{args.loop} loop, {args.rounds} round(s).\n")
    print(f"{'transport':<12}{'CPU µs/call, sequential':>26}{'concurrent':>16}{'wall µs/call, seq':>20}{'conc':>8}")
    print(f"{'':<12}{'best':>16}{'median':>10}{'best':>8}{'median':>8}{'median':>20}{'median':>8}")
    for name in names:
        if name in skipped:
            print(f"{name:<12}  (skipped: {LEAN_PATH} is not in git history)")
            continue
        runs = results[name]

        def of(mode: str, key: str, pick) -> float:
            return pick([r[mode][key] for r in runs])

        print(f"{name:<12}{of('sequential', 'cpu_us', min):>16.0f}{of('sequential', 'cpu_us', statistics.median):>10.0f}"
              f"{of('concurrent', 'cpu_us', min):>8.0f}{of('concurrent', 'cpu_us', statistics.median):>8.0f}"
              f"{of('sequential', 'wall_us', statistics.median):>20.0f}"
              f"{of('concurrent', 'wall_us', statistics.median):>8.0f}")
    print(f"\n({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
