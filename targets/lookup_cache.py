"""An in-process cache of store answers: the production shortcut that trades a window for speed.

``--store-cache S`` keeps a positive session lookup (session id → subject) or a denylist answer
"not revoked" (token id) for S seconds, so most requests skip the store round trip. The price
is the one the seed names for JWTs: a credential revoked on *another* node keeps working there
until its entry expires, at most S seconds after it was cached. A logout on *this* node drops
its own entry first, so the node that revoked refuses at once. Negative answers are never kept:
a refusal is always the store's current word.

Time is the monotonic clock; at ``MAX_ENTRIES`` the whole cache is dropped (one burst of store
reads, never an unbounded process).
"""

from __future__ import annotations

import time
from typing import Generic, TypeVar

MAX_ENTRIES = 100_000

Value = TypeVar("Value")


class LookupCache(Generic[Value]):
    """Key → value for ``ttl_s`` seconds after it was put."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[float, Value]] = {}

    def get(self, key: str) -> Value | None:
        """The cached value while fresh, else None (an expired entry is removed)."""
        entry = self._entries.get(key)
        if entry is not None:
            if entry[0] > time.monotonic():
                return entry[1]
            del self._entries[key]
        return None

    def put(self, key: str, value: Value) -> None:
        """Keep ``value`` for the cache's TTL from now."""
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[key] = (time.monotonic() + self.ttl_s, value)

    def drop(self, key: str) -> None:
        """Forget ``key`` (this node revoked it)."""
        self._entries.pop(key, None)
