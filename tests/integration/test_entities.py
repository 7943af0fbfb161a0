"""Federation entity resolution (`_entities`) against the gateway over HTTP: batched, by either key."""

from __future__ import annotations

import base64

from gateway.demo.data import dataset_for_token
from gateway.leads.ids import to_global_id

ENTITIES = """query($r: [_Any!]!) { _entities(representations: $r) {
  __typename ... on Lead { databaseId customerName } ... on Campaign { databaseId name } } }"""


def lead_reps(rows: list[dict]) -> list[dict]:
    """Half by databaseId, half by the global id: a router may use either key."""
    return [{"__typename": "Lead", "databaseId": r["id"]} if i % 2 else
            {"__typename": "Lead", "id": to_global_id("Lead", r["id"])} for i, r in enumerate(rows)]


def test_fifty_representations_share_one_scan(make_gateway, fresh_upstream, token):
    gw = make_gateway(cache_ttl=30)
    rows = list(dataset_for_token(token))
    picked = rows[::max(1, len(rows) // 49)][:49] + [rows[-1]]
    assert len(picked) == 50
    body = gw.gql(ENTITIES, {"r": lead_reps(picked)}, token)
    assert "errors" not in body, body
    assert [e["databaseId"] for e in body["data"]["_entities"]] == [r["id"] for r in picked]
    assert [e["customerName"] for e in body["data"]["_entities"]] == \
        [(r["variables"] or {}).get("customer_name") for r in picked]
    pages = -(-len(rows) // 100)
    calls = fresh_upstream.calls(token)
    assert len(calls) == pages  # one scan for the whole batch, not one per representation
    # The same batch again: every lead was seen in pages served to this caller, so no call at all.
    gw.gql(ENTITIES, {"r": lead_reps(picked)}, token)
    assert len(fresh_upstream.calls(token)) == pages


def test_leads_seen_in_a_page_need_no_lookup(make_gateway, fresh_upstream, token):
    gw = make_gateway(cache_ttl=30)
    rows = list(dataset_for_token(token))
    gw.gql("{ leads(first: 60, filter: {}) { totalCount } }", token=token)
    assert len(fresh_upstream.calls(token)) == 1
    body = gw.gql(ENTITIES, {"r": lead_reps(rows[:50])}, token)
    assert [e["databaseId"] for e in body["data"]["_entities"]] == [r["id"] for r in rows[:50]]
    assert len(fresh_upstream.calls(token)) == 1


def test_unknown_and_malformed_representations_are_null_not_errors(make_gateway, fresh_upstream, token):
    gw = make_gateway(cache_ttl=30)
    rows = list(dataset_for_token(token))
    other_tenant = dataset_for_token(token + "-x")[0]["id"]
    reps = [
        {"__typename": "Lead", "databaseId": rows[0]["id"]},
        {"__typename": "Lead", "databaseId": 1},  # exists for nobody
        {"__typename": "Lead", "databaseId": other_tenant},  # another caller's lead
        {"__typename": "Lead", "id": "not-an-id"},  # malformed global id
        {"__typename": "Lead", "id": to_global_id("Campaign", rows[0]["campaign_id"])},  # another type's id
        {"__typename": "Lead", "id": base64.urlsafe_b64encode(b"Lead:1\n").decode()},  # a second spelling
    ]
    body = gw.gql(ENTITIES, {"r": reps}, token)
    assert "errors" not in body, body
    assert body["data"]["_entities"] == [
        {"__typename": "Lead", "databaseId": rows[0]["id"], "customerName": (rows[0]["variables"] or {}).get("customer_name")},
        None, None, None, None, None]


def test_campaign_entities_cost_one_call_per_distinct_campaign(make_gateway, fresh_upstream, token):
    gw = make_gateway(cache_ttl=30)
    rows = list(dataset_for_token(token))
    named = {}
    for r in rows:
        if r["campaign"] is not None:
            named.setdefault(r["campaign_id"], r["campaign"]["name"])
    two = list(named)[:2]
    reps = [{"__typename": "Campaign", "databaseId": c} for c in two * 2] + \
           [{"__typename": "Campaign", "id": to_global_id("Campaign", c)} for c in two]
    body = gw.gql(ENTITIES, {"r": reps}, token)
    assert [e["name"] for e in body["data"]["_entities"]] == [named[c] for c in two * 3]
    calls = fresh_upstream.calls(token)
    assert sorted(c.params["campaign_id"] for c in calls) == sorted(str(c) for c in two)


def test_service_sdl_is_the_checked_in_schema(gateway):
    from pathlib import Path

    body = gateway.gql("{ _service { sdl } }")
    root = Path(__file__).resolve().parents[2]
    assert body["data"]["_service"]["sdl"].rstrip() + "\n" == (root / "schema.graphql").read_text()
    assert '@key(fields: "id") @key(fields: "databaseId")' in body["data"]["_service"]["sdl"]
