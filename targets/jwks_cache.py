"""A resource node's view of the issuer's keys: its JWKS, fetched and cached like production.

Fetched once at start-up (the node does not start without it), trusted for ``jwks_ttl``
seconds, then refetched in the background at the next request, which (like every request
meanwhile) is verified with the keys already held: a slow or frozen issuer never holds a request
of a known kid, and a refresh that fails keeps the keys (an issuer outage longer than the TTL
costs nothing; PyJWT's ``PyJWKClient`` once dropped its cache on a failed refresh, pyjwt issue
#1162). A token whose ``kid`` is unknown may trigger a
refetch, but at most one per ``jwks_cooldown`` seconds, and single-flight: however many requests
wait on an unknown kid, one fetch serves them all. So a flood of made-up kids costs at most one
fetch per cooldown (PyJWT's ``PyJWKClient`` would fetch per token), and a key rotation is learnt
at the first token signed with the new key.

Only public keys of the server's own algorithm are taken: a JWK of another algorithm or key
type, or one carrying private members, is ignored. Keys are parsed once per fetch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import jwt

from targets.jwt_keys import KeyRing

JWKS_PATH = "/.well-known/jwks.json"
FETCH_TIMEOUT_S = 2.0
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "k"})


class JwksUnavailable(Exception):
    """The issuer's JWKS could not be fetched or held no usable key."""


def parse_jwks(body: bytes, alg: str) -> dict[str, Any]:
    """kid → public key, for the keys of ``alg`` in a JWKS document."""
    algorithm = jwt.get_algorithm_by_name(alg)
    keys: dict[str, Any] = {}
    for jwk in json.loads(body).get("keys", []):
        if not isinstance(jwk, dict) or PRIVATE_MEMBERS & jwk.keys():
            continue
        if jwk.get("alg") != alg or not isinstance(jwk.get("kid"), str):
            continue
        try:
            keys[jwk["kid"]] = algorithm.from_jwk(jwk)
        except (jwt.InvalidKeyError, ValueError, KeyError, TypeError):
            continue
    return keys


class JwksCache:
    """The verification keys a resource node knows, and the rules by which it refreshes them."""

    def __init__(self, issuer_url: str, alg: str, ttl_s: float, cooldown_s: float) -> None:
        self.url = issuer_url + JWKS_PATH
        self.alg = alg
        self.ttl_s = ttl_s
        self.cooldown_s = cooldown_s
        # Verification reads this dict; fetches replace its contents in place.
        self.ring = KeyRing(alg, "", None, {})
        self.fetches = 0
        self.fetched_at = 0.0
        import httpx  # resource nodes only: every other node starts 0.07 s sooner without it

        self._client = httpx.AsyncClient(timeout=FETCH_TIMEOUT_S)
        self._in_flight: asyncio.Task[None] | None = None

    def load(self) -> None:
        """The first fetch, before serving (blocking): a node without its issuer's keys must
        not serve. JwksUnavailable, one line, when the issuer cannot give any."""
        import httpx

        self.fetched_at = time.monotonic()
        self.fetches += 1
        try:
            response = httpx.get(self.url, timeout=FETCH_TIMEOUT_S)
            response.raise_for_status()
            keys = parse_jwks(response.content, self.alg)
        except (httpx.HTTPError, ValueError) as exc:
            raise JwksUnavailable(f"cannot fetch {self.url}: {exc}") from None
        if not keys:
            raise JwksUnavailable(f"{self.url} published no {self.alg} key")
        self.ring.verification_keys.update(keys)

    async def close(self) -> None:
        await self._client.aclose()

    async def keys_for(self, kid: Any) -> dict[str, Any]:
        """The key set to verify a token with ``kid``: when the kid is unknown, refreshed first
        (within the cooldown's limit); when merely stale, refreshed in the background. Never
        raises: an unknown kid stays unknown."""
        now = time.monotonic()
        stale = now - self.fetched_at >= self.ttl_s
        unknown = isinstance(kid, str) and kid not in self.ring.verification_keys
        # A request with an unknown kid joins a fetch in flight (it may bring that kid) rather
        # than being refused by the cooldown the fetch itself just started.
        if unknown and (self._fetching or now - self.fetched_at >= self.cooldown_s):
            with contextlib.suppress(JwksUnavailable):  # a failed refresh keeps the keys we had
                await asyncio.shield(self._single_flight())
        elif stale:
            self._single_flight()
        return self.ring.verification_keys

    @property
    def _fetching(self) -> bool:
        return self._in_flight is not None and not self._in_flight.done()

    def _single_flight(self) -> asyncio.Task[None]:
        """The fetch in flight, or a new one: however many ask, one fetch at a time."""
        if not self._fetching:
            self._in_flight = asyncio.ensure_future(self._fetch())
            self._in_flight.add_done_callback(_consume_failure)
        assert self._in_flight is not None
        return self._in_flight

    async def _fetch(self) -> None:
        import httpx

        self.fetched_at = time.monotonic()
        self.fetches += 1
        try:
            response = await self._client.get(self.url)
            response.raise_for_status()
            keys = parse_jwks(response.content, self.alg)
        except (httpx.HTTPError, ValueError) as exc:
            raise JwksUnavailable(f"cannot fetch {self.url}: {exc}") from None
        if keys:
            self.ring.verification_keys.clear()
            self.ring.verification_keys.update(keys)


def _consume_failure(task: asyncio.Task[None]) -> None:
    """A background refresh that failed has nobody awaiting it: its failure is expected (the
    keys held stay in use), so it is retrieved here instead of logged as never retrieved."""
    if not task.cancelled():
        task.exception()
