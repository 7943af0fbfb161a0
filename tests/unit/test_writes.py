"""createLead's pure parts: input checking and mapping (leads/writes.py), the upstream's 422 mapped onto the
input, the POST answer's quirks (parse.py), and the idempotency records (stores, codec, replay)."""

from __future__ import annotations

import asyncio
import json

import pytest

from gateway.datasource.cache.codec import decode_lead, encode_lead
from gateway.datasource.cache.keys import KeyMaker
from gateway.datasource.cache.stores import MemoryStore
from gateway.datasource.parse import parse_created
from gateway.datasource.writes import LeadWriter, _same
from gateway.errors import UpstreamBadResponse
from gateway.leads.writes import (
    ContactInput,
    LeadInput,
    NewLead,
    Problem,
    input_path,
    new_lead,
    problems_from_rejection,
)
from gateway.observability.metrics import Stats


def check(**fields) -> NewLead | list[Problem]:
    return new_lead(LeadInput(**{"phone_number": "+14155550100", "campaign_id": 7, **fields}))


def codes(result) -> dict[tuple[str, ...] | None, str]:
    assert isinstance(result, list), result
    return {p.field: p.code for p in result}


# --- input -> upstream body ----------------------------------------------------------------------------

def test_a_full_input_becomes_the_upstream_body():
    lead = check(phone_number="+1 (415) 555-0100", customer_name=" Ada ", email="ada@example.com",
                 variables={"plan": "pro", "customer_name": "loses"}, allow_duplicate=True,
                 secondary_contacts=(ContactInput("+44 20 7946 0958", customer_name="Bob", variables={"x": 1}),))
    assert isinstance(lead, NewLead)
    assert lead.body == {
        "phone_number": "+14155550100", "campaign_id": 7,
        "variables": {"plan": "pro", "customer_name": "Ada", "email": "ada@example.com"},
        "allow_dupplicate": True,
        "secondary_contacts": [{"phone_number": "+442079460958", "variables": {"x": 1, "customer_name": "Bob"}}],
    }


def test_a_minimal_input_sends_no_secondary_contacts_and_allow_dupplicate_false():
    lead = check()
    assert lead.body == {"phone_number": "+14155550100", "campaign_id": 7, "variables": {},
                         "allow_dupplicate": False}


def test_fingerprint_is_the_canonical_body():
    a = check(variables={"a": 1, "b": 2}, customer_name="X")
    b = check(variables={"b": 2, "a": 1}, customer_name="X")
    c = check(variables={"a": 1, "b": 3}, customer_name="X")
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert check(phone_number="+1 415 555 0100").fingerprint == check().fingerprint  # same number, same lead


@pytest.mark.parametrize("phone", ["", "   ", "4155550100", "+0123456789", "+1415555010012345", "+1-415-CALL-NOW",
                                   "+12", "++14155550100", "+1415555\u0661100"])
def test_phone_numbers_must_be_e164(phone):
    result = codes(check(phone_number=phone))
    assert result[("input", "phoneNumber")] in ("INVALID", "REQUIRED")


@pytest.mark.parametrize("phone", ["+14155550100", "+442079460958", "+8613800138000", "+1 415.555.0100"])
def test_e164_numbers_pass(phone):
    assert isinstance(check(phone_number=phone), NewLead)


@pytest.mark.parametrize("variables", [[1, 2], "text", 3, True])
def test_variables_must_be_an_object(variables):
    assert codes(check(variables=variables)) == {("input", "variables"): "INVALID"}


def test_sizes_are_bounded():
    assert codes(check(customer_name="x" * 256)) == {("input", "customerName"): "TOO_LONG"}
    assert codes(check(email="a@b.c" + "x" * 300)) == {("input", "email"): "TOO_LONG"}
    assert codes(check(variables={f"k{i}": i for i in range(51)})) == {("input", "variables"): "TOO_MANY"}
    assert codes(check(variables={"k": "x" * 1021})) == {("input", "variables", "k"): "TOO_LONG"}
    assert codes(check(variables={f"k{i}": "x" * 1000 for i in range(20)})) == {("input", "variables"): "TOO_LONG"}
    assert codes(check(variables={"": 1})) == {("input", "variables", ""): "INVALID"}
    many = tuple(ContactInput(f"+1415555{i:04d}") for i in range(11))
    assert codes(check(secondary_contacts=many)) == {("input", "secondaryContacts"): "TOO_MANY"}
    assert codes(check(idempotency_key="")) == {("input", "idempotencyKey"): "INVALID"}
    assert codes(check(idempotency_key="k" * 256)) == {("input", "idempotencyKey"): "INVALID"}
    assert isinstance(check(idempotency_key="k" * 255), NewLead)


def test_every_problem_is_reported_at_once_with_paths_into_the_input():
    result = check(phone_number="nope", campaign_id=0, email="not-an-email",
                   secondary_contacts=(ContactInput("+14155550101"), ContactInput("12", variables=[1])))
    assert codes(result) == {
        ("input", "phoneNumber"): "INVALID",
        ("input", "campaignId"): "INVALID",
        ("input", "email"): "INVALID",
        ("input", "secondaryContacts", "1", "phoneNumber"): "INVALID",
        ("input", "secondaryContacts", "1", "variables"): "INVALID",
    }


# --- the upstream's 422 -> userErrors ------------------------------------------------------------------

@pytest.mark.parametrize("field, path", [
    ("phone_number", ("input", "phoneNumber")),
    ("campaign_id", ("input", "campaignId")),
    ("allow_dupplicate", ("input", "allowDuplicate")),
    ("variables", ("input", "variables")),
    ("variables.customer_name", ("input", "customerName")),
    ("variables.email", ("input", "email")),
    ("variables.plan", ("input", "variables", "plan")),
    ("secondary_contacts", ("input", "secondaryContacts")),
    ("secondary_contacts.0.phone_number", ("input", "secondaryContacts", "0", "phoneNumber")),
    ("secondary_contacts.3.variables", ("input", "secondaryContacts", "3", "variables")),
    ("secondary_contacts.3.variables.email", ("input", "secondaryContacts", "3", "email")),
    ("tenant_id", None),
    ("secondary_contacts.x.phone_number", None),
])
def test_upstream_fields_map_onto_input_paths(field, path):
    assert input_path(field) == path


def test_laravel_422_becomes_problems_with_stable_codes():
    problems = problems_from_rejection("The phone number has already been taken. (and 3 more errors)", {
        "phone_number": ["The phone number has already been taken."],
        "campaign_id": ["The selected campaign id is invalid."],
        "secondary_contacts.1.phone_number": ["The secondary contacts.1.phone number field has a duplicate value."],
        "secondary_contacts.0.phone_number": ["The secondary contacts.0.phone number field is required."],
        "team": ["The team field must not be greater than 10 characters."],
    })
    assert [(p.field, p.code) for p in problems] == [
        (("input", "phoneNumber"), "DUPLICATE"),
        (("input", "campaignId"), "UNKNOWN_CAMPAIGN"),
        (("input", "secondaryContacts", "1", "phoneNumber"), "DUPLICATE"),
        (("input", "secondaryContacts", "0", "phoneNumber"), "REQUIRED"),
        (None, "TOO_LONG"),
    ]
    assert problems[-1].message == "team: The team field must not be greater than 10 characters."


def test_a_422_without_errors_is_still_one_problem():
    assert problems_from_rejection("Nope.", {}) == [Problem(None, "Nope.", "INVALID")]


# --- the POST answer -----------------------------------------------------------------------------------

ANSWER = {"message": "Lead created successfully", "data": {
    "id": "10401", "campaign_id": "10001", "phone_number": "+14155550100", "variables": [], "status": "created",
    "created_at": "2026-12-04 10:00:00", "updated_at": "2026-12-04 10:00:00",
    "campaign": {"id": 10001, "name": "Spring"},
    "secondary_contacts": [{"id": "15001", "phone_number": "+14155550101", "variables": {"customer_name": "B"},
                            "status": "created", "created_at": "2026-12-04 10:00:00",
                            "updated_at": "2026-12-04 10:00:00"}]}}


def test_the_created_lead_is_parsed_with_its_quirks():
    lead = parse_created(ANSWER)
    assert (lead.id, lead.campaign_id, lead.variables, lead.campaign.name) == (10401, 10001, {}, "Spring")
    assert lead.secondary_contacts[0].id == 15001
    assert lead.created_at.tzinfo is not None


@pytest.mark.parametrize("payload", [None, [], {"message": "ok"}, {"data": []}, {"data": {"id": "x"}},
                                     {"data": {**ANSWER["data"], "status": "weird"}}])
def test_an_unreadable_created_answer_is_a_bad_response(payload):
    with pytest.raises(UpstreamBadResponse):
        parse_created(payload)


def test_a_lead_round_trips_through_the_record_codec():
    lead = parse_created(ANSWER)
    assert decode_lead(json.loads(json.dumps(encode_lead(lead)))) == lead
    with pytest.raises(ValueError):
        decode_lead([1, 2])


def test_variables_compare_as_laravel_stores_them():
    assert _same({"a": "x", "b": None}, {"a": " x ", "b": ""})
    assert not _same({"a": "x"}, {"a": "y"})


# --- idempotency records -------------------------------------------------------------------------------

def test_memory_records_expire_and_are_bounded(monkeypatch):
    import gateway.datasource.cache.stores as stores

    async def run():
        store = MemoryStore(max_leads=10)
        await store.put_record("k", {"state": "done"}, 60)
        assert await store.get_record("k") == {"state": "done"}
        await store.put_record("gone", {"state": "done"}, -1)
        assert await store.get_record("gone") is None
        await store.delete_record("k")
        assert await store.get_record("k") is None
        monkeypatch.setattr(stores, "RECORDS_IN_MEMORY", 3)
        for i in range(5):
            await store.put_record(f"r{i}", {"i": i}, 60)
        assert [await store.get_record(f"r{i}") for i in range(5)] == [None, None, {"i": 2}, {"i": 3}, {"i": 4}]

    asyncio.run(run())


def test_generations_change_the_scope_of_one_caller_only():
    async def run():
        store = MemoryStore(max_leads=10)
        assert await store.generation("a") == 0
        assert await store.bump("a") == 1
        assert await store.generation("a") == 1
        assert await store.generation("b") == 0

    asyncio.run(run())
    assert KeyMaker.scope("a", 1) != KeyMaker.scope("a", 2)
    assert KeyMaker.idempotency("a", "k") != KeyMaker.idempotency("b", "k")
    assert "k1" not in KeyMaker.idempotency("a", "k1")  # the client's key is hashed


def test_a_replay_returns_the_first_outcome_or_refuses_another_input():
    writer = LeadWriter(api=None, cache=None, stats=Stats())
    lead = check()
    created = parse_created(ANSWER)
    replay = writer._replay({"fp": lead.fingerprint, "state": "done", "lead": encode_lead(created)}, lead)
    assert (replay.lead, replay.replayed) == (created, True)
    refused = writer._replay({"fp": lead.fingerprint, "state": "done",
                              "problems": [[["input", "campaignId"], "Unknown.", "UNKNOWN_CAMPAIGN"]]}, lead)
    assert refused.problems == (Problem(("input", "campaignId"), "Unknown.", "UNKNOWN_CAMPAIGN"),)
    other = writer._replay({"fp": "another", "state": "done", "lead": encode_lead(created)}, lead)
    assert other.lead is None
    assert [(p.field, p.code) for p in other.problems] == [(("input", "idempotencyKey"), "IDEMPOTENCY_KEY_REUSED")]
    with pytest.raises(UpstreamBadResponse):
        writer._replay({"fp": lead.fingerprint, "state": "done", "problems": "garbage"}, lead)
    assert writer.stats.lead_writes == {"replayed": 3, "refused": 1}
