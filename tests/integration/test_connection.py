"""The leads connection over real HTTP, compared with the demo upstream's ground truth."""

from __future__ import annotations

import random
from datetime import date

import pytest

from gateway.demo.data import dataset_for_token
from gateway.leads.filter import ListFilter
from gateway.leads.pagination import encode_cursor

PAGE = """
query Page($first: Int, $after: String, $last: Int, $before: String, $filter: LeadFilter) {
  leads(first: $first, after: $after, last: $last, before: $before, filter: $filter) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { databaseId } }
    nodes { databaseId }
  }
}
"""


def ids(conn: dict) -> list[int]:
    return [n["databaseId"] for n in conn["nodes"]]


def truth(token: str, **where) -> list[dict]:
    """The brute-force filter over the demo dataset (what the Laravel query would return)."""
    rows = list(dataset_for_token(token))
    if "status" in where:
        rows = [r for r in rows if r["status"] == where["status"]]
    if "campaign_id" in where:
        rows = [r for r in rows if r["campaign_id"] == where["campaign_id"]]
    if "phone" in where:
        rows = [r for r in rows if where["phone"] in r["phone_number"]]
    if "date_from" in where:
        rows = [r for r in rows if r["created_at"][:10] >= where["date_from"]]
    if "date_to" in where:
        rows = [r for r in rows if r["created_at"][:10] <= where["date_to"]]
    return rows


def page(gateway, token, **variables) -> dict:
    body = gateway.gql(PAGE, variables, token)
    assert "errors" not in body, body
    return body["data"]["leads"]


@pytest.mark.parametrize("size", [7, 15, 100])
def test_forward_walk_returns_every_lead_once_in_order(gateway, fresh_upstream, token, size):
    expected = [r["id"] for r in truth(token)]
    seen, after, first_page = [], None, True
    while True:
        conn = page(gateway, token, first=size, after=after)
        assert conn["totalCount"] == len(expected)
        assert conn["pageInfo"]["hasPreviousPage"] is (not first_page)
        assert [e["node"]["databaseId"] for e in conn["edges"]] == ids(conn)
        seen += ids(conn)
        first_page = False
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    assert seen == expected
    # Every request was one upstream call: windows of `size` aligned on `size` are single pages.
    assert len(fresh_upstream.calls(token)) == -(-len(expected) // size)


@pytest.mark.parametrize("size", [9, 50])
def test_backward_walk_from_the_end(gateway, fresh_upstream, token, size):
    expected = [r["id"] for r in truth(token)]
    seen, before = [], None
    while True:
        conn = page(gateway, token, last=size, before=before)
        assert conn["totalCount"] == len(expected)
        seen = ids(conn) + seen
        assert conn["pageInfo"]["hasNextPage"] is (len(seen) > len(ids(conn)))
        if not conn["pageInfo"]["hasPreviousPage"]:
            break
        before = conn["pageInfo"]["startCursor"]
    assert seen == expected


def test_last_alone_is_the_final_leads(gateway, fresh_upstream, token):
    expected = [r["id"] for r in truth(token)]
    conn = page(gateway, token, last=12)
    assert ids(conn) == expected[-12:]
    assert conn["pageInfo"] == {**conn["pageInfo"], "hasNextPage": False, "hasPreviousPage": True}
    # A probe page (which reports the total) and the tail: two calls for a list longer than 100.
    assert len(expected) > 100
    assert len(fresh_upstream.calls(token)) == 2


def test_last_alone_on_a_short_list_is_one_call(gateway, fresh_upstream, token):
    rows = truth(token, status="blacklisted")
    assert 0 < len(rows) <= 100
    conn = page(gateway, token, last=3, filter={"status": "BLACKLISTED"})
    assert ids(conn) == [r["id"] for r in rows][-3:]
    assert len(fresh_upstream.calls(token)) == 1


def test_default_window_is_the_first_15_in_one_upstream_call(gateway, fresh_upstream, token):
    conn = page(gateway, token)
    assert ids(conn) == [r["id"] for r in truth(token)][:15]
    calls = fresh_upstream.calls(token)
    assert [(c.params["page"], c.params["per_page"]) for c in calls] == [("1", "15")]


def test_random_windows_match_ground_truth_with_the_fewest_calls(gateway, fresh_upstream, token):
    """Random windows in both directions; each answer is checked, and calls per window are counted."""
    expected = [r["id"] for r in truth(token)]
    fp = ListFilter().fingerprint
    rng = random.Random(7)
    calls_per_window = []
    for _ in range(60):
        n = rng.randint(1, 100)
        if rng.random() < 0.5:
            pos = rng.randint(-1, len(expected) - 1)
            conn = page(gateway, token, first=n, after=encode_cursor(pos, fp, len(expected)))
            want = expected[pos + 1:pos + 1 + n]
        else:
            pos = rng.randint(0, len(expected))
            conn = page(gateway, token, last=n, before=encode_cursor(pos, fp, len(expected)))
            want = expected[max(0, pos - n):pos]
        assert ids(conn) == want
        before_calls = sum(calls_per_window)
        calls_per_window.append(len(fresh_upstream.calls(token)) - before_calls)
    # A window of at most 100 never needs more than 2 upstream pages of at most 100.
    assert max(calls_per_window) <= 2
    assert calls_per_window.count(1) > calls_per_window.count(2)


def test_large_windows_fan_out_concurrently(make_gateway, fresh_upstream, token):
    gw = make_gateway(cache_ttl=0, max_page_size=250)
    expected = [r["id"] for r in truth(token)]
    conn = page(gw, token, first=250)
    assert ids(conn) == expected[:250]
    calls = fresh_upstream.calls(token)
    assert len(calls) == 3 and all(int(c.params["per_page"]) <= 100 for c in calls)
    # Above the limit is refused before any upstream call.
    body = gw.gql(PAGE, {"first": 251}, token)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert len(fresh_upstream.calls(token)) == 3


@pytest.mark.parametrize("where,filter_", [
    ({"status": "completed"}, {"status": "COMPLETED"}),
    ({"status": "reached-max-retries"}, {"status": "REACHED_MAX_RETRIES"}),
    ({"phone": "55"}, {"phoneNumber": "55"}),
    ({"date_from": "2025-03-01"}, {"createdFrom": "2025-03-01"}),
    ({"date_to": "2025-02-15"}, {"createdTo": "2025-02-15"}),
    ({"date_from": "2025-02-01", "date_to": "2025-04-30", "status": "scheduled"},
     {"createdFrom": "2025-02-01", "createdTo": "2025-04-30", "status": "SCHEDULED"}),
])
def test_filters_match_the_upstream_semantics(gateway, fresh_upstream, token, where, filter_):
    expected = [r["id"] for r in truth(token, **where)]
    assert expected, "the demo dataset should have matches for this filter"
    conn = page(gateway, token, first=100, filter=filter_)
    assert conn["totalCount"] == len(expected)
    assert ids(conn) == expected[:100]


def test_campaign_filter_and_a_cursor_bound_to_it(gateway, fresh_upstream, token):
    campaign_id = dataset_for_token(token)[0]["campaign_id"]
    expected = [r["id"] for r in truth(token, campaign_id=campaign_id)]
    conn = page(gateway, token, first=5, filter={"campaignId": campaign_id})
    assert ids(conn) == expected[:5]
    nxt = page(gateway, token, first=5, after=conn["pageInfo"]["endCursor"], filter={"campaignId": campaign_id})
    assert ids(nxt) == expected[5:10]
    calls = len(fresh_upstream.calls(token))
    # The same cursor with another filter is refused, with no upstream call.
    body = gateway.gql(PAGE, {"first": 5, "after": conn["pageInfo"]["endCursor"]}, token)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "different filter" in body["errors"][0]["message"]
    assert len(fresh_upstream.calls(token)) == calls


def test_page_cursors_jump_to_any_page(gateway, fresh_upstream, token):
    expected = [r["id"] for r in truth(token)]
    size = 20
    query = """query($after: String) { leads(first: 20, after: $after) {
        pageCursors { pageSize pageCount currentPage first { page cursor } last { page cursor }
                      around { page cursor isCurrent } previous { page } next { page cursor } } } }"""
    pc = gateway.gql(query, {}, token)["data"]["leads"]["pageCursors"]
    count = -(-len(expected) // size)
    assert (pc["pageSize"], pc["pageCount"], pc["currentPage"]) == (size, count, 1)
    assert pc["first"] is None and pc["previous"] is None and pc["last"]["page"] == count
    assert [p["page"] for p in pc["around"]] == [1, 2, 3, 4, 5]
    # Jump to the last page, then to page 3 from there.
    last = page(gateway, token, first=size, after=pc["last"]["cursor"])
    assert ids(last) == expected[(count - 1) * size:]
    assert last["pageInfo"]["hasNextPage"] is False
    pc_last = gateway.gql(query, {"after": pc["last"]["cursor"]}, token)["data"]["leads"]["pageCursors"]
    assert pc_last["currentPage"] == count and pc_last["next"] is None
    third = next(p for p in pc_last["around"] + [pc_last["first"]] if p and p["page"] == count - 2)
    assert ids(page(gateway, token, first=size, after=third["cursor"])) == expected[(count - 3) * size:(count - 2) * size]


def test_a_cursor_issued_under_another_total_is_flagged(gateway, fresh_upstream, token):
    """Offset pagination shifts when leads are added; the cursor remembers the total it was issued under."""
    total = len(truth(token))
    stale = encode_cursor(9, ListFilter().fingerprint, total - 3)
    body = gateway.gql(PAGE, {"first": 5, "after": stale}, token)
    assert ids(body["data"]["leads"]) == [r["id"] for r in truth(token)][10:15]
    warning = body["extensions"]["warnings"][0]
    assert warning["code"] == "LIST_SHIFTED"
    assert (warning["cursorTotal"], warning["total"]) == (total - 3, total)
    fresh = encode_cursor(9, ListFilter().fingerprint, total)
    assert "extensions" not in gateway.gql(PAGE, {"first": 5, "after": fresh}, token) or \
        not gateway.gql(PAGE, {"first": 5, "after": fresh}, token).get("extensions", {}).get("warnings")


@pytest.mark.parametrize("variables,needle", [
    ({"first": 5, "last": 5}, "either `first` or `last`"),
    ({"first": -1}, "must not be negative"),
    ({"last": 101}, "at most 100"),
    ({"first": 5, "after": "not-a-cursor"}, "not a valid cursor"),
    ({"last": 5, "before": "bGcxOng6eTp6"}, "not a valid cursor"),
    ({"filter": {"createdFrom": "2025-05-01", "createdTo": "2025-04-01"}}, "must not be after"),
    ({"filter": {"phoneNumber": "1" * 256}}, "at most 255"),
    ({"filter": {"phoneNumber": "\ud800"}}, "not valid Unicode"),
    ({"filter": {"createdFrom": "2025-13-01"}}, "Date"),
    ({"filter": {"createdFrom": "01/02/2025"}}, "Date"),
    ({"filter": {"status": "DONE"}}, "LeadStatus"),
])
def test_bad_arguments_are_refused_before_any_upstream_call(gateway, fresh_upstream, token, variables, needle):
    body = gateway.gql(PAGE, variables, token)
    assert body.get("data") in (None, {"leads": None}) or body["data"] is None
    error = body["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert needle in error["message"]
    assert fresh_upstream.calls(token) == []


def test_empty_window_and_past_the_end(gateway, fresh_upstream, token):
    total = len(truth(token))
    zero = page(gateway, token, first=0)
    assert zero["nodes"] == [] and zero["totalCount"] == total
    assert zero["pageInfo"]["startCursor"] is None and zero["pageInfo"]["hasNextPage"] is True
    end = encode_cursor(total - 1, ListFilter().fingerprint, total)
    past = page(gateway, token, first=10, after=end)
    assert past["nodes"] == [] and past["pageInfo"]["hasNextPage"] is False
    assert past["pageInfo"]["hasPreviousPage"] is True
    nothing = page(gateway, token, first=10, filter={"phoneNumber": "no-such-number"})
    assert nothing["totalCount"] == 0 and nothing["nodes"] == []
    assert nothing["pageInfo"]["hasNextPage"] is False and nothing["pageInfo"]["hasPreviousPage"] is False


def test_dates_are_inclusive_bounds(gateway, fresh_upstream, token):
    day = truth(token)[40]["created_at"][:10]
    expected = [r["id"] for r in truth(token, date_from=day, date_to=day)]
    conn = page(gateway, token, first=100, filter={"createdFrom": day, "createdTo": day})
    assert ids(conn) == expected and expected
    assert date.fromisoformat(day)
