"""``compat``: library internals only there, checked at start-up; when they are not the tested ones the
gateway runs on strawberry's and graphql-core's own paths, answers the same, and says so once."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest
from graphql import GraphQLObjectType
from starlette.routing import Route

from gateway.config import Settings
from gateway.graphql.execution import compat
from gateway.graphql.execution.fast import PLAIN, FastExecutionContext
from gateway.graphql.schema import build_schema
from gateway.http.view import GatewayGraphQL

GATEWAY = Path(__file__).resolve().parents[2] / "gateway"
INSTALLED = compat.installed_versions()
QUERY = """{ leads(first: 20) { totalCount pageInfo { hasNextPage endCursor }
  edges { cursor node { id databaseId phoneNumber status createdAt variables campaign { id name }
                        secondaryContacts { databaseId status updatedAt } } } } }"""


@pytest.fixture
def fresh_verdict():
    """A verdict computed afresh (as in a new process), and forgotten again after the test."""
    compat.verdict.cache_clear()
    yield
    compat.verdict.cache_clear()


def unknown_versions(monkeypatch) -> None:
    monkeypatch.setattr(compat, "installed_versions", lambda: {**INSTALLED, "graphql-core": "3.4.0"})


def lean_fields(schema) -> int:
    return sum(1 for t in compat.core_schema(schema).type_map.values() if isinstance(t, GraphQLObjectType)
               for f in t.fields.values() if getattr(f.resolve, PLAIN, None) is not None)


def schema_of(gw):
    for route in gw.server.server.config.app.routes:
        if isinstance(route, Route) and route.path == "/graphql":
            view = route.app if isinstance(route.app, GatewayGraphQL) else route.endpoint
            return view.schema
    raise AssertionError("no /graphql route")


# --- the check -----------------------------------------------------------------------------------


def test_the_installed_libraries_are_the_tested_ones(fresh_verdict):
    # Fails after an upgrade out of compat.TESTED: test the fast path with it, then widen the range.
    assert compat.verdict() == compat.Verdict(fast_path=True, hooks=True, problems=())


@pytest.mark.parametrize("name, version", [("graphql-core", "3.3.0"), ("graphql-core", "3.3.9"),
                                           ("strawberry-graphql", "0.341.2"), ("strawberry-graphql", "0.341.10"),
                                           ("graphql-core", "3.3.2.post1")])
def test_versions_in_the_tested_range_pass(name, version):
    assert compat.version_problems({**INSTALLED, name: version}) == []


@pytest.mark.parametrize("name, version", [("graphql-core", "3.4.0"), ("graphql-core", "3.2.6"),
                                           ("graphql-core", "3.3.0a7"), ("graphql-core", "3.3.1rc1"),
                                           ("strawberry-graphql", "0.342.0"), ("strawberry-graphql", "0.341.1"),
                                           ("strawberry-graphql", None), ("strawberry-graphql", "0.341.2.dev0")])
def test_versions_outside_the_tested_range_turn_the_fast_path_off(name, version):
    problems = compat.version_problems({**INSTALLED, name: version})
    assert len(problems) == 1 and name in problems[0]
    verdict = compat.check({**INSTALLED, name: version})
    assert not verdict.fast_path and verdict.hooks  # the hooks are probed, whatever the version


def test_a_changed_executor_signature_turns_the_fast_path_off(monkeypatch):
    class Changed(compat._StrawberryExecutor):
        def execute_fields(self, parent_type, source_value, path, grouped_field_set):  # 3.2-like
            raise AssertionError("never called")

    monkeypatch.setattr(compat, "_StrawberryExecutor", Changed)
    assert any("execute_fields" in p for p in compat._executor_problems())
    assert not compat.check(INSTALLED).fast_path


def test_the_hook_probe_notices_a_hook_strawberry_ignores(monkeypatch):
    assert compat._hook_problems(compat._probe_schema()) == []
    monkeypatch.setattr(compat, "use_parsed_document", lambda ec, document: None)
    monkeypatch.setattr(compat, "skip_validation", lambda ec: None)
    problems = compat._hook_problems(compat._probe_schema())
    assert len(problems) == 2 and "parsed document" in problems[0] and "skipped validation" in problems[1]


def test_the_message_check_notices_reworded_messages(monkeypatch):
    assert compat._message_problems() == []
    monkeypatch.setattr(compat, "BAD_VALUE_PREFIXES", ("Variable value '$",))
    assert compat._message_problems()


# --- the fallback --------------------------------------------------------------------------------


def test_an_unknown_version_runs_on_graphql_cores_executor_and_warns_once(fresh_verdict, monkeypatch, caplog):
    unknown_versions(monkeypatch)
    settings = Settings()
    with caplog.at_level(logging.WARNING, logger="gateway.compat"):
        schemas = [build_schema(settings), build_schema(settings)]
    warnings = [r for r in caplog.records if r.name == "gateway.compat"]
    assert len(warnings) == 1 and "graphql-core 3.4.0" in warnings[0].getMessage()
    assert "graphql-core's own executor" in warnings[0].getMessage()
    for schema in schemas:
        assert not issubclass(schema.execution_context_class, FastExecutionContext)
        assert lean_fields(schema) == 0
        assert schema.documents is not None  # its hooks still work: the document cache stays


def test_the_fallback_answers_what_the_fast_path_answers(fresh_verdict, monkeypatch, make_gateway, fresh_upstream,
                                                         token):
    fast = make_gateway(cache_ttl=0, fast_execution=True)
    assert issubclass(schema_of(fast).execution_context_class, FastExecutionContext)
    assert lean_fields(schema_of(fast)) > 0
    unknown_versions(monkeypatch)
    compat.verdict.cache_clear()
    library = make_gateway(cache_ttl=0, fast_execution=True)
    assert not issubclass(schema_of(library).execution_context_class, FastExecutionContext)
    assert lean_fields(schema_of(library)) == 0
    expected = fast.gql(QUERY, token=token)
    assert not expected.get("errors") and len(expected["data"]["leads"]["edges"]) == 20
    assert library.gql(QUERY, token=token) == expected


def test_the_setting_turns_the_fast_path_off(fresh_verdict):
    schema = build_schema(Settings(fast_execution=False))
    assert not issubclass(schema.execution_context_class, FastExecutionContext) and lean_fields(schema) == 0
    assert issubclass(build_schema(Settings()).execution_context_class, FastExecutionContext)


async def test_without_working_hooks_the_document_cache_is_off_and_the_limits_still_refuse(fresh_verdict,
                                                                                             monkeypatch):
    monkeypatch.setattr(compat, "_hook_problems", lambda schema: ["simulated"])
    schema = build_schema(Settings(max_depth=2))
    assert compat.verdict().fast_path and not compat.verdict().hooks
    assert schema.documents is None
    deep = "{ leads { nodes { campaign { id } } } }"
    for result in (schema.execute_sync(deep), await schema.execute(deep)):
        assert result.data is None
        assert [e.extensions for e in result.errors] == [
            {"code": "QUERY_TOO_COMPLEX", "limitName": "depth", "limit": 2, "measured": 4}]
    two = "query A { __typename } query B { __typename }"
    assert [e.extensions["code"] for e in (await schema.execute(two)).errors] == ["GRAPHQL_VALIDATION_FAILED"]


# --- private APIs only in compat -----------------------------------------------------------------

# Names of strawberry's and graphql-core's internals (and of graphql-core's messages) the gateway uses.
PRIVATE = ("._schema", "_provided_operation_name", "StrawberryGraphQLCoreExecutionContext", "strawberry-definition",
           "_is_default", "is_basic_field", "wrapped_cls", "collect_subfields", "grouped_field_set",
           "new_defer_usages", "middleware_manager", "pre_execution_errors", "graphql_document", "Syntax Error",
           "Variable '$", "is never used.")


def _library_imports(path: Path) -> list[str]:
    """Modules of strawberry or graphql-core imported by ``path`` that are private (a ``_`` part) or that
    are the executor's own (graphql.execution.<sub>, strawberry.schema.schema)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        for name in names:
            parts = name.split(".")
            if parts[0] in ("strawberry", "graphql") and (
                    any(p.startswith("_") for p in parts) or name.startswith("graphql.execution.")
                    or name == "strawberry.schema.schema"):
                found.append(name)
    return found


@pytest.mark.parametrize("path", sorted(p for p in GATEWAY.rglob("*.py") if p.name != "compat.py"),
                         ids=lambda p: str(p.relative_to(GATEWAY)))
def test_no_private_library_api_outside_compat(path):
    text = path.read_text()
    assert [name for name in PRIVATE if name in text] == []
    assert _library_imports(path) == []


def test_the_private_api_check_sees_them_in_compat():
    compat_py = GATEWAY / "graphql" / "execution" / "compat.py"
    text = compat_py.read_text()
    assert all(name in text for name in PRIVATE)
    assert "strawberry.schema.schema" in _library_imports(compat_py)


# --- the suite's second execution ----------------------------------------------------------------


def test_the_graphql_modules_run_under_both_executions():
    from tests.conftest import BOTH_EXECUTIONS

    integration = Path(__file__).resolve().parents[1] / "integration"
    assert sorted(name for name in BOTH_EXECUTIONS if not (integration / name).is_file()) == []


def test_make_gateway_starts_gateways_of_its_execution(make_gateway, execution):
    fast = issubclass(schema_of(make_gateway(cache_ttl=0)).execution_context_class, FastExecutionContext)
    assert fast is (execution == "fast")
