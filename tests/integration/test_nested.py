"""Nested data, lookups by id, campaigns and global ids, over real HTTP."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from gateway.demo.data import dataset_for_token
from gateway.leads.ids import to_global_id

LEAD_FIELDS = """
  id databaseId phoneNumber variables customerName email status createdAt updatedAt campaignId
  campaign { id databaseId name }
  secondaryContacts { id databaseId phoneNumber variables customerName email status createdAt updatedAt }
"""


def utc(ts: str) -> str:
    return datetime.strptime(ts, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).isoformat()


def expected_contact(c: dict) -> dict:
    variables = c["variables"] or {}
    return {"id": to_global_id("SecondaryContact", c["id"]), "databaseId": c["id"], "phoneNumber": c["phone_number"],
            "variables": variables, "customerName": variables.get("customer_name"), "email": variables.get("email"),
            "status": c["status"].upper().replace("-", "_"), "createdAt": utc(c["created_at"]),
            "updatedAt": utc(c["updated_at"])}


def expected_lead(r: dict) -> dict:
    variables = r["variables"] or {}  # PHP's empty object arrives as []
    campaign = r["campaign"]
    return {"id": to_global_id("Lead", r["id"]), "databaseId": r["id"], "phoneNumber": r["phone_number"],
            "variables": variables, "customerName": variables.get("customer_name"), "email": variables.get("email"),
            "status": r["status"].upper().replace("-", "_"), "createdAt": utc(r["created_at"]),
            "updatedAt": utc(r["updated_at"]), "campaignId": r["campaign_id"],
            "campaign": None if campaign is None else {"id": to_global_id("Campaign", campaign["id"]),
                                                       "databaseId": campaign["id"], "name": campaign["name"]},
            "secondaryContacts": [expected_contact(c) for c in r["secondary_contacts"]]}


def test_every_lead_field_matches_the_upstream_record(gateway, fresh_upstream, token):
    rows = dataset_for_token(token)
    body = gateway.gql(f"{{ leads(first: 100) {{ nodes {{ {LEAD_FIELDS} }} }} }}", token=token)
    got = body["data"]["leads"]["nodes"]
    assert got == [expected_lead(r) for r in rows[:100]]
    # The quirks really were exercised by this page.
    assert any(r["variables"] == [] for r in rows[:100]) or any(r["campaign"] is None for r in rows[:100])
    assert any(r["secondary_contacts"] for r in rows[:100])


def test_lead_by_database_id(gateway, fresh_upstream, token):
    rows = dataset_for_token(token)
    target = rows[-1]  # the far end of the list: the scan has to reach the last page
    body = gateway.gql(f"query($id: Int!) {{ lead(databaseId: $id) {{ {LEAD_FIELDS} }} }}", {"id": target["id"]},
                       token)
    assert body["data"]["lead"] == expected_lead(target)
    pages = -(-len(rows) // 100)
    calls = fresh_upstream.calls(token)
    assert len(calls) == pages and {c.params["per_page"] for c in calls} == {"100"}


def test_missing_and_foreign_leads_are_null(gateway, fresh_upstream, token):
    other = dataset_for_token(token + "-other")[0]["id"]
    body = gateway.gql("query($a: Int!, $b: Int!) { a: lead(databaseId: $a) { id } b: lead(databaseId: $b) { id } }",
                       {"a": 1, "b": other}, token)
    assert body["data"] == {"a": None, "b": None}
    assert "warnings" not in body.get("extensions", {})


def test_many_lookups_in_one_operation_share_one_scan(gateway, fresh_upstream, token):
    rows = dataset_for_token(token)
    picks = [rows[0]["id"], rows[len(rows) // 2]["id"], rows[-1]["id"], rows[5]["id"]]
    query = "{ " + " ".join(f"l{i}: lead(databaseId: {x}) {{ databaseId }}" for i, x in enumerate(picks)) + " }"
    body = gateway.gql(query, token=token)
    assert [body["data"][f"l{i}"]["databaseId"] for i in range(len(picks))] == picks
    assert len(fresh_upstream.calls(token)) == -(-len(rows) // 100)


def test_lookup_limit_is_reported(make_gateway, fresh_upstream, token):
    gw = make_gateway(cache_ttl=0, lookup_max_pages=1)
    rows = dataset_for_token(token)
    body = gw.gql(f"{{ lead(databaseId: {rows[-1]['id']}) {{ id }} }}", token=token)
    assert body["data"]["lead"] is None
    assert body["extensions"]["warnings"][0]["code"] == "LOOKUP_TRUNCATED"
    assert len(fresh_upstream.calls(token)) == 1


def test_campaign_by_id_with_its_leads_in_one_call(gateway, fresh_upstream, token):
    rows = dataset_for_token(token)
    named = next(r for r in rows if r["campaign"] is not None)
    cid = named["campaign_id"]
    of_campaign = [r["id"] for r in rows if r["campaign_id"] == cid]
    body = gateway.gql("query($c: Int!) { campaign(databaseId: $c) { id databaseId name "
                       "leads { totalCount nodes { databaseId campaign { databaseId } } } } }", {"c": cid}, token)
    campaign = body["data"]["campaign"]
    assert campaign["name"] == named["campaign"]["name"]
    assert campaign["id"] == to_global_id("Campaign", cid)
    assert campaign["leads"]["totalCount"] == len(of_campaign)
    assert [n["databaseId"] for n in campaign["leads"]["nodes"]] == of_campaign[:15]
    assert len(fresh_upstream.calls(token)) == 1  # name and default leads window share one upstream page


def test_campaign_leads_forces_the_campaign_filter(gateway, fresh_upstream, token):
    rows = dataset_for_token(token)
    cid = rows[0]["campaign_id"]
    completed = [r["id"] for r in rows if r["campaign_id"] == cid and r["status"] == "completed"]
    body = gateway.gql("query($c: Int!) { campaign(databaseId: $c) { leads(first: 100, filter: {status: COMPLETED}) "
                       "{ nodes { databaseId } } } }", {"c": cid}, token)
    assert [n["databaseId"] for n in body["data"]["campaign"]["leads"]["nodes"]] == completed
    clash = gateway.gql("query($c: Int!) { campaign(databaseId: $c) { leads(filter: {campaignId: 1}) "
                        "{ totalCount } } }", {"c": cid}, token)
    assert clash["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_campaign_without_leads_has_no_name(gateway, fresh_upstream, token):
    body = gateway.gql("{ campaign(databaseId: 1) { databaseId name leads { totalCount } } }", token=token)
    assert body["data"]["campaign"] == {"databaseId": 1, "name": None, "leads": {"totalCount": 0}}


def test_node_and_nodes_round_trip_global_ids(gateway, fresh_upstream, token):
    rows = dataset_for_token(token)
    first = gateway.gql("{ leads(first: 2) { nodes { id databaseId campaign { id name } } } }", token=token)
    lead = first["data"]["leads"]["nodes"][0]
    campaign = next(n["campaign"] for n in first["data"]["leads"]["nodes"] if n["campaign"])
    unknown_type = base64.urlsafe_b64encode(b"Invoice:5").decode().rstrip("=")
    missing = to_global_id("Lead", 1)
    body = gateway.gql("""query($ids: [ID!]!, $one: ID!) {
        one: node(id: $one) { id ... on Lead { databaseId } }
        many: nodes(ids: $ids) { __typename id ... on Campaign { name } ... on Lead { databaseId } } }""",
                       {"one": lead["id"], "ids": [lead["id"], campaign["id"], unknown_type, missing]}, token)
    assert body["data"]["one"] == {"id": lead["id"], "databaseId": lead["databaseId"]}
    assert body["data"]["many"] == [
        {"__typename": "Lead", "id": lead["id"], "databaseId": lead["databaseId"]},
        {"__typename": "Campaign", "id": campaign["id"], "name": campaign["name"]},
        None, None,
    ]
    assert lead["databaseId"] == rows[0]["id"]


def test_malformed_global_id_is_bad_user_input_without_upstream_calls(gateway, fresh_upstream, token):
    body = gateway.gql('{ nodes(ids: ["TGVhZDox", "%%%"]) { id } }', token=token)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert fresh_upstream.calls(token) == []
