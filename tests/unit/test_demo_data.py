"""The demo data set must look like a real tenant's data and be reproducible everywhere.

Reproducible across processes matters because gateway workers, the demo upstream and the
tests may each build the data independently and must agree on every byte.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from datetime import datetime

from gateway.demo.data import DEMO_TOKEN, STATUSES, campaigns_for_token, dataset_for_token

TOKENS = ("alice", "bob", DEMO_TOKEN, "tenant-\u00e9\u00e8", "x")
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
LEAD_KEYS = ["id", "campaign_id", "phone_number", "variables", "status", "created_at", "updated_at",
             "campaign", "secondary_contacts"]
CONTACT_KEYS = ["id", "phone_number", "variables", "status", "created_at", "updated_at"]


def _digest(token: str) -> str:
    return hashlib.sha256(json.dumps(dataset_for_token(token), sort_keys=False).encode()).hexdigest()


def test_deterministic_within_a_process_even_without_the_cache():
    first = _digest("alice")
    dataset_for_token.cache_clear()
    assert _digest("alice") == first
    assert dataset_for_token("alice") is dataset_for_token("alice")  # cached


def test_deterministic_across_processes_with_different_hash_seeds():
    code = ("import hashlib, json; from gateway.demo.data import dataset_for_token; "
            "print(hashlib.sha256(json.dumps(dataset_for_token('alice')).encode()).hexdigest())")
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                                check=True, timeout=30)
        digests.add(result.stdout.strip())
    assert digests == {_digest("alice")}


def test_different_tokens_get_different_data_and_disjoint_ids():
    alice, bob = dataset_for_token("alice"), dataset_for_token("bob")
    alice_ids = {lead["id"] for lead in alice} | {c["id"] for lead in alice for c in lead["secondary_contacts"]}
    bob_ids = {lead["id"] for lead in bob} | {c["id"] for lead in bob for c in lead["secondary_contacts"]}
    assert alice_ids.isdisjoint(bob_ids)
    assert {lead["campaign_id"] for lead in alice}.isdisjoint({lead["campaign_id"] for lead in bob})
    assert [lead["phone_number"] for lead in alice] != [lead["phone_number"] for lead in bob]


def test_size_campaigns_ids_and_order():
    for token in TOKENS:
        leads = dataset_for_token(token)
        assert 150 <= len(leads) <= 400
        ids = [lead["id"] for lead in leads]
        base = ids[0] - 1
        assert base > 0 and base % 1000 == 0
        assert ids == list(range(base + 1, base + len(leads) + 1))  # ascending, as the endpoint returns them
        contact_ids = [c["id"] for lead in leads for c in lead["secondary_contacts"]]
        assert contact_ids == sorted(contact_ids) and len(set(contact_ids)) == len(contact_ids)
        assert set(contact_ids).isdisjoint(ids)
        live = campaigns_for_token(token)
        assert 3 <= len(live) <= 6
        assert all(isinstance(c["name"], str) and c["name"] for c in live)
        # A campaign's id and name are consistent wherever it appears.
        names = {c["id"]: c["name"] for c in live}
        for lead in leads:
            if lead["campaign"] is not None:
                assert lead["campaign"] == {"id": lead["campaign_id"], "name": names[lead["campaign_id"]]}


def test_every_status_occurs_in_every_dataset():
    for token in TOKENS + tuple(f"tenant-{i}" for i in range(20)):
        assert {lead["status"] for lead in dataset_for_token(token)} == set(STATUSES)


def test_exact_upstream_shape():
    for lead in dataset_for_token("alice"):
        assert list(lead) == LEAD_KEYS
        assert isinstance(lead["id"], int) and isinstance(lead["campaign_id"], int)
        assert lead["status"] in STATUSES
        assert re.fullmatch(r"\+1\d{10}", lead["phone_number"])
        assert lead["campaign"] is None or list(lead["campaign"]) == ["id", "name"]
        assert 0 <= len(lead["secondary_contacts"]) <= 3
        for contact in lead["secondary_contacts"]:
            assert list(contact) == CONTACT_KEYS
            assert contact["status"] in STATUSES
            assert re.fullmatch(r"\+1\d{10}", contact["phone_number"])
        for item in [lead, *lead["secondary_contacts"]]:
            variables = item["variables"]
            assert variables == [] or (isinstance(variables, dict)
                                       and set(variables) in ({"customer_name"}, {"customer_name", "email"}))


def test_quirks_are_present():
    for token in TOKENS:
        leads = dataset_for_token(token)
        assert any(lead["variables"] == [] for lead in leads), "PHP empty object as []"
        assert any(lead["variables"] != [] and "email" not in lead["variables"] for lead in leads)
        deleted = [lead for lead in leads if lead["campaign"] is None]
        assert deleted and all(isinstance(lead["campaign_id"], int) for lead in deleted)
        assert len([lead for lead in leads if lead["variables"] == []]) < len(leads) * 0.15
        assert len(deleted) < len(leads) * 0.12


def test_phone_prefixes_are_shared_so_partial_search_finds_several():
    leads = dataset_for_token("alice")
    prefix = leads[0]["phone_number"][:8]
    assert sum(lead["phone_number"].startswith(prefix) for lead in leads) >= 5
    assert len({lead["phone_number"] for lead in leads}) == len(leads)


def test_timestamps():
    for token in TOKENS:
        previous = ""
        for lead in dataset_for_token(token):
            for item in [lead, *lead["secondary_contacts"]]:
                assert TIMESTAMP.fullmatch(item["created_at"]) and TIMESTAMP.fullmatch(item["updated_at"])
                datetime.strptime(item["created_at"], "%Y-%m-%d %H:%M:%S")
                assert item["updated_at"] >= item["created_at"]
            assert "2025-01-01 00:00:00" <= lead["created_at"] <= "2025-06-30 23:59:59"
            assert lead["created_at"] >= previous  # auto-increment ids follow creation time
            previous = lead["created_at"]
