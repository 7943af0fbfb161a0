"""The request log's fast path (``observability/logs.py``, ``RequestLog``): the very line ``JsonFormatter`` writes
for the same record, held until the event loop's pass ends and written once for all, and the logging module's
own way whenever anything else is configured (another handler such as caplog's, a filter, a level)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging

import pytest

from gateway.observability.logs import JsonFormatter, RequestLog

FIELDS = {"request_id": "abc", "method": "POST", "path": "/graphql/é\"x\\", "status": 200, "operation": None,
          "duration_ms": 0.05, "upstream_calls": 0, "cache_hits": 1, "error_codes": ["B", "A"], "flag": True,
          "odd": {"k": [1.5, None]}}


@contextlib.contextmanager
def json_root():
    """The root logger as ``configure`` leaves it (one JSON StreamHandler, here writing to a StringIO), within
    the test's body (pytest's own capturing handlers are on the root logger while a test runs)."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    try:
        yield out
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


@pytest.fixture
def logger():
    logger = logging.getLogger("gateway.request.test")
    logger.setLevel(logging.NOTSET)
    return logger


def without_time(line: str) -> dict:
    entry = json.loads(line)
    entry.pop("ts")
    return entry


def test_the_fast_line_is_the_formatters_line_byte_for_byte(logger):
    with json_root() as out:
        RequestLog(logger).info(FIELDS)  # no event loop: written at once
        logger.info("request", extra={"fields": FIELDS})
    fast, slow = out.getvalue().splitlines()
    assert fast[33:] == slow[33:] and fast[:27] == slow[:27]  # all but the milliseconds of the timestamp
    assert without_time(fast) == {"level": "info", "logger": "gateway.request.test", "msg": "request", **FIELDS}
    assert json.loads(fast)["ts"].endswith("Z") and len(json.loads(fast)["ts"]) == 24


def test_lines_of_one_loop_pass_are_written_together_at_its_end(logger):
    log = RequestLog(logger)

    async def requests():
        for i in range(3):
            log.info({"request_id": f"r{i}"})
        assert out.getvalue() == ""  # held during the pass
        await asyncio.sleep(0)
        assert [json.loads(line)["request_id"] for line in out.getvalue().splitlines()] == ["r0", "r1", "r2"]

    with json_root() as out:
        asyncio.run(requests())


def test_another_handler_gets_a_normal_record_and_held_lines_come_first(logger):
    log = RequestLog(logger)
    records = []
    capture = logging.Handler()
    capture.emit = records.append

    async def requests():
        log.info({"request_id": "held"})
        logging.getLogger().addHandler(capture)  # e.g. caplog's: the logging module's way from now on
        log.info({"request_id": "recorded"})
        assert [without_time(line)["request_id"] for line in out.getvalue().splitlines()] == ["held", "recorded"]

    with json_root() as out:
        asyncio.run(requests())
    assert [r.fields["request_id"] for r in records] == ["recorded"]


def test_nothing_is_written_below_the_level(logger):
    logger.setLevel(logging.WARNING)
    with json_root() as out:
        RequestLog(logger).info(FIELDS)
    assert out.getvalue() == ""


def test_a_filter_takes_the_logging_modules_way(logger):
    with json_root() as out:
        handler = logging.getLogger().handlers[0]
        handler.addFilter(lambda record: setattr(record, "fields", {"filtered": True}) or True)
        RequestLog(logger).info({"request_id": "x"})
    assert without_time(out.getvalue())["filtered"] is True
