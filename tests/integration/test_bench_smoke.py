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
