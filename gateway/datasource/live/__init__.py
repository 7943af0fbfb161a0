"""Live data: subscriptions served by one poller per watched window, cluster-wide (``hub.py``)."""

from gateway.datasource.live.hub import LiveHub, build_bus
from gateway.datasource.live.watch import LeadWatch, State, WindowWatch

__all__ = ["LiveHub", "LeadWatch", "State", "WindowWatch", "build_bus"]
