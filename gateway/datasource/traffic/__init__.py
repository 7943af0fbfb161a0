"""Tenant isolation for upstream calls (one feature, one directory, like Apollo Router's traffic shaping):
``outcome`` classifies, ``retry`` decides retries, ``breaker``/``window`` open and close the breakers,
``fair`` shares the concurrency, ``pacing`` honours 429s, ``control`` puts them in front of every call."""

from gateway.datasource.traffic.control import TrafficControl
from gateway.datasource.traffic.outcome import Outcome, classify

__all__ = ["Outcome", "TrafficControl", "classify"]
