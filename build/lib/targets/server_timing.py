"""Per-request attribution of auth cost, reported in the ``Server-Timing`` response header.

``auth`` is the time spent verifying or issuing the credential, store waits included; ``store``
is the part of it spent waiting on Redis (present whenever the request touched Redis); ``kdf``
the part spent on the password hash at /login. Durations are in milliseconds, microsecond
resolution, so the load tests can attribute cost without guessing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

HEADER = "Server-Timing"


def burn_cpu(nanoseconds: int) -> None:
    """Spend this much of the thread's CPU time (not wall time: a stall does not count)."""
    until = time.thread_time_ns() + nanoseconds
    while time.thread_time_ns() < until:
        pass


class ServerTiming:
    """Accumulates the auth, store and kdf durations of one request.

    ``planted_ns`` is a self-test's known extra CPU cost, burnt inside every ``auth`` block.
    """

    __slots__ = ("_auth_ns", "_kdf_ns", "_planted_ns", "_store_ns", "_touched_store")

    def __init__(self, planted_ns: int = 0) -> None:
        self._auth_ns = 0
        self._store_ns = 0
        self._kdf_ns = 0
        self._touched_store = False
        self._planted_ns = planted_ns

    @contextmanager
    def _elapsed_into(self, slot: str, planted_ns: int = 0) -> Iterator[None]:
        start = time.perf_counter_ns()
        try:
            yield
            if planted_ns:
                burn_cpu(planted_ns)
        finally:
            setattr(self, slot, getattr(self, slot) + time.perf_counter_ns() - start)

    def auth(self) -> AbstractContextManager[None]:
        """Time the whole credential step (a planted cost included)."""
        return self._elapsed_into("_auth_ns", self._planted_ns)

    def store(self) -> AbstractContextManager[None]:
        """Time one wait on Redis (inside an ``auth`` block)."""
        self._touched_store = True
        return self._elapsed_into("_store_ns")

    def kdf(self) -> AbstractContextManager[None]:
        """Time the password hash (inside an ``auth`` block)."""
        return self._elapsed_into("_kdf_ns")

    def header_value(self) -> str:
        """The ``Server-Timing`` value, e.g. ``auth;dur=0.081, store;dur=0.052``."""
        parts = [f"auth;dur={self._auth_ns / 1e6:.3f}"]
        if self._touched_store:
            parts.append(f"store;dur={self._store_ns / 1e6:.3f}")
        if self._kdf_ns:
            parts.append(f"kdf;dur={self._kdf_ns / 1e6:.3f}")
        return ", ".join(parts)
