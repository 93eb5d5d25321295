"""The server-side state of a JWT server, in Redis: refresh families and the denylist.

A family is one login: ``fam:<sid>`` holds the id of its one valid refresh token. Rotation
swaps it atomically (one Lua call); presenting an already used refresh token deletes the family,
so every refresh token of that login dies. With the denylist on, logout denies the access
token's ``jti`` until its ``exp`` and marks the family revoked, and every request asks Redis
about both in one EXISTS. With ``--store-cache S`` a "not revoked" answer is kept in process for
S seconds (:mod:`targets.lookup_cache`); a logout on this node drops its own entry.
"""

from __future__ import annotations

from enum import Enum

import redis.asyncio as aioredis

from common.store_keys import DENIED_PREFIX, FAMILY_PREFIX, REVOKED_FAMILY_PREFIX
from targets.lookup_cache import LookupCache
from targets.redis_store import store_call
from targets.server_timing import ServerTiming

# KEYS: family, revoked-family marker.
# ARGV: presented jti, new jti, family ttl, marker ttl (0: no marker).
ROTATE_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
if current ~= ARGV[1] then
  redis.call('DEL', KEYS[1])
  if tonumber(ARGV[4]) > 0 then redis.call('SET', KEYS[2], '1', 'EX', ARGV[4]) end
  return -1
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""


class Rotation(Enum):
    """Outcome of presenting a refresh token."""

    ROTATED = 1
    UNKNOWN_FAMILY = 0
    REUSED = -1


class TokenState:
    """Refresh families and, optionally, the denylist of one JWT deployment."""

    def __init__(
        self,
        client: aioredis.Redis,
        refresh_ttl_s: int,
        access_lifetime_s: int,
        denylist: bool,
        cache_s: int = 0,
    ) -> None:
        """``access_lifetime_s`` is how long an access token can be honoured: ttl + leeway;
        ``cache_s`` how long a "not revoked" answer is kept here (0: never)."""
        self._client = client
        self._not_revoked: LookupCache[bool] | None = LookupCache(cache_s) if cache_s else None
        self._refresh_ttl_s = refresh_ttl_s
        self._access_lifetime_s = access_lifetime_s
        self._denylist = denylist
        self._rotate = client.register_script(ROTATE_SCRIPT)

    async def start_family(self, family_id: str, refresh_id: str, timing: ServerTiming) -> None:
        """Record a new login's first refresh token."""
        async with store_call(timing):
            await self._client.set(FAMILY_PREFIX + family_id, refresh_id, ex=self._refresh_ttl_s)

    async def rotate(
        self, family_id: str, presented_id: str, new_id: str, timing: ServerTiming
    ) -> Rotation:
        """Swap the family's refresh token if the presented one is current; revoke on reuse."""
        marker_ttl = self._access_lifetime_s if self._denylist else 0
        async with store_call(timing):
            outcome = await self._rotate(
                keys=[FAMILY_PREFIX + family_id, REVOKED_FAMILY_PREFIX + family_id],
                args=[presented_id, new_id, self._refresh_ttl_s, marker_ttl],
            )
        return Rotation(int(outcome))

    async def revoke(
        self, family_ids: set[str], access_id: str, deny_for_s: int, timing: ServerTiming
    ) -> None:
        """Log out: end the families; with the denylist, deny the access token ``deny_for_s``."""
        if self._not_revoked is not None:
            self._not_revoked.drop(access_id)
        async with store_call(timing):
            pipe = self._client.pipeline(transaction=False)
            pipe.delete(*(FAMILY_PREFIX + family for family in family_ids))
            if self._denylist:
                pipe.set(DENIED_PREFIX + access_id, b"1", ex=max(1, deny_for_s))
                for family in family_ids:
                    pipe.set(REVOKED_FAMILY_PREFIX + family, b"1", ex=self._access_lifetime_s)
            await pipe.execute()

    async def is_revoked(self, access_id: str, family_id: str, timing: ServerTiming) -> bool:
        """Whether a (signature-valid) access token was denied or its family revoked."""
        if self._not_revoked is not None and self._not_revoked.get(access_id):
            return False
        async with store_call(timing):
            hits = await self._client.exists(
                DENIED_PREFIX + access_id, REVOKED_FAMILY_PREFIX + family_id
            )
        if hits == 0 and self._not_revoked is not None:
            self._not_revoked.put(access_id, True)
        return hits > 0
