"""The benchmarks run (a short smoke version: it checks that they work, not their figures)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_cache_benchmark_smoke():
    out = subprocess.run([sys.executable, "-m", "bench.cache_bench", "--smoke"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    rows = [line for line in out.stdout.splitlines() if line.startswith("| gateway")]
    assert [r.split("|")[1].strip() for r in rows] == ["gateway cold", "gateway warm", "gateway burst"]


def test_isolation_benchmark_smoke():
    doc = ROOT / "docs" / "ISOLATION.md"
    before = doc.read_bytes() if doc.exists() else None
    out = subprocess.run([sys.executable, "-m", "bench.isolation", "--seconds", "1", "--noisy-clients", "20"],
                         cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert "| phase | figure | value | target | result |" in lines, out.stdout
    table = lines[lines.index("| phase | figure | value | target | result |") + 2:]
    table = table[:table.index("")]
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in table]
    phases = {row[0] for row in rows}
    assert phases == {"1", "2", "3a", "3b", "4"}, out.stdout
    figures = {(row[0], row[1]): row for row in rows}
    # Every phase measured the quiet caller, and each target row has a verdict (the smoke need not meet them).
    for phase in ("1", "2", "3a", "3b"):
        requests = figures[(phase, "quiet caller: requests, p50 / p99")][2]
        assert int(requests.split(",")[0].replace(",", "")) > 0, out.stdout
    assert all(row[4] in ("PASS", "**MISS**", "n/a") for row in rows if row[3]), out.stdout
    assert ("4", "time until the breaker opened") in figures
    assert any(line.startswith("Targets missed: ") for line in lines)
    # Without --write-docs it writes nothing.
    assert (doc.read_bytes() if doc.exists() else None) == before


def test_writes_benchmark_smoke():
    doc = ROOT / "docs" / "WRITES.md"
    before = doc.read_bytes() if doc.exists() else None
    out = subprocess.run([sys.executable, "-m", "bench.writes", "--smoke"], cwd=ROOT, capture_output=True,
                         text=True, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    rows = {line.split("|")[1].strip(): line.split("|")[2].strip()
            for line in out.stdout.splitlines() if line.startswith("| ") and not line.startswith("| figure")}
    assert rows["queries B needed to serve it (max over rounds)"].startswith("1 "), out.stdout  # read-your-writes
    for figure in ("upstream `POST /user/lead` (direct)", "`createLead` selecting `lead`",
                   "from A's answer to B serving the lead, p50 / p99"):
        assert rows[figure].endswith(" ms"), out.stdout
    assert (doc.read_bytes() if doc.exists() else None) == before  # without --write-docs it writes nothing


def test_live_benchmark_smoke():
    """20 subscribers (WebSocket and SSE) on 2 callers x 2 windows, on one gateway, then on two sharing Redis."""
    import os
    import shutil

    from bench.writes import redis_answers
    from tests.conftest import skip_or_fail

    redis_url = os.environ.get("GATEWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")  # what the benchmark uses
    if not redis_answers(redis_url) and shutil.which("redis-server") is None:
        skip_or_fail(f"no Redis answers at {redis_url} and redis-server is not installed")
    doc = ROOT / "docs" / "LIVE.md"
    before = doc.read_bytes() if doc.exists() else None
    out = subprocess.run([sys.executable, "-m", "bench.live", "--smoke"], cwd=ROOT, capture_output=True,
                         text=True, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    header = next(line for line in lines if line.startswith("| figure |"))
    assert [c.strip() for c in header.split("|")[2:-2]] == ["1 instance, 20", "2 instances, 20"], out.stdout
    rows = {cells[0]: cells[1:] for cells in ([c.strip() for c in line.split("|")[1:-1]] for line in lines
                                               if line.startswith("| ") and line != header and "---" not in line)}
    assert rows["distinct windows (callers x windows)"][:2] == ["4", "4"], out.stdout
    for phase in range(2):
        assert rows["subscribed (first window received) / time until all"][phase].startswith("20 / "), out.stdout
        # One poll per distinct window per interval, with one instance or two (boundary effects aside).
        polls = float(rows["upstream polls per interval, quiet span (4 intervals)"][phase].split()[0])
        assert 2 <= polls <= 6, out.stdout
        assert rows["push latency, change to last subscriber: p50 / p99 / max"][phase].count(" ms") == 3, out.stdout
        assert rows["gateway memory per subscriber (KiB)"][phase], out.stdout
    assert "/" in rows["gateway CPU, quiet span (% of one CPU, per instance)"][1], out.stdout  # per instance
    assert any(line.startswith("Targets missed: ") for line in lines)
    assert (doc.read_bytes() if doc.exists() else None) == before  # without --write-docs it writes nothing
