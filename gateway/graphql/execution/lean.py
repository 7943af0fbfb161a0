"""Plain attribute fields resolved by one ``getattr``.

strawberry resolves a field without a resolver through three calls (its wrapper, ``get_result``, the
configured default resolver); an answer of 15 leads has a couple of hundred such fields, so those calls
showed in the profile. Each such field gets a single closure instead; fields with a resolver, field
extensions or a custom default resolver keep strawberry's. Which fields those are is strawberry's
business: ``compat.default_attribute`` asks it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import GraphQLObjectType
from strawberry import Schema

from gateway.graphql.execution import compat
from gateway.graphql.execution.fast import PLAIN


def _attribute(name: str) -> Callable[..., Any]:
    def resolve(source: Any, _info: Any) -> Any:
        return getattr(source, name)

    setattr(resolve, PLAIN, name)  # fast.py walks such fields without calling this
    return resolve


def lean_resolvers(schema: Schema) -> int:
    """Swap the resolver of every plain attribute field; returns how many were swapped."""
    if schema.config.default_resolver is not getattr:
        return 0
    swapped = 0
    for graphql_type in compat.core_schema(schema).type_map.values():
        if not isinstance(graphql_type, GraphQLObjectType) or graphql_type.name.startswith("__"):
            continue
        for field in graphql_type.fields.values():
            attribute = compat.default_attribute(field)
            if attribute is not None:
                field.resolve = _attribute(attribute)
                swapped += 1
    return swapped
