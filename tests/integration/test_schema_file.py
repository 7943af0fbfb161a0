"""schema.graphql is generated from the code, honours the public contract, and describes everything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from graphql import GraphQLEnumType, GraphQLInputObjectType, GraphQLInterfaceType, GraphQLObjectType

from tests.conftest import skip_or_fail

ROOT = Path(__file__).resolve().parents[2]
FEDERATION_OWN = ("_", "link__", "federation__")  # types the federation spec defines, not ours to describe


def shared_dir() -> Path:
    return Path(os.environ.get("LEADS_SHARED_DIR", ROOT.parent / "shared"))


def test_checked_in_schema_is_what_the_code_prints():
    printed = subprocess.run([sys.executable, "-m", "gateway.cli", "schema"], capture_output=True, text=True,
                             check=True, timeout=60).stdout
    assert (ROOT / "schema.graphql").read_text() == printed, \
        "schema.graphql drifted from the code: run `leads-gateway schema > schema.graphql`"


# The contract and every extension of it the gateway implements (writes: issue 13).
CONTRACTS = ("contract.graphql", "contract-writes.graphql", "contract-live.graphql")


def test_schema_honours_the_contract():
    tool = shared_dir() / "tools" / "check_contract.py"
    if not tool.exists():
        skip_or_fail(f"the contract checker is not at {tool} (set LEADS_SHARED_DIR)")
    out = subprocess.run([sys.executable, str(tool), str(ROOT / "schema.graphql"),
                          *(str(shared_dir() / name) for name in CONTRACTS)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "schema honours the contract" in out.stdout


def test_every_type_field_argument_and_enum_value_has_a_description():
    from gateway.graphql.schema import schema as gateway_schema

    schema = gateway_schema._schema  # the graphql-core schema schema.graphql is printed from (drift test above)
    missing = []
    for name, t in schema.type_map.items():
        if name.startswith(FEDERATION_OWN) or name in ("String", "Int", "Boolean", "ID", "Float"):
            continue
        if not t.description:
            missing.append(name)
        if isinstance(t, (GraphQLObjectType, GraphQLInterfaceType, GraphQLInputObjectType)):
            for fname, f in t.fields.items():
                if fname.startswith("_"):
                    continue
                if not f.description:
                    missing.append(f"{name}.{fname}")
                for aname, a in getattr(f, "args", {}).items():
                    if not a.description:
                        missing.append(f"{name}.{fname}({aname})")
        if isinstance(t, GraphQLEnumType):
            missing += [f"{name}.{v}" for v, ev in t.values.items() if not ev.description]
    assert missing == []
