"""The demo upstream's fault mix, and the soak test (``python -m bench.soak --smoke``) end to end."""

from __future__ import annotations

import math
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from bench import soak
from gateway.cli import _demo_options, build_parser
from gateway.demo.app import DemoOptions, create_demo_app, format_fault_mix, parse_fault_mix
from gateway.serving import start_in_thread

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "soak-mix-tenant"
MIX = (("503", 0.10), ("500", 0.05), ("slow", 0.02), ("malformed", 0.03))


@pytest.fixture(scope="module")
def app():
    return create_demo_app()


@pytest.fixture(scope="module")
def client(app):
    server = start_in_thread(app)
    with httpx.Client(base_url=server.url, timeout=10) as http:
        yield http
    server.stop()


@pytest.fixture(autouse=True)
def _fresh_state(app):
    app.state.options = DemoOptions()
    app.state.reset()
    yield
    app.state.options = DemoOptions()


def get(client: httpx.Client, token: str = TOKEN) -> httpx.Response:
    return client.get("/user/leads", params={"per_page": "1"}, headers={"Authorization": f"Bearer {token}"})


def classify(response: httpx.Response) -> str:
    """What the caller sees: the status, or "malformed" for a 200 whose body is not JSON."""
    if response.status_code != 200:
        return str(response.status_code)
    try:
        response.json()
    except ValueError:
        return "malformed"
    return "ok"  # a normal answer, or "slow" (no stall here: slow_seconds=0)


def expected_kinds(n: int, mix=MIX) -> list[str | None]:
    """The model: one draw per request from random.Random(0), faults laid end to end over [0, 1)."""
    rng = random.Random(0)
    kinds = []
    for _ in range(n):
        x, cumulative, kind = rng.random(), 0.0, None
        for fault, rate in mix:
            cumulative += rate
            if x < cumulative:
                kind = fault
                break
        kinds.append(kind)
    return kinds


# ------------------------------------------------------------------ the mix over real HTTP

def test_fault_mix_distribution_over_2000_requests(client, app):
    n = 2000
    app.state.options = DemoOptions(fault_mix=MIX, slow_seconds=0)
    seen = [classify(get(client)) for _ in range(n)]
    injected = client.get("/_demo/faults").json()["faults"]
    # Each fault lands within 4.5 standard deviations of its rate (binomial), and no other fault appears.
    for kind, rate in MIX:
        count = injected.get(kind, 0)
        tolerance = 4.5 * math.sqrt(n * rate * (1 - rate))
        assert abs(count - n * rate) <= tolerance, (kind, count, n * rate)
    assert set(injected) <= {kind for kind, _ in MIX}
    # What the caller saw agrees with what the upstream says it injected.
    assert seen.count("503") == injected.get("503", 0)
    assert seen.count("500") == injected.get("500", 0)
    assert seen.count("malformed") == injected.get("malformed", 0)
    assert seen.count("ok") == n - sum(injected.get(k, 0) for k in ("503", "500", "malformed"))
    # Exactly one draw per request from the seeded RNG, cumulative rates in mix order.
    model = expected_kinds(n)
    assert seen == ["ok" if kind in (None, "slow") else kind for kind in model]
    assert injected == {kind: model.count(kind) for kind, _ in MIX if model.count(kind)}


def test_fault_mix_is_reproducible_after_reset(client, app):
    app.state.options = DemoOptions(fault_mix=(("503", 0.3), ("429", 0.2)))
    first = [get(client).status_code for _ in range(40)]
    assert {200, 503, 429} <= set(first)
    app.state.reset()
    assert [get(client).status_code for _ in range(40)] == first


def test_slow_from_the_mix_stalls(client, app):
    app.state.options = DemoOptions(fault_mix=(("slow", 1.0),), slow_seconds=0.3)
    response = get(client)
    assert response.status_code == 200 and response.elapsed.total_seconds() >= 0.3
    assert client.get("/_demo/faults").json() == {"faults": {"slow": 1}}


def test_single_fault_wins_over_the_mix(client, app):
    app.state.options = DemoOptions(fault="500", fault_mix=(("503", 1.0),))
    assert {get(client).status_code for _ in range(5)} == {500}
    # With fault set, the mix is not consulted at all, even when fault_rate draws no fault.
    app.state.options = DemoOptions(fault="500", fault_rate=0.0, fault_mix=(("503", 1.0),))
    assert {get(client).status_code for _ in range(5)} == {200}


def test_fault_tokens_win_over_the_mix(client, app):
    app.state.options = DemoOptions(fault_mix=(("503", 1.0),))
    assert get(client, "fault-429").status_code == 429
    assert get(client, "forbidden-x").status_code == 503  # faults come before the policy check, as before
    assert client.get("/user/leads").status_code == 401  # no token: no fault drawn


def test_empty_or_zero_mix_injects_nothing(client, app):
    app.state.options = DemoOptions(fault_mix=(("503", 0.0),))
    assert {get(client).status_code for _ in range(20)} == {200}
    assert client.get("/_demo/faults").json() == {"faults": {}}


# ------------------------------------------------------------------ validation

def test_parse_fault_mix():
    assert parse_fault_mix("503:0.10,slow:0.02,malformed:0.01") == (("503", 0.1), ("slow", 0.02), ("malformed", 0.01))
    assert parse_fault_mix(" 503 : 0.5 , 429:0.5 ") == (("503", 0.5), ("429", 0.5))
    assert parse_fault_mix("") == ()
    assert parse_fault_mix("500:1") == (("500", 1.0),)
    assert format_fault_mix(parse_fault_mix("503:0.10,slow:0.02")) == "503:0.1,slow:0.02"
    # Rates that sum to 1 within floating point error are accepted.
    assert len(parse_fault_mix("500:0.1,502:0.2,503:0.3,429:0.4")) == 4


@pytest.mark.parametrize("text, message", [
    ("503", "expected <fault>:<rate> pairs"),
    ("503:", "expected <fault>:<rate> pairs"),
    (":0.1", "expected <fault>:<rate> pairs"),
    ("503:0.1,", "expected <fault>:<rate> pairs"),
    ("504:0.1", "unknown demo fault '504'"),
    ("503:abc", "the rate of fault '503' must be a number between 0 and 1, got 'abc'"),
    ("503:-0.1", "between 0 and 1"),
    ("503:1.5", "between 0 and 1"),
    ("503:nan", "between 0 and 1"),
    ("503:inf", "between 0 and 1"),
    ("503:0.1,503:0.2", "fault '503' is given more than once"),
    ("503:0.6,slow:0.5", "the rates must sum to at most 1, got 1.1"),
])
def test_parse_fault_mix_errors(text, message):
    with pytest.raises(ValueError) as info:
        parse_fault_mix(text)
    assert message in str(info.value)


@pytest.mark.parametrize("mix, message", [
    ((("nope", 0.1),), "fault_mix: unknown demo fault 'nope'"),
    ((("503", 0.7), ("500", 0.7)), "fault_mix: the rates must sum to at most 1"),
    ((("503", 2),), "fault_mix: the rate of fault '503' must be a number between 0 and 1"),
    ((("503", "0.1"),), "fault_mix: the rate of fault '503' must be a number"),
    ((("503", True),), "fault_mix: the rate of fault '503' must be a number"),
    ((("503",),), "fault_mix: expected (fault, rate) pairs"),
    ("503:0.1", "fault_mix: expected (fault, rate) pairs, not a string"),
    ((("503", 0.1), ("503", 0.1)), "fault_mix: fault '503' is given more than once"),
])
def test_demo_options_validate_the_mix(mix, message):
    with pytest.raises(ValueError) as info:
        DemoOptions(fault_mix=mix)
    assert str(info.value).startswith(message)


def test_demo_options_normalise_the_mix():
    options = DemoOptions(fault_mix=[["503", 0.5], ("slow", 0)])
    assert options.fault_mix == (("503", 0.5), ("slow", 0.0))
    assert DemoOptions().fault_mix == ()


# ------------------------------------------------------------------ the command line and the environment

def options_for(*argv: str):
    return _demo_options(build_parser().parse_args(["demo-upstream", *argv]))


def test_cli_fault_mix_flag(monkeypatch):
    for name in ("DEMO_FAULT", "DEMO_FAULT_MIX", "DEMO_FAULT_RATE"):
        monkeypatch.delenv(name, raising=False)
    assert options_for("--fault-mix", "503:0.10,slow:0.02,malformed:0.01").fault_mix == (
        ("503", 0.1), ("slow", 0.02), ("malformed", 0.01))
    assert options_for().fault_mix == ()
    both = options_for("--fault", "500", "--fault-mix", "503:0.5")
    assert both.fault == "500" and both.fault_mix == (("503", 0.5),)  # kept, but the single fault wins


def test_cli_fault_mix_environment_and_precedence(monkeypatch):
    monkeypatch.setenv("DEMO_FAULT_MIX", "503:0.2,429:0.1")
    assert options_for().fault_mix == (("503", 0.2), ("429", 0.1))
    assert options_for("--fault-mix", "500:0.3").fault_mix == (("500", 0.3),)  # the flag overrides the variable
    flag_fault = options_for("--fault", "502")  # --fault replaces DEMO_FAULT_MIX
    assert flag_fault.fault == "502" and flag_fault.fault_mix == ()
    monkeypatch.delenv("DEMO_FAULT_MIX")
    monkeypatch.setenv("DEMO_FAULT", "503")
    flag_mix = options_for("--fault-mix", "slow:0.1")  # --fault-mix replaces DEMO_FAULT
    assert flag_mix.fault is None and flag_mix.fault_mix == (("slow", 0.1),)


@pytest.mark.parametrize("argv, env, message", [
    (["--fault-mix", "503:0.7,slow:0.7"], {}, "leads-gateway: --fault-mix: the rates must sum to at most 1"),
    (["--fault-mix", "teapot:0.1"], {}, "leads-gateway: --fault-mix: unknown demo fault 'teapot'"),
    (["--fault-mix", "503=0.1"], {}, "leads-gateway: --fault-mix: expected <fault>:<rate> pairs"),
    ([], {"DEMO_FAULT_MIX": "503:x"}, "leads-gateway: DEMO_FAULT_MIX: the rate of fault '503' must be a number"),
])
def test_cli_rejects_a_bad_mix_with_exit_2(argv, env, message):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DEMO_", "GATEWAY_"))}
    out = subprocess.run([sys.executable, "-m", "gateway.cli", "demo-upstream", "--port", "0", *argv],
                         cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.startswith(message), out.stderr
    assert "Traceback" not in out.stderr


def test_cli_token_fault_and_latency_flags(monkeypatch):
    for name in ("DEMO_TOKEN_FAULTS", "DEMO_TOKEN_LATENCY_MS"):
        monkeypatch.delenv(name, raising=False)
    options = options_for("--token-fault", "noisy=500", "--token-fault", "other=slow,third=503",
                          "--token-latency", "noisy=2000", "--token-latency", "other=0.5")
    assert options.token_faults == {"noisy": "500", "other": "slow", "third": "503"}
    assert options.token_latency == {"noisy": 2.0, "other": 0.0005}
    assert options_for().token_faults == {} and options_for().token_latency == {}
    # serve --demo shares the flags.
    serve = _demo_options(build_parser().parse_args(["serve", "--demo", "--token-fault", "a=429",
                                                     "--token-latency", "a=10"]))
    assert serve.token_faults == {"a": "429"} and serve.token_latency == {"a": 0.01}


def test_cli_token_flags_extend_and_override_the_environment(monkeypatch):
    monkeypatch.setenv("DEMO_TOKEN_FAULTS", "tokA=500,tokB=slow")
    monkeypatch.setenv("DEMO_TOKEN_LATENCY_MS", "tokA=200")
    assert options_for().token_faults == {"tokA": "500", "tokB": "slow"}
    options = options_for("--token-fault", "tokB=503", "--token-fault", "tokC=html", "--token-latency", "tokC=5")
    assert options.token_faults == {"tokA": "500", "tokB": "503", "tokC": "html"}
    assert options.token_latency == {"tokA": 0.2, "tokC": 0.005}
    # The per-token faults leave the global ones alone, and the other way round.
    both = options_for("--fault", "502", "--token-fault", "tokA=429")
    assert both.fault == "502" and both.token_faults["tokA"] == "429"


@pytest.mark.parametrize("argv, env, message", [
    (["--token-fault", "noisy=teapot"], {}, "leads-gateway: --token-fault: unknown demo fault 'teapot' for token "
                                            "'noisy'; expected one of 500, 502"),
    (["--token-fault", "noisy"], {}, "leads-gateway: --token-fault: expected TOKEN=KIND"),
    (["--token-fault", "a=500", "--token-fault", "a=503"], {},
     "leads-gateway: --token-fault: token 'a' is given more than once"),
    (["--token-latency", "noisy=-1"], {}, "leads-gateway: --token-latency: the latency of token 'noisy' must be a "
                                          "number of milliseconds >= 0, got '-1'"),
    (["--token-latency", "noisy:200"], {}, "leads-gateway: --token-latency: expected TOKEN=MS"),
    ([], {"DEMO_TOKEN_FAULTS": "a=404"}, "leads-gateway: DEMO_TOKEN_FAULTS: unknown demo fault '404' for token 'a'"),
    ([], {"DEMO_TOKEN_LATENCY_MS": "a=soon"}, "leads-gateway: DEMO_TOKEN_LATENCY_MS: the latency of token 'a' must "
                                              "be a number of milliseconds >= 0, got 'soon'"),
])
def test_cli_rejects_bad_token_options_with_exit_2(argv, env, message):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DEMO_", "GATEWAY_"))}
    out = subprocess.run([sys.executable, "-m", "gateway.cli", "demo-upstream", "--port", "0", *argv],
                         cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.startswith(message), out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


# ------------------------------------------------------------------ the soak script's own checks

@pytest.mark.parametrize("body", [
    {"data": {"leads": None},
     "errors": [{"message": "m", "path": ["leads"], "extensions": {"code": "UPSTREAM_TIMEOUT"}}]},
    {"data": {"leads": {"totalCount": 1}}},
    {"data": {"lead": None}, "extensions": {"warnings": [{"code": "STALE_DATA"}]}},
    {"errors": [{"message": "bad", "extensions": {"code": "BAD_USER_INPUT"}}]},
    {"data": None, "errors": [{"message": "x", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}]},
])
def test_well_formed_graphql(body):
    assert soak.graphql_problems(body) == []


@pytest.mark.parametrize("body", [
    [], "text", {}, {"data": None}, {"data": []}, {"errors": []}, {"errors": {}},
    {"errors": [{"message": "no code"}]}, {"errors": [{"message": 1, "extensions": {"code": "X"}}]},
    {"errors": [{"message": "m", "extensions": {"code": 5}}]}, {"errors": ["m"]},
    {"data": {}, "message": "extra"}, {"data": {}, "extensions": []},
])
def test_not_well_formed_graphql(body):
    assert soak.graphql_problems(body) != []


def test_tcp_connection_count_of_a_process():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        pid = os.getpid()
        assert soak.tcp_connections(pid, remote_port=port) == {}
        with socket.create_connection(("127.0.0.1", port)) as conn, listener.accept()[0]:
            assert soak.tcp_connections(pid, remote_port=port) == {"ESTABLISHED": 1}
            assert soak.tcp_connections(pid, local_port=port) == {"LISTEN": 1, "ESTABLISHED": 1}
            del conn


def test_metrics_parsing():
    text = ('# TYPE leads_gateway_upstream_requests counter\n'
            'leads_gateway_upstream_requests_total{outcome="ok",status="200"} 7.0\n'
            'leads_gateway_upstream_requests_total{outcome="UPSTREAM_TIMEOUT",status="none"} 2.0\n')
    values = soak.parse_metrics(text)
    assert soak.metric(values, "leads_gateway_upstream_requests_total") == 9
    assert soak.metric(values, "leads_gateway_upstream_requests_total", outcome="ok") == 7


# ------------------------------------------------------------------ the soak test itself

def report_row(stdout: str, label: str) -> str:
    rows = [line for line in stdout.splitlines() if line.startswith(f"| {label} |")]
    assert len(rows) == 1, stdout
    return rows[0].split("|")[2].strip()


def test_soak_smoke():
    doc = ROOT / "docs" / "SOAK.md"
    before = doc.read_bytes() if doc.exists() else None
    out = subprocess.run([sys.executable, "-m", "bench.soak", "--smoke"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert report_row(out.stdout, "gateway HTTP 5xx responses") == "0"
    assert report_row(out.stdout, "responses not well-formed GraphQL") == "0"
    assert report_row(out.stdout, "result") == "PASS"
    assert int(report_row(out.stdout, "total requests").replace(",", "")) > 20
    # The smoke run reports on stdout only; docs/SOAK.md is written by full runs.
    assert (doc.read_bytes() if doc.exists() else None) == before
