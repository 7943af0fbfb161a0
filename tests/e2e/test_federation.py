"""End to end through a real federation router (Apollo Gateway + Apollo Server, from npm).

The router composes this gateway's subgraph SDL with a second subgraph kept in tests/federation/
(notes about leads, extending Lead and Campaign by key) using @apollo/composition, and serves the
supergraph on loopback. Queries need both subgraphs, in both directions, with the caller's
Authorization header forwarded by the router; answers are compared with the demo upstream's data.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from pathlib import Path

import httpx
import pytest

from gateway.demo.data import dataset_for_token
from gateway.serving import start_in_thread
from tests.conftest import skip_or_fail
from tests.federation.notes_subgraph import app as notes_app
from tests.federation.notes_subgraph import has_note, note_text

FEDERATION = Path(__file__).resolve().parents[1] / "federation"


@pytest.fixture(scope="module")
def router(make_gateway):
    node = shutil.which("node")
    if node is None:
        skip_or_fail("node is not installed")
    if not (FEDERATION / "node_modules" / "@apollo" / "gateway").exists():
        skip_or_fail("the router's npm packages are not installed (npm ci --prefix tests/federation)")
    leads = make_gateway(cache_ttl=30)
    notes = start_in_thread(notes_app)
    proc = subprocess.Popen([node, "router.mjs", f"{leads.url}/graphql", f"{notes.url}/graphql"], cwd=FEDERATION,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(60)
    if not line or not line[0].strip():
        proc.kill()
        pytest.fail(f"the router did not start: {proc.stderr.read()}")
    url = json.loads(line[0])["url"].rstrip("/")
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    notes.stop()


def ask(router: str, query: str, token: str | None) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.post(router, json={"query": query}, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_leads_extended_with_notes_and_budgets(router, fresh_upstream, token):
    """Leads subgraph first, then the notes subgraph for each Lead and Campaign entity."""
    body = ask(router, """{ leads(first: 6) { totalCount nodes {
        databaseId customerName notes { text } campaign { databaseId name budget } } } }""", token)
    assert "errors" not in body, body
    rows = dataset_for_token(token)
    assert body["data"]["leads"]["totalCount"] == len(rows)
    for node, row in zip(body["data"]["leads"]["nodes"], rows[:6], strict=True):
        assert node["databaseId"] == row["id"]
        assert node["customerName"] == (row["variables"] or {}).get("customer_name")
        assert node["notes"] == ([{"text": note_text(row["id"])}] if has_note(row["id"]) else [])
        if row["campaign"] is None:
            assert node["campaign"] is None
        else:
            assert node["campaign"] == {"databaseId": row["campaign"]["id"], "name": row["campaign"]["name"],
                                        "budget": row["campaign"]["id"] * 100}
    # The router forwarded the caller's token: the upstream saw it, and only it.
    assert {c.token for c in fresh_upstream.calls()} == {token}


def test_notes_resolving_leads_from_this_gateway(router, fresh_upstream, token):
    """Notes subgraph first; the router then resolves Lead entities here through `_entities`."""
    body = ask(router, "{ notes { text lead { databaseId customerName phoneNumber status campaign { name } } } }",
               token)
    assert "errors" not in body, body
    rows = dataset_for_token(token)
    picked = list(rows[:3]) + [rows[-1]]
    assert [n["lead"]["databaseId"] for n in body["data"]["notes"]] == [r["id"] for r in picked]
    for note, row in zip(body["data"]["notes"], picked, strict=True):
        assert note["text"] == note_text(row["id"])
        assert note["lead"]["phoneNumber"] == row["phone_number"]
        assert note["lead"]["status"] == row["status"].upper().replace("-", "_")
        assert note["lead"]["campaign"] == (None if row["campaign"] is None else {"name": row["campaign"]["name"]})
    # All four representations came in one `_entities` call and shared one scan of the caller's list.
    calls = fresh_upstream.calls(token)
    assert len(calls) == -(-len(rows) // 100)
    assert {c.params["per_page"] for c in calls} == {"100"}


def test_without_a_token_the_router_reports_unauthenticated(router, fresh_upstream):
    body = ask(router, "{ leads(first: 2) { totalCount } }", None)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert fresh_upstream.calls() == []


def test_entities_by_global_id_through_the_router(router, fresh_upstream, token):
    """A Relay `node` lookup through the router, and the lead's notes from the other subgraph."""
    first = ask(router, "{ leads(first: 1) { nodes { id databaseId } } }", token)["data"]["leads"]["nodes"][0]
    body = ask(router, f'{{ node(id: "{first["id"]}") {{ id ... on Lead {{ databaseId notes {{ text }} }} }} }}',
               token)
    assert body["data"]["node"]["databaseId"] == first["databaseId"]
    # Seen in the page the first query fetched: found again without another upstream call.
    assert len(fresh_upstream.calls(token)) == 1
