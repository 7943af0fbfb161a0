"""Known documents: parsed once, validated once, like a Node gateway's document cache.

Parsing and graphql-core's validation rules were over 40 % of the CPU of an operation over cached pages
(py-spy, see docs/BENCHMARKS.md), and clients send the same few documents again and again. So the exact
document text maps to its parsed ``DocumentNode``, and a text that passed graphql-core's validation rules
once is not run through them again.

What is *not* cached, because it depends on more than the text: the request limits and the choice of
operation (``QueryLimits``: cost depends on variables, the operation choice on ``operationName``), which
run on every request before this cache is consulted. Only successes are kept: a document that fails to
parse or validate is parsed and validated again (its errors are formatted afresh each time, and failed
documents cannot push out good ones).

Bounded by the total length of the texts held (``GATEWAY_DOCUMENT_CACHE_BYTES``; 0 turns it off), least
recently used first out; one cache per schema (per process). Documents are never mutated by execution,
so one parsed tree is shared by concurrent operations. It steers strawberry through ``compat``;
``build_schema`` leaves it out when ``compat.verdict()`` finds those hooks not working.

Why not strawberry's ``ParserCache`` and ``ValidationCache``: ``ValidationCache`` sets the operation's
errors to the cached result of validating the document alone (its key has no ``operationName`` or
variables), replacing the errors an earlier extension set, so the request limits, whose verdict depends on
both, would be skipped unless registered after it (``tests/integration/test_documents.py`` checks that cost
and the operation choice are still checked on every request of a known document); and both bound their
entries by count, not by bytes (a thousand 20 kB documents is 20 MB).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping

from graphql import DocumentNode
from strawberry.extensions import SchemaExtension

from gateway.graphql.execution import compat


class DocumentCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        # text -> [parsed document, validated?]
        self._entries: OrderedDict[str, list] = OrderedDict()
        # The persisted-document manifests' texts, parsed and validated when loaded: outside the bound, never
        # evicted, replaced whole by ``pin`` (a reload).
        self._pinned: dict[str, list] = {}

    def __len__(self) -> int:
        return len(self._entries) + len(self._pinned)

    def __contains__(self, query: str) -> bool:
        """A known text: it parsed under the same limits (so its size and tokens passed them too)."""
        return query in self._pinned or query in self._entries

    def pin(self, parsed: Mapping[str, DocumentNode]) -> None:
        """Hold these documents (text -> parsed, already validated) for good, instead of the ones pinned before."""
        self._pinned = {text: [document, True] for text, document in parsed.items()}

    def get(self, query: str) -> list | None:
        pinned = self._pinned.get(query)
        if pinned is not None:
            return pinned
        entry = self._entries.get(query)
        if entry is not None:
            self._entries.move_to_end(query)
        return entry

    def put(self, query: str, document: DocumentNode) -> list | None:
        """Keep a parsed document; its entry, or None when it is larger than the whole bound."""
        size = len(query)
        if size > self.max_bytes:
            return None
        if query in self._entries or query in self._pinned:
            return self.get(query)
        entry = self._entries[query] = [document, False]
        self.bytes += size
        while self.bytes > self.max_bytes:
            old, _ = self._entries.popitem(last=False)
            self.bytes -= len(old)
        return entry

    def extension(self) -> Callable[[], SchemaExtension]:
        """A factory for the schema's ``extensions`` list; register it after ``QueryLimits``."""
        return lambda: _CachedDocuments(self)


class _CachedDocuments(SchemaExtension):
    def __init__(self, cache: DocumentCache) -> None:
        self.cache = cache
        self.entry: list | None = None

    def on_parse(self) -> Iterator[None]:
        ec = self.execution_context
        query = ec.query
        self.entry = self.cache.get(query) if query else None
        if self.entry is not None:
            compat.use_parsed_document(ec, self.entry[0])
        yield
        if self.entry is None and query and (document := compat.parsed_document(ec)) is not None:
            self.entry = self.cache.put(query, document)

    def on_validate(self) -> Iterator[None]:
        ec = self.execution_context
        # None: nothing (the request limits, registered earlier) has failed the operation so far.
        undecided = compat.validation_errors(ec) is None and self.entry is not None
        if undecided and self.entry[1]:
            compat.skip_validation(ec)
            yield
            return
        yield
        if undecided and compat.validation_errors(ec) == []:
            self.entry[1] = True
