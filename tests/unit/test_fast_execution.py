"""The direct walk over plain objects (``execution/fast.py``) answers exactly what graphql-core would:
the same data, the same errors at the same paths, the same null propagation; and it does take over the
plain objects (otherwise it would be no faster)."""

from __future__ import annotations

from enum import Enum

import pytest
import strawberry

from gateway.graphql.execution.fast import FastExecutionContext
from gateway.graphql.execution.lean import lean_resolvers


@strawberry.enum
class Color(Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.type
class Item:
    name: str
    color: Color
    tags: list[str]
    maybe: str | None = None


@strawberry.interface
class Named:
    name: str


@strawberry.type
class Thing(Named):
    name: str
    items: list[Item]
    child: Thing | None = None


def good() -> list[Thing]:
    leaf = Thing(name="leaf", items=[])
    return [Thing(name="a", items=[Item(name="i1", color=Color.RED, tags=["x", "y"], maybe="m"),
                                   Item(name="i2", color=Color.BLUE, tags=[])], child=leaf),
            Thing(name="b", items=[], child=None)]


def with_null_name() -> list[Thing]:
    things = good()
    things[0].items[1].name = None  # a non-null violation inside a list: the item's parent becomes null
    return things


def with_bad_enum() -> list[Thing]:
    things = good()
    things[0].items[0].color = "green"  # cannot be serialised
    return things


def with_null_tag() -> list[Thing]:
    things = good()
    things[0].items[0].tags = ["x", None]
    return things


def with_wrong_child() -> list[Thing]:
    things = good()
    things[1].child = Item(name="not a thing", color=Color.RED, tags=[])  # is_type_of rejects it
    return things


def with_subclass_child() -> list[Thing]:
    class Special(Thing):  # is_type_of accepts it, but only graphql-core may decide
        pass

    things = good()
    things[1].child = Special(name="special", items=[])
    return things


DATA = {"good": good, "null name": with_null_name, "bad enum": with_bad_enum, "null tag": with_null_tag,
        "wrong child": with_wrong_child, "subclass child": with_subclass_child}
CURRENT = {"things": good}


@strawberry.type
class Query:
    @strawberry.field
    def things(self) -> list[Thing]:
        return CURRENT["things"]()

    @strawberry.field
    def named(self) -> list[Named]:
        return CURRENT["things"]()


QUERIES = [
    "{ things { name items { name color tags maybe } child { name } } }",
    "{ things { __typename alias: name items { n: name, n2: name } child { child { name } items { color } } } }",
    "query($skip: Boolean!) { things { name @skip(if: $skip) items { name @include(if: $skip) color } } }",
    "{ things { ...T child { ...T } } } fragment T on Thing { name items { ... on Item { tags } } }",
    "{ named { name ... on Thing { items { name } } } }",
]


class CountingContext(FastExecutionContext):
    walks = 0

    def _object(self, *args):
        CountingContext.walks += 1
        return super()._object(*args)


def schemas():
    plain = strawberry.Schema(query=Query)
    fast = strawberry.Schema(query=Query, execution_context_class=CountingContext)
    assert lean_resolvers(fast) > 0
    return plain, fast


def outcome(result):
    return result.data, sorted((e.message, tuple(e.path or ())) for e in result.errors or [])


@pytest.mark.parametrize("data", sorted(DATA))
@pytest.mark.parametrize("query", QUERIES)
def test_same_answer_as_graphql_core(data, query):
    plain, fast = schemas()
    CURRENT["things"] = DATA[data]
    variables = {"skip": True} if "$skip" in query else None
    expected = plain.execute_sync(query, variable_values=variables)
    got = fast.execute_sync(query, variable_values=variables)
    assert outcome(got) == outcome(expected)
    if query == QUERIES[0] and data not in ("good", "subclass child"):
        assert expected.errors, "the first query reads every field: the broken data must break something"


def test_the_walk_takes_over_plain_objects():
    _, fast = schemas()
    CURRENT["things"] = good
    CountingContext.walks = 0
    result = fast.execute_sync(QUERIES[0])
    assert not result.errors
    # one walk per Thing under the root field: everything below it is walked, not executed field by field
    assert CountingContext.walks >= 2
    before = CountingContext.walks
    plain_result = strawberry.Schema(query=Query).execute_sync(QUERIES[0])
    assert plain_result.data == result.data and CountingContext.walks == before


def test_field_middleware_turns_it_off():
    class Spy(strawberry.extensions.SchemaExtension):
        seen: list[str] = []

        def resolve(self, _next, root, info, *args, **kwargs):
            Spy.seen.append(info.field_name)
            return _next(root, info, *args, **kwargs)

    schema = strawberry.Schema(query=Query, extensions=[Spy], execution_context_class=FastExecutionContext)
    lean_resolvers(schema)
    CURRENT["things"] = good
    assert not schema.execute_sync("{ things { name items { name } } }").errors
    assert Spy.seen.count("name") == 2 + 2  # every field still passes through the middleware
