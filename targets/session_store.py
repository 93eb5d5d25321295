"""Server-side session stores: session id → subject, with a TTL the store enforces.

``RedisSessionStore`` is shared by every node (one command per operation: SET … EX, GET or
GETEX for sliding expiry, DEL). ``MemorySessionStore`` lives in one process, so it only serves a
single node or sticky routing. ``CachedSessionStore`` puts an in-process cache of positive
lookups (``--store-cache S``) in front of the Redis store.
"""

from __future__ import annotations

import time
from typing import Protocol

import redis.asyncio as aioredis

from common.store_keys import SESSION_PREFIX
from targets.lookup_cache import LookupCache
from targets.redis_store import store_call
from targets.server_timing import ServerTiming

PURGE_EVERY_WRITES = 1024


class SessionStore(Protocol):
    """Where sessions live; every method reports its store time into ``timing``."""

    async def create(self, session_id: str, subject: str, timing: ServerTiming) -> None: ...

    async def subject(self, session_id: str, timing: ServerTiming) -> str | None: ...

    async def delete(self, session_id: str, timing: ServerTiming) -> None: ...


class RedisSessionStore:
    """Sessions in Redis, shared by every node; expiry is Redis's own TTL."""

    def __init__(self, client: aioredis.Redis, ttl_s: int, sliding: bool) -> None:
        self._client = client
        self._ttl_s = ttl_s
        self._sliding = sliding

    async def create(self, session_id: str, subject: str, timing: ServerTiming) -> None:
        async with store_call(timing):
            await self._client.set(SESSION_PREFIX + session_id, subject, ex=self._ttl_s)

    async def subject(self, session_id: str, timing: ServerTiming) -> str | None:
        key = SESSION_PREFIX + session_id
        async with store_call(timing):
            if self._sliding:
                value = await self._client.getex(key, ex=self._ttl_s)
            else:
                value = await self._client.get(key)
        return value.decode() if value is not None else None

    async def delete(self, session_id: str, timing: ServerTiming) -> None:
        async with store_call(timing):
            await self._client.delete(SESSION_PREFIX + session_id)


class MemorySessionStore:
    """Sessions in this process's memory; expired entries are refused and purged as it goes."""

    def __init__(self, ttl_s: int, sliding: bool) -> None:
        self._ttl_s = ttl_s
        self._sliding = sliding
        self._sessions: dict[str, tuple[str, float]] = {}
        self._writes = 0

    async def create(self, session_id: str, subject: str, timing: ServerTiming) -> None:
        now = time.monotonic()
        self._sessions[session_id] = (subject, now + self._ttl_s)
        self._writes += 1
        if self._writes % PURGE_EVERY_WRITES == 0:
            self._purge(now)

    async def subject(self, session_id: str, timing: ServerTiming) -> str | None:
        entry = self._sessions.get(session_id)
        if entry is None:
            return None
        subject, expires_at = entry
        now = time.monotonic()
        if now >= expires_at:
            self._sessions.pop(session_id, None)
            return None
        if self._sliding:
            self._sessions[session_id] = (subject, now + self._ttl_s)
        return subject

    async def delete(self, session_id: str, timing: ServerTiming) -> None:
        self._sessions.pop(session_id, None)

    def _purge(self, now: float) -> None:
        expired = [sid for sid, (_, expires_at) in self._sessions.items() if expires_at <= now]
        for session_id in expired:
            del self._sessions[session_id]


class CachedSessionStore:
    """A store behind a cache of positive lookups: a session deleted on another node is still
    honoured here until its entry expires (the cache's TTL), one deleted here is refused at once.

    With sliding expiry, a cached answer does not renew the session: the store renews it on the
    next miss, at most the cache's TTL later.
    """

    def __init__(self, inner: SessionStore, cache: LookupCache[str]) -> None:
        self._inner = inner
        self._cache = cache

    async def create(self, session_id: str, subject: str, timing: ServerTiming) -> None:
        await self._inner.create(session_id, subject, timing)

    async def subject(self, session_id: str, timing: ServerTiming) -> str | None:
        cached = self._cache.get(session_id)
        if cached is not None:
            return cached
        subject = await self._inner.subject(session_id, timing)
        if subject is not None:
            self._cache.put(session_id, subject)
        return subject

    async def delete(self, session_id: str, timing: ServerTiming) -> None:
        self._cache.drop(session_id)
        await self._inner.delete(session_id, timing)
