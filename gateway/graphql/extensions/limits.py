"""Limits on what one GraphQL operation may ask for, checked before anything runs.

Every limit is a *request error*: the operation is not executed, no upstream call is made, and the
response carries one error per exceeded limit::

    {"message": "...", "extensions": {"code": "QUERY_TOO_COMPLEX", "limitName": "cost",
                                      "limit": 2500, "measured": 10301}}

- ``documentBytes``: ``max_document_bytes`` (GATEWAY_MAX_DOCUMENT_BYTES), UTF-8 bytes of ``query``;
- ``tokens``: ``max_tokens`` (GATEWAY_MAX_TOKENS), lexical tokens of the document, comments included
  (what graphql-core's parser option ``max_tokens`` counts);
- ``depth``: ``max_depth`` (GATEWAY_MAX_DEPTH), fields on the longest path of the operation that runs,
  fragments expanded (``{ leads { nodes { id } } }`` is 3);
- ``aliases``: ``max_aliases`` (GATEWAY_MAX_ALIASES), aliased fields of that operation, a fragment's
  aliases counted at every spread of it;
- ``cost``: ``max_cost`` (GATEWAY_MAX_COST), the formula below;
- ``writes``: ``max_writes`` (GATEWAY_MAX_WRITES), mutation fields of the operation (each creates a lead:
  one or two upstream POSTs and a lookup), aliases and fragment spreads counted each time.

``documentBytes`` and ``tokens`` are checked by the HTTP view before the document is parsed (the parser
also gets ``max_tokens``, through strawberry's ``MaxTokensLimiter``, as a backstop); ``depth``,
``aliases`` and ``cost`` by the ``QueryLimits`` schema extension on the parsed document, before
graphql-core's validation rules run. Introspection is turned off (``introspection=False``) by
strawberry's ``DisableIntrospection`` (graphql-core's ``NoSchemaIntrospectionCustomRule``), which
leaves ``__typename`` and federation's ``_service { sdl }`` working.

Cost
----
Each field ``f`` has a *list size* ``size(f)``:

- ``edges`` and ``nodes`` of a connection (a type named ``...Connection``): the connection field's
  ``first``, else its ``last``, else 15 (the upstream's default page); read from literals or variables
  (a variable's default applies when it is not sent), negative values count as 0;
- ``Query.nodes(ids)``: ``len(ids)``; ``_entities(representations)``: ``len(representations)``;
- ``Lead.secondaryContacts``: 3 (a fixed estimate per lead: they arrive inside the lead's record);
- ``PageCursors.around``: 5 (it holds at most five pages);
- every other field: 1.

The cost of an operation is the sum, over every field returning an object, interface or union (the
objects the gateway has to build), of the product of the list sizes on its path from the root,
the field's own included::

    cost = sum over object-returning fields f of  prod over g in path(f) of size(g)

so ``leads(first: 100) { nodes { campaign { leads(first: 100) { nodes { id } } } } }`` costs
``1 (leads) + 100 (nodes) + 100 (campaign) + 100 (leads) + 100·100 (nodes) = 10301``, while
``leads(first: 100) { totalCount nodes { id } }`` costs ``101``. Scalars are free; introspection
fields (``__schema``, ``__type``, ``__typename``) count for neither depth nor cost.

Fragments are measured once each (per connection size around them) and reused, so a document of
fragments that spread each other twice, level after level, is measured in linear time. strawberry's
own ``QueryDepthLimiter`` and ``MaxAliasesLimiter`` re-walk every spread: on 22 such levels (about 250
tokens) they took 13 s and 4 s, each further level doubling it; hence this walk, which also reports the
measured values. (strawberry's ``MaxAliasesLimiter`` does count aliases inside fragments, at every spread:
the counting rule is the same.)

The extension also enforces GraphQL's GetOperation(): a document with several operations and no
``operationName`` is a request error (strawberry would quietly run the first one).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    Source,
    TokenKind,
    Undefined,
    ValueNode,
    VariableNode,
    get_named_type,
    is_composite_type,
    value_from_ast_untyped,
)
from graphql.language import Lexer
from graphql.type import GraphQLInterfaceType, GraphQLObjectType
from strawberry.extensions import DisableIntrospection, MaxTokensLimiter, SchemaExtension

from gateway.graphql.execution import compat

CODE = "QUERY_TOO_COMPLEX"
DEFAULT_CONNECTION_SIZE = 15  # the upstream's default page, what a connection without first/last returns
SECONDARY_CONTACTS_SIZE = 3
PAGE_CURSORS_AROUND_SIZE = 5


@dataclass(frozen=True)
class Limits:
    max_document_bytes: int
    max_tokens: int
    max_depth: int
    max_aliases: int
    max_cost: int
    max_writes: int = 10

    @classmethod
    def from_settings(cls, settings: Any) -> Limits:
        return cls(max_document_bytes=settings.max_document_bytes, max_tokens=settings.max_tokens,
                   max_depth=settings.max_depth, max_aliases=settings.max_aliases, max_cost=settings.max_cost,
                   max_writes=settings.max_writes)


def limit_error(name: str, limit: int, measured: int, message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": CODE, "limitName": name, "limit": limit, "measured": measured})


# --- document size and tokens (before parsing) -------------------------------------------------


def document_bytes(query: str) -> int:
    # surrogatepass: a JSON body may carry lone surrogates ("\ud800"); they still take bytes.
    return len(query.encode("utf-8", "surrogatepass"))


def count_tokens(query: str, stop_after: int | None = None) -> int:
    """Lexical tokens of ``query``, comments included (graphql-core's ``max_tokens`` count).

    Stops counting once past ``stop_after``; a lexing error ends the count (the parser reports it).
    """
    lexer = Lexer(Source(query))
    count = 0
    try:
        while True:
            previous = lexer.token
            token = lexer.advance()
            skipped = previous.next  # comments the lexer stepped over are chained in between
            while skipped is not None and skipped is not token:
                count += 1
                skipped = skipped.next
            if token.kind is TokenKind.EOF:
                return count
            count += 1
            if stop_after is not None and count > stop_after:
                return count
    except GraphQLError:
        return count


def check_document(query: str, limits: Limits) -> list[GraphQLError]:
    """The limits checked on the raw ``query`` string: its size, then its tokens."""
    size = document_bytes(query)
    if size > limits.max_document_bytes:
        return [limit_error("documentBytes", limits.max_document_bytes, size,
                            f"The GraphQL document is {size} bytes; the limit is {limits.max_document_bytes}.")]
    # The byte limit bounds this count; lexing the whole document gives the exact figure.
    tokens = count_tokens(query)
    if tokens > limits.max_tokens:
        return [limit_error("tokens", limits.max_tokens, tokens,
                            f"The GraphQL document has {tokens} tokens; the limit is {limits.max_tokens}.")]
    return []


# --- depth, aliases and cost (on the parsed document) ------------------------------------------


@dataclass(frozen=True)
class Measure:
    depth: int
    aliases: int
    cost: int
    writes: int = 0


_ZERO = Measure(0, 0, 0)


def _connection_size(args: Callable[[str], Any]) -> int:
    sizes = [v for v in (args("first"), args("last")) if isinstance(v, int) and not isinstance(v, bool)]
    return max(0, max(sizes)) if sizes else DEFAULT_CONNECTION_SIZE


def _length(value: Any) -> int:
    if value is Undefined or value is None:
        return 0
    return len(value) if isinstance(value, list) else 1  # a single value is coerced to a list of one


def _is_connection(type_name: str | None) -> bool:
    return bool(type_name) and type_name.endswith("Connection")


class _Walker:
    """Measures selection sets; fragments are measured once per (fragment, parent type, connection size)."""

    def __init__(self, schema: GraphQLSchema, document: DocumentNode, variables: Mapping[str, Any]) -> None:
        self.schema = schema
        self.variables = variables
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        self.memo: dict[tuple[str, int | None], Measure] = {}
        self.active: set[str] = set()  # fragments being measured (a cycle is invalid; it counts 0 here)
        self.read_variables = False  # a measured argument held a variable: the measure depends on the request

    def args(self, node: FieldNode) -> Callable[[str], Any]:
        def get(name: str) -> Any:
            for arg in node.arguments or ():
                if arg.name.value == name:
                    if _has_variable(arg.value):
                        self.read_variables = True
                    try:
                        return value_from_ast_untyped(arg.value, self.variables)
                    except (ValueError, TypeError):  # e.g. an Int literal too long for int(); invalid anyway
                        return Undefined
            return Undefined
        return get

    def selection_set(self, selection_set: SelectionSetNode | None, parent: Any, connection_size: int | None
                      ) -> Measure:
        if selection_set is None:
            return _ZERO
        depth = aliases = cost = writes = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                m = self.field(selection, parent, connection_size)
            elif isinstance(selection, InlineFragmentNode):
                cond = selection.type_condition
                inner = self.schema.get_type(cond.name.value) if cond else parent
                m = self.selection_set(selection.selection_set, inner or parent, connection_size)
            elif isinstance(selection, FragmentSpreadNode):
                m = self.spread(selection.name.value, parent, connection_size)
            else:  # pragma: no cover - the grammar has no other selection
                continue
            depth, aliases, cost, writes = (max(depth, m.depth), aliases + m.aliases, cost + m.cost,
                                            writes + m.writes)
        return Measure(depth, aliases, cost, writes)

    def spread(self, name: str, parent: Any, connection_size: int | None) -> Measure:
        fragment = self.fragments.get(name)
        if fragment is None or name in self.active:
            return _ZERO  # unknown fragment or a cycle: validation rejects the document anyway
        key = (name, connection_size)
        if key not in self.memo:
            self.active.add(name)
            try:
                inner = self.schema.get_type(fragment.type_condition.name.value) or parent
                self.memo[key] = self.selection_set(fragment.selection_set, inner, connection_size)
            finally:
                self.active.discard(name)
        return self.memo[key]

    def field(self, node: FieldNode, parent: Any, connection_size: int | None) -> Measure:
        alias = 1 if node.alias else 0
        name = node.name.value
        if name.startswith("__"):
            # Introspection: no upstream work, no depth; its aliases still count.
            return Measure(0, alias + self.selection_set(node.selection_set, None, None).aliases, 0)
        definition = None
        if isinstance(parent, (GraphQLObjectType, GraphQLInterfaceType)):
            definition = parent.fields.get(name)
        if definition is None:
            # Unknown field (validation will say so): count it like a plain object field.
            inner = self.selection_set(node.selection_set, None, None)
            own = 1 if node.selection_set else 0
            return Measure(1 + inner.depth, alias + inner.aliases, own + inner.cost)
        named = get_named_type(definition.type)
        size = self.list_size(node, parent.name, name, connection_size)
        child_connection = _connection_size(self.args(node)) if _is_connection(named.name) else None
        inner = self.selection_set(node.selection_set, named, child_connection)
        own = 1 if is_composite_type(named) else 0
        writes = 1 if parent is self.schema.mutation_type else 0
        return Measure(1 + inner.depth, alias + inner.aliases, size * (own + inner.cost), writes)

    def list_size(self, node: FieldNode, parent_name: str, name: str, connection_size: int | None) -> int:
        if _is_connection(parent_name) and name in ("edges", "nodes"):
            return connection_size if connection_size is not None else DEFAULT_CONNECTION_SIZE
        if parent_name == "Query" and name == "nodes":
            return _length(self.args(node)("ids"))
        if parent_name == "Query" and name == "_entities":
            return _length(self.args(node)("representations"))
        if parent_name == "Lead" and name == "secondaryContacts":
            return SECONDARY_CONTACTS_SIZE
        if parent_name == "PageCursors" and name == "around":
            return PAGE_CURSORS_AROUND_SIZE
        return 1  # any other field; the schema has no other list of objects


def _has_variable(node: ValueNode) -> bool:
    if isinstance(node, VariableNode):
        return True
    if isinstance(node, ListValueNode):
        return any(_has_variable(v) for v in node.values)
    if isinstance(node, ObjectValueNode):
        return any(_has_variable(f.value) for f in node.fields)
    return False


def select_operation(document: DocumentNode, operation_name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name:
        return next((o for o in operations if o.name and o.name.value == operation_name), None)
    return operations[0] if len(operations) == 1 else None


def measure(schema: GraphQLSchema, document: DocumentNode, operation_name: str | None = None,
            variables: Mapping[str, Any] | None = None) -> Measure | None:
    """Depth, aliases and cost of the operation that would run; ``None`` when none can be chosen."""
    measured = _measure(schema, document, operation_name, variables)
    return measured[0] if measured else None


def _measure(schema: GraphQLSchema, document: DocumentNode, operation_name: str | None,
             variables: Mapping[str, Any] | None) -> tuple[Measure, bool] | None:
    """The measure, and whether a variable's value went into it (False: it holds for every request)."""
    operation = select_operation(document, operation_name)
    if operation is None:
        return None
    values: dict[str, Any] = {}
    for definition in operation.variable_definitions or ():
        if definition.default_value is not None:
            try:
                values[definition.variable.name.value] = value_from_ast_untyped(definition.default_value)
            except (ValueError, TypeError):
                pass
    values.update(variables or {})
    root = {"query": schema.query_type, "mutation": schema.mutation_type,
            "subscription": schema.subscription_type}[operation.operation.value]
    walker = _Walker(schema, document, values)
    return walker.selection_set(operation.selection_set, root, None), walker.read_variables


def check_operation(schema: GraphQLSchema, document: DocumentNode, operation_name: str | None,
                    variables: Mapping[str, Any] | None, limits: Limits) -> list[GraphQLError]:
    return _check_operation(schema, document, operation_name, variables, limits)[0]


def _check_operation(schema: GraphQLSchema, document: DocumentNode, operation_name: str | None,
                     variables: Mapping[str, Any] | None, limits: Limits) -> tuple[list[GraphQLError], bool]:
    """The limit errors, and whether they hold for every request of this document and operation name."""
    measured = _measure(schema, document, operation_name, variables if isinstance(variables, Mapping) else None)
    if measured is None:
        return [], False
    m, read_variables = measured
    errors = []
    if m.depth > limits.max_depth:
        errors.append(limit_error("depth", limits.max_depth, m.depth,
                                  f"The query is {m.depth} fields deep; the limit is {limits.max_depth}."))
    if m.aliases > limits.max_aliases:
        errors.append(limit_error("aliases", limits.max_aliases, m.aliases,
                                  f"The query uses {m.aliases} aliases (fragments counted at every spread); "
                                  f"the limit is {limits.max_aliases}."))
    if m.writes > limits.max_writes:
        errors.append(limit_error("writes", limits.max_writes, m.writes,
                                  f"The mutation makes {m.writes} writes; the limit is {limits.max_writes} per "
                                  "operation."))
    if m.cost > limits.max_cost:
        errors.append(limit_error("cost", limits.max_cost, m.cost,
                                  f"The query may return {m.cost} objects (page sizes multiplied through nested "
                                  f"lists); the limit is {limits.max_cost}. Ask for smaller pages."))
    return errors, not read_variables


class QueryLimits(SchemaExtension):
    """Depth, aliases and cost of the operation, checked after parsing and before validation.

    ``compat.reject_operation`` stops the operation: strawberry then skips its validation step and
    answers these errors, so an over-limit document never reaches graphql-core's rules.
    """

    def __init__(self, limits: Limits, passed: StaticPasses | None = None) -> None:
        self.limits = limits
        self.passed = passed

    def on_validate(self) -> Iterator[None]:
        ec = self.execution_context
        document = compat.parsed_document(ec)
        # Not "is None": an empty list is a cached validation's "valid", which says nothing about limits.
        if document is not None and not compat.validation_errors(ec):
            errors = _operation_choice_errors(ec, document)
            key = (ec.query, ec.operation_name)
            if not errors and (self.passed is None or key not in self.passed):
                errors, static = _check_operation(compat.core_schema(ec.schema), document, ec.operation_name,
                                                  ec.variables, self.limits)
                if not errors and static and self.passed is not None and ec.query:
                    self.passed.add(key)
            if errors:
                compat.reject_operation(ec, errors)
        yield


class StaticPasses:
    """(document text, operation name) pairs whose depth, aliases and cost passed without any variable's value
    going into them: they pass on every request, so known documents (persisted ones above all) are not walked
    again. Bounded: forgotten all at once when full (walking again is correct, only slower)."""

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._keys: set[tuple[str, str | None]] = set()

    def __contains__(self, key: tuple[str, str | None]) -> bool:
        return key in self._keys

    def add(self, key: tuple[str, str | None]) -> None:
        if len(self._keys) >= self.max_entries:
            self._keys.clear()
        self._keys.add(key)


def _operation_choice_errors(ec: Any, document: DocumentNode) -> list[GraphQLError]:
    """GraphQL's GetOperation(): several operations and no ``operationName`` is a request error.

    strawberry would silently run the first one (its ``operation_name`` falls back to the first
    operation's name), so a GET could not even be sure which operation type it is executing.
    """
    provided = compat.provided_operation_name(ec)
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if provided is None and len(operations) > 1:
        return [GraphQLError("Must provide operation name if query contains multiple operations.",
                             extensions={"code": "GRAPHQL_VALIDATION_FAILED"})]
    return []


def limit_extensions(settings: Any) -> list[Callable[[], SchemaExtension]]:
    """The schema extensions enforcing ``settings``' limits (factories: one instance per operation)."""
    limits = Limits.from_settings(settings)
    extensions: list[Callable[[], SchemaExtension]] = [
        functools.partial(MaxTokensLimiter, max_token_count=limits.max_tokens),
        functools.partial(QueryLimits, limits, StaticPasses()),
    ]
    if not settings.introspection:
        extensions.append(DisableIntrospection)
    return extensions
