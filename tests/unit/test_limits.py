"""The measures behind the request limits (gateway/graphql/limits.py) on parsed documents: cost,
depth, aliases, tokens and bytes, against hand-computed values and a brute-force model."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytest
from graphql import parse
from graphql.language.parser import Parser
from hypothesis import given, settings, strategies as st

from gateway.config import Settings
from gateway.graphql.extensions.limits import Limits, Measure, check_document, check_operation, count_tokens, measure
from gateway.graphql.schema import schema

SCHEMA = schema._schema


def m(query: str, variables: dict | None = None, operation_name: str | None = None) -> Measure:
    result = measure(SCHEMA, parse(query), operation_name, variables)
    assert result is not None
    return result


# --- cost: the formula on hand-computed examples ------------------------------------------------


@pytest.mark.parametrize("query,cost", [
    # The docstring's example: 1 + 100 + 100 + 100 + 100*100.
    ("{ leads(first: 100) { nodes { campaign { leads(first: 100) { nodes { id } } } } } }", 10301),
    ("{ leads(first: 100) { totalCount nodes { id } } }", 101),
    # Scalars are free; pageInfo is one object, not multiplied by the page size.
    ("{ leads(first: 50) { totalCount pageInfo { hasNextPage } } }", 2),
    # edges and their node both count.
    ("{ leads(first: 10) { edges { cursor node { id } } } }", 21),
    # last counts like first; neither: 15.
    ("{ leads(last: 7) { nodes { id } } }", 8),
    ("{ leads { nodes { id } } }", 16),
    ("{ leads(first: 0) { nodes { id } } }", 1),
    ("{ leads(first: -5) { nodes { id } } }", 1),  # refused by the resolver anyway; never negative
    # secondaryContacts: 3 per lead.
    ("{ leads(first: 4) { nodes { secondaryContacts { id } } } }", 1 + 4 + 12),
    # pageCursors: around holds up to 5.
    ("{ leads(first: 4) { pageCursors { first { page } around { page } } } }", 1 + 1 + 1 + 5),
    # Campaign.leads is a connection too, multiplied by the campaigns above it.
    ("{ campaign(databaseId: 1) { leads(first: 30) { nodes { campaign { name } } } } }", 1 + 1 + 30 + 30),
    # nodes(ids): one per id.
    ('{ nodes(ids: ["a", "b", "c"]) { id ... on Lead { campaign { name } } } }', 3 + 3),
    ('{ node(id: "a") { id } }', 1),
    # Introspection costs nothing.
    ("{ __schema { types { name fields { name } } } __typename }", 0),
    ("{ _service { sdl } }", 1),
])
def test_cost_examples(query, cost):
    assert m(query).cost == cost


def test_cost_reads_variables_and_their_defaults():
    query = "query($a: Int, $b: Int = 20) { leads(first: $a) { nodes { campaign { leads(last: $b) { nodes { id } } } } } }"
    assert m(query, {"a": 10}).cost == 1 + 10 + 10 + 10 + 200
    assert m(query, {"a": 10, "b": 2}).cost == 1 + 10 + 10 + 10 + 20
    assert m(query, {"a": None}).cost == 1 + 15 + 15 + 15 + 15 * 20  # null: the default page
    assert m(query, {"a": "ten"}).cost == 1 + 15 + 15 + 15 + 15 * 20  # not an Int: coercion will refuse it
    ids = "query($ids: [ID!]!) { nodes(ids: $ids) { id } }"
    assert m(ids, {"ids": ["x"] * 40}).cost == 40
    assert m(ids, {"ids": "x"}).cost == 1  # a single value is coerced to a list of one


def test_entities_count_their_representations():
    query = "query($r: [_Any!]!) { _entities(representations: $r) { ... on Lead { campaign { name } } } }"
    assert m(query, {"r": [{"__typename": "Lead", "id": str(i)} for i in range(50)]}).cost == 100


def test_fragments_and_inline_fragments_cost_as_if_written_out():
    written = "{ leads(first: 20) { nodes { campaign { leads(first: 5) { edges { node { id } } } } } } }"
    fragments = """{ leads(first: 20) { ...Outer } }
        fragment Outer on LeadConnection { nodes { ... on Lead { campaign { ...Camp } } } }
        fragment Camp on Campaign { leads(first: 5) { ...Inner } }
        fragment Inner on LeadConnection { edges { ... { node { id } } } }"""
    assert m(written) == m(fragments) == Measure(depth=7, aliases=0, cost=1 + 20 + 20 + 20 + 100 + 100)


def test_a_fragment_takes_the_page_size_of_each_connection_it_is_spread_in():
    query = """{ a: leads(first: 2) { ...N } b: leads(first: 30) { ...N } }
               fragment N on LeadConnection { nodes { id } }"""
    assert m(query).cost == (1 + 2) + (1 + 30)


# --- depth and aliases --------------------------------------------------------------------------


def test_depth_counts_fields_on_the_longest_path():
    assert m("{ leads { totalCount } }").depth == 2
    assert m("{ leads { nodes { campaign { name } } } __typename }").depth == 4
    assert m("{ ...F } fragment F on Query { leads { ... on LeadConnection { nodes { id } } } }").depth == 3
    assert m("{ __schema { types { fields { type { ofType { ofType { name } } } } } } }").depth == 0


def test_aliases_count_every_spread():
    query = """{ ...A ...A leads { ...B } }
               fragment A on Query { x: __typename y: leads { z: totalCount } }
               fragment B on LeadConnection { ...C ...C ...C }
               fragment C on LeadConnection { t: totalCount }"""
    assert m(query).aliases == 3 + 3 + 3


def test_doubling_fragments_are_measured_in_linear_time():
    levels = 60
    defs = " ".join(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels))
    query = "{ ...F0 } " + defs + f" fragment F{levels} on Query {{ a: leads(first: 100) {{ nodes {{ id }} }} }}"
    started = time.perf_counter()
    result = m(query)
    assert time.perf_counter() - started < 0.5
    assert result == Measure(depth=3, aliases=2 ** levels, cost=101 * 2 ** levels)


def test_fragment_cycles_and_unknown_names_do_not_hang_or_crash():
    query = """{ ...A ...Missing nope { deeper { still } } }
               fragment A on Query { leads { ...B } } fragment B on LeadConnection { nodes { ...A2 } }
               fragment A2 on Lead { campaign { leads { ...B } } }"""
    result = m(query)
    assert result.depth >= 3 and result.cost > 0


# --- choosing the operation, checking against limits ---------------------------------------------


def test_the_named_operation_is_measured():
    doc = "query Small { leads(first: 1) { nodes { id } } } query Big { leads(first: 99) { nodes { id } } }"
    assert m(doc, operation_name="Small").cost == 2
    assert m(doc, operation_name="Big").cost == 100
    assert measure(SCHEMA, parse(doc)) is None  # ambiguous: GetOperation() refuses it, not the limits
    assert measure(SCHEMA, parse(doc), "Nope") is None


def test_check_operation_reports_every_exceeded_limit():
    limits = Limits.from_settings(Settings(max_depth=3, max_aliases=1, max_cost=10))
    doc = parse("{ a: leads(first: 20) { b: nodes { campaign { name } } } }")
    errors = check_operation(SCHEMA, doc, None, None, limits)
    assert [(e.extensions["limitName"], e.extensions["limit"], e.extensions["measured"]) for e in errors] == [
        ("depth", 3, 4), ("aliases", 1, 2), ("cost", 10, 41)]
    assert {e.extensions["code"] for e in errors} == {"QUERY_TOO_COMPLEX"}
    assert check_operation(SCHEMA, doc, None, None, Limits.from_settings(Settings())) == []


# --- tokens and bytes ---------------------------------------------------------------------------


def test_document_bytes_are_utf8_bytes():
    limits = Limits.from_settings(Settings(max_document_bytes=64, max_tokens=10))
    assert check_document("{ __typename }" + " " * 50, limits) == []
    [error] = check_document("{ __typename }\n#" + "é" * 30, limits)  # 46 characters, 76 bytes
    assert error.extensions == {"code": "QUERY_TOO_COMPLEX", "limitName": "documentBytes", "limit": 64, "measured": 76}
    [error] = check_document("{ a b c d e f g h i }", limits)
    assert error.extensions["limitName"] == "tokens" and error.extensions["measured"] == 11
    assert check_document("{ a } #\ud800", limits) == []  # a lone surrogate (JSON allows it) still has a size


_names = st.sampled_from(["a", "leads", "_x", "b2", "__typename"])
_values = st.sampled_from(['1', '-3', '2.5', '"s"', '"""block\n"""', 'true', 'null', 'ENUM', '[1, 2]', '{k: 1}', '$v'])


@st.composite
def _documents(draw, depth: int = 3) -> str:
    def selection(level: int) -> str:
        parts = []
        for _ in range(draw(st.integers(1, 3))):
            name = draw(_names)
            if draw(st.booleans()):
                name = f"{draw(_names)}: {name}"
            if draw(st.booleans()):
                name += "(" + ", ".join(f"{draw(_names)}: {draw(_values)}" for _ in range(draw(st.integers(1, 2)))) + ")"
            if draw(st.booleans()):
                name += "\n# a comment " + draw(st.text(alphabet="abc é", max_size=5)) + "\n"
            if level < depth and draw(st.booleans()):
                name += " { " + selection(level + 1) + " }"
            parts.append(name)
        return " ".join(parts)

    return "# leading comment\nquery Q($v: Int = 3) { " + selection(1) + " }\n# trailing"


@settings(max_examples=200, deadline=None)
@given(_documents())
def test_token_count_is_graphql_cores(query):
    """What the gateway reports as `measured` is what the parser's max_tokens enforces."""
    parser = Parser(query)
    parser.parse_document()
    assert count_tokens(query) == parser.token_count
    limits = Limits(max_document_bytes=10**6, max_tokens=parser.token_count, max_depth=1, max_aliases=1, max_cost=1)
    assert check_document(query, limits) == []
    over = Limits(max_document_bytes=10**6, max_tokens=parser.token_count - 1, max_depth=1, max_aliases=1, max_cost=1)
    assert check_document(query, over)[0].extensions["measured"] == parser.token_count
    with pytest.raises(Exception, match="more than"):
        parse(query, max_tokens=parser.token_count - 1)


# --- property: the memoised walk equals a brute-force expansion ---------------------------------


LEAF = {"LeadConnection": "totalCount", "LeadEdge": "cursor", "Lead": "id", "Campaign": "name",
        "PageInfo": "hasNextPage", "SecondaryContact": "id"}


@dataclass
class Sel:
    """A field of a generated query, with what the formula says about it."""

    name: str  # as written, arguments included
    type_name: str  # its named return type; "" for a scalar
    size: int  # its list size
    children: list[Sel] = field(default_factory=list)
    alias: str | None = None


def _brute(sels: list[Sel], multiplier: int = 1) -> tuple[int, int, int]:
    depth = aliases = cost = 0
    for s in sels:
        d, a, c = _brute(s.children, multiplier * s.size)
        depth = max(depth, 1 + d)
        aliases += a + (1 if s.alias else 0)
        cost += c + (multiplier * s.size if s.type_name else 0)
    return depth, aliases, cost


@st.composite
def _tree(draw, type_name: str, connection: int | None, budget: int) -> list[Sel]:
    """Random selections on ``type_name`` (``connection``: the page size when it is a connection)."""
    options: list = {
        "Query": ["leads", "campaign"],
        "LeadConnection": ["totalCount", "pageInfo", "nodes", "edges"],
        "LeadEdge": ["cursor", "node"],
        "Lead": ["id", "databaseId", "campaign", "secondaryContacts"],
        "Campaign": ["name", "leads"],
        "PageInfo": ["hasNextPage"],
        "SecondaryContact": ["id"],
    }[type_name]
    sels = []
    for name in draw(st.lists(st.sampled_from(options), min_size=1, max_size=3)):
        alias = draw(st.none() | st.just(f"x{draw(st.integers(0, 999))}"))
        if name == "leads":
            page = draw(st.none() | st.integers(0, 40))
            written = "leads" if page is None else f"leads({draw(st.sampled_from(['first', 'last']))}: {page})"
            s = Sel(written, "LeadConnection", 1, alias=alias)
            inner = 15 if page is None else page
            s.children = draw(_tree("LeadConnection", inner, budget - 1)) if budget > 0 else [Sel("totalCount", "", 1)]
        elif name in ("nodes", "edges"):
            s = Sel(name, "Lead" if name == "nodes" else "LeadEdge", connection, alias=alias)
        elif name == "node":
            s = Sel(name, "Lead", 1, alias=alias)
        elif name == "campaign":
            s = Sel("campaign(databaseId: 1)" if type_name == "Query" else "campaign", "Campaign", 1, alias=alias)
        elif name == "secondaryContacts":
            s = Sel(name, "SecondaryContact", 3, alias=alias)
        elif name == "pageInfo":
            s = Sel(name, "PageInfo", 1, alias=alias)
        else:
            s = Sel(name, "", 1, alias=alias)
        if s.type_name and not s.children:
            s.children = draw(_tree(s.type_name, None, budget - 1)) if budget > 0 else [Sel(LEAF[s.type_name], "", 1)]
        sels.append(s)
    return sels


def _render(sels: list[Sel], type_name: str, draw, fragments: list[str]) -> str:
    parts = []
    for s in sels:
        text = (f"{s.alias}: " if s.alias else "") + s.name
        if s.children:
            inner = _render(s.children, s.type_name, draw, fragments)
            how = draw(st.sampled_from(["plain", "fragment", "inline", "twice"]))
            if how == "plain":
                text += " { " + inner + " }"
            elif how == "inline":
                text += " { ... on " + s.type_name + " { " + inner + " } }"
            else:
                name = f"F{len(fragments)}"
                fragments.append(f"fragment {name} on {s.type_name} {{ {inner} }}")
                # Spread twice: merged by the executor, but counted twice by the limits (as strawberry does).
                text += " { ..." + name + (" ..." + name if how == "twice" else "") + " }"
                if how == "twice":
                    s.children = s.children + s.children
        parts.append(text)
    return " ".join(parts)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_measure_equals_brute_force_expansion(data):
    sels = data.draw(_tree("Query", None, 4))
    fragments: list[str] = []
    query = "{ " + _render(sels, "Query", data.draw, fragments) + " } " + " ".join(fragments)
    depth, aliases, cost = _brute(sels)
    assert m(query) == Measure(depth, aliases, cost), query
