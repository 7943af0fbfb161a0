"""The embedded demo upstream: a faithful stand-in for the Laravel ``GET /user/leads`` and ``POST /user/lead`` endpoints."""

from gateway.demo.app import FAULTS, Call, DemoOptions, create_demo_app, main_options_from_env, reset_calls
from gateway.demo.data import DEMO_TOKEN, STATUSES, dataset_for_token

__all__ = [
    "Call", "DEMO_TOKEN", "DemoOptions", "FAULTS", "STATUSES", "create_demo_app", "dataset_for_token",
    "main_options_from_env", "reset_calls",
]
