"""Real frontend clients against the gateway: Apollo Client 3 and Relay (compiler and runtime), from npm.

tests/frontend/ pins them (package.json + package-lock.json; `./dev test` runs `npm ci` there).

- Apollo Client (tests/frontend/apollo-client.mjs): `InMemoryCache` with
  `leads: relayStylePagination(["filter"])`, `HttpLink` over Node's fetch. It pages through a whole
  tenant with `fetchMore`, keeps one list per filter, pages backward with `last`/`before`, normalises a
  lead fetched again by `lead(databaseId)` and `node(id)` onto the list's cache object, and meets errors.
- Relay: relay-compiler compiles tests/frontend/relay/src/ against schema.graphql itself (the federation
  `@link`/`@key` directives are accepted as they are: no derived client schema is needed) into a temporary
  directory; the artifacts are checked here, the generated refetch query is sent to the gateway over plain
  HTTP, and relay-runtime (tests/frontend/relay-client.mjs) pages the `@connection` and refetches a lead.
- Writes: `createLead` through Apollo Client (tests/frontend/apollo-mutation.mjs: `update` + `cache.modify`,
  `refetchQueries`, userErrors) and through Relay (relay/src/LeadCreate.js, `@appendEdge` on `leadEdge`, run by
  tests/frontend/relay-mutation.mjs), each in a demo tenant of its own, so that no other test sees the leads
  they create.

The Node scripts only print what they saw, as JSON; every check is made here.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.demo.data import campaigns_for_token, dataset_for_token
from gateway.leads.ids import to_global_id
from tests.conftest import skip_or_fail

ROOT = Path(__file__).resolve().parents[2]
FRONTEND = ROOT / "tests" / "frontend"
RELAY_SOURCES = FRONTEND / "relay" / "src"
NODE_TIMEOUT = 120


def node_binary() -> str:
    node = shutil.which("node")
    if node is None:
        skip_or_fail("node is not installed")
    for package in ("@apollo/client", "relay-compiler", "relay-runtime", "graphql"):
        if not (FRONTEND / "node_modules" / package / "package.json").exists():
            skip_or_fail(f"the frontend npm packages are not installed (npm ci --prefix tests/frontend): {package}")
    return node


def run_node(*args: str) -> dict:
    """Run a script of tests/frontend and parse the one JSON object it prints."""
    proc = subprocess.run([node_binary(), *args], cwd=FRONTEND, capture_output=True, text=True,
                          timeout=NODE_TIMEOUT)
    assert proc.returncode == 0, f"node {args[0]} exited {proc.returncode}:\n{proc.stderr}\n{proc.stdout}"
    lines = proc.stdout.strip().splitlines()
    assert lines, f"node {args[0]} printed nothing:\n{proc.stderr}"
    return json.loads(lines[-1])


def utc(ts: str) -> str:
    return datetime.strptime(ts, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).isoformat()


def status_of(row: dict) -> str:
    return row["status"].upper().replace("-", "_")


def with_status(rows, status: str) -> list[int]:
    return [r["id"] for r in rows if status_of(r) == status]


@pytest.fixture(scope="module")
def frontend_gateway(make_gateway):
    return make_gateway(cache_ttl=30)


@pytest.fixture(scope="module")
def tenant() -> str:
    """A fresh demo tenant with enough SCHEDULED leads for two backward pages of 10 (most have, not all)."""
    while True:
        candidate = f"tenant-{uuid.uuid4().hex[:8]}"
        if len(with_status(dataset_for_token(candidate), "SCHEDULED")) > 20:
            return candidate


def fresh_tenant() -> str:
    """A demo tenant no other test uses (the writing tests create leads in theirs)."""
    return f"tenant-{uuid.uuid4().hex[:8]}"


def unused_phones(token: str, count: int) -> list[str]:
    """E.164 numbers of the fictional 555-01xx range that ``token``'s dataset does not have."""
    taken = {r["phone_number"] for r in dataset_for_token(token)}
    return [p for p in (f"+1415555{n:04d}" for n in range(100, 200)) if p not in taken][:count]


def server_list(gateway, token: str) -> dict:
    """The unfiltered list as the gateway answers it now, over plain HTTP, in pages of 100."""
    ids, cursors, after = [], [], None
    while True:
        body = gateway.gql("query($after: String) { leads(first: 100, after: $after) { totalCount "
                           "edges { cursor node { databaseId } } pageInfo { hasNextPage endCursor } } }",
                           {"after": after}, token=token)
        assert "errors" not in body, body
        leads = body["data"]["leads"]
        ids += [e["node"]["databaseId"] for e in leads["edges"]]
        cursors += [e["cursor"] for e in leads["edges"]]
        if not leads["pageInfo"]["hasNextPage"]:
            return {"ids": ids, "cursors": cursors, "totalCount": leads["totalCount"]}
        after = leads["pageInfo"]["endCursor"]


def created_ids(upstream, token: str) -> list[int]:
    """The leads the demo upstream created for ``token`` (POST /user/lead), oldest first."""
    return [w.lead_id for w in upstream.writes(token) if w.lead_id is not None]


# ---------------------------------------------------------------------------------------------------
# Apollo Client
# ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def apollo(frontend_gateway, tenant) -> dict:
    return run_node("apollo-client.mjs", f"{frontend_gateway.url}/graphql", tenant)


def test_apollo_fetch_more_pages_through_every_lead(apollo, tenant):
    rows = dataset_for_token(tenant)
    forward = apollo["forward"]
    # The merged list relayStylePagination reads back: every lead of the tenant, in order, once.
    assert forward["ids"] == [r["id"] for r in rows]
    assert forward["totalCount"] == len(rows)
    assert forward["pageInfo"]["hasNextPage"] is False
    assert forward["pageInfo"]["hasPreviousPage"] is False
    assert forward["fetchMores"] == math.ceil(len(rows) / 25) - 1
    # What went over the wire: first: 25, then first: 25 with each page's endCursor as after.
    pages = math.ceil(len(rows) / 25)
    sent = [r["variables"] for r in apollo["requests"][:pages]]
    assert all(r["operationName"] == "LeadsList" for r in apollo["requests"][:pages])
    assert sent[0] == {"first": 25}
    assert all(v["first"] == 25 and v["after"] for v in sent[1:])
    assert len({v["after"] for v in sent[1:]}) == len(sent) - 1


def test_apollo_keeps_one_list_per_filter(apollo, tenant):
    rows = dataset_for_token(tenant)
    assert apollo["filtered"]["ids"] == with_status(rows, "COMPLETED")
    assert apollo["filtered"]["totalCount"] == len(with_status(rows, "COMPLETED"))
    # Paging two other lists did not touch the unfiltered one.
    assert apollo["forwardAfterOtherLists"]["ids"] == [r["id"] for r in rows]
    leads_fields = [k for k in apollo["normalisation"]["rootQueryKeys"] if k.startswith("leads")]
    assert sorted(leads_fields) == sorted([
        "leads:{}",
        'leads:{"filter":{"status":"COMPLETED"}}',
        'leads:{"filter":{"status":"SCHEDULED"}}',
    ])


def test_apollo_pages_backward_with_last_and_before(apollo, tenant):
    scheduled = with_status(dataset_for_token(tenant), "SCHEDULED")
    assert len(scheduled) > 20  # every demo tenant has more; the checks below need it
    backward = apollo["backward"]
    assert backward["lastPage"]["ids"] == scheduled[-10:]
    assert backward["lastPage"]["pageInfo"]["hasPreviousPage"] is True
    assert backward["lastPage"]["pageInfo"]["hasNextPage"] is False
    # fetchMore({ before: startCursor }) prepended the ten before them.
    assert backward["afterBefore"]["ids"] == scheduled[-20:]
    assert backward["afterBefore"]["pageInfo"]["hasPreviousPage"] is True
    assert backward["afterBefore"]["totalCount"] == len(scheduled)
    sent = [r["variables"] for r in apollo["requests"] if r["variables"].get("filter") == {"status": "SCHEDULED"}]
    assert sent == [{"last": 10, "filter": {"status": "SCHEDULED"}},
                    {"last": 10, "filter": {"status": "SCHEDULED"},
                     "before": backward["lastPage"]["pageInfo"]["startCursor"]}]


def test_apollo_normalises_a_refetched_lead_onto_the_list_entry(apollo, tenant):
    rows = dataset_for_token(tenant)
    norm = apollo["normalisation"]
    row = next(r for r in rows if r["id"] == norm["picked"]["databaseId"])
    lead_id = to_global_id("Lead", row["id"])
    assert norm["picked"]["id"] == lead_id
    cache_id = f"Lead:{lead_id}"
    assert norm["cacheId"] == cache_id  # cache.identify: keyed by `id`
    # One entry for the lead, however it was fetched; the root fields point at it.
    assert norm["entriesForPicked"] == [cache_id]
    assert norm["rootLead"] == {"__ref": cache_id}
    assert norm["rootNode"] == {"__ref": cache_id}
    assert norm["leadEntries"] == len(rows)
    # Fields from the three queries, merged on that entry: list, lead(databaseId), node(id).
    entry = norm["entry"]
    variables = row["variables"] or {}
    assert entry["customerName"] == variables.get("customer_name")
    assert entry["status"] == status_of(row)
    assert entry["phoneNumber"] == row["phone_number"]
    assert entry["email"] == variables.get("email")
    assert entry["updatedAt"] == utc(row["updated_at"])
    assert entry["createdAt"] == utc(row["created_at"])
    campaign = row["campaign"]
    assert entry["campaign"] == (None if campaign is None
                                 else {"__ref": f"Campaign:{to_global_id('Campaign', campaign['id'])}"})
    # readFragment returns the merged fields from the cache alone.
    assert norm["fragment"] == {
        "__typename": "Lead", "id": lead_id, "databaseId": row["id"],
        "customerName": variables.get("customer_name"), "status": status_of(row),
        "phoneNumber": row["phone_number"], "email": variables.get("email"),
        "createdAt": utc(row["created_at"]), "updatedAt": utc(row["updated_at"]),
        "campaign": None if campaign is None else {"__typename": "Campaign", "databaseId": campaign["id"],
                                                   "name": campaign["name"]},
    }
    assert norm["queried"]["byDatabaseId"]["id"] == norm["queried"]["byNode"]["id"] == lead_id


def test_apollo_reports_error_codes(apollo):
    errors = apollo["errors"]
    # Field errors (HTTP 200, data: null) and request errors (HTTP 400) both arrive as graphQLErrors.
    for case, code in [("badCursor", "BAD_USER_INPUT"), ("noToken", "UNAUTHENTICATED"),
                       ("invalidDocument", "GRAPHQL_VALIDATION_FAILED")]:
        assert errors[case]["thrown"] and errors[case]["apolloError"], (case, errors[case])
        assert [e["extensions"]["code"] for e in errors[case]["graphQLErrors"]] == [code], (case, errors[case])
    assert errors["badCursor"]["graphQLErrors"][0]["extensions"]["argument"] == "after"
    assert apollo["possibleTypes"]["Node"] == ["Campaign", "Lead"]


# --- Apollo Client: createLead ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def apollo_writes(frontend_gateway) -> dict:
    """apollo-mutation.mjs in a tenant of its own: the list paged whole, then two leads created (update +
    cache.modify, then refetchQueries) and one invalid input."""
    token = fresh_tenant()
    campaign = campaigns_for_token(token)[0]["id"]
    first, second = unused_phones(token, 2)
    inputs = {
        "appended": {"phoneNumber": first, "campaignId": campaign, "customerName": "Ada Lovelace",
                     "email": "ada@example.com"},
        "refetched": {"phoneNumber": second, "campaignId": campaign, "customerName": "Grace Hopper"},
        "invalid": {"phoneNumber": "12345", "campaignId": campaign},
    }
    out = run_node("apollo-mutation.mjs", f"{frontend_gateway.url}/graphql", token, json.dumps(inputs))
    return {"token": token, "inputs": inputs, "out": out}


def test_apollo_mutation_update_appends_the_edge_to_the_cached_list(apollo_writes, upstream):
    token, inputs, out = apollo_writes["token"], apollo_writes["inputs"], apollo_writes["out"]
    rows = dataset_for_token(token)
    assert out["loaded"]["ids"] == [r["id"] for r in rows]
    assert out["loaded"]["totalCount"] == len(rows)
    appended = out["appended"]
    assert appended["thrown"] is False and appended["errors"] is None
    payload = appended["data"]["createLead"]
    assert payload["userErrors"] == []
    lead = payload["lead"]
    new_id = created_ids(upstream, token)[0]  # what the upstream created, first of this tenant's two
    assert lead["databaseId"] == payload["leadEdge"]["node"]["databaseId"] == new_id
    assert lead["id"] == payload["leadEdge"]["node"]["id"] == to_global_id("Lead", new_id)
    assert (lead["phoneNumber"], lead["customerName"], lead["email"], lead["status"]) == (
        inputs["appended"]["phoneNumber"], "Ada Lovelace", "ada@example.com", "CREATED")
    assert lead["campaign"]["databaseId"] == inputs["appended"]["campaignId"]
    # Over the wire: the mutation alone; the list was not fetched again, then or while it was read back.
    assert appended["requests"] == [{"operationName": "CreateLead", "variables": {"input": inputs["appended"]}}]
    assert appended["requestsAfterRead"] == 0
    assert [r["operationName"] for r in out["requests"][:out["loaded"]["requests"] + 1]] == (
        ["LeadsList"] * out["loaded"]["requests"] + ["CreateLead"])
    # readQuery: the list relayStylePagination merged, with the new lead last, once, and the count bumped.
    listed = appended["list"]
    assert listed["ids"] == [r["id"] for r in rows] + [new_id]
    assert listed["ids"][-1] == lead["databaseId"]
    assert listed["totalCount"] == len(rows) + 1
    assert listed["cursors"][-1] == payload["leadEdge"]["cursor"]
    assert listed["pageInfo"]["endCursor"] == payload["leadEdge"]["cursor"]
    assert listed["pageInfo"]["hasNextPage"] is False
    assert appended["watched"] == listed  # the watching query (a component's useQuery) re-rendered with it
    # One normalised entry (cache.identify: keyed by `id`), which the list's new edge points at.
    assert appended["cacheId"] == f"Lead:{lead['id']}"
    assert appended["listRefs"] == 1
    entry = appended["entry"]
    assert {k: entry[k] for k in ("id", "databaseId", "phoneNumber", "customerName", "status")} == {
        "id": lead["id"], "databaseId": new_id, "phoneNumber": inputs["appended"]["phoneNumber"],
        "customerName": "Ada Lovelace", "status": "CREATED"}
    assert entry["campaign"] == {"__ref": f"Campaign:{to_global_id('Campaign', inputs['appended']['campaignId'])}"}


def test_apollo_mutation_refetch_queries_fetches_the_list_again(apollo_writes, upstream, frontend_gateway):
    token, inputs, out = apollo_writes["token"], apollo_writes["inputs"], apollo_writes["out"]
    rows = dataset_for_token(token)
    refetched = out["refetched"]
    assert refetched["thrown"] is False and refetched["errors"] is None
    payload = refetched["data"]["createLead"]
    assert payload["userErrors"] == []
    first_id, second_id = created_ids(upstream, token)
    assert payload["lead"]["databaseId"] == second_id
    expected_ids = [r["id"] for r in rows] + [first_id, second_id]
    # Over the wire: the mutation, then the active LeadsList query (awaitRefetchQueries: before mutate resolved),
    # with the watched query's own variables.
    assert refetched["requests"] == [
        {"operationName": "CreateLead", "variables": {"input": inputs["refetched"]}},
        {"operationName": "LeadsList", "variables": {"first": 25}}]
    # The refetched first page replaced the merged list (no `after`: relayStylePagination cannot splice it).
    after_refetch = refetched["afterRefetch"]
    assert after_refetch["ids"] == expected_ids[:25]
    assert after_refetch["totalCount"] == len(rows) + 2
    assert after_refetch["pageInfo"]["hasNextPage"] is True
    # Paged on with fetchMore, the cached list is the server's: both new leads at the end, the cursors the same.
    paged = refetched["paged"]
    server = server_list(frontend_gateway, token)
    assert server["ids"] == expected_ids
    assert paged["ids"] == server["ids"]
    assert paged["cursors"] == server["cursors"]
    assert paged["totalCount"] == server["totalCount"] == len(rows) + 2
    assert paged["ids"][-1] == payload["lead"]["databaseId"]
    assert paged["cursors"][-1] == payload["leadEdge"]["cursor"]  # leadEdge.cursor: its cursor in the list
    assert paged["fetchMores"] == math.ceil((len(rows) + 2) / 25) - 1
    assert all(r["operationName"] == "LeadsList" and r["variables"]["after"] for r in paged["requests"])
    assert refetched["watched"]["ids"] == server["ids"]
    assert refetched["cacheId"] == f"Lead:{payload['lead']['id']}"
    assert refetched["listRefs"] == 1


def test_apollo_mutation_user_errors_arrive_as_data(apollo_writes, upstream):
    token, out = apollo_writes["token"], apollo_writes["out"]
    invalid = out["invalid"]
    # A result, not a thrown ApolloError: no GraphQL errors, the problem is in the payload.
    assert invalid["thrown"] is False, invalid
    assert invalid["errors"] is None
    payload = invalid["data"]["createLead"]
    assert payload["lead"] is None and payload["leadEdge"] is None
    [error] = payload["userErrors"]
    assert error["__typename"] == "UserError"
    assert error["field"] == ["input", "phoneNumber"]
    assert error["code"] == "INVALID"
    assert error["message"]
    # The same `update` found no edge to append; only the mutation went over the wire.
    assert invalid["listUnchanged"] is True
    assert [r["operationName"] for r in invalid["requests"]] == ["CreateLead"]
    # Checked by the gateway before any upstream call: the upstream saw the two valid inputs only.
    assert len(upstream.writes(token)) == 2


# ---------------------------------------------------------------------------------------------------
# Relay: relay-compiler, the generated artifacts, relay-runtime
# ---------------------------------------------------------------------------------------------------

def compile_relay(out: Path, sources: Path) -> subprocess.CompletedProcess:
    """relay-compiler with tests/frontend/relay.config.json (schema.graphql itself, CommonJS artifacts, no
    source-control integration), but reading `sources` and writing the artifacts to out/__generated__."""
    node = node_binary()
    generated = out / "__generated__"
    generated.mkdir(parents=True, exist_ok=True)
    config = json.loads((FRONTEND / "relay.config.json").read_text())
    assert (FRONTEND / config["schema"]).resolve() == ROOT / "schema.graphql"
    assert config["noSourceControl"] is True  # relay-compiler would otherwise `git add` what it writes
    config.update(schema=str(ROOT / "schema.graphql"), src=str(sources), artifactDirectory=str(generated))
    (out / "relay.config.json").write_text(json.dumps(config))
    return subprocess.run([node, str(FRONTEND / "node_modules" / "relay-compiler" / "cli.js"),
                           str(out / "relay.config.json"), "--output", "quiet-with-errors", "--noWatchman"],
                          cwd=out, capture_output=True, text=True, timeout=NODE_TIMEOUT)


@pytest.fixture(scope="module")
def relay_generated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("relay")
    proc = compile_relay(out, RELAY_SOURCES)
    assert proc.returncode == 0, f"relay-compiler failed:\n{proc.stdout}\n{proc.stderr}"
    return out / "__generated__"


@pytest.fixture(scope="module")
def relay(relay_generated, frontend_gateway, tenant) -> dict:
    return run_node("relay-client.mjs", str(relay_generated), f"{frontend_gateway.url}/graphql", tenant)


def walk(node):
    """Every dict inside an artifact."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def test_relay_compiler_generates_the_artifacts(relay_generated, relay):
    assert sorted(p.name for p in relay_generated.iterdir()) == [
        "LeadCreateMutation.graphql.js", "LeadDetailsRefetchQuery.graphql.js", "LeadDetails_lead.graphql.js",
        "LeadListPaginationQuery.graphql.js", "LeadListQuery.graphql.js", "LeadList_query.graphql.js",
        "LeadsLiveSubscription.graphql.js"]
    artifacts = relay["artifacts"]

    # @refetchable on a Lead fragment: a query through Query.node, with the Node interface's id.
    refetch = artifacts["LeadDetailsRefetchQuery"]
    assert refetch["kind"] == "Request"
    assert refetch["params"]["operationKind"] == "query"
    assert refetch["params"]["name"] == "LeadDetailsRefetchQuery"
    assert "query LeadDetailsRefetchQuery(\n  $id: ID!\n)" in refetch["params"]["text"]
    assert "node(id: $id)" in refetch["params"]["text"]
    assert "fragment LeadDetails_lead on Lead" in refetch["params"]["text"]
    details = artifacts["LeadDetails_lead"]
    assert details["metadata"]["refetch"]["operation"]["params"]["name"] == "LeadDetailsRefetchQuery"
    assert details["metadata"]["refetch"]["identifierInfo"]["identifierField"] == "id"

    # @connection(key: "LeadList_leads") on `leads`, paginated forward by LeadListPaginationQuery.
    fragment = artifacts["LeadList_query"]
    assert fragment["metadata"]["connection"] == [
        {"count": "count", "cursor": "cursor", "direction": "forward", "path": ["leads"]}]
    assert fragment["metadata"]["refetch"]["connection"]["forward"] == {"count": "count", "cursor": "cursor"}
    assert fragment["metadata"]["refetch"]["operation"]["params"]["name"] == "LeadListPaginationQuery"
    reader_fields = {n["name"]: n for n in walk(fragment) if n.get("kind") == "LinkedField"}
    assert reader_fields["__LeadList_leads_connection"]["alias"] == "leads"
    for name in ("LeadListQuery", "LeadListPaginationQuery"):
        handles = [n for n in walk(artifacts[name]["operation"]) if n.get("kind") == "LinkedHandle"]
        assert [(h["name"], h["handle"], h["key"], h["filters"]) for h in handles] == [
            ("leads", "connection", "LeadList_leads", ["filter"])], name
    # The compiler added what the connection needs to every operation text.
    pagination_text = artifacts["LeadListPaginationQuery"]["params"]["text"]
    assert "leads(first: $count, after: $cursor, filter: $filter)" in pagination_text
    assert "pageInfo {\n      endCursor\n      hasNextPage\n    }" in pagination_text
    assert "cursor\n" in pagination_text


def test_relay_compiler_rejects_what_the_schema_does_not_allow(tmp_path):
    """The compile above is a real validation against schema.graphql, not a pass-through."""
    sources = tmp_path / "src"
    sources.mkdir()
    for f in RELAY_SOURCES.iterdir():
        shutil.copy(f, sources / f.name)
    (sources / "LeadBroken.js").write_text(
        "import { graphql } from 'relay-runtime';\n"
        "export const q = graphql`query LeadBrokenQuery { leads(first: 2) { nodes { fullName } } }`;\n")
    proc = compile_relay(tmp_path / "out", sources)
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "fullName" in output and "LeadBroken.js" in output, output
    assert not list((tmp_path / "out" / "__generated__").iterdir())


def test_generated_refetch_query_text_runs_against_the_gateway(relay, frontend_gateway, tenant):
    """The refetch query exactly as Relay would send it, over plain HTTP."""
    text = relay["artifacts"]["LeadDetailsRefetchQuery"]["params"]["text"]
    rows = dataset_for_token(tenant)
    row = next(r for r in reversed(rows) if r["secondary_contacts"] and r["campaign"])
    body = frontend_gateway.gql(text, {"id": to_global_id("Lead", row["id"])}, token=tenant)
    assert "errors" not in body, body
    node = body["data"]["node"]
    variables = row["variables"] or {}
    assert node == {
        "__typename": "Lead", "id": to_global_id("Lead", row["id"]), "databaseId": row["id"],
        "customerName": variables.get("customer_name"), "phoneNumber": row["phone_number"],
        "status": status_of(row), "createdAt": utc(row["created_at"]),
        "campaign": {"id": to_global_id("Campaign", row["campaign"]["id"]), "databaseId": row["campaign"]["id"],
                     "name": row["campaign"]["name"]},
        "secondaryContacts": [{"id": to_global_id("SecondaryContact", c["id"]), "phoneNumber": c["phone_number"],
                               "status": status_of(c)} for c in row["secondary_contacts"]],
    }
    # An id of something else is null, as Relay expects of `node`.
    other = frontend_gateway.gql(text, {"id": to_global_id("Lead", 1)}, token=tenant)
    assert other == {"data": {"node": None}}


def test_relay_runtime_pages_the_connection(relay, tenant):
    rows = dataset_for_token(tenant)
    assert relay["forward"]["ids"] == [r["id"] for r in rows]
    assert relay["forward"]["totalCount"] == len(rows)
    assert relay["forward"]["pages"] == math.ceil(len(rows) / 25)
    assert relay["filtered"]["ids"] == with_status(rows, "COMPLETED")
    assert relay["filtered"]["pages"] == math.ceil(len(with_status(rows, "COMPLETED")) / 25)
    # One connection record per `filter` (the @connection's filters), the first one left whole.
    assert relay["forwardAfterFilter"] == [r["id"] for r in rows]
    handles = [c for c in relay["store"]["connectionRecords"] if "__LeadList_leads_connection" in c]
    assert handles == [
        "client:root:__LeadList_leads_connection",
        'client:root:__LeadList_leads_connection(filter:{"status":"COMPLETED"})']
    assert relay["store"]["leadRecords"] == len(rows)
    names = [r["name"] for r in relay["requests"]]
    assert names.count("LeadListQuery") == 2
    assert names.count("LeadListPaginationQuery") == relay["forward"]["pages"] + relay["filtered"]["pages"] - 2


def test_relay_runtime_refetches_a_lead_through_node(relay, tenant):
    refetch = relay["refetch"]
    row = next(r for r in dataset_for_token(tenant) if r["id"] == refetch["picked"]["databaseId"])
    lead_id = to_global_id("Lead", row["id"])
    assert relay["requests"][-1] == {"name": "LeadDetailsRefetchQuery", "variables": {"id": lead_id}}
    variables = row["variables"] or {}
    expected = {
        "id": lead_id, "databaseId": row["id"], "customerName": variables.get("customer_name"),
        "phoneNumber": row["phone_number"], "status": status_of(row), "createdAt": utc(row["created_at"]),
        "campaign": None if row["campaign"] is None else {
            "id": to_global_id("Campaign", row["campaign"]["id"]), "databaseId": row["campaign"]["id"],
            "name": row["campaign"]["name"]},
        "secondaryContacts": [{"id": to_global_id("SecondaryContact", c["id"]), "phoneNumber": c["phone_number"],
                               "status": status_of(c)} for c in row["secondary_contacts"]],
    }
    assert refetch["beforeRefetch"] == expected
    assert refetch["afterRefetch"] == expected
    # The node the refetch returned is the list's record: Relay's data id is the lead's `id`.
    assert refetch["refetchedNodeDataId"] == lead_id
    assert relay["store"]["recordsForPicked"] == [lead_id]



# --- Relay: createLead with @appendEdge ---------------------------------------------------------------

@pytest.fixture(scope="module")
def relay_writes(relay_generated, frontend_gateway) -> dict:
    """relay-mutation.mjs in a tenant of its own: the list paged whole, then LeadCreateMutation committed, the
    same input again (same idempotencyKey), and an invalid input."""
    token = fresh_tenant()
    campaign = campaigns_for_token(token)[0]["id"]
    phone, contact = unused_phones(token, 2)
    inputs = {
        "created": {"phoneNumber": phone, "campaignId": campaign, "customerName": "Katherine Johnson",
                    "secondaryContacts": [{"phoneNumber": contact}], "idempotencyKey": f"relay-{uuid.uuid4().hex}"},
        "invalid": {"phoneNumber": "not a number", "campaignId": campaign},
    }
    out = run_node("relay-mutation.mjs", str(relay_generated), f"{frontend_gateway.url}/graphql", token,
                   json.dumps(inputs))
    return {"token": token, "inputs": inputs, "out": out}


def test_relay_compiler_generates_the_append_edge_mutation(relay_generated):
    artifact = json.loads(subprocess.run(
        [node_binary(), "-e", "process.stdout.write(JSON.stringify(require(process.argv[1])))",
         str(relay_generated / "LeadCreateMutation.graphql.js")], capture_output=True, text=True, check=True,
        timeout=NODE_TIMEOUT).stdout)
    assert artifact["kind"] == "Request"
    assert artifact["params"]["operationKind"] == "mutation"
    assert artifact["params"]["name"] == "LeadCreateMutation"
    # @appendEdge: a handle on leadEdge in the normalisation AST, fed by the $connections variable ...
    handles = [n for n in walk(artifact["operation"]) if n.get("kind") == "LinkedHandle"]
    assert [(h["name"], h["handle"], h["handleArgs"]) for h in handles] == [
        ("leadEdge", "appendEdge", [{"kind": "Variable", "name": "connections", "variableName": "connections"}])]
    assert sorted(a["name"] for a in artifact["operation"]["argumentDefinitions"]) == ["connections", "input"]
    # ... which is the client's alone: the text sent to the gateway neither declares nor uses it.
    text = artifact["params"]["text"]
    assert text.startswith("mutation LeadCreateMutation(\n  $input: CreateLeadInput!\n) {")
    assert "connections" not in text and "@appendEdge" not in text
    assert "leadEdge {\n      cursor\n      node {" in text
    assert "fragment LeadDetails_lead on Lead" in text


def test_relay_runtime_appends_the_created_edge_to_the_connection(relay_writes, upstream, frontend_gateway):
    token, inputs, out = relay_writes["token"], relay_writes["inputs"], relay_writes["out"]
    rows = dataset_for_token(token)
    loaded = out["loaded"]
    assert loaded["ids"] == [r["id"] for r in rows]
    assert loaded["pages"] == math.ceil(len(rows) / 25)
    # The unfiltered list's connection record: ConnectionHandler.getConnectionID(root, key, {filter: null}).
    assert out["connectionID"] == "client:root:__LeadList_leads_connection"
    assert out["connectionExists"] is True
    assert out["connectionID"] in out["store"]["connectionRecords"]

    created = out["created"]
    assert created["completed"] is True and created["errors"] is None, created
    assert created["userErrors"] == []
    [new_id] = created_ids(upstream, token)  # one lead, although the input was committed twice
    lead_id = to_global_id("Lead", new_id)
    assert created["leadEdge"]["databaseId"] == new_id and created["leadEdge"]["id"] == lead_id

    # LeadList_query read back from the store: the new lead is the last edge, once, with the edge's cursor.
    after = out["afterCreate"]
    assert after["ids"] == [r["id"] for r in rows] + [new_id]
    assert after["ids"].count(new_id) == 1
    assert after["cursors"][-1] == created["leadEdge"]["cursor"]
    # Its LeadDetails_lead fragment is there too, from the mutation's payload alone.
    contact = inputs["created"]["secondaryContacts"][0]["phoneNumber"]
    details = after["lastDetails"]
    assert {k: details[k] for k in ("id", "databaseId", "customerName", "phoneNumber", "status")} == {
        "id": lead_id, "databaseId": new_id, "customerName": "Katherine Johnson",
        "phoneNumber": inputs["created"]["phoneNumber"], "status": "CREATED"}
    assert details["campaign"]["databaseId"] == inputs["created"]["campaignId"]
    assert [(c["phoneNumber"], c["status"]) for c in details["secondaryContacts"]] == [(contact, "CREATED")]
    # @appendEdge inserts the edge and nothing else: totalCount and pageInfo stay what the last page said
    # (an app that shows the count bumps it in an `updater`).
    assert after["totalCount"] == loaded["totalCount"] == len(rows)
    assert after["pageInfo"] == loaded["pageInfo"]
    assert out["store"]["recordsForCreated"] == [lead_id]

    # No list query after the page loads: the three commits, each with the connection ID as `connections`.
    mutations = out["requests"][loaded["requests"]:]
    assert [r["name"] for r in mutations] == ["LeadCreateMutation"] * 3
    assert [r["variables"]["input"] for r in mutations] == [inputs["created"], inputs["created"], inputs["invalid"]]
    assert all(r["variables"]["connections"] == [out["connectionID"]] for r in mutations)
    # What the server holds agrees: the same lead last, under the same cursor.
    server = server_list(frontend_gateway, token)
    assert server["ids"] == after["ids"]
    assert server["cursors"][-1] == created["leadEdge"]["cursor"]


def test_relay_runtime_appends_a_replayed_lead_once_and_no_edge_for_user_errors(relay_writes):
    out = relay_writes["out"]
    created, after = out["created"], out["afterCreate"]
    # The same idempotencyKey: the gateway answers the first outcome; Relay finds the node in the connection.
    replayed = out["replayed"]
    assert replayed["completed"] is True and replayed["userErrors"] == []
    assert replayed["leadEdge"] == created["leadEdge"]
    assert out["afterReplay"]["ids"] == after["ids"]
    # userErrors: onCompleted (not onError), leadEdge null, nothing appended.
    invalid = out["invalid"]
    assert invalid["completed"] is True and invalid["errors"] is None, invalid
    assert invalid["leadEdge"] is None
    assert [(e["field"], e["code"]) for e in invalid["userErrors"]] == [(["input", "phoneNumber"], "INVALID")]
    assert out["afterInvalid"]["ids"] == after["ids"]
    assert out["afterInvalid"]["lastDetails"] == after["lastDetails"]
