"""One JSON object per log line (request logs, warnings, tracebacks), for log pipelines.

The request log (``RequestLog``, one line per HTTP request: ``http/middleware.py``) is the one line written
at the rate of requests, so it has a fast path: when the process logs the usual way (``configure`` or
``log_config``: the root logger's one handler a plain ``StreamHandler`` with ``JsonFormatter``, nothing
filtering or added on the way), the line is formatted directly and written to that handler's stream under
its lock, without a ``LogRecord``, ``Formatter.format`` or ``json.dumps``; the line is exactly the one
``JsonFormatter`` writes for ``log.info("request", extra={"fields": ...})``. Anything else (a second
handler such as pytest's ``caplog``, a filter, another formatter, a level) takes the logging module's way,
so that whatever was configured sees a normal record. Every request is logged either way (no sampling):
at 32 connections on the result-cache path the logging module's way cost about a third of the
throughput, the fast path a few per cent (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import math
import sys
import threading
import time
from json.encoder import encode_basestring_ascii as _json_string  # what json.dumps writes for a str (C)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def _float(value: float) -> str:
    return _float_repr(value) if math.isfinite(value) else json.dumps(value)  # NaN, Infinity as json writes them


def _list(value: list) -> str:
    return "[" + ", ".join([_json_value(v) for v in value]) + "]"


def _other(value: object) -> str:
    return json.dumps(value, default=str)


_float_repr = float.__repr__
# Each type a request line holds, written as ``json.dumps`` writes it (ASCII escapes included); others through it.
_ENCODERS = {str: _json_string, int: int.__repr__, float: _float, type(None): lambda _: "null",
             bool: lambda v: "true" if v else "false", list: _list}


def _json_value(value: object) -> str:
    return _ENCODERS.get(type(value), _other)(value)


class RequestLog:
    """``info(fields)``: the request line of ``logger`` (an INFO record with ``msg`` "request" and ``fields``),
    by the fast path when it writes the same bytes, else through the logging module (see the module doc)."""

    def __init__(self, logger: logging.Logger, msg: str = "request") -> None:
        self.logger = logger
        self.msg = msg
        self._root = logging.getLogger()
        self._handler: logging.StreamHandler | None = None  # the root handler last found fit for the fast path
        self._head = _json_string(logger.name) + ", \"msg\": " + _json_string(msg)
        self._second = -1
        self._ts = ""
        self._keys: dict[str, str] = {}  # field name -> its JSON text and separators
        # Lines formatted during one pass of the event loop, written together at its end (``flush``, scheduled
        # with call_soon): one write(2) for every request finished in that pass instead of one each.
        self._pending: list[str] = []
        self._pending_to: logging.StreamHandler | None = None
        self._scheduled = False
        self._lock = threading.Lock()
        atexit.register(self.flush)

    def _fast_handler(self) -> logging.StreamHandler | None:
        handlers = self._root.handlers
        if len(handlers) != 1:
            return None
        handler = handlers[0]
        if handler is not self._handler:
            if not (type(handler) is logging.StreamHandler and type(handler.formatter) is JsonFormatter):
                return None
            self._handler = handler
        logger = self.logger
        if (handler.filters or handler.level > logging.INFO or logger.handlers or logger.filters
                or self._root.filters or not logger.propagate):
            return None
        return handler

    def info(self, fields: dict) -> None:
        logger = self.logger
        if not logger.isEnabledFor(logging.INFO):  # levels, logging.disable(), logger.disabled
            return
        handler = self._fast_handler()
        if handler is None:
            self.flush()  # lines held for the fast path first: the order of the lines stays the order of requests
            logger.info(self.msg, extra={"fields": fields})
            return
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second, self._ts = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        keys, encoders = self._keys, _ENCODERS
        parts = [f'{{"ts": "{self._ts}.{int((now - second) * 1000):03d}Z", "level": "info", "logger": {self._head}']
        for key, value in fields.items():
            name = keys.get(key)
            if name is None:
                name = keys[key] = ", " + _json_string(key) + ": "
            parts.append(name)
            parts.append(encoders.get(type(value), _other)(value))
        parts.append("}" + handler.terminator)
        line = "".join(parts)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop in this thread: written at once
            loop = None
        with self._lock:  # servers in threads of one process (tests) share this object
            if self._pending and handler is not self._pending_to:
                self._write_held()
            self._pending.append(line)
            self._pending_to = handler
            if loop is None:
                self._write_held()
                return
            schedule, self._scheduled = not self._scheduled, True
        if schedule:
            loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write the lines held for the current event-loop pass (one write for all of them)."""
        with self._lock:
            self._scheduled = False
            self._write_held()

    def _write_held(self) -> None:
        handler, text = self._pending_to, "".join(self._pending)
        self._pending.clear()
        if handler is None or not text:
            return
        handler.acquire()
        try:
            stream = handler.stream
            stream.write(text)
            if hasattr(stream, "flush"):
                stream.flush()
        except Exception:  # what StreamHandler.emit does with a broken stream
            handler.handleError(logging.makeLogRecord({"name": self.logger.name, "msg": self.msg,
                                                      "levelno": logging.INFO, "levelname": "INFO"}))
        finally:
            handler.release()


def configure(level: str = "info") -> None:
    """JSON lines on stderr for the gateway's own loggers; chatty libraries quieted."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request URL at INFO; filter values (phone numbers) do not belong in logs.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # Our own request log replaces uvicorn's access log.
    logging.getLogger("uvicorn.access").disabled = True


def log_config(level: str = "info") -> dict:
    """uvicorn's logging config in the same JSON shape."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            "uvicorn": {"level": level.upper()},
            "uvicorn.access": {"level": "WARNING", "propagate": False, "handlers": []},
            "httpx": {"level": "WARNING"},
            "httpcore": {"level": "WARNING"},
        },
    }
