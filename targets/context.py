"""What every scheme's routes share: settings, users, keys folder, the Redis client."""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from pydantic import BaseModel, Field

from targets import redis_store
from targets.http_errors import AuthFailure
from targets.server_timing import ServerTiming
from targets.settings import ServerSettings
from targets.users import UserDirectory, load_users

WRONG_CREDENTIALS = "invalid username or password"


class LoginRequest(BaseModel):
    """Body of POST /login."""

    username: str = Field(min_length=1, max_length=256)
    password: str = Field(min_length=1, max_length=1024)


@dataclass
class ServerContext:
    """What every scheme's routes share."""

    settings: ServerSettings
    users: UserDirectory | None  # None on a resource node: it logs nobody in
    keys_dir: Path
    redis: aioredis.Redis | None
    # Hooks the scheme registers: run at shutdown, and on SIGHUP.
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    reloaders: list[Callable[[], None]] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)  # more identity for /healthz

    def check_password(self, credentials: LoginRequest, timing: ServerTiming) -> str:
        """The username if the password is right; AuthFailure otherwise (same for both causes)."""
        assert self.users is not None, "a resource node has no /login"
        with timing.kdf():
            valid = self.users.verify(credentials.username, credentials.password)
        if not valid:
            raise AuthFailure(WRONG_CREDENTIALS)
        return credentials.username

    def describe(self) -> dict[str, Any]:
        """The identity /healthz reports."""
        s = self.settings
        return {
            "scheme": s.scheme,
            "alg": s.alg,
            "store": "redis" if s.scheme == "jwt" else s.store,
            "denylist": s.denylist if s.scheme == "jwt" else None,
            **({"library": s.jwt_library} if s.scheme == "jwt" and not s.introspect else {}),
            "node": s.node_id,
            "role": s.role,
            **({"planted_cost_us": s.planted_cost_us} if s.planted_cost_us else {}),
            **({"store_cache_s": s.store_cache} if s.store_cache else {}),
            **self.facts,
        }


def build_context(settings: ServerSettings) -> ServerContext:
    """Parse keys folder and users once, before serving; connect lazily to Redis if needed."""
    if settings.learns_keys or settings.introspect:
        keys_dir = Path("/nonexistent")  # never read: this node holds no key and no user
    else:
        keys_dir = Path(settings.keys_dir or tempfile.mkdtemp(prefix="authbench-keys-"))
    users = (
        load_users(keys_dir, settings.users, settings.kdf_iterations) if settings.issues else None
    )
    client = redis_store.connect(settings.redis_url) if settings.uses_redis else None
    return ServerContext(settings, users, keys_dir, client)
