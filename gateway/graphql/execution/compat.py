"""Every use of a private API of strawberry or graphql-core, and the start-up check that they still hold.

The fast path (``fast.py``, ``lean.py``) overrides graphql-core's executor and reads where strawberry keeps
its definitions; the request limits and the document cache steer strawberry through its execution
context; the error formatter recognises graphql-core's messages. None of that is promised by either
library: graphql-core's executor signature changed three times between 3.2.6 and 3.3. So it all lives
here, each behind a small named function, and ``verdict()`` checks once per process that the installed
versions are the ones the fast path was tested with and that what it relies on is still there:

- ``fast_path``: versions in ``TESTED`` and the executor / definition internals in place. Otherwise
  ``build_schema`` keeps strawberry's resolvers and graphql-core's own executor.
- ``hooks``: strawberry honours a parsed document, a skipped validation and errors set by an extension
  (probed on a tiny schema, whatever the versions). Otherwise the document cache is left out and the
  limits refuse an operation by raising its first error instead.

Any problem is logged once, as one warning.
"""

from __future__ import annotations

import functools
import inspect
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from importlib import metadata
from typing import Any

import strawberry
from graphql import (
    GraphQLEnumType,
    GraphQLError,
    GraphQLField,
    GraphQLObjectType,
    GraphQLSchema,
    MiddlewareManager,
    NoSchemaIntrospectionCustomRule,
    build_schema,
    graphql_sync,
    parse,
    specified_rules,
    validate,
)
from strawberry.extensions import SchemaExtension

try:  # private: the execution context strawberry hands to graphql-core, which the fast path subclasses
    from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext as _StrawberryExecutor
except ImportError:  # pragma: no cover - only on an untested strawberry, which verdict() reports
    _StrawberryExecutor = None  # type: ignore[assignment,misc]
try:  # private: strawberry's validation step (graphql-core's rules plus its own MaybeNull and OneOf rules)
    from strawberry.schema.schema import validate_document as _strawberry_validate
except ImportError:  # pragma: no cover - the rules strawberry adds are then left out
    _strawberry_validate = validate  # type: ignore[assignment]
try:  # graphql-core's executor class (public from 3.3 on, ``ExecutionContext`` before)
    from graphql.execution import Executor
except ImportError:  # pragma: no cover - as below
    Executor = None  # type: ignore[assignment,misc]
try:  # private: the shapes graphql-core's field collection returns
    from graphql.execution.collect_fields import CollectedFields as _CollectedFields
    from graphql.execution.collect_fields import FieldDetails as _FieldDetails
except ImportError:  # pragma: no cover - as above
    _CollectedFields = _FieldDetails = None  # type: ignore[assignment,misc]

log = logging.getLogger("gateway.compat")

# The releases the fast path was written for and tested with: [lowest, first untested) per distribution.
TESTED: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "strawberry-graphql": ((0, 341, 2), (0, 342, 0)),
    "graphql-core": ((3, 3, 0), (3, 4, 0)),
}
_RELEASE = re.compile(r"(\d+)\.(\d+)\.(\d+)(?:\.post\d+)?")  # final releases only: no alpha, beta, rc, dev

DEFINITION = "strawberry-definition"  # the key of a GraphQL type's or field's ``extensions`` strawberry uses


# --- versions ------------------------------------------------------------------------------------


def installed_versions() -> dict[str, str | None]:
    """The installed version of each distribution in ``TESTED`` (None: not installed)."""
    found: dict[str, str | None] = {}
    for name in TESTED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def version_problems(versions: Mapping[str, str | None]) -> list[str]:
    problems = []
    for name, (low, high) in TESTED.items():
        version = versions.get(name)
        match = _RELEASE.fullmatch(version or "")
        release = tuple(int(x) for x in match.groups()) if match else None
        if release is None or not low <= release < high:
            problems.append(f"{name} {version} is outside the tested range "
                            f">={'.'.join(map(str, low))},<{'.'.join(map(str, high))}")
    return problems


# --- the executor hook (fast.py) -----------------------------------------------------------------


class WalkingExecutionContext(_StrawberryExecutor or object):  # type: ignore[misc]
    """strawberry's execution context, letting ``walk`` answer an object's fields before graphql-core does.

    Wraps graphql-core 3.3's ``Executor.execute_fields(parent_type, source_value, path, grouped_field_set,
    position_context)``, ``collect_subfields`` and ``middleware_manager`` (all private to its executor).
    """

    field_middleware: bool  # a strawberry extension with a ``resolve`` hook wants to see every field

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        manager = self.middleware_manager
        self.field_middleware = manager is not None and bool(manager.middlewares)

    def execute_fields(self, parent_type, source_value, path, grouped_field_set, position_context):  # type: ignore[override]
        walked = self.walk(parent_type, source_value, grouped_field_set)
        if walked is not None:
            return walked
        return super().execute_fields(parent_type, source_value, path, grouped_field_set, position_context)

    def walk(self, parent_type: GraphQLObjectType, source: Any, fields: Mapping[str, Any]) -> dict | None:
        """The object's response (response name -> value), or None to let graphql-core execute it."""
        return None

    def subfields(self, return_type: GraphQLObjectType, details: Any) -> Mapping[str, Any] | None:
        """The fields selected on a nested object (as ``walk`` gets them); None when ``@defer`` is involved."""
        collected = self.collect_subfields(return_type, details)
        return None if collected.new_defer_usages else collected.grouped_field_set


def field_node(details: Any) -> Any:
    """The ``FieldNode`` of one entry of a grouped field set (a list of graphql-core's ``FieldDetails``)."""
    return details[0].node


def _executor_problems() -> list[str]:
    if _StrawberryExecutor is None or _CollectedFields is None or Executor is None:
        return ["strawberry's execution context or graphql-core's collect_fields cannot be imported"]
    expected = {
        "execute_fields": ["self", "parent_type", "source_value", "path", "grouped_field_set", "position_context"],
        "collect_subfields": ["self", "return_type", "field_details_list"],
    }
    problems = [f"graphql-core's Executor.{name} is not ({', '.join(params[1:])})"
                for name, params in expected.items()
                if list(inspect.signature(getattr(_StrawberryExecutor, name, None) or (lambda: None)).parameters)
                != params]
    if not issubclass(_StrawberryExecutor, Executor) or "middleware_manager" not in inspect.signature(
            Executor.__init__).parameters or not hasattr(MiddlewareManager(), "middlewares"):
        problems.append("graphql-core's Executor takes no middleware_manager with middlewares")
    if not ({"grouped_field_set", "new_defer_usages"} <= set(_CollectedFields._fields)
            and "node" in _FieldDetails._fields):
        problems.append("graphql-core's CollectedFields / FieldDetails changed shape")
    return problems


# --- strawberry's definitions (lean.py, fast.py) -------------------------------------------------


def core_schema(schema: strawberry.Schema) -> GraphQLSchema:
    """The graphql-core schema a strawberry schema wraps (strawberry's private ``Schema._schema``)."""
    return schema._schema


def default_attribute(field: GraphQLField) -> str | None:
    """The attribute strawberry's default resolver reads for ``field``; None when the field has its own
    resolver, field extensions or permissions (strawberry's ``is_basic_field`` and ``_is_default``)."""
    definition = (field.extensions or {}).get(DEFINITION)
    if definition is not None and definition.is_basic_field and getattr(field.resolve, "_is_default", False):
        return definition.python_name
    return None


def type_origin(object_type: GraphQLObjectType) -> type | None:
    """The Python class strawberry built ``object_type`` from (its definition's ``origin``)."""
    return getattr((object_type.extensions or {}).get(DEFINITION), "origin", None)


def enum_class(enum_type: GraphQLEnumType) -> type[Enum] | None:
    """The Python enum behind a strawberry enum type (``wrapped_cls`` of strawberry's enum type)."""
    wrapped = getattr(enum_type, "wrapped_cls", None)
    return wrapped if isinstance(wrapped, type) and issubclass(wrapped, Enum) else None


@strawberry.enum
class _Colour(Enum):
    RED = "red"


@strawberry.type
class _Probe:
    a: int = 1
    b: int = 2
    colour: _Colour = _Colour.RED


def _definition_problems(schema: strawberry.Schema) -> list[str]:
    try:
        probe = core_schema(schema).query_type
        ok = (type_origin(probe) is _Probe and default_attribute(probe.fields["a"]) == "a"
              and enum_class(probe.fields["colour"].type.of_type) is _Colour)
    except Exception:  # noqa: BLE001 - any failure means the same: not what lean.py and fast.py expect
        ok = False
    return [] if ok else ["strawberry no longer marks default-resolved fields, type origins or enum classes "
                          "as lean.py and fast.py expect"]


# --- the execution context of an operation (limits.py, documents.py) -------------------------------


def parsed_document(ec: Any) -> Any:
    """The operation's parsed document, None before parsing (strawberry's ``graphql_document``)."""
    return getattr(ec, "graphql_document", None)  # gone: the limits cannot measure, the request still runs


def use_parsed_document(ec: Any, document: Any) -> None:
    """From ``on_parse``, before its yield: strawberry then runs ``document`` without parsing the text."""
    ec.graphql_document = document


def validation_errors(ec: Any) -> list[GraphQLError] | None:
    """None while nothing has decided the operation; after validation, its errors ([] if valid)
    (strawberry's ``pre_execution_errors``)."""
    return getattr(ec, "pre_execution_errors", None)


def skip_validation(ec: Any) -> None:
    """From ``on_validate``, before its yield: strawberry then skips graphql-core's validation rules."""
    ec.pre_execution_errors = []


def reject_operation(ec: Any, errors: list[GraphQLError]) -> None:
    """From ``on_validate``, before its yield: answer ``errors`` as request errors; nothing executes.

    Through ``pre_execution_errors`` (every error, validation skipped); without working hooks, raising the
    first one, which strawberry turns into a request error too.
    """
    if not verdict().hooks:
        raise errors[0]
    ec.pre_execution_errors = errors


def validate_document(schema: GraphQLSchema, document: Any, *, introspection: bool = True) -> list[GraphQLError]:
    """The errors strawberry's validation step would find in ``document`` (graphql-core's specified rules plus
    strawberry's own, through its ``validate_document``), with introspection refused when it is off (what
    ``DisableIntrospection`` adds): for documents checked ahead of any request (persisted manifests)."""
    rules = tuple(specified_rules) + (() if introspection else (NoSchemaIntrospectionCustomRule,))
    return _strawberry_validate(schema, document, rules)


def provided_operation_name(ec: Any) -> str | None:
    """The ``operationName`` of the request itself (strawberry's ``operation_name`` falls back to the first
    operation's name; its private ``_provided_operation_name`` does not)."""
    return getattr(ec, "_provided_operation_name", ec.operation_name)


class _Steer(SchemaExtension):
    """The probe's extension: does to the execution context what limits.py and documents.py do."""

    how: dict[str, Any] = {}  # what the next probe operation should do
    seen: dict[str, Any] = {}  # what it saw

    def on_parse(self) -> Iterator[None]:
        if "document" in self.how:
            use_parsed_document(self.execution_context, self.how["document"])
        yield

    def on_validate(self) -> Iterator[None]:
        ec = self.execution_context
        self.seen["provided"] = provided_operation_name(ec)
        if "errors" in self.how:
            ec.pre_execution_errors = self.how["errors"]  # what reject_operation does when the hooks work
        elif self.how.get("skip"):
            skip_validation(ec)
        yield
        self.seen["validated"] = validation_errors(ec)


class _ProbeSchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        pass  # the probe's errors are expected: not worth a log line


def _probe_schema() -> strawberry.Schema:
    return _ProbeSchema(query=_Probe, extensions=[_Steer])


def _hook_problems(schema: strawberry.Schema) -> list[str]:
    def run(query: str, operation_name: str | None = None, **how: Any) -> Any:
        _Steer.how, _Steer.seen = how, {}
        return schema.execute_sync(query, root_value=_Probe(), operation_name=operation_name)

    probe_error = GraphQLError("probe")
    try:
        hooks = {
            "a parsed document is used as it is": run("{ a }", document=parse("{ b }")).data == {"b": 2},
            "a skipped validation is skipped": (run("{ a nope }", skip=True).data == {"a": 1}
                                                and _Steer.seen["validated"] == []),
            "a valid document validates to []": not run("{ a }").errors and _Steer.seen["validated"] == [],
            "early errors stop the operation": run("{ a }", errors=[probe_error]).errors == [probe_error],
            "the provided operation name is kept apart": (
                not run("query A { a }").errors and _Steer.seen["provided"] is None
                and run("query A { a }", "A").data == {"a": 1} and _Steer.seen["provided"] == "A"),
        }
    except Exception as e:  # noqa: BLE001
        return [f"strawberry's execution-context hooks failed: {e!r}"]
    finally:
        _Steer.how, _Steer.seen = {}, {}
    return [f"strawberry's execution context: no longer true that {what}" for what, ok in hooks.items() if not ok]


# --- graphql-core's messages (errors.py) ---------------------------------------------------------

# graphql-core's messages for argument and variable values that do not fit their types.
BAD_VALUE_PREFIXES = ("Variable '$", "Argument '", "Expected value of type", "Expected type", "Value '",
                      "Int cannot", "String cannot", "Boolean cannot", "ID cannot", "Enum '", "Field '")
# Messages that start like a value problem but are about the document ("Variable '$v' is never used.").
DOCUMENT_PROBLEM_SUFFIXES = ("is never used.", "is not defined.", "is not defined by operation",
                             "cannot be non-input type")


def is_syntax_error(message: str) -> bool:
    """A parse failure, by graphql-core's message."""
    return message.startswith("Syntax Error")


def is_bad_value(message: str) -> bool:
    """An argument or variable value that does not fit its type, by graphql-core's message."""
    return message.startswith(BAD_VALUE_PREFIXES) and not message.endswith(DOCUMENT_PROBLEM_SUFFIXES)


def _message_problems() -> list[str]:
    schema = build_schema("type Query { f(a: Int): Int }")
    bad = graphql_sync(schema, "query($v: Int) { f(a: $v) }", variable_values={"v": "x"}).errors or []
    unused = validate(schema, parse("query($v: Int) { f }"))
    try:
        parse("{")
        syntax = ""
    except GraphQLError as e:
        syntax = e.message
    if (len(bad) == 1 and is_bad_value(bad[0].message) and len(unused) == 1 and not is_bad_value(unused[0].message)
            and is_syntax_error(syntax)):
        return []
    return ["graphql-core's error messages changed: BAD_USER_INPUT and GRAPHQL_PARSE_FAILED may be "
            "reported as GRAPHQL_VALIDATION_FAILED"]


# --- the verdict ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    fast_path: bool  # fast.py and lean.py may run
    hooks: bool  # the document cache and the limits' pre_execution_errors may be used
    problems: tuple[str, ...]


def check(versions: Mapping[str, str | None]) -> Verdict:
    """The verdict for these installed ``versions`` (the structural checks probe what is really installed)."""
    probe = _probe_schema()
    fast = version_problems(versions) + _executor_problems() + _definition_problems(probe)
    hooks = _hook_problems(probe)
    return Verdict(fast_path=not fast, hooks=not hooks, problems=tuple(fast + hooks + _message_problems()))


@functools.cache
def verdict() -> Verdict:
    """``check`` of the installed versions, once per process; any problem is logged once, as a warning."""
    result = check(installed_versions())
    if result.problems:
        log.warning("library internals differ from what the gateway was tested with: %s. %s%s",
                    "; ".join(result.problems),
                    "" if result.fast_path else "Fast execution is off: graphql-core's own executor runs. ",
                    "" if result.hooks else "The document cache is off.")
    return result
