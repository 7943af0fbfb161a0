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
