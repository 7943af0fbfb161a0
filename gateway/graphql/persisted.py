"""Persisted documents: manifests, Apollo's automatic persisted queries (APQ) and the safelist.

A request may name its document instead of sending it (``protocol.DocumentRef``): ``documentId``
(``sha256:<hex>`` or a manifest id), Apollo's ``extensions.persistedQuery.sha256Hash``, Relay's ``doc_id``.
``PersistedDocuments.resolve`` turns every request into the text that runs, or refuses it with one of the
contract's codes:

- manifests (``GATEWAY_PERSISTED_DOCUMENTS``): Apollo's persisted query manifest and flat ``{id: text}`` maps
  (relay-compiler, graphql-codegen), merged; each document is parsed, validated and measured against the
  limits when loaded (``load_manifests``: a bad one refuses the start, naming the file and the id), and
  ``reload()`` swaps in a new set at once (SIGHUP; a bad set keeps the old one);
- APQ (``GATEWAY_APQ``): a text sent with its sha256 is registered (``register``, once it ran without a
  request error) in a ``DocumentStore`` (``datasource/cache/documents.py``: in process, and in Redis when the
  cache backend is Redis, so that every instance knows it);
- the safelist (``GATEWAY_ALLOW_ARBITRARY_DOCUMENTS=false``): only manifest documents run, by id or by their
  exact text; nothing is registered.

Ids are looked up in the manifests first (by id, then by the sha256 of a text), then among APQ registrations.
A text sent with an id must match it (``PERSISTED_QUERY_HASH_MISMATCH``); the stored text runs exactly as
stored. ``PERSISTED_QUERY_NOT_FOUND`` and ``PERSISTED_QUERY_NOT_SUPPORTED`` answered to an APQ hash are 200
whatever the media type (``always_ok``): Apollo Client's persisted-queries link turns APQ off for good on a
400, and then sends every text; Apollo Router answers them the same way.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from graphql import GraphQLError, GraphQLSchema, OperationDefinitionNode, parse

from gateway.config import ConfigError, Settings
from gateway.graphql.extensions.limits import Limits, check_document, check_operation
from gateway.graphql.execution import compat

log = logging.getLogger("gateway.persisted")

SHA256_PREFIX = "sha256:"
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
APOLLO_FORMAT = "apollo-persisted-query-manifest"

MANIFEST, APQ, TEXT = "manifest", "apq", "text"  # where a document came from (metrics, logs)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class PersistedError(Exception):
    """A request refused by the persisted-document rules: answered as a request error with ``code``."""

    def __init__(self, code: str, message: str, *, always_ok: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.always_ok = always_ok  # 200 whatever the media type (what Apollo's clients expect)

    def body(self) -> dict:
        return {"errors": [{"message": self.message, "extensions": {"code": self.code}}]}


class DocumentStore(Protocol):
    """Where APQ registrations live (``datasource/cache/documents.py``)."""

    async def get(self, digest: str) -> str | None: ...

    async def put(self, digest: str, text: str) -> None: ...


# --- manifests -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Manifest:
    """The manifests' documents: by id, and by the sha256 of their text."""

    by_id: Mapping[str, str] = field(default_factory=dict)
    by_hash: Mapping[str, str] = field(default_factory=dict)
    parsed: Mapping[str, Any] = field(default_factory=dict)  # text -> DocumentNode, parsed and validated once

    def __len__(self) -> int:
        return len(self.by_id)

    def find(self, ref: str) -> str | None:
        """The text of a manifest id, a ``sha256:<hex>`` id or a bare sha256 hex (APQ)."""
        text = self.by_id.get(ref)
        if text is None:
            digest = ref[len(SHA256_PREFIX):] if ref.startswith(SHA256_PREFIX) else ref
            text = self.by_hash.get(digest.lower())
        return text


def read_manifest(path: str | Path) -> dict[str, str]:
    """``{id: text}`` of one manifest file, Apollo's format or a flat map; ``ConfigError`` naming the file."""
    where = f"GATEWAY_PERSISTED_DOCUMENTS: {path}"
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"{where}: cannot read it ({e.strerror or e})") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(f"{where}: not JSON ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a JSON object (Apollo's manifest or {{id: document}})")
    if data.get("format") == APOLLO_FORMAT:
        if data.get("version") != 1:
            raise ConfigError(f"{where}: only version 1 of {APOLLO_FORMAT} is known, got {data.get('version')!r}")
        operations = data.get("operations")
        if not isinstance(operations, list):
            raise ConfigError(f"{where}: `operations` must be a list")
        documents: dict[str, str] = {}
        for i, op in enumerate(operations):
            if not (isinstance(op, dict) and isinstance(op.get("id"), str) and op["id"]
                    and isinstance(op.get("body"), str)):
                raise ConfigError(f"{where}: operations[{i}] needs a string `id` and `body`")
            _add(documents, op["id"], op["body"], where)
        return documents
    documents = {}
    for key, text in data.items():
        if not isinstance(text, str) or not key:
            raise ConfigError(f"{where}: entry {key!r} must map a non-empty id to a document string")
        _add(documents, key, text, where)
    return documents


def _add(documents: dict[str, str], key: str, text: str, where: str) -> None:
    if documents.get(key, text) != text:
        raise ConfigError(f"{where}: id {key!r} names two different documents")
    documents[key] = text


def load_manifests(paths: Iterable[str], schema: Any, limits: Limits, *, introspection: bool = True) -> Manifest:
    """Every manifest merged, each document parsed, validated against ``schema`` and measured against
    ``limits``; ``ConfigError`` with the file, the id and the problem for the first bad one."""
    by_id: dict[str, str] = {}
    origin: dict[str, str] = {}
    for path in paths:
        for key, text in read_manifest(path).items():
            if by_id.get(key, text) != text:
                raise ConfigError(f"GATEWAY_PERSISTED_DOCUMENTS: id {key!r} names different documents in "
                                  f"{origin[key]} and {path}")
            by_id[key] = text
            origin.setdefault(key, str(path))
    core = compat.core_schema(schema)
    parsed: dict[str, Any] = {}
    for key, text in by_id.items():
        if text not in parsed:
            problem = _problem(core, text, limits, introspection, parsed)
            if problem:
                raise ConfigError(f"GATEWAY_PERSISTED_DOCUMENTS: {origin[key]}: document {key!r} is not valid "
                                  f"against the schema: {problem}")
    return Manifest(by_id=by_id, by_hash={sha256_hex(t): t for t in by_id.values()}, parsed=parsed)


def _problem(core: GraphQLSchema, text: str, limits: Limits, introspection: bool, parsed: dict) -> str | None:
    """What is wrong with one manifest document (None: it runs), keeping its parsed tree in ``parsed``."""
    errors = check_document(text, limits)
    if errors:
        return errors[0].message
    try:
        document = parse(text, max_tokens=limits.max_tokens)
    except GraphQLError as e:
        return e.message
    errors = compat.validate_document(core, document, introspection=introspection)
    if errors:
        return "; ".join(e.message for e in errors[:3])
    for operation in document.definitions:
        if isinstance(operation, OperationDefinitionNode):
            name = operation.name.value if operation.name else None
            errors = check_operation(core, document, name, None, limits)
            if errors:
                return f"operation {name or '(anonymous)'}: {errors[0].message}"
    parsed[text] = document
    return None


# --- resolving a request -------------------------------------------------------------------------


@dataclass(frozen=True)
class DocumentRef:
    """The id a request names its document by: ``via`` is ``documentId``, ``doc_id`` or ``persistedQuery``
    (Apollo's ``extensions.persistedQuery``, whose ``version`` it keeps)."""

    value: str
    via: str
    version: Any = 1


@dataclass(frozen=True)
class Resolved:
    """A request's document: the text that runs, where it came from, and the sha256 to register it under
    once it ran without a request error (APQ), if any."""

    text: str
    source: str
    register: str | None = None


class PersistedDocuments:
    """The rules of ``CONTRACT.md``, "Persisted documents", over the manifests and the APQ store."""

    def __init__(self, settings: Settings, schema: Any, limits: Limits, store: DocumentStore | None = None) -> None:
        self.paths = tuple(settings.persisted_documents)
        self.apq = settings.apq
        self.safelist = not settings.allow_arbitrary_documents
        self.introspection = settings.introspection
        self.schema = schema
        self.limits = limits
        self.store = store  # set once the cache backend is open (the app's lifespan)
        self.manifest = load_manifests(self.paths, schema, limits, introspection=self.introspection)

    def reload(self) -> Manifest:
        """Read the manifest files again and swap them in at once; ``ConfigError`` keeps the current set."""
        self.manifest = load_manifests(self.paths, self.schema, self.limits, introspection=self.introspection)
        return self.manifest

    async def resolve(self, query: str | None, ref: DocumentRef | None) -> Resolved:
        """The text a request runs (``query``: the text it sent, if any; ``ref``: the id it named, if any), or
        ``PersistedError``."""
        manifest = self.manifest  # one set for the whole request, even if a reload swaps it meanwhile
        if ref is None:
            assert query is not None  # the protocol refuses a request with neither
            if not self.safelist:
                return Resolved(query, TEXT)
            if manifest.by_hash.get(sha256_hex(query)) != query:
                raise PersistedError("QUERY_NOT_IN_SAFELIST", "Only the documents of the persisted-document "
                                     "manifests run here: send a document id (`documentId`, `doc_id` or "
                                     "`extensions.persistedQuery`).")
            return Resolved(query, MANIFEST)  # a manifest document sent as text
        if ref.via == "persistedQuery" and ref.version != 1:
            raise PersistedError("PERSISTED_QUERY_NOT_SUPPORTED",
                                 f"Persisted query version {ref.version!r} is not supported: use version 1.")
        text = manifest.find(ref.value)
        if text is not None:
            if query is not None and query != text:
                raise PersistedError("PERSISTED_QUERY_HASH_MISMATCH", _mismatch(ref))
            return Resolved(text, MANIFEST)
        if self.safelist:
            if query is not None:
                raise PersistedError("QUERY_NOT_IN_SAFELIST", "This document is not in the persisted-document "
                                     "manifests, and only those run here.")
            raise PersistedError("PERSISTED_QUERY_NOT_IN_LIST", f"No persisted document has the id {ref.value!r}.")
        digest = _digest(ref)
        if query is not None and digest is not None:  # a text with its hash: APQ's registration
            if sha256_hex(query) != digest:
                raise PersistedError("PERSISTED_QUERY_HASH_MISMATCH", _mismatch(ref))
            register = digest if self.apq and self.store is not None else None
            return Resolved(query, TEXT, register=register)
        if not self.apq:
            if ref.via == "persistedQuery":
                raise PersistedError("PERSISTED_QUERY_NOT_SUPPORTED", "PersistedQueryNotSupported", always_ok=True)
            raise PersistedError("PERSISTED_QUERY_NOT_FOUND", f"No persisted document has the id {ref.value!r}.")
        text = await self.store.get(digest) if digest is not None and self.store is not None else None
        if text is None:
            if ref.via == "persistedQuery":  # Apollo's clients then send the text: keep the exact message
                raise PersistedError("PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound", always_ok=True)
            raise PersistedError("PERSISTED_QUERY_NOT_FOUND", f"No persisted document has the id {ref.value!r}: "
                                 "send its text with it once (APQ) or add it to a manifest.")
        return Resolved(text, APQ)

    async def register(self, digest: str, text: str) -> None:
        if self.store is not None:
            await self.store.put(digest, text)


def _digest(ref: DocumentRef) -> str | None:
    """The sha256 hex an id names (``sha256:<hex>``, or an APQ hash); None for another kind of id."""
    value = ref.value
    if value.startswith(SHA256_PREFIX):
        value = value[len(SHA256_PREFIX):]
    elif ref.via != "persistedQuery":
        return None
    return value.lower() if _HEX64.fullmatch(value) else None


def _mismatch(ref: DocumentRef) -> str:
    return f"The document sent does not match its id {ref.value!r}: it must be the exact text the id names."
