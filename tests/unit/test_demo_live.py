"""The demo upstream's live changes without a server: the status state machine, the per-token overlay
(status changes, deletions, leads created afterwards), the seeded mover and the options that turn it on
(tests/integration/test_demo_live.py covers the control calls, the list and the mover over HTTP)."""

from __future__ import annotations

import json
import random
from datetime import datetime, timezone

import pytest

from gateway.cli import _demo_options, build_parser
from gateway.config import ConfigError
from gateway.demo import live
from gateway.demo.app import DemoOptions, _encoded_rows, _php_json, main_options_from_env
from gateway.demo.data import STATUSES, campaigns_for_token, dataset_for_token
from gateway.demo.live import TRANSITIONS, FinalStatus, LiveState, is_final, next_status, step, timestamp
from gateway.demo.writes import WriteStore

TOKEN = "live-unit-tenant"
OTHER = "live-unit-other"
NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
LATER = datetime(2026, 3, 4, 5, 7, 0, tzinfo=timezone.utc)
FINAL = ("completed", "reached-max-retries", "blacklisted")


def make_state(store: WriteStore | None = None, seed: int = 0) -> LiveState:
    store = store if store is not None else WriteStore(_php_json)
    return LiveState(_php_json, _encoded_rows, store.rows, seed=seed)


def first_with(status: str, token: str = TOKEN) -> dict:
    return next(lead for lead in dataset_for_token(token) if lead["status"] == status)


def statuses(state: LiveState, token: str = TOKEN) -> dict[int, str]:
    return {row[0]["id"]: row[0]["status"] for row in state.rows(token)}


# ------------------------------------------------------------------ the state machine

def test_every_status_has_transitions_to_known_statuses_with_weights_summing_to_one():
    assert set(TRANSITIONS) == set(STATUSES)
    for status, choices in TRANSITIONS.items():
        assert all(target in STATUSES and target != status for target, _ in choices), status
        if choices:
            assert sum(weight for _, weight in choices) == pytest.approx(1.0), status


def test_the_usual_path_and_the_final_statuses():
    assert [next_status(s) for s in ("created", "scheduled", "processing", "rescheduled")] == \
        ["scheduled", "processing", "completed", "scheduled"]
    assert [s for s in STATUSES if is_final(s)] == list(FINAL)
    for status in FINAL:
        with pytest.raises(FinalStatus, match=f"status {status} has no next status"):
            next_status(status)
        with pytest.raises(FinalStatus):
            step(status, random.Random(0))


def test_a_drawn_step_takes_every_branch_and_only_those():
    rng = random.Random(1)
    assert {step("processing", rng) for _ in range(500)} == {"completed", "rescheduled", "reached-max-retries"}
    assert {step("created", rng) for _ in range(500)} == {"scheduled", "blacklisted"}
    assert {step("rescheduled", rng) for _ in range(50)} == {"scheduled"}
    drawn = [step("processing", random.Random(7)) for _ in range(3)]
    assert drawn == [step("processing", random.Random(7))] * 3  # the same seed, the same draw


def test_timestamp_is_the_datasets_format():
    assert timestamp(NOW) == "2026-03-04 05:06:07"


# ------------------------------------------------------------------ the overlay

def test_a_token_without_changes_gets_its_rows_as_they_are_not_a_copy():
    state = make_state()
    assert state.rows(TOKEN) is _encoded_rows(TOKEN)
    assert not state.changed(TOKEN)


def test_a_status_change_shows_in_the_lead_and_its_json_and_nowhere_else():
    state = make_state()
    lead = first_with("created")
    before = list(state.rows(TOKEN))
    changed = state.set_status(TOKEN, lead["id"], "processing", NOW)
    assert changed == {**lead, "status": "processing", "updated_at": "2026-03-04 05:06:07"}
    rows = state.rows(TOKEN)
    assert [row[0]["id"] for row in rows] == [row[0]["id"] for row in before]
    for (old, _), (new, encoded) in zip(before, rows):
        assert json.loads(encoded.replace("\\/", "/")) == new
        assert new == (changed if old["id"] == lead["id"] else old)
    assert state.lead(TOKEN, lead["id"]) == changed
    assert lead["status"] == "created"  # the shared dataset is not touched
    assert state.rows(OTHER) is _encoded_rows(OTHER)
    assert state.moves == 1


def test_no_status_means_the_usual_next_one_and_a_final_lead_has_none():
    state = make_state()
    lead = first_with("created")
    assert state.set_status(TOKEN, lead["id"], None, NOW)["status"] == "scheduled"
    assert state.set_status(TOKEN, lead["id"], None, NOW)["status"] == "processing"
    assert state.set_status(TOKEN, lead["id"], None, LATER)["status"] == "completed"
    with pytest.raises(FinalStatus):
        state.set_status(TOKEN, lead["id"], None, LATER)
    assert state.set_status(TOKEN, lead["id"], "rescheduled", LATER)["updated_at"] == "2026-03-04 05:07:00"


def test_unknown_leads_and_statuses():
    state = make_state()
    other_lead = dataset_for_token(OTHER)[0]["id"]
    assert state.set_status(TOKEN, other_lead, "completed", NOW) is None  # another token's lead
    assert state.set_status(TOKEN, 1, None, NOW) is None
    assert state.lead(TOKEN, other_lead) is None
    with pytest.raises(ValueError, match="unknown status 'done'"):
        state.set_status(TOKEN, dataset_for_token(TOKEN)[0]["id"], "done", NOW)


def test_a_deleted_lead_is_gone_from_the_rows():
    state = make_state()
    leads = dataset_for_token(TOKEN)
    gone = leads[10]["id"]
    assert state.delete(TOKEN, gone)
    ids = [row[0]["id"] for row in state.rows(TOKEN)]
    assert ids == [lead["id"] for lead in leads if lead["id"] != gone]
    assert state.lead(TOKEN, gone) is None
    assert not state.delete(TOKEN, gone)
    assert state.set_status(TOKEN, gone, "completed", NOW) is None
    assert state.advance(TOKEN, len(leads), NOW).count(gone) == 0


def test_changing_a_deleted_neighbour_keeps_the_others_in_place():
    state = make_state()
    leads = dataset_for_token(TOKEN)
    state.delete(TOKEN, leads[0]["id"])
    state.set_status(TOKEN, leads[1]["id"], "blacklisted", NOW)
    state.delete(TOKEN, leads[2]["id"])
    rows = state.rows(TOKEN)
    assert [row[0]["id"] for row in rows[:2]] == [leads[1]["id"], leads[3]["id"]]
    assert rows[0][0]["status"] == "blacklisted" and rows[1][0] == leads[3]


def test_leads_created_before_and_after_a_change_are_in_the_rows_and_can_change():
    store = WriteStore(_php_json)
    state = make_state(store)
    campaign = campaigns_for_token(TOKEN)[0]["id"]
    first = store.create(TOKEN, {"phone_number": "+19995550001", "campaign_id": campaign}, NOW)
    assert [row[0]["id"] for row in state.rows(TOKEN)][-1] == first["id"]
    state.delete(TOKEN, dataset_for_token(TOKEN)[0]["id"])
    second = store.create(TOKEN, {"phone_number": "+19995550002", "campaign_id": campaign}, NOW)
    assert [row[0]["id"] for row in state.rows(TOKEN)][-2:] == [first["id"], second["id"]]
    assert state.set_status(TOKEN, second["id"], None, LATER)["status"] == "scheduled"
    assert state.rows(TOKEN)[-1][0]["status"] == "scheduled"
    assert len(state.rows(TOKEN)) == len(dataset_for_token(TOKEN)) - 1 + 2


def test_a_reset_forgets_the_changes_and_so_does_a_write_store_reset():
    store = WriteStore(_php_json)
    state = make_state(store)
    campaign = campaigns_for_token(TOKEN)[0]["id"]
    store.create(TOKEN, {"phone_number": "+19995550001", "campaign_id": campaign}, NOW)
    state.delete(TOKEN, dataset_for_token(TOKEN)[0]["id"])
    state.seen(TOKEN)
    state.reset()
    assert state.rows(TOKEN)[0][0] == dataset_for_token(TOKEN)[0] and state.tokens == {} and state.moves == 0
    state.delete(TOKEN, dataset_for_token(TOKEN)[0]["id"])
    store.reset()
    assert state.rows(TOKEN) is _encoded_rows(TOKEN)


# ------------------------------------------------------------------ the mover

def test_advance_moves_distinct_non_final_leads_one_step():
    state = make_state()
    before = statuses(state)
    moved = state.advance(TOKEN, 5, NOW)
    after = statuses(state)
    assert len(moved) == len(set(moved)) == 5 and moved == sorted(moved)
    assert {lead_id for lead_id in before if before[lead_id] != after[lead_id]} == set(moved)
    for lead_id in moved:
        assert after[lead_id] in [target for target, _ in TRANSITIONS[before[lead_id]]]
        assert state.lead(TOKEN, lead_id)["updated_at"] == "2026-03-04 05:06:07"


def test_advance_is_reproducible_per_token_whatever_the_other_tokens_do():
    first, second = make_state(), make_state()
    a = [first.advance(TOKEN, 3, NOW), first.advance(OTHER, 3, NOW), first.advance(TOKEN, 3, NOW)]
    b = [second.advance(OTHER, 3, NOW), second.advance(OTHER, 3, NOW), second.advance(TOKEN, 3, NOW),
         second.advance(TOKEN, 3, NOW)]
    assert [a[0], a[2]] == b[2:]
    assert statuses(first) == statuses(second)
    assert make_state(seed=1).advance(TOKEN, 3, NOW) != a[0]  # the seed matters


def test_advance_runs_out_of_leads_once_all_are_final():
    state = make_state()
    total = len(dataset_for_token(TOKEN))
    for _ in range(100):
        if not state.advance(TOKEN, total, NOW):
            break
    assert all(is_final(status) for status in statuses(state).values())
    assert state.advance(TOKEN, 1, NOW) == [] and state.advance(TOKEN, 0, NOW) == []


def test_a_round_moves_only_the_tokens_seen():
    state = make_state()
    assert state.round(2, NOW) == {} and state.rounds == 1
    state.seen(TOKEN)
    state.seen(TOKEN)
    moved = state.round(2, NOW)
    assert list(moved) == [TOKEN] and len(moved[TOKEN]) == 2 and state.rounds == 2
    assert not state.changed(OTHER)


def test_the_tokens_seen_are_bounded(monkeypatch):
    monkeypatch.setattr(live, "MAX_TOKENS", 2)
    state = make_state()
    for token in ("a", "b", "c"):
        state.seen(token)
    assert list(state.tokens) == ["b", "c"]


# ------------------------------------------------------------------ options

LIVE_VARIABLES = ("DEMO_LIVE_CHANGES", "DEMO_LIVE_CHANGE_COUNT")


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("DEMO_LATENCY_MS", "DEMO_FAULT", "DEMO_FAULT_RATE", "DEMO_FAULT_MIX", "DEMO_RETRY_AFTER",
                 "DEMO_SLOW_SECONDS", "DEMO_TOKEN_FAULTS", "DEMO_TOKEN_LATENCY_MS", "DEMO_WRITE_FAULT",
                 "DEMO_TOKEN_WRITE_FAULTS", "DEMO_WRITE_FAULT_TIMES", *LIVE_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_live_options_defaults():
    options = DemoOptions()
    assert (options.live_changes, options.live_change_count) == (None, 1)
    assert DemoOptions(live_changes=0.2, live_change_count=3).live_changes == 0.2


@pytest.mark.parametrize("kwargs, message", [
    ({"live_changes": 0}, "live_changes must be None or a number of seconds > 0, got 0"),
    ({"live_changes": -1.0}, "live_changes must be None or a number of seconds > 0"),
    ({"live_changes": float("inf")}, "live_changes must be None or a number of seconds > 0"),
    ({"live_changes": float("nan")}, "live_changes must be None or a number of seconds > 0"),
    ({"live_changes": True}, "live_changes must be None or a number of seconds > 0"),
    ({"live_changes": "1"}, "live_changes must be None or a number of seconds > 0"),
    ({"live_change_count": 0}, "live_change_count must be a whole number >= 1, got 0"),
    ({"live_change_count": 1.5}, "live_change_count must be a whole number >= 1"),
    ({"live_change_count": True}, "live_change_count must be a whole number >= 1"),
])
def test_invalid_live_options_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DemoOptions(**kwargs)


def test_live_options_from_env(clean_env):
    clean_env.setenv("DEMO_LIVE_CHANGES", " 0.25 ")
    clean_env.setenv("DEMO_LIVE_CHANGE_COUNT", "4")
    options = main_options_from_env()
    assert (options.live_changes, options.live_change_count) == (0.25, 4)


@pytest.mark.parametrize("name, bad, message", [
    ("DEMO_LIVE_CHANGES", "0", "DEMO_LIVE_CHANGES must be a number of seconds > 0, got '0'"),
    ("DEMO_LIVE_CHANGES", "-2", "DEMO_LIVE_CHANGES must be a number of seconds > 0, got '-2'"),
    ("DEMO_LIVE_CHANGES", "soon", "DEMO_LIVE_CHANGES must be a number of seconds > 0, got 'soon'"),
    ("DEMO_LIVE_CHANGES", "inf", "DEMO_LIVE_CHANGES must be a number of seconds > 0, got 'inf'"),
    ("DEMO_LIVE_CHANGE_COUNT", "0", "DEMO_LIVE_CHANGE_COUNT must be a whole number >= 1, got '0'"),
    ("DEMO_LIVE_CHANGE_COUNT", "1.5", "DEMO_LIVE_CHANGE_COUNT must be a whole number >= 1, got '1.5'"),
    ("DEMO_LIVE_CHANGE_COUNT", "-1", "DEMO_LIVE_CHANGE_COUNT must be a whole number >= 1, got '-1'"),
])
def test_bad_live_env(clean_env, name, bad, message):
    clean_env.setenv(name, bad)
    with pytest.raises(ValueError, match=message):
        main_options_from_env()


@pytest.mark.parametrize("command", [["demo-upstream"], ["serve", "--demo"]])
def test_live_flags_override_the_env(clean_env, command):
    clean_env.setenv("DEMO_LIVE_CHANGES", "5")
    clean_env.setenv("DEMO_LIVE_CHANGE_COUNT", "2")
    assert (_demo_options(build_parser().parse_args(command)).live_changes,
            _demo_options(build_parser().parse_args(command)).live_change_count) == (5.0, 2)
    options = _demo_options(build_parser().parse_args([*command, "--live-changes", "0.5",
                                                       "--live-change-count", "3"]))
    assert (options.live_changes, options.live_change_count) == (0.5, 3)


@pytest.mark.parametrize("flags, message", [
    (["--live-changes", "0"], "--live-changes must be a number of seconds > 0, got '0'"),
    (["--live-changes", "often"], "--live-changes must be a number of seconds > 0, got 'often'"),
    (["--live-change-count", "0"], "--live-change-count must be a whole number >= 1, got 0"),
])
@pytest.mark.parametrize("command", [["demo-upstream"], ["serve", "--demo"]])
def test_bad_live_flags(clean_env, command, flags, message):
    with pytest.raises(ConfigError, match=message):
        _demo_options(build_parser().parse_args([*command, *flags]))
