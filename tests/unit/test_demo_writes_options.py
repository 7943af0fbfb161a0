"""The demo upstream's write options (DemoOptions, DEMO_* variables, command line flags) and the PHP
semantics ``POST /user/lead`` relies on, checked without a server (tests/integration/test_demo_writes.py
covers the endpoint over HTTP)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from gateway.cli import _demo_options, build_parser
from gateway.config import ConfigError
from gateway.demo import writes
from gateway.demo.app import (
    WRITE_FAULTS,
    DemoOptions,
    format_token_write_faults,
    main_options_from_env,
    parse_token_write_faults,
)
from gateway.demo.data import campaigns_for_token, dataset_for_token, write_id_ranges
from gateway.demo.writes import WriteStore, php_array, php_filter_int, php_loose_equal, take_write_fault, validate

DEMO_VARIABLES = ("DEMO_LATENCY_MS", "DEMO_FAULT", "DEMO_FAULT_RATE", "DEMO_FAULT_MIX", "DEMO_RETRY_AFTER",
                  "DEMO_SLOW_SECONDS", "DEMO_TOKEN_FAULTS", "DEMO_TOKEN_LATENCY_MS", "DEMO_WRITE_FAULT",
                  "DEMO_TOKEN_WRITE_FAULTS", "DEMO_WRITE_FAULT_TIMES")


@pytest.fixture
def clean_env(monkeypatch):
    for name in DEMO_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


# ------------------------------------------------------------------ DemoOptions

def test_write_fault_kinds():
    assert WRITE_FAULTS == ("500", "503", "429", "lost", "lost-before", "late", "500-after")


def test_write_options_defaults_and_validation():
    options = DemoOptions()
    assert (options.write_fault, options.token_write_faults, options.write_fault_times) == (None, {}, None)
    assert DemoOptions(write_fault="lost", token_write_faults={"a": "late"}, write_fault_times=0).write_fault == "lost"
    first, second = DemoOptions(), DemoOptions()
    first.token_write_faults["x"] = "500"
    assert second.token_write_faults == {}


@pytest.mark.parametrize("kwargs, message", [
    ({"write_fault": "slow"}, "unknown demo write fault 'slow'; expected one of 500, 503, 429, lost"),
    ({"write_fault": "lost_before"}, "unknown demo write fault 'lost_before'"),
    ({"token_write_faults": {"tokA": "502"}}, "token_write_faults: unknown demo write fault '502' for token 'tokA'"),
    ({"token_write_faults": {"": "lost"}}, "token_write_faults: a token must be a non-empty string"),
    ({"token_write_faults": {"a,b": "lost"}}, "token_write_faults: a token cannot contain commas"),
    ({"token_write_faults": "tokA=lost"}, "token_write_faults: expected a dict of token -> write fault"),
    ({"write_fault_times": -1}, "write_fault_times must be None or a whole number >= 0, got -1"),
    ({"write_fault_times": 1.5}, "write_fault_times must be None or a whole number >= 0"),
    ({"write_fault_times": True}, "write_fault_times must be None or a whole number >= 0"),
])
def test_invalid_write_options_are_rejected(kwargs, message):
    with pytest.raises(ValueError) as info:
        DemoOptions(**kwargs)
    assert str(info.value).startswith(message)


def test_parse_token_write_faults():
    assert parse_token_write_faults("tokA=lost, tokB = late,tokC=500-after") == {
        "tokA": "lost", "tokB": "late", "tokC": "500-after"}
    assert parse_token_write_faults("  ") == {}
    assert parse_token_write_faults("1|abc==lost-before") == {"1|abc=": "lost-before"}
    assert format_token_write_faults(parse_token_write_faults("a=lost,b=429")) == "a=lost,b=429"


@pytest.mark.parametrize("text, message", [
    ("tokA", "expected TOKEN=KIND (e.g. tokA=lost,tokB=late), got 'tokA'"),
    ("tokA=", "expected TOKEN=KIND"),
    ("tokA=slow", "unknown demo write fault 'slow' for token 'tokA'"),
    ("tokA=lost,tokA=late", "token 'tokA' is given more than once"),
])
def test_parse_token_write_fault_errors(text, message):
    with pytest.raises(ValueError) as info:
        parse_token_write_faults(text)
    assert message in str(info.value)


class _Options:
    def __init__(self, write_fault=None, token_write_faults=None, write_fault_times=None):
        self.write_fault = write_fault
        self.token_write_faults = token_write_faults or {}
        self.write_fault_times = write_fault_times


def test_take_write_fault_precedence_and_count_down():
    options = _Options("503", {"mine": "lost"})
    assert take_write_fault(options, "mine") == "lost"
    assert take_write_fault(options, "theirs") == "503"
    counted = _Options("500", {"mine": "late"}, write_fault_times=2)
    assert [take_write_fault(counted, token) for token in ("mine", "theirs", "mine", "theirs")] == [
        "late", "500", None, None]
    assert counted.write_fault_times == 0
    assert take_write_fault(_Options(), "any") is None
    with pytest.raises(ValueError, match="unknown demo write fault 'nope'"):
        take_write_fault(_Options("nope"), "any")  # set on a running server without validation


# ------------------------------------------------------------------ environment and command line

def test_write_options_from_env(clean_env):
    assert main_options_from_env() == DemoOptions()
    clean_env.setenv("DEMO_WRITE_FAULT", "lost")
    clean_env.setenv("DEMO_TOKEN_WRITE_FAULTS", "tokA=lost-before, tokB=late")
    clean_env.setenv("DEMO_WRITE_FAULT_TIMES", "3")
    options = main_options_from_env()
    assert (options.write_fault, options.token_write_faults, options.write_fault_times) == (
        "lost", {"tokA": "lost-before", "tokB": "late"}, 3)


@pytest.mark.parametrize("name, bad, message", [
    ("DEMO_WRITE_FAULT", "slow", "DEMO_WRITE_FAULT must be one of 500, 503, 429, lost, lost-before, late, "
                                 "500-after, got 'slow'"),
    ("DEMO_TOKEN_WRITE_FAULTS", "tokA=teapot", "DEMO_TOKEN_WRITE_FAULTS: unknown demo write fault 'teapot'"),
    ("DEMO_TOKEN_WRITE_FAULTS", "tokA", "DEMO_TOKEN_WRITE_FAULTS: expected TOKEN=KIND"),
    ("DEMO_WRITE_FAULT_TIMES", "-1", "DEMO_WRITE_FAULT_TIMES must be a whole number >= 0, got '-1'"),
    ("DEMO_WRITE_FAULT_TIMES", "once", "DEMO_WRITE_FAULT_TIMES must be a whole number >= 0"),
])
def test_bad_write_env(clean_env, name, bad, message):
    clean_env.setenv(name, bad)
    with pytest.raises(ValueError) as info:
        main_options_from_env()
    assert str(info.value).startswith(message)


@pytest.mark.parametrize("command", [["demo-upstream"], ["serve", "--demo"]])
def test_write_flags(clean_env, command):
    clean_env.setenv("DEMO_WRITE_FAULT", "503")
    clean_env.setenv("DEMO_TOKEN_WRITE_FAULTS", "a=500,d=429")
    args = build_parser().parse_args([*command, "--write-fault", "lost", "--token-write-fault", "a=late",
                                      "--token-write-fault", "b=500-after,c=lost-before", "--write-fault-times", "2"])
    options = _demo_options(args)
    assert options.write_fault == "lost"  # the flag replaces the variable
    assert options.token_write_faults == {"a": "late", "d": "429", "b": "500-after", "c": "lost-before"}
    assert options.write_fault_times == 2
    # Without the flags, the variables hold.
    options = _demo_options(build_parser().parse_args(command))
    assert (options.write_fault, options.token_write_faults, options.write_fault_times) == (
        "503", {"a": "500", "d": "429"}, None)


@pytest.mark.parametrize("flags, message", [
    (["--token-write-fault", "a=teapot"], "--token-write-fault: unknown demo write fault 'teapot' for token 'a'"),
    (["--token-write-fault", "a=lost", "--token-write-fault", "a=late"], "--token-write-fault: token 'a' is given"),
    (["--write-fault-times", "-1"], "write_fault_times must be None or a whole number >= 0"),
])
def test_bad_write_flags(clean_env, flags, message):
    with pytest.raises(ConfigError) as info:
        _demo_options(build_parser().parse_args(["demo-upstream", *flags]))
    assert str(info.value).startswith(message)


def test_write_fault_flag_has_the_kinds_as_choices(clean_env, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo-upstream", "--write-fault", "slow"])
    assert "invalid choice: 'slow'" in capsys.readouterr().err


# ------------------------------------------------------------------ PHP semantics

@pytest.mark.parametrize("value, expected", [
    (5, 5), ("5", 5), (" 5\n", 5), ("+5", 5), ("-0", 0), (5.0, 5), (-3.0, -3), (True, 1),
    ("05", None), ("5.0", None), (5.5, None), (1e14, None), (False, None), (None, None), ([5], None),
    ("", None), (2**63, None), ("9223372036854775808", None), (float("nan"), None),
])
def test_php_filter_int(value, expected):
    assert php_filter_int(value) == expected


@pytest.mark.parametrize("a, b, equal", [
    ("+14155550100", "+14155550100", True),
    ("+14155550100", "14155550100", True),  # numeric strings compare as numbers
    ("1e3", "1000", True), ("abc", "ABC", False), ("0", "", False),
    (5, "5", True), (5, "5.0", True), (5, "5x", False), (0, "a", False),
    (None, "", True), (None, "0", False), (None, 0, True), (None, [], True),
    (True, "x", True), (False, "0", True), (True, 0, False),
    ([], [], True), ([1], ["1"], True), ([], "", False), ({"a": 1}, {"a": "1"}, True),
])
def test_php_loose_equal(a, b, equal):
    assert php_loose_equal(a, b) is equal
    assert php_loose_equal(b, a) is equal


@pytest.mark.parametrize("value, expected", [
    (None, []), ({}, []), ([], []), ({"0": "a", "1": "b"}, ["a", "b"]), ({"1": "a"}, {"1": "a"}),
    ({"1": "a", "0": "b"}, {"1": "a", "0": "b"}), ({"a": {}, "b": {"0": 1}}, {"a": [], "b": [1]}),
    ({"01": "a"}, {"01": "a"}),
])
def test_php_array(value, expected):
    assert php_array(value) == expected


def test_distinct_is_loose_like_in_array():
    errors = validate({"phone_number": "+14155550100", "campaign_id": 1,
                       "secondary_contacts": [{"phone_number": "+14155550101"},
                                              {"phone_number": "14155550101"}]}, {1})
    assert errors == {
        "secondary_contacts.0.phone_number": ["The secondary_contacts.0.phone_number field has a duplicate value."],
        "secondary_contacts.1.phone_number": ["The secondary_contacts.1.phone_number field format is invalid.",
                                              "The secondary_contacts.1.phone_number field has a duplicate value."]}


def test_a_phone_number_with_a_final_newline_passes_the_regex_as_in_pcre():
    # PCRE's "$" matches before a final newline; TrimStrings removes it before validation anyway.
    assert validate({"phone_number": "+14155550100\n", "campaign_id": 1}, {1}) == {}
    assert validate({"phone_number": "+14155550100\n\n", "campaign_id": 1}, {1}) == {
        "phone_number": ["The phone number field format is invalid."]}


# ------------------------------------------------------------------ ids

def test_write_id_ranges_stay_in_the_block_and_off_the_dataset():
    for token in ("alice", "bob", "demo", "x"):
        leads = dataset_for_token(token)
        lead_ids, contact_ids = write_id_ranges(token)
        base = leads[0]["id"] - 1
        used = {lead["id"] for lead in leads} | {c["id"] for lead in leads for c in lead["secondary_contacts"]}
        assert lead_ids.start == leads[-1]["id"] + 1 and lead_ids.stop == base + 5001
        assert contact_ids.start > max(used) and contact_ids.stop == base + 10_000 < 2**31
        assert not used & (set(lead_ids) | set(contact_ids))
        assert set(lead_ids).isdisjoint(contact_ids)
        assert len(lead_ids) >= 4600 and len(contact_ids) >= 3700


def test_store_refuses_when_the_id_block_is_used_up(monkeypatch):
    token = "alice"
    monkeypatch.setattr(writes, "write_id_ranges", lambda _: (range(100, 102), range(500, 503)))
    store = WriteStore(str)
    campaign = campaigns_for_token(token)[0]["id"]
    now = datetime(2025, 8, 1, tzinfo=timezone.utc)

    def make(n, contacts=0):
        data = {"phone_number": f"+1999555{n:04d}", "campaign_id": campaign,
                "secondary_contacts": [{"phone_number": f"+1888555{n:02d}{i:02d}"} for i in range(contacts)]}
        return store.create(token, data, now)

    assert make(1, contacts=2)["id"] == 100
    assert make(2, contacts=2) is None  # one contact id left
    assert make(3, contacts=1)["secondary_contacts"][0]["id"] == 502
    assert make(4) is None  # no lead id left
    assert store.created == 2 and [lead["id"] for lead in store.leads(token)] == [100, 101]
    assert store.create(token, {"phone_number": "+19995550009", "campaign_id": campaign}, now, commit=False) is None
    store.reset()
    assert store.leads(token) == [] and make(5)["id"] == 100
