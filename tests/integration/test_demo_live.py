"""Live changes of the demo upstream over real loopback HTTP: the ``/_demo/leads`` and ``/_demo/advance``
control calls, what ``GET /user/leads`` shows after them (the status filter, totals and pages after a
deletion), the mover started by the lifespan (``live_changes``) and stopped by the shutdown, and the
command line that turns it on.

Subscriptions poll ``GET /user/leads``, so what a change looks like on that endpoint is pinned here.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from gateway.demo.app import DemoOptions, create_demo_app
from gateway.demo.data import STATUSES, campaigns_for_token, dataset_for_token
from gateway.demo.live import TRANSITIONS, is_final
from gateway.serving import start_in_thread
from tests.integration.demo_server import _fresh_state, app, client, server  # noqa: F401 - fixtures

TOKEN = "live-tenant"
OTHER = "live-other-tenant"
LEADS = dataset_for_token(TOKEN)
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"


def auth(token: str | None = TOKEN) -> dict[str, str]:
    headers = {"Accept": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def listed(client: httpx.Client, token: str = TOKEN, **params) -> dict:
    response = client.get("/user/leads", params=params, headers=auth(token))
    assert response.status_code == 200, response.text
    return response.json()


def all_leads(client: httpx.Client, token: str = TOKEN, **params) -> list[dict]:
    return listed(client, token, per_page=100, **params)["data"] + [
        lead for page in range(2, 6) for lead in listed(client, token, per_page=100, page=page, **params)["data"]]


def change(client: httpx.Client, lead_id, body=None, token: str | None = TOKEN) -> httpx.Response:
    return client.post(f"/_demo/leads/{lead_id}", json=body if body is not None else {}, headers=auth(token))


def first_with(status: str, token: str = TOKEN) -> dict:
    return next(lead for lead in dataset_for_token(token) if lead["status"] == status)


def recent(stamp: str) -> bool:
    moment = datetime.strptime(stamp, TIMESTAMP_FORMAT).replace(tzinfo=timezone.utc)
    return abs(datetime.now(timezone.utc) - moment) < timedelta(seconds=10)


# ------------------------------------------------------------------ status changes

def test_a_status_change_shows_in_the_list_and_in_the_status_filter(client):
    lead = first_with("created")
    completed_before = listed(client, status="completed")["total"]
    created_before = listed(client, status="created")["total"]

    response = change(client, lead["id"], {"status": "completed"})
    assert response.status_code == 200, response.text
    shown = response.json()["data"]
    assert shown == {**lead, "status": "completed", "updated_at": shown["updated_at"]}
    assert recent(shown["updated_at"]) and shown["updated_at"] != lead["updated_at"]

    assert shown in all_leads(client)
    assert listed(client, status="completed")["total"] == completed_before + 1
    assert listed(client, status="created")["total"] == created_before - 1
    assert lead["id"] in [item["id"] for item in all_leads(client, status="completed")]
    assert lead["id"] not in [item["id"] for item in all_leads(client, status="created")]
    assert listed(client)["total"] == len(LEADS)


def test_an_empty_body_moves_the_lead_to_its_usual_next_status(client):
    lead = first_with("created")
    expected = ["scheduled", "processing", "completed"]
    assert [change(client, lead["id"]).json()["data"]["status"] for _ in expected] == expected
    final = change(client, lead["id"])
    assert final.status_code == 422
    assert final.json() == {"message": "The lead's status completed has no next status.",
                            "errors": {"status": ["The lead's status completed has no next status."]}}
    # Not JSON: no input, as Laravel reads it -> the usual next status of a fresh lead.
    other = first_with("scheduled")
    plain = client.post(f"/_demo/leads/{other['id']}", content=b"status=blacklisted",
                        headers={**auth(), "Content-Type": "application/x-www-form-urlencoded"})
    assert plain.status_code == 200 and plain.json()["data"]["status"] == "processing"


def test_changes_belong_to_their_token(client):
    lead = first_with("created")
    assert change(client, lead["id"], {"status": "blacklisted"}, token=OTHER).status_code == 404
    change(client, lead["id"], {"status": "blacklisted"})
    assert all(item["id"] != lead["id"] for item in all_leads(client, OTHER))
    assert [item["status"] for item in all_leads(client, OTHER)] == \
        [item["status"] for item in dataset_for_token(OTHER)]


def test_a_created_lead_can_change_too(client):
    campaign = campaigns_for_token(TOKEN)[0]["id"]
    created = client.post("/user/lead", json={"phone_number": "+19995550100", "campaign_id": campaign},
                          headers=auth())
    assert created.status_code == 201, created.text
    lead_id = int(created.json()["data"]["id"])
    assert change(client, lead_id, {"status": "processing"}).json()["data"]["status"] == "processing"
    assert all_leads(client)[-1]["id"] == lead_id and all_leads(client)[-1]["status"] == "processing"


def test_reset_forgets_the_changes(app, client):
    lead = LEADS[0]
    change(client, lead["id"], {"status": "blacklisted" if lead["status"] != "blacklisted" else "created"})
    client.delete(f"/_demo/leads/{LEADS[1]['id']}", headers=auth())
    app.state.reset()
    assert listed(client, per_page=2)["data"] == list(LEADS[:2])
    assert listed(client)["total"] == len(LEADS)


# ------------------------------------------------------------------ deletions

def test_a_deleted_lead_leaves_the_list_totals_and_pages(client):
    per_page = next(n for n in range(10, 100) if len(LEADS) % n == 1)  # one lead alone on the last page
    before = listed(client, per_page=per_page)
    assert before["total"] == len(LEADS) and before["last_page"] == len(LEADS) // per_page + 1
    gone = LEADS[0]
    status_total = listed(client, status=gone["status"])["total"]

    response = client.delete(f"/_demo/leads/{gone['id']}", headers=auth())
    assert response.status_code == 200 and response.json() == {"deleted": gone["id"]}

    after = listed(client, per_page=per_page)
    assert after["total"] == len(LEADS) - 1 and after["last_page"] == before["last_page"] - 1
    assert after["data"][0] == LEADS[1] and after["data"][-1] == LEADS[per_page]
    assert listed(client, status=gone["status"])["total"] == status_total - 1
    assert gone["id"] not in [item["id"] for item in all_leads(client)]
    assert client.delete(f"/_demo/leads/{gone['id']}", headers=auth()).status_code == 404
    assert change(client, gone["id"]).status_code == 404
    assert listed(client, OTHER)["total"] == len(dataset_for_token(OTHER))


# ------------------------------------------------------------------ advance

def test_advance_moves_that_many_leads_one_step(client):
    before = {lead["id"]: lead["status"] for lead in all_leads(client)}
    response = client.post("/_demo/advance", json={"count": 3}, headers=auth())
    assert response.status_code == 200
    moved = response.json()["changed"]
    after = {lead["id"]: lead for lead in all_leads(client)}
    assert len(set(moved)) == 3
    assert {i for i in before if before[i] != after[i]["status"]} == set(moved)  # a step always changes it
    for lead_id in moved:
        assert after[lead_id]["status"] in [target for target, _ in TRANSITIONS[before[lead_id]]]
        assert recent(after[lead_id]["updated_at"])
    default = client.post("/_demo/advance", headers=auth())
    assert default.status_code == 200 and len(default.json()["changed"]) == 1


@pytest.mark.parametrize("body, message", [
    ({"count": 0}, "The count field must be at least 1."),
    ({"count": "many"}, "The count field must be an integer."),
    ({"count": 1.5}, "The count field must be an integer."),
])
def test_advance_validates_the_count(client, body, message):
    response = client.post("/_demo/advance", json=body, headers=auth())
    assert response.status_code == 422
    assert response.json() == {"message": message, "errors": {"count": [message]}}


# ------------------------------------------------------------------ auth and errors

CONTROL_CALLS = [("POST", f"/_demo/leads/{LEADS[0]['id']}"), ("DELETE", f"/_demo/leads/{LEADS[0]['id']}"),
                 ("POST", "/_demo/advance")]


@pytest.mark.parametrize("method, path", CONTROL_CALLS)
@pytest.mark.parametrize("token, status, message", [
    (None, 401, "Unauthenticated."), ("revoked-live", 401, "Unauthenticated."),
    ("forbidden-live", 403, "This action is unauthorized.")])
def test_control_calls_are_authenticated_like_the_list(client, method, path, token, status, message):
    response = client.request(method, path, json={}, headers=auth(token))
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"message": message}
    assert listed(client)["data"][0] == LEADS[0]  # nothing changed


@pytest.mark.parametrize("lead_id", ["1", "abc", str(dataset_for_token(OTHER)[0]["id"]), "0"])
@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_an_unknown_lead_is_404(client, method, lead_id):
    response = client.request(method, f"/_demo/leads/{lead_id}", json={}, headers=auth())
    assert response.status_code == 404
    assert response.json() == {"message": f"No query results for model [App\\Models\\Lead] {lead_id}"}


@pytest.mark.parametrize("status, errors", [
    ("done", ["The selected status is invalid."]),
    ("Completed", ["The selected status is invalid."]),
    (5, ["The status field must be a string.", "The selected status is invalid."]),
])
def test_an_invalid_status_is_422_laravel_style(client, status, errors):
    response = change(client, LEADS[0]["id"], {"status": status})
    assert response.status_code == 422
    more = f" (and {len(errors) - 1} more error)" if len(errors) > 1 else ""
    assert response.json() == {"message": errors[0] + more, "errors": {"status": errors}}
    assert listed(client)["data"][0] == LEADS[0]


def test_an_unknown_lead_is_404_before_the_status_is_validated(client):
    response = change(client, dataset_for_token(OTHER)[0]["id"], {"status": "done"})
    assert response.status_code == 404


def test_every_status_can_be_set(client):
    lead = first_with("processing")
    for status in STATUSES:
        assert change(client, lead["id"], {"status": f"  {status} "}).json()["data"]["status"] == status
        assert lead["id"] in [item["id"] for item in all_leads(client, status=status)]


# ------------------------------------------------------------------ the mover

def wait_for(condition, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def changed_leads(client: httpx.Client, token: str = TOKEN) -> list[dict]:
    original = {lead["id"]: lead for lead in dataset_for_token(token)}
    return [lead for lead in all_leads(client, token) if lead != original[lead["id"]]]


def test_the_mover_moves_leads_of_the_tokens_seen_within_a_couple_of_rounds(app, client):
    listed(client)  # TOKEN has called; OTHER has not
    app.state.options = DemoOptions(live_changes=0.2, live_change_count=2)
    started = time.monotonic()
    moved = wait_for(lambda: changed_leads(client), timeout=3)
    assert time.monotonic() - started < 1.5  # at most the idle look (0.5 s) and a couple of 0.2 s rounds
    original = {lead["id"]: lead for lead in LEADS}
    for lead in moved:  # only leads that had somewhere to go, only their status and updated_at
        assert not is_final(original[lead["id"]]["status"]) and recent(lead["updated_at"])
        assert lead == {**original[lead["id"]], "status": lead["status"], "updated_at": lead["updated_at"]}
    wait_for(lambda: len(changed_leads(client)) >= 4, timeout=3)  # it keeps going: 2 per round
    assert not app.state.live.changed(OTHER)
    app.state.options = DemoOptions()  # off again on a running server
    time.sleep(0.3)
    settled = changed_leads(client)
    time.sleep(0.6)
    assert changed_leads(client) == settled


def test_the_mover_runs_with_the_lifespan_and_stops_at_shutdown():
    demo = create_demo_app(DemoOptions(live_changes=0.2))
    running = start_in_thread(demo)
    try:
        with httpx.Client(base_url=running.url, timeout=10) as http:
            listed(http)
            wait_for(lambda: changed_leads(http))
        mover = demo.state.live_mover
        assert mover is not None and not mover.done()
    finally:
        running.stop()
    assert not running.thread.is_alive()
    assert mover.done() and mover.cancelled()
    rounds = demo.state.live.rounds
    time.sleep(0.6)
    assert demo.state.live.rounds == rounds


# ------------------------------------------------------------------ the command line

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(*args: str, **env: str) -> subprocess.Popen:
    full_env = {**{k: v for k, v in os.environ.items() if not k.startswith(("DEMO_", "GATEWAY_"))}, **env}
    return subprocess.Popen([sys.executable, "-m", "gateway.cli", *args], env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_demo_upstream_moves_leads_with_live_changes_from_the_env_and_the_flags():
    port = free_port()
    proc = run_cli("demo-upstream", "--port", str(port), "--log-level", "warning", "--live-change-count", "3",
                   DEMO_LIVE_CHANGES="0.2", DEMO_LIVE_CHANGE_COUNT="1")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            def up():
                try:
                    return http.get("/healthz").status_code == 200
                except httpx.TransportError:
                    assert proc.poll() is None, proc.stdout.read()
                    return False
            wait_for(up, timeout=30)
            listed(http)
            moved = wait_for(lambda: changed_leads(http), timeout=5)
            assert len(moved) >= 3  # --live-change-count wins over DEMO_LIVE_CHANGE_COUNT
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("args, env, message", [
    (["demo-upstream", "--live-changes", "0"], {}, "--live-changes must be a number of seconds > 0, got '0'"),
    (["demo-upstream", "--live-change-count", "0"], {}, "--live-change-count must be a whole number >= 1, got 0"),
    (["demo-upstream"], {"DEMO_LIVE_CHANGES": "fast"},
     "DEMO_LIVE_CHANGES must be a number of seconds > 0, got 'fast'"),
    (["serve", "--demo"], {"DEMO_LIVE_CHANGE_COUNT": "x"},
     "DEMO_LIVE_CHANGE_COUNT must be a whole number >= 1, got 'x'"),
    (["serve", "--demo", "--live-changes", "-1"], {}, "--live-changes must be a number of seconds > 0, got '-1'"),
])
def test_invalid_live_options_stop_the_command_with_a_clear_message(args, env, message):
    proc = run_cli(*args, **env)
    output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert f"leads-gateway: {message}" in output
