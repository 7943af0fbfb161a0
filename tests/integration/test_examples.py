"""examples/*.graphql never rot: they validate against schema.graphql with a real codegen, and they run.

1. GraphQL Code Generator (`@graphql-codegen/cli` + `typescript-operations`, pinned in
   tests/frontend/package-lock.json, configured by tests/frontend/codegen.yml) generates TypeScript types
   for every example from schema.graphql into a temporary directory; an example that does not validate
   fails the run, which a deliberately broken example in a temporary copy proves.
2. Every example runs against a gateway with the variables below, without errors, and answers what the
   demo upstream holds.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from graphql import OperationDefinitionNode, parse

from gateway.demo.data import dataset_for_token
from gateway.leads.ids import to_global_id
from tests.conftest import skip_or_fail

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
FRONTEND = ROOT / "tests" / "frontend"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.graphql"))


def operations_of(path: Path) -> list[OperationDefinitionNode]:
    return [d for d in parse(path.read_text()).definitions if isinstance(d, OperationDefinitionNode)]


def codegen(documents: str, output: Path) -> subprocess.CompletedProcess:
    node = shutil.which("node")
    if node is None:
        skip_or_fail("node is not installed")
    cli = FRONTEND / "node_modules" / "@graphql-codegen" / "cli" / "esm" / "bin.js"
    for package in ("@graphql-codegen/cli", "@graphql-codegen/typescript-operations"):
        if not (FRONTEND / "node_modules" / package / "package.json").exists():
            skip_or_fail(f"the frontend npm packages are not installed (npm ci --prefix tests/frontend): {package}")
    env = {**os.environ, "CODEGEN_DOCUMENTS": documents, "CODEGEN_OUTPUT": str(output)}
    return subprocess.run([node, str(cli), "--config", "codegen.yml"], cwd=FRONTEND, env=env,
                          capture_output=True, text=True, timeout=120)


# ---------------------------------------------------------------------------------------------------
# 1. Validation and types with GraphQL Code Generator
# ---------------------------------------------------------------------------------------------------

def test_examples_are_there():
    assert [p.name for p in EXAMPLE_FILES] == sorted(RUNS), "every example needs variables and checks in RUNS"
    names = [op.name.value for path in EXAMPLE_FILES for op in operations_of(path)]
    assert len(names) == len(set(names)) == len(EXAMPLE_FILES), "one uniquely named operation per file"


def test_codegen_generates_types_for_every_example(tmp_path):
    output = tmp_path / "operations.ts"
    proc = codegen(str(EXAMPLES / "*.graphql"), output)
    assert proc.returncode == 0, f"graphql-codegen failed:\n{proc.stdout}\n{proc.stderr}"
    generated = output.read_text()
    for path in EXAMPLE_FILES:
        for op in operations_of(path):
            kind = op.operation.value.capitalize()  # Query, Mutation
            assert f"export type {op.name.value}{kind}Variables = Exact<{{" in generated, op.name.value
            assert f"export type {op.name.value}{kind} = {{" in generated, op.name.value
    # Scalars and enums come out typed (codegen.yml maps every custom scalar: strictScalars).
    assert "createdAt: string" in generated
    assert re.search(r"export type LeadStatus =\s+(/\*\*.*\*/\s+)?\| 'BLACKLISTED'", generated)
    assert "export type LeadFilter = {" in generated


BROKEN = {
    "unknown-field": ("query BrokenField { leads(first: 2) { nodes { fullName } } }",
                      'Cannot query field "fullName" on type "Lead"'),
    "wrong-variable-type": ("query BrokenVariable($after: Int) { leads(first: 2, after: $after) { totalCount } }",
                            'Variable "$after" of type "Int" used in position expecting type "String"'),
    "unknown-argument": ("query BrokenArgument { lead(databaseId: 1, id: 1) { id } }",
                          'Unknown argument "id" on field "Query.lead"'),
}


def test_codegen_fails_when_an_example_stops_validating(tmp_path):
    """A temporary copy of examples/ plus broken examples: the run fails and names each one."""
    copies = tmp_path / "examples"
    shutil.copytree(EXAMPLES, copies)
    for kind, (document, _) in BROKEN.items():
        (copies / f"{kind}.graphql").write_text(document + "\n")
    output = tmp_path / "out" / "operations.ts"
    proc = codegen(str(copies / "*.graphql"), output)
    assert proc.returncode != 0
    report = proc.stdout + proc.stderr
    assert f"Validation failed with {len(BROKEN)} errors" in report, report
    for kind, (_, message) in BROKEN.items():
        assert message in report, report
        assert f"{kind}.graphql" in report, report
    assert not output.exists()


# ---------------------------------------------------------------------------------------------------
# 2. Every example runs against the gateway
# ---------------------------------------------------------------------------------------------------

def status_of(row: dict) -> str:
    return row["status"].upper().replace("-", "_")


def completed_since_march(rows) -> list[int]:
    return [r["id"] for r in rows if r["status"] == "completed" and r["created_at"] >= "2025-03-01"]


FILTER = {"status": "COMPLETED", "createdFrom": "2025-03-01"}


def leads_page(gw, token, rows):
    def check(data):
        leads = data["leads"]
        expected = completed_since_march(rows)
        assert [e["node"]["databaseId"] for e in leads["edges"]] == expected[:5]
        assert leads["totalCount"] == len(expected)
        assert leads["pageInfo"]["hasNextPage"] is (len(expected) > 5)
    return {"first": 5, "filter": FILTER}, check


def leads_next_page(gw, token, rows):
    first = gw.gql("query($f: LeadFilter) { leads(first: 5, filter: $f) { pageInfo { endCursor } } }",
                   {"f": FILTER}, token=token)
    after = first["data"]["leads"]["pageInfo"]["endCursor"]

    def check(data):
        assert [e["node"]["databaseId"] for e in data["leads"]["edges"]] == completed_since_march(rows)[5:10]
        assert data["leads"]["pageInfo"]["hasPreviousPage"] is True
    return {"first": 5, "after": after, "filter": FILTER}, check


def leads_previous_page(gw, token, rows):
    last = gw.gql("{ leads(last: 5) { pageInfo { startCursor } } }", token=token)
    before = last["data"]["leads"]["pageInfo"]["startCursor"]

    def check(data):
        assert [e["node"]["databaseId"] for e in data["leads"]["edges"]] == [r["id"] for r in rows[-10:-5]]
        assert data["leads"]["pageInfo"]["hasPreviousPage"] is True
        assert data["leads"]["pageInfo"]["hasNextPage"] is True
    return {"last": 5, "before": before}, check


def leads_page_jump(gw, token, rows):
    page1 = gw.gql("{ leads(first: 20) { pageCursors { around { page cursor } } } }", token=token)
    after = next(p["cursor"] for p in page1["data"]["leads"]["pageCursors"]["around"] if p["page"] == 3)

    def check(data):
        cursors = data["leads"]["pageCursors"]
        assert (cursors["pageSize"], cursors["currentPage"]) == (20, 3)
        assert cursors["pageCount"] == -(-len(rows) // 20)
        assert cursors["previous"]["page"] == 2 and cursors["next"]["page"] == 4
        assert [n["databaseId"] for n in data["leads"]["nodes"]] == [r["id"] for r in rows[40:60]]
    return {"pageSize": 20, "after": after}, check


def lead_by_database_id(gw, token, rows):
    row = rows[42]

    def check(data):
        lead = data["lead"]
        assert lead["databaseId"] == row["id"] and lead["id"] == to_global_id("Lead", row["id"])
        assert lead["customerName"] == (row["variables"] or {}).get("customer_name")
        assert lead["status"] == status_of(row)
        assert [c["databaseId"] for c in lead["secondaryContacts"]] == [c["id"] for c in row["secondary_contacts"]]
    return {"databaseId": row["id"]}, check


def campaign_with_leads(gw, token, rows):
    campaign = next(r["campaign"] for r in rows if r["campaign"])
    own = [r["id"] for r in rows if r["campaign_id"] == campaign["id"]]

    def check(data):
        assert data["campaign"]["name"] == campaign["name"]
        assert data["campaign"]["leads"]["totalCount"] == len(own)
        assert [n["databaseId"] for n in data["campaign"]["leads"]["nodes"]] == own[:10]
    return {"databaseId": campaign["id"], "first": 10}, check


def node_by_id(gw, token, rows):
    row = rows[7]

    def check(data):
        assert data["node"]["__typename"] == "Lead"
        assert data["node"]["databaseId"] == row["id"]
    return {"id": to_global_id("Lead", row["id"])}, check


def nodes_by_ids(gw, token, rows):
    lead = rows[3]
    campaign = next(r["campaign"] for r in rows if r["campaign"])

    def check(data):
        assert [(n["__typename"], n["databaseId"]) if n else None for n in data["nodes"]] == [
            ("Lead", lead["id"]), ("Campaign", campaign["id"]), None]
        assert data["nodes"][1]["name"] == campaign["name"]
    return {"ids": [to_global_id("Lead", lead["id"]), to_global_id("Campaign", campaign["id"]),
                    to_global_id("Lead", 1)]}, check


def create_lead(gw, token, rows):
    campaign = next(r["campaign"] for r in rows if r["campaign"])

    def check(data):
        created = data["createLead"]
        assert created["userErrors"] == []
        lead = created["lead"]
        assert (lead["phoneNumber"], lead["customerName"], lead["status"]) == ("+19995550142", "Ada Lovelace", "CREATED")
        assert lead["campaign"] == {"databaseId": campaign["id"], "name": campaign["name"]}
        listed = gw.gql("{ leads(last: 1) { totalCount edges { cursor node { databaseId } } } }", token=token)
        assert listed["data"]["leads"]["totalCount"] == len(rows) + 1
        assert listed["data"]["leads"]["edges"] == [{"cursor": created["leadEdge"]["cursor"],
                                                     "node": {"databaseId": lead["databaseId"]}}]
    return {"input": {"phoneNumber": "+1 999 555 0142", "campaignId": campaign["id"], "customerName": "Ada Lovelace",
                      "email": "ada@example.com", "idempotencyKey": f"example-{token}"}}, check


#: example file -> (gateway, token, the tenant's rows) -> (variables, check of `data`)
RUNS: dict[str, Callable] = {
    "leads-page.graphql": leads_page,
    "leads-next-page.graphql": leads_next_page,
    "leads-previous-page.graphql": leads_previous_page,
    "leads-page-jump.graphql": leads_page_jump,
    "lead-by-database-id.graphql": lead_by_database_id,
    "campaign-with-leads.graphql": campaign_with_leads,
    "node-by-id.graphql": node_by_id,
    "nodes-by-ids.graphql": nodes_by_ids,
    "create-lead.graphql": create_lead,
}


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_example_runs_against_the_gateway(gateway, fresh_upstream, token, path):
    assert path.name in RUNS, f"no variables for {path.name}: add them to RUNS"
    variables, check = RUNS[path.name](gateway, token, dataset_for_token(token))
    body = gateway.gql(path.read_text(), variables, token=token)
    assert "errors" not in body, body
    assert "warnings" not in body.get("extensions", {}), body
    check(body["data"])
