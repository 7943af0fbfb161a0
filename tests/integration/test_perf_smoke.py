"""The performance benchmark (``python -m bench.perf --smoke --profile``) end to end, and its pure parts.

The smoke run checks that every target answers correctly and is measured, and that every goal is
computed; its figures (1 s per target, 4 connections) are not asserted.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from bench import perf, wrk
from tests.conftest import skip_or_fail

ROOT = Path(__file__).resolve().parents[2]

TARGETS = ["ceiling", "gateway warm", "gateway warm, persisted (APQ GET)", "gateway cold",
           "gateway new query over cached pages", "gateway warm, 2 workers", "Hive cached", "Hive uncached",
           "upstream direct, 20 ms", "gateway cold, 20 ms upstream", "gateway cold persisted, 20 ms upstream",
           "Hive uncached, 20 ms upstream"]
GOALS = ["T1", "T1", "T2", "T3", "T4", "T5", "T6"]
PROFILED = ["gateway warm", "gateway cold", "gateway new query over cached pages"]
NUMBER = r"\d+(\.\d+)?"


def table_rows(text: str) -> dict[str, list[str]]:
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| ---"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows.setdefault(cells[0], cells[1:])
    return rows


def test_perf_smoke_with_profile():
    if shutil.which("wrk") is None:
        skip_or_fail("wrk is missing (apt-get install wrk; ./dev test installs it)")
    if shutil.which("node") is None or shutil.which("npm") is None:
        skip_or_fail("node/npm are missing: the benchmark's peer, Hive Gateway, needs them")
    out = subprocess.run([sys.executable, "-m", "bench.perf", "--smoke", "--profile"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr[-5000:]
    rows = table_rows(out.stdout)
    for target in TARGETS:
        assert target in rows, f"no row for {target!r}:\n{out.stdout}"
        req_s, p50, p99, cpu, rss = rows[target][1:6]
        for cell in (req_s, p50, p99, cpu):
            assert re.fullmatch(NUMBER, cell), (target, rows[target])
        assert re.fullmatch(rf"{NUMBER}( / {NUMBER})*", rss), (target, rss)
    assert len(rows["gateway warm, 2 workers"][5].split(" / ")) == 2  # each worker's RSS
    goals = [line for line in out.stdout.splitlines() if re.match(r"\| T\d ", line)]
    assert [g.split("|")[1].strip() for g in goals] == GOALS, out.stdout
    for goal in goals:
        assert re.search(rf"\| {NUMBER}(x| ms| MB) \| .* \| (PASS|MISS) \|$", goal), goal
    for label in PROFILED:
        assert f"**{label}** (" in out.stdout
    assert "| gateway code |" in out.stdout


def test_wrk_report_parsed_with_units():
    text = """Running 1s test @ http://127.0.0.1:1/graphql
  1 threads and 4 connections
  Latency Distribution
     50%  850.00us
     75%    1.20ms
     90%    2.00ms
     99%    1.50s
  1234 requests in 1.00s, 4.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec:   1230.50
Transfer/sec:      4.00MB
"""
    result = wrk.parse(text)
    assert (result.requests, result.rps, result.p50_ms, result.p99_ms) == (1234, 1230.5, 0.85, 1500.0)
    assert (result.non_2xx, result.socket_errors, result.ok) == (5, 3, False)


def test_lua_strings_escape_quotes_and_non_ascii():
    assert wrk.lua_string('a"b\\c\né') == '"a\\"b\\\\c\\010\\195\\169"'


def test_docs_block_inserted_after_the_first_paragraph_then_replaced(tmp_path):
    docs = tmp_path / "BENCHMARKS.md"
    docs.write_text("# Benchmarks\n\nAll figures on this machine.\nSecond line.\n\n## Page cache\n\ntext\n")
    row = perf.Row("ceiling", "ceiling", 32, 1000.0, 1.0, 2.0, 0.5, 30.0, [30.0], None, 1000)
    hive = perf.Row("hive cached", "Hive cached", 32, 300.0, 3.0, 9.0, 2.0, 200.0, [200.0], 0.0, 300)
    png = perf.write_docs(docs, "FIRST-RUN", {"ceiling": row, "hive cached": hive}, "profile one")
    text = docs.read_text()
    assert png == tmp_path / "perf.png" and png.stat().st_size > 1000
    assert text.index("Second line.") < text.index(perf.PERF_BEGIN) < text.index(perf.PERF_END)
    assert text.index(perf.PERF_END) < text.index(perf.PROFILE_BEGIN) < text.index("## Page cache")
    assert "![req/s and CPU per request per target](perf.png)" in text

    perf.write_docs(docs, "SECOND-RUN", {"ceiling": row, "hive cached": hive}, None)  # no profile: kept
    text = docs.read_text()
    assert "SECOND-RUN" in text and "FIRST-RUN" not in text and "profile one" in text
    assert text.count(perf.PERF_BEGIN) == 1 and text.count(perf.PROFILE_BEGIN) == 1
