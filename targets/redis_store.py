"""The Redis connection of a reference server, and the one error its callers handle.

A command fails fast when Redis is unreachable (the server answers 503) and the pool reconnects
on the next command once Redis is back, so a server recovers without a restart.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from targets.server_timing import ServerTiming

CONNECT_TIMEOUT_S = 0.5
COMMAND_TIMEOUT_S = 1.0


class StoreUnavailable(Exception):
    """Redis could not serve a command; the request answers 503."""


def connect(url: str) -> aioredis.Redis:
    """A pooled client that fails fast and retries once on a fresh connection."""
    return aioredis.Redis.from_url(
        url,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=COMMAND_TIMEOUT_S,
        retry=Retry(NoBackoff(), retries=1),
        retry_on_timeout=False,
        decode_responses=False,
    )


@asynccontextmanager
async def store_call(timing: ServerTiming) -> AsyncIterator[None]:
    """Time a Redis wait and turn any Redis failure into StoreUnavailable."""
    with timing.store():
        try:
            yield
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(type(exc).__name__) from exc


async def is_reachable(client: aioredis.Redis) -> bool:
    """Whether Redis answers PING right now."""
    try:
        return bool(await client.ping())
    except (RedisError, OSError):
        return False
