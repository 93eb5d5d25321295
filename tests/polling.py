"""Waiting for a server to answer again after a fault, shared by the outage tests."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

RECOVERY_S = 2.0


def wait_for_status(request: Callable[[], httpx.Response], status: int, within_s: float) -> int:
    """Poll until the request answers ``status``; the last status seen."""
    deadline = time.monotonic() + within_s
    seen = request().status_code
    while seen != status and time.monotonic() < deadline:
        time.sleep(0.05)
        seen = request().status_code
    return seen
