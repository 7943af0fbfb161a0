"""A record's ``Lead`` is built once and shared while the record lives, and is dropped with it (records
carry no GraphQL object; the GraphQL layer's memo must not keep records alive either)."""

from __future__ import annotations

import gc
from datetime import UTC, datetime

from gateway.graphql.types import _VIEWS, Lead
from gateway.leads.records import LeadRecord

T = datetime(2025, 6, 30, 11, 18, 4, tzinfo=UTC)


def record(i: int) -> LeadRecord:
    return LeadRecord(i, None, f"+1555{i:07d}", {"customer_name": f"n{i}"}, "created", T, T, None, ())


def test_one_lead_per_record_while_it_lives():
    records = [record(i) for i in range(50)]
    views = [Lead.from_record(r) for r in records]
    assert all(Lead.from_record(r) is v for r, v in zip(records, views))
    assert [v.database_id for v in views] == list(range(50)) and views[3].customer_name == "n3"
    # An equal but distinct record (another fetch of the same page) gets its own view.
    assert Lead.from_record(record(3)) is not views[3]


def test_views_die_with_their_records():
    gc.collect()
    before = len(_VIEWS)
    records = [record(i) for i in range(1000)]
    for r in records:
        Lead.from_record(r)
    assert len(_VIEWS) == before + 1000
    del records, r
    gc.collect()
    assert len(_VIEWS) == before
