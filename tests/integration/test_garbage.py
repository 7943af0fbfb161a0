"""A request's objects go when it ends, by reference counting, not at the cyclic collector's next pass.

Why it matters: what a request leaves in reference cycles waits for a full collection, and under a
flood those take tens of milliseconds during which every caller waits (docs/ISOLATION.md). Objects of
graphql-core's own execution state may still form cycles; the gateway's pages, records and refusals must
not."""

from __future__ import annotations

import gc
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

Q = "query($n: Int) { leads(first: $n) { totalCount nodes { databaseId phoneNumber campaign { name } } } }"


@contextmanager
def garbage() -> Iterator[list]:
    """Everything that became unreachable only through reference cycles while the block ran."""
    gc.collect()
    gc.disable()
    found: list = []
    try:
        gc.set_debug(gc.DEBUG_SAVEALL)
        yield found
        gc.collect()
        found.extend(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def gateway_side(objects: list) -> set[str]:
    names = set()
    for o in objects:
        module = type(o).__module__ or ""
        if module.startswith(("gateway.", "starlette.")):
            names.add(f"{module}.{type(o).__qualname__}")
        elif type(o).__name__ == "frame" and "/gateway/" in o.f_code.co_filename:
            names.add(f"frame {o.f_code.co_name}")
    return names


def test_an_answered_request_leaves_its_pages_and_records_to_reference_counting(make_gateway, token):
    gw = make_gateway(cache_ttl=0, result_cache_bytes=0)
    assert "errors" not in gw.gql(Q, {"n": 1}, token)  # warm: schema, connections
    with garbage() as found:
        for n in range(2, 7):
            assert "errors" not in gw.gql(Q, {"n": n}, token)
    # The context and its source may hang off graphql-core's execution state, which has cycles of its
    # own; what they read (the bulk of a request's objects) must not.
    left = {name for name in gateway_side(found)
            if name.rsplit(".", 1)[-1] in {"LeadRecord", "LeadPage", "Served", "LeadReader", "ContactRecord",
                                           "CampaignRef"}}
    assert not left, left


def test_a_refused_request_leaves_nothing_to_the_collector(make_gateway, token):
    gw = make_gateway(rate_limit="1/minute", result_cache_bytes=0)
    caller = f"refused-{uuid.uuid4().hex[:8]}"
    assert "errors" not in gw.gql(Q, {"n": 1}, caller)
    assert gw.post(Q, {"n": 1}, caller).status_code == 429  # warm the refusal path too
    with garbage() as found:
        for _ in range(5):
            assert gw.post(Q, {"n": 1}, caller).status_code == 429
    assert not gateway_side(found), gateway_side(found)


def test_a_failed_request_leaves_no_stack_of_frames_to_the_collector(make_gateway, fresh_upstream):
    gw = make_gateway(cache_ttl=0, result_cache_bytes=0, upstream_retries=0)
    failing = f"failing-{uuid.uuid4().hex[:8]}"
    fresh_upstream.options.token_faults[failing] = "500"
    assert gw.gql(Q, {"n": 1}, failing)["errors"][0]["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
    with garbage() as found:
        for n in range(2, 7):
            assert gw.gql(Q, {"n": n}, failing)["errors"][0]["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
    # An error's traceback holds every frame it went through, and each frame its locals (the request's
    # whole state): none of it may be left to the collector once the answer is built.
    frames = {name for name in gateway_side(found) if name.startswith("frame ")}
    assert not frames, frames
