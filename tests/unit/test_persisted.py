"""Persisted documents, piece by piece: the ids a request names its document by (``http/protocol.py``), manifest
loading in both formats with every kind of bad file or document (``graphql/persisted.py``), the rules that turn
a request into the text it runs, the APQ store (``datasource/cache/documents.py``, in memory and on the real
Redis), and the limits walk done once for a document no variable can change."""

from __future__ import annotations

import hashlib
import json
import secrets

import pytest
from graphql import parse

from gateway.config import ConfigError, Settings
from gateway.datasource.cache.documents import DocumentStore
from gateway.datasource.cache.keys import KeyMaker
from gateway.datasource.cache.stores import MemoryStore, RedisStore
from gateway.graphql.extensions.limits import Limits, QueryLimits, StaticPasses
from gateway.graphql.persisted import (
    APQ,
    MANIFEST,
    TEXT,
    DocumentRef,
    PersistedDocuments,
    PersistedError,
    load_manifests,
    read_manifest,
)
from gateway.graphql.schema import build_schema, schema
from gateway.http.protocol import HTTPError, params_from_object, params_from_query_string

LEADS = "query Leads { leads(first: 2) { totalCount } }"
COUNT = "query Count { leads { totalCount } }"
LIMITS = Limits.from_settings(Settings())


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def apollo(*docs: tuple[str, str]) -> dict:
    return {"format": "apollo-persisted-query-manifest", "version": 1,
            "operations": [{"id": i, "body": body, "name": "X", "type": "query"} for i, body in docs]}


def write(tmp_path, name: str, data) -> str:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


# --- ids in requests -----------------------------------------------------------------------------


@pytest.mark.parametrize("data,value,via", [
    ({"documentId": "sha256:" + "a" * 64}, "sha256:" + "a" * 64, "documentId"),
    ({"documentId": "my-id"}, "my-id", "documentId"),
    ({"doc_id": "d41d8cd98f00b204e9800998ecf8427e"}, "d41d8cd98f00b204e9800998ecf8427e", "doc_id"),
    ({"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "b" * 64}}}, "b" * 64, "persistedQuery"),
])
def test_each_kind_of_id_is_read_and_query_may_be_left_out(data, value, via):
    params = params_from_object(data)
    assert params.query is None
    assert (params.document.value, params.document.via) == (value, via)


def test_the_same_document_named_twice_is_one_id_and_two_ids_are_refused():
    same = params_from_object({"documentId": "sha256:" + "A" * 64,
                               "extensions": {"persistedQuery": {"version": 1, "sha256Hash": "a" * 64}}})
    assert same.document.via == "documentId"
    with pytest.raises(HTTPError) as e:
        params_from_object({"documentId": "x", "doc_id": "y"})
    assert e.value.status == 400 and "two different" in e.value.message


@pytest.mark.parametrize("data", [
    {"documentId": 5}, {"documentId": ""}, {"doc_id": ["x"]},
    {"extensions": {"persistedQuery": "abc"}}, {"extensions": {"persistedQuery": {"version": 1}}},
    {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": 12}}},
    {"variables": {}},  # neither a text nor an id
])
def test_malformed_ids_are_bad_requests(data):
    with pytest.raises(HTTPError) as e:
        params_from_object(data)
    assert e.value.status == 400 and e.value.extensions["code"] == "BAD_REQUEST"


def test_get_parameters_carry_every_kind_of_id():
    assert params_from_query_string({"documentId": "abc"}).document == DocumentRef("abc", "documentId")
    assert params_from_query_string({"doc_id": "abc"}).document == DocumentRef("abc", "doc_id")
    ext = json.dumps({"persistedQuery": {"version": 1, "sha256Hash": "c" * 64}})
    params = params_from_query_string({"extensions": ext, "variables": '{"n": 1}'})
    assert params.document == DocumentRef("c" * 64, "persistedQuery", 1) and params.variables == {"n": 1}


def test_the_apq_version_is_kept_for_the_rules_to_judge():
    params = params_from_object({"extensions": {"persistedQuery": {"version": 2, "sha256Hash": "c" * 64}}})
    assert params.document.version == 2


# --- manifests -----------------------------------------------------------------------------------


def test_both_formats_load_and_merge(tmp_path):
    a = write(tmp_path, "apollo.json", apollo((sha(LEADS), LEADS)))
    flat = write(tmp_path, "relay.json", {"5f1e": COUNT})
    manifest = load_manifests([a, flat], schema, LIMITS)
    assert len(manifest) == 2
    assert manifest.find(sha(LEADS)) == LEADS and manifest.find("5f1e") == COUNT
    assert manifest.find("sha256:" + sha(COUNT)) == COUNT and manifest.find(sha(COUNT).upper()) == COUNT
    assert manifest.find("nope") is None
    assert set(manifest.parsed) == {LEADS, COUNT}  # parsed once, at load


@pytest.mark.parametrize("content,problem", [
    ("{not json", "not JSON"),
    ("[1, 2]", "expected a JSON object"),
    ({"format": "apollo-persisted-query-manifest", "version": 2, "operations": []}, "only version 1"),
    ({"format": "apollo-persisted-query-manifest", "version": 1, "operations": {}}, "`operations` must be a list"),
    ({"format": "apollo-persisted-query-manifest", "version": 1, "operations": [{"id": "x"}]}, "operations[0]"),
    ({"x": 5}, "entry 'x'"),
    ({"x": "{ leads { nope } }"}, "document 'x' is not valid against the schema: Cannot query field 'nope'"),
    ({"x": "{ leads { "}, "document 'x' is not valid against the schema: Syntax Error"),
    ({"x": "{ " + " ".join(f"a{i}: leads {{ totalCount }}" for i in range(40)) + " }"}, "aliases"),
    (apollo(("x", LEADS), ("x", COUNT)), "id 'x' names two different documents"),
])
def test_a_bad_file_or_document_is_a_config_error_naming_the_file(tmp_path, content, problem):
    path = write(tmp_path, "bad.json", content)
    with pytest.raises(ConfigError) as e:
        load_manifests([path], schema, LIMITS)
    assert path in str(e.value) and problem in str(e.value)


def test_a_missing_file_and_one_id_with_two_texts_across_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read it"):
        read_manifest(tmp_path / "missing.json")
    one, two = write(tmp_path, "1.json", {"x": LEADS}), write(tmp_path, "2.json", {"x": COUNT})
    with pytest.raises(ConfigError, match=r"id 'x' names different documents in .*1\.json and .*2\.json"):
        load_manifests([one, two], schema, LIMITS)
    assert len(load_manifests([one, one], schema, LIMITS)) == 1  # the same text twice is one document


def test_introspection_in_a_manifest_is_refused_when_introspection_is_off(tmp_path):
    path = write(tmp_path, "m.json", {"i": "{ __schema { queryType { name } } }"})
    assert len(load_manifests([path], schema, LIMITS)) == 1
    with pytest.raises(ConfigError, match="introspection has been disabled"):
        load_manifests([path], schema, LIMITS, introspection=False)


# --- the rules -----------------------------------------------------------------------------------


class FakeStoreForRules:
    """A dict behind the ``DocumentStore`` protocol: the rules are tested apart from any cache backend (the real
    stores are tested below)."""

    def __init__(self) -> None:
        self.texts: dict[str, str] = {}

    async def get(self, digest: str) -> str | None:
        return self.texts.get(digest)

    async def put(self, digest: str, text: str) -> None:
        self.texts[digest] = text


def rules(tmp_path, **settings) -> PersistedDocuments:
    path = write(tmp_path, "m.json", {"listed": LEADS})
    persisted = PersistedDocuments(Settings(persisted_documents=(path,), **settings), schema, LIMITS)
    persisted.store = FakeStoreForRules()
    return persisted


async def refused(persisted: PersistedDocuments, query: str | None, ref: DocumentRef | None) -> PersistedError:
    with pytest.raises(PersistedError) as e:
        await persisted.resolve(query, ref)
    return e.value


async def test_text_runs_as_sent_and_ids_run_the_stored_text(tmp_path):
    p = rules(tmp_path)
    assert await p.resolve(COUNT, None) == (r := await p.resolve(COUNT, None)) and r.source == TEXT
    for ref in (DocumentRef("listed", "doc_id"), DocumentRef("sha256:" + sha(LEADS), "documentId"),
                DocumentRef(sha(LEADS), "persistedQuery")):
        resolved = await p.resolve(None, ref)
        assert (resolved.text, resolved.source, resolved.register) == (LEADS, MANIFEST, None)
    assert (await p.resolve(LEADS, DocumentRef("listed", "doc_id"))).text == LEADS
    assert (await refused(p, COUNT, DocumentRef("listed", "doc_id"))).code == "PERSISTED_QUERY_HASH_MISMATCH"


async def test_apq_registers_after_the_text_came_with_its_hash(tmp_path):
    p = rules(tmp_path)
    ref = DocumentRef(sha(COUNT), "persistedQuery")
    error = await refused(p, None, ref)
    assert (error.code, error.message, error.always_ok) == ("PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound", True)
    resolved = await p.resolve(COUNT, ref)
    assert (resolved.source, resolved.register) == (TEXT, sha(COUNT))
    await p.register(resolved.register, COUNT)
    assert (await p.resolve(None, ref)).source == APQ
    assert (await p.resolve(None, DocumentRef("sha256:" + sha(COUNT), "documentId"))).text == COUNT
    assert (await refused(p, LEADS + " ", ref)).code == "PERSISTED_QUERY_HASH_MISMATCH"
    unknown = await refused(p, None, DocumentRef("sha256:" + "0" * 64, "documentId"))
    assert unknown.code == "PERSISTED_QUERY_NOT_FOUND" and not unknown.always_ok


async def test_apq_off_and_unsupported_versions(tmp_path):
    p = rules(tmp_path, apq=False)
    error = await refused(p, None, DocumentRef(sha(COUNT), "persistedQuery"))
    assert (error.code, error.always_ok) == ("PERSISTED_QUERY_NOT_SUPPORTED", True)
    assert (await p.resolve(COUNT, DocumentRef(sha(COUNT), "persistedQuery"))).register is None
    assert (await p.resolve(None, DocumentRef(sha(LEADS), "persistedQuery"))).text == LEADS  # manifests still run
    error = await refused(rules(tmp_path), None, DocumentRef(sha(LEADS), "persistedQuery", 2))
    assert (error.code, error.always_ok) == ("PERSISTED_QUERY_NOT_SUPPORTED", False)


async def test_the_safelist_runs_manifest_documents_only(tmp_path):
    p = rules(tmp_path, allow_arbitrary_documents=False)
    assert (await p.resolve(LEADS, None)).source == MANIFEST  # the exact text of a listed document
    assert (await refused(p, COUNT, None)).code == "QUERY_NOT_IN_SAFELIST"
    assert (await refused(p, LEADS + " ", None)).code == "QUERY_NOT_IN_SAFELIST"
    assert (await refused(p, COUNT, DocumentRef(sha(COUNT), "persistedQuery"))).code == "QUERY_NOT_IN_SAFELIST"
    assert (await refused(p, None, DocumentRef(sha(COUNT), "persistedQuery"))).code == "PERSISTED_QUERY_NOT_IN_LIST"
    assert (await refused(p, None, DocumentRef("nope", "doc_id"))).code == "PERSISTED_QUERY_NOT_IN_LIST"
    assert p.store.texts == {}  # nothing registered


async def test_a_reload_swaps_the_set_and_a_bad_one_keeps_it(tmp_path):
    p = rules(tmp_path)
    write(tmp_path, "m.json", {"listed": LEADS, "count": COUNT})
    assert len(p.reload()) == 2 and (await p.resolve(None, DocumentRef("count", "doc_id"))).text == COUNT
    write(tmp_path, "m.json", {"bad": "{ nope }"})
    with pytest.raises(ConfigError):
        p.reload()
    assert (await p.resolve(None, DocumentRef("count", "doc_id"))).text == COUNT


# --- the APQ store -------------------------------------------------------------------------------


async def test_the_memory_store_is_bounded_by_bytes_oldest_out():
    store = DocumentStore(MemoryStore(max_leads=100), KeyMaker("s"), max_bytes=100, ttl=60)
    texts = [f"query Q{i} {{ leads {{ totalCount }} }}" + " " * 5 for i in range(5)]  # ~40 bytes each
    for t in texts:
        await store.put(sha(t), t)
    assert store.bytes <= 100 and len(store) == 2
    assert await store.get(sha(texts[0])) is None and await store.get(sha(texts[4])) == texts[4]
    await store.put(sha("x" * 200), "x" * 200)  # larger than the bound: not kept, nothing evicted for it
    assert len(store) == 2


async def test_the_redis_store_shares_registrations_by_secret_and_checks_hashes(redis_url):
    secret = secrets.token_hex(8)
    redis_a, redis_b, redis_c = (RedisStore(redis_url) for _ in range(3))
    try:
        a = DocumentStore(redis_a, KeyMaker(secret), max_bytes=1000, ttl=60)
        b = DocumentStore(redis_b, KeyMaker(secret), max_bytes=1000, ttl=60)
        other = DocumentStore(redis_c, KeyMaker(secret + "x"), max_bytes=1000, ttl=60)
        await a.put(sha(COUNT), COUNT)
        assert await b.get(sha(COUNT)) == COUNT and len(b) == 1  # read through, then held in process
        assert await other.get(sha(COUNT)) is None  # another secret: another deployment
        # A text in Redis that does not hash to its key is not run.
        await redis_a.put_record(KeyMaker(secret).document(sha(LEADS)), {"text": COUNT}, 60)
        assert await b.get(sha(LEADS)) is None
    finally:
        for r in (redis_a, redis_b, redis_c):
            await r.close()


# --- the limits walk, once per known document ----------------------------------------------------


def test_a_document_without_variables_in_its_sizes_is_walked_once():
    limited = build_schema(Settings(max_cost=200))
    passed = next(e.args[1] for e in limited.extensions if getattr(e, "func", None) is QueryLimits)
    # Within the limits but invalid (`nope`): the limits pass, validation refuses it, nothing executes.
    static = "query S { leads(first: 3) { nodes { nope } } }"
    assert (static, "S") not in passed
    assert limited.execute_sync(static, context_value=None).errors
    assert (static, "S") in passed
    sized = "query V($n: Int) { leads(first: $n) { nodes { id } } }"
    for _ in range(2):
        result = limited.execute_sync(sized, variable_values={"n": 1000}, context_value=None)
        assert result.errors and result.errors[0].extensions["limitName"] == "cost"
    assert (sized, "V") not in passed  # a variable went into the cost: checked again on every request
    passes = StaticPasses(max_entries=2)
    for i in range(3):
        passes.add((f"q{i}", None))
    assert ("q2", None) in passes and ("q0", None) not in passes  # full: forgotten at once, then this one


def test_check_operation_on_a_literal_is_static_and_on_a_variable_is_not():
    from gateway.graphql.extensions.limits import _check_operation

    core = schema._schema
    assert _check_operation(core, parse("{ leads(first: 5) { nodes { id } } }"), None, None, LIMITS)[1] is True
    assert _check_operation(core, parse("query($n: Int) { leads(first: $n) { nodes { id } } }"), None, {"n": 5},
                            LIMITS)[1] is False
    assert _check_operation(core, parse("query($f: LeadFilter) { leads(filter: $f) { totalCount } }"), None, {},
                            LIMITS)[1] is True  # a variable, but not in a size
