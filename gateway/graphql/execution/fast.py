"""A faster walk over plain objects, with graphql-core's own executor as the fallback.

graphql-core executes every field through the same general machinery (a resolve-info object, a path
entry, awaitable checks, the completion dispatch), which was most of the CPU of an operation over cached
pages: about 10 µs a field, a couple of hundred fields for 15 leads. Below the root resolvers, this
schema's objects are plain: each field is an attribute (``lean.py`` gave them a single ``getattr``).

So when graphql-core is about to execute the fields of such an object, this executor first walks them
directly: attribute, then null check, list, leaf serialisation or nested plain object, the same steps
in the same order as the spec's CompleteValue. The moment anything is not that simple (a field with a
resolver or arguments, an abstract type, ``null`` in a non-null position, a serialisation failure, any
exception), the walk is abandoned and graphql-core executes that object from the start, so errors,
their paths and null propagation are exactly graphql-core's. The walk has no side effects to undo: it
only reads attributes, and it records nothing until it has succeeded.

Off when field middleware runs (a strawberry extension with a ``resolve`` hook expects every field).
The hook into graphql-core's executor, and what is read of strawberry's types, is in ``compat.py``:
``build_schema`` uses this only when ``compat.verdict()`` says those internals are the tested ones.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from graphql import (
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    Undefined,
)

from gateway.graphql.execution import compat

PLAIN = "_gateway_attribute"  # set by lean.py on a resolver that is a plain getattr of this attribute


class _Bail(Exception):
    """Not simple enough for the direct walk: graphql-core executes this object instead."""


def _plans(schema: GraphQLSchema) -> dict[GraphQLObjectType, tuple[type | None, dict[str, tuple[str, Any]]]]:
    """Per object type: the Python class its ``is_type_of`` accepts without question (None: no check) and
    its plain fields, GraphQL name -> (attribute, return type). Cached on the schema."""
    plans = getattr(schema, "_gateway_plans", None)
    if plans is None:
        plans = {}
        for t in schema.type_map.values():
            if isinstance(t, GraphQLObjectType) and not t.name.startswith("__"):
                plain = {name: (attribute, f.type) for name, f in t.fields.items()
                         if (attribute := getattr(f.resolve, PLAIN, None)) is not None}
                origin = compat.type_origin(t)
                if plain and (t.is_type_of is None or origin is not None):
                    # strawberry's is_type_of (types with interfaces) accepts an instance of the class itself
                    plans[t] = (None if t.is_type_of is None else origin, plain)
        schema._gateway_plans = plans  # type: ignore[attr-defined]
    return plans


class _EnumNames(dict):
    """Python enum member -> GraphQL name, as strawberry's enum ``serialize`` would answer (it scans)."""

    types: frozenset = frozenset()


def _enum_names(enum_type: GraphQLEnumType) -> _EnumNames:
    """Built once per enum type and kept on it (types live as long as their schema)."""
    names = enum_type.__dict__.get("_gateway_names")
    if names is not None:
        return names
    names = _EnumNames()
    wrapped = compat.enum_class(enum_type)  # strawberry's enums; others keep their coerce_output_value
    if wrapped is not None:
        for name, value in enum_type.values.items():  # the first matching name wins, as in strawberry's
            for member in wrapped:
                if member.value == value.value:
                    names.setdefault(member, name)
        names.types = frozenset({wrapped})
    enum_type._gateway_names = names  # type: ignore[attr-defined]
    return names


#: An attribute a subscription puts on an event's payload that every subscriber of that state receives (the
#: same object): a dict in which each (document, variables) is executed once for all of them (Hasura's
#: "one result per cohort": 100 subscribers of a window cost one execution per change, not 100).
SHARED_RESULTS = "_gateway_shared_results"


def share_results(payload: Any) -> Any:
    """Mark ``payload`` as one shared by every subscriber of a state (see ``SHARED_RESULTS``)."""
    if payload is not None and not hasattr(payload, SHARED_RESULTS):
        setattr(payload, SHARED_RESULTS, {})
    return payload


def _variables_key(values: dict | None) -> str:
    return orjson.dumps(values or {}, option=orjson.OPT_SORT_KEYS, default=repr).decode()


async def _shared(future: asyncio.Future):
    """The result another subscriber's execution of the same event is computing."""
    return await asyncio.shield(future)


class FastExecutionContext(compat.WalkingExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plans = None if self.field_middleware else _plans(self.schema)

    def execute_operation(self, *args: Any, **kwargs: Any):
        """A subscription event whose payload is shared (``share_results``) is executed once per document and
        variables: the subscribers of one state are the same caller, so the result is the same for each.
        The parsed document is the same object for every request of one text (``documents.py``), and the
        memo holds it, so its id cannot be another document's."""
        shared = getattr(self.root_value, SHARED_RESULTS, None)
        if shared is None:
            return super().execute_operation(*args, **kwargs)
        key = (id(self.operation), _variables_key(self.variable_values))
        hit = shared.get(key)
        if hit is not None and hit[0] is self.operation:
            return _shared(hit[1]) if isinstance(hit[1], asyncio.Future) else hit[1]
        result = super().execute_operation(*args, **kwargs)
        if self.is_awaitable(result):  # nested reads: the others wait for this one's
            future = asyncio.ensure_future(result)
            shared[key] = (self.operation, future)
            return _shared(future)
        shared[key] = (self.operation, result)
        return result

    def walk(self, parent_type: GraphQLObjectType, source: Any, fields) -> dict[str, Any] | None:
        if self._plans is not None and parent_type in self._plans:
            try:
                return self._object(parent_type, source, fields)
            except Exception:  # noqa: BLE001 - _Bail or a failure: graphql-core does it properly
                pass
        return None

    def _object(self, object_type: GraphQLObjectType, source: Any, fields) -> dict[str, Any]:
        entry = self._plans.get(object_type)  # type: ignore[union-attr]
        if entry is None:
            raise _Bail
        origin, plan = entry
        if origin is not None and type(source) is not origin:
            raise _Bail  # is_type_of would have to decide
        result: dict[str, Any] = {}
        for response_name, details in fields.items():
            node = compat.field_node(details)
            name = node.name.value
            if name == "__typename":
                result[response_name] = object_type.name
                continue
            field = plan.get(name)
            if field is None or node.arguments:
                raise _Bail
            result[response_name] = self._value(field[1], details, getattr(source, field[0]))
        return result

    def _value(self, return_type: Any, details, value: Any) -> Any:
        if isinstance(return_type, GraphQLNonNull):
            if value is None:
                raise _Bail  # a non-null violation: graphql-core reports it and propagates the null
            return_type = return_type.of_type
        elif value is None:
            return None
        if isinstance(return_type, GraphQLList):
            if not isinstance(value, (list, tuple)):
                raise _Bail
            item_type = return_type.of_type
            return [self._value(item_type, details, item) for item in value]
        if isinstance(return_type, GraphQLEnumType):
            names = _enum_names(return_type)
            name = names.get(value) if type(value) in names.types else None
            if name is not None:
                return name
        if isinstance(return_type, (GraphQLScalarType, GraphQLEnumType)):
            serialized = return_type.coerce_output_value(value)  # what graphql-core's complete_leaf_value calls
            if serialized is None or serialized is Undefined:
                raise _Bail
            return serialized
        if isinstance(return_type, GraphQLObjectType):
            fields = self.subfields(return_type, details)
            if fields is None:
                raise _Bail  # @defer: graphql-core's business
            return self._object(return_type, value, fields)
        raise _Bail  # interfaces and unions: graphql-core resolves the runtime type
