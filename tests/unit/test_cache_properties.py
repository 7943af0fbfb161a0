"""Property tests for the cache's pure parts: key canonicalisation and the page codec."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gateway.datasource.cache.codec import Entry, decode, encode
from gateway.datasource.cache.keys import KeyMaker
from gateway.errors import BadUserInput
from gateway.leads.filter import PHONE_MAX_LENGTH, ListFilter
from gateway.leads.pagination import PageRef
from gateway.leads.records import STATUSES, CampaignRef, ContactRecord, LeadPage, LeadRecord

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text a JSON request body can carry once decoded, minus lone surrogates (refused by ListFilter: own test below).
text = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
dates = st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31))


@st.composite
def filter_args(draw) -> dict:
    args = {
        "status": draw(st.none() | st.sampled_from(STATUSES)),
        "campaign_id": draw(st.none() | st.integers(-3, 2**31 - 1)),
        "phone_number": draw(st.none() | st.sampled_from(["", " ", "+1555", " +1555 ", "+1 555", "%2B1"]) | text),
        "date_from": draw(st.none() | dates),
        "date_to": draw(st.none() | dates),
    }
    if args["date_from"] and args["date_to"] and args["date_from"] > args["date_to"]:
        args["date_from"], args["date_to"] = args["date_to"], args["date_from"]
    return args


def canonical(args: dict) -> tuple:
    """What a filter means: an empty or blank phone is no phone; surrounding whitespace does not count."""
    phone = args["phone_number"]
    phone = phone.strip() if phone is not None else None
    return (args["status"], args["campaign_id"], phone or None, args["date_from"], args["date_to"])


def build(args: dict, order: list[str]) -> ListFilter:
    try:
        return ListFilter.build(**{k: args[k] for k in order})
    except BadUserInput:
        assume(False)
        raise


FIELDS = ["status", "campaign_id", "phone_number", "date_from", "date_to"]
KM = KeyMaker("property-secret")
CALLER = KM.caller("token")


@FAST
@given(filter_args(), filter_args(), st.permutations(FIELDS))
def test_group_keys_are_equal_exactly_when_filters_mean_the_same(a, b, order):
    assume(all(len((v or "").strip()) <= PHONE_MAX_LENGTH for v in (a["phone_number"], b["phone_number"])))
    qa, qb = build(a, order), build(b, list(reversed(order)))
    same_meaning = canonical(a) == canonical(b)
    assert (KM.group(CALLER, qa) == KM.group(CALLER, qb)) == same_meaning
    # Built in another argument order, the same arguments give the same key.
    assert KM.group(CALLER, build(a, sorted(order))) == KM.group(CALLER, qa)


@FAST
@given(filter_args(), st.sampled_from([" ", "\t", "\n ", "  "]))
def test_whitespace_around_the_phone_does_not_change_the_key(args, pad):
    assume(args["phone_number"] is not None and len(args["phone_number"]) <= PHONE_MAX_LENGTH - 4)
    order = list(args)
    padded = {**args, "phone_number": pad + args["phone_number"] + pad}
    assert KM.group(CALLER, build(padded, order)) == KM.group(CALLER, build(args, order))


@FAST
@given(st.tuples(st.integers(1, 10**6), st.integers(1, 100)), st.tuples(st.integers(1, 10**6), st.integers(1, 100)))
def test_page_keys_are_equal_exactly_when_refs_are(r1, r2):
    group = KM.group(CALLER, ListFilter())
    assert (KM.page(group, PageRef(*r1)) == KM.page(group, PageRef(*r2))) == (r1 == r2)


@FAST
@given(st.text(min_size=1, max_size=200), st.text(min_size=1, max_size=200), filter_args())
def test_keys_depend_on_the_token_only_through_the_hmac(t1, t2, args):
    # Header values are latin-1; any str without surrogates must work anyway.
    assume(not re.search("[\ud800-\udfff]", t1 + t2))
    q = build(args, list(args))
    keys = []
    for token in (t1, t2):
        caller = KM.caller(token)
        assert re.fullmatch("[0-9a-f]{32}", caller)
        key = KM.page(KM.group(caller, q), PageRef(2, 50))
        assert key.count(caller) == 1
        keys.append(key.replace(caller, "<caller>"))
    assert keys[0] == keys[1]  # nothing else in the key depends on the token
    assert (KM.caller(t1) == KM.caller(t2)) == (t1 == t2)
    if len(t1) >= 12 and t1 not in keys[0]:  # (a filter may contain the same text as the token)
        assert t1 not in KM.group(KM.caller(t1), q)  # nor, by chance, in 32 hex digits


@FAST
@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40))
def test_same_secret_same_caller_in_every_instance(secret, token):
    assume(not re.search("[\ud800-\udfff]", secret + token))
    assert KeyMaker(secret).caller(token) == KeyMaker(secret).caller(token)


def test_a_phone_filter_that_is_not_utf8_encodable_is_refused_or_keyed():
    phone = json.loads('"+1\\ud800"')  # what a JSON request body can carry
    try:
        query = ListFilter.build(phone_number=phone)
    except BadUserInput:
        return  # refused up front: fine
    KM.group(CALLER, query)  # otherwise it must at least have a key


# --- codec -------------------------------------------------------------------------------------------

json_scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**63)
                | st.floats(allow_nan=False, allow_infinity=False) | text)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(text, inner, max_size=4), max_leaves=12)
variables = st.dictionaries(text, json_values, max_size=3)
stamps = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))
ids_ = st.integers(-(2**31), 2**31 - 1)
contacts = st.builds(ContactRecord, id=ids_, phone_number=text, variables=variables,
                     status=st.sampled_from(STATUSES), created_at=stamps, updated_at=stamps)
leads = st.builds(LeadRecord, id=ids_, campaign_id=st.none() | ids_, phone_number=text, variables=variables,
                  status=st.sampled_from(STATUSES), created_at=stamps, updated_at=stamps,
                  campaign=st.none() | st.builds(CampaignRef, id=ids_, name=st.none() | text),
                  secondary_contacts=st.lists(contacts, max_size=3).map(tuple))
pages = st.builds(LeadPage, page=st.integers(1, 10**6), per_page=st.integers(1, 100), total=st.integers(0, 10**7),
                  last_page=st.integers(1, 10**6), items=st.lists(leads, max_size=4).map(tuple))
fetched = st.floats(0, 4e9, allow_nan=False)


@SLOW
@given(pages, fetched)
def test_codec_round_trip(page, at):
    entry = Entry(page, at)
    raw = encode(entry)
    assert json.loads(raw)["v"] == 1
    back = decode(raw)
    assert back == entry
    assert decode(raw.encode()) == entry
    for lead in back.page.items:
        assert lead.created_at.utcoffset() == timedelta(0)
        assert all(c.updated_at.utcoffset() == timedelta(0) for c in lead.secondary_contacts)


def decodes_or_value_error(raw) -> None:
    try:
        out = decode(raw)
    except ValueError:
        return
    assert isinstance(out, Entry)


@FAST
@given(json_values)
def test_decode_of_any_json_is_an_entry_or_a_value_error(value):
    decodes_or_value_error(json.dumps(value))


@FAST
@given(st.binary(max_size=64) | st.text(max_size=64))
def test_decode_of_any_bytes_or_text_is_an_entry_or_a_value_error(raw):
    decodes_or_value_error(raw)


@st.composite
def damaged_documents(draw):
    """A valid encoded entry with one value somewhere replaced by random JSON (or removed)."""
    page = draw(pages.filter(lambda p: p.items))
    doc = json.loads(encode(Entry(page, 1.0)))
    node, path = doc, []
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            break
        k = draw(st.sampled_from(keys))
        path.append(k)
        child = node[k]
        if not isinstance(child, (dict, list)) or not child or draw(st.booleans()):
            break  # an empty container is damaged whole: there is nothing inside it to damage
        node = child
    if not path:
        return doc
    if draw(st.booleans()):
        node[path[-1]] = draw(json_values)
    elif isinstance(node, dict):
        del node[path[-1]]
    else:
        node.pop(path[-1])
    return doc


@SLOW
@given(damaged_documents())
def test_decode_of_a_damaged_entry_is_an_entry_or_a_value_error(doc):
    decodes_or_value_error(json.dumps(doc))
