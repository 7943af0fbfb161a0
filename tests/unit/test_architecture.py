"""The layers of ``README.md#architecture``, checked on the source: every import of a gateway module, at
module level or inside a function, forms a graph with no cycle, and each layer imports only what it may.

    http/ -> graphql/ -> datasource/ (+ cache/) -> leads/       observability/ and errors.py: everyone
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "gateway"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in ROOT.rglob("*.py")}


def _imports(name: str, path: Path) -> set[str]:
    """Every module ``name`` imports (absolute names; ``from pkg import sub`` counts as ``pkg.sub``)."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES)
    return found


GRAPH = {name: {m for m in _imports(name, path) if m in MODULES and m != name} for name, path in MODULES.items()}
THIRD_PARTY = {name: {m.split(".")[0] for m in _imports(name, path) if not m.startswith("gateway")}
               for name, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_the_checker_sees_the_modules_and_their_imports():
    # The checks below are only as good as the graph: it must know the modules and real edges.
    assert {"gateway.app", "gateway.http.view", "gateway.datasource.source", "gateway.leads.filter"} <= set(GRAPH)
    assert "gateway.datasource.source" in GRAPH["gateway.graphql.context"]
    assert "strawberry" in THIRD_PARTY["gateway.graphql.types"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    assert _cycles(GRAPH) == []


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if _within(m, "gateway.leads")))
def test_the_domain_imports_nothing_of_the_other_layers(module):
    assert all(_within(m, "gateway.leads") or m in ("gateway", "gateway.errors") for m in GRAPH[module]), GRAPH[module]
    assert not THIRD_PARTY[module] - {"__future__", "base64", "binascii", "dataclasses", "datetime", "hashlib", "re",
                                      "typing", "urllib", "collections", "json"}, THIRD_PARTY[module]


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if not _within(m, "gateway.graphql")
                                          and not _within(m, "gateway.http") and m not in ("gateway.app", "gateway.cli")))
def test_nothing_below_graphql_uses_strawberry_or_graphql_core(module):
    assert not THIRD_PARTY[module] & {"strawberry", "graphql"}


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if _within(m, "gateway.http")))
def test_http_reaches_data_only_through_graphql(module):
    assert not any(_within(m, "gateway.datasource") for m in GRAPH[module]), GRAPH[module]


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if _within(m, "gateway.graphql")))
def test_graphql_does_not_reach_up_into_http_nor_into_the_cache(module):
    assert not any(_within(m, "gateway.http") for m in GRAPH[module]), GRAPH[module]
    assert not any(_within(m, "gateway.datasource.cache") for m in GRAPH[module]), GRAPH[module]


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if _within(m, "gateway.datasource")
                                          or _within(m, "gateway.observability")))
def test_lower_layers_never_import_upper_ones(module):
    assert not any(_within(m, "gateway.graphql") or _within(m, "gateway.http") or m == "gateway.app"
                   for m in GRAPH[module]), GRAPH[module]


def test_only_the_datasource_speaks_http_to_the_upstream():
    speakers = sorted(m for m, third in THIRD_PARTY.items() if {"httpx", "aiohttp"} & third)
    assert all(_within(m, "gateway.datasource") for m in speakers), speakers
