"""Micro benchmark: the in-process cost of each scheme's primitives, with the servers' own code.

For every JWT algorithm: signing and verifying an access token through ``TokenService`` with
each JWT library (layer ``pyjwt``, ``joserfc``, ``jwcrypto``: exactly what /login and /me run)
beside the raw ``cryptography``/``hmac`` sign and verify of the same bytes; for sessions: one
create and one read through the servers' store classes, against Redis and memory; the denylist
lookup; and one password check at the configured KDF cost. Each figure is the median of several
timed batches, with its spread.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import hmac
import secrets
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from common.credentials import BENCH_PASSWORD
from common.schemes import ALGORITHMS, JWT_LIBRARIES, is_hmac
from common.store_keys import SESSION_PREFIX
from loadtests.services.private_redis import PrivateRedis, redis_url_from_env
from targets import redis_store
from targets.jwt_keys import KeyRing, load_key_ring
from targets.jwt_tokens import TokenService
from targets.server_timing import ServerTiming
from targets.session_store import MemorySessionStore, RedisSessionStore
from targets.token_state import TokenState
from targets.users import load_users

REPEATS = 7
BATCH_TARGET_S = 0.03
HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}


@dataclass(frozen=True)
class MicroResult:
    """One primitive's cost per operation, in microseconds."""

    scheme: str
    alg: str
    store: str
    layer: str
    op: str
    median_us: float
    iqr_us: float
    min_us: float
    max_us: float
    repeats: int
    loops: int


def _per_op_us(samples: list[float]) -> tuple[float, float, float, float]:
    quartiles = statistics.quantiles(samples, n=4)
    return statistics.median(samples), quartiles[2] - quartiles[0], min(samples), max(samples)


def time_sync(func: Callable[[], Any], repeats: int = REPEATS) -> tuple[list[float], int]:
    """Per-op µs of ``repeats`` batches, each sized to last about BATCH_TARGET_S."""
    loops = 1
    while True:
        start = time.perf_counter()
        for _ in range(loops):
            func()
        elapsed = time.perf_counter() - start
        if elapsed >= BATCH_TARGET_S / 5 or loops >= 1 << 20:
            break
        loops *= 4
    loops = max(1, int(loops * BATCH_TARGET_S / max(elapsed, 1e-9)))
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(loops):
            func()
        samples.append((time.perf_counter() - start) / loops * 1e6)
    return samples, loops


async def time_async(
    func: Callable[[], Awaitable[Any]], loops: int = 500, repeats: int = REPEATS
) -> tuple[list[float], int]:
    """Per-op µs of ``repeats`` batches of ``loops`` sequential awaits (store round trips)."""
    for _ in range(loops // 10):
        await func()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(loops):
            await func()
        samples.append((time.perf_counter() - start) / loops * 1e6)
    return samples, loops


def raw_sign_verify(alg: str, ring: KeyRing) -> tuple[Callable[[bytes], bytes], Callable]:
    """The bare cryptographic sign and verify that PyJWT wraps for this algorithm."""
    key = ring.signing_key
    public = ring.verification_keys[ring.signing_kid]
    bits = HASHES[alg[-3:]] if alg != "EdDSA" else None
    if is_hmac(alg):
        digest = getattr(hashlib, f"sha{alg[2:]}")

        def hmac_sign(data: bytes) -> bytes:
            return hmac.new(key, data, digest).digest()

        def hmac_verify(signature: bytes, data: bytes) -> bool:
            return hmac.compare_digest(signature, hmac.new(public, data, digest).digest())

        return hmac_sign, hmac_verify
    if isinstance(key, rsa.RSAPrivateKey):
        assert bits is not None
        pad = (
            padding.PSS(padding.MGF1(bits()), bits.digest_size)
            if alg.startswith("PS")
            else padding.PKCS1v15()
        )
        return (lambda d: key.sign(d, pad, bits()), lambda s, d: public.verify(s, d, pad, bits()))
    if isinstance(key, ec.EllipticCurvePrivateKey):
        assert bits is not None
        scheme = ec.ECDSA(bits())
        return (lambda d: key.sign(d, scheme), lambda s, d: public.verify(s, d, scheme))
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    return key.sign, public.verify


def measure_jwt(alg: str, keys_dir: Path) -> list[MicroResult]:
    """Sign and verify costs of one algorithm, through every JWT library and raw."""
    ring = load_key_ring(keys_dir, alg)
    cases: dict[tuple[str, str], Callable[[], Any]] = {}
    for library in JWT_LIBRARIES:
        service = TokenService(ring, "authbench", "authbench", 300, 86400, 0, library)
        token = service.issue_pair("user1").access_token
        cases[(library, "issue_pair")] = lambda s=service: s.issue_pair("user1")
        cases[(library, "verify_access")] = lambda s=service, t=token: s.verify_access(t)
    signing_input = token.rsplit(".", 1)[0].encode()
    raw_sign, raw_verify = raw_sign_verify(alg, ring)
    signature = raw_sign(signing_input)
    cases[("raw", "sign")] = lambda: raw_sign(signing_input)
    cases[("raw", "verify")] = lambda: raw_verify(signature, signing_input)
    return [
        _result(f"jwt-{alg}", alg, "", layer, op, *time_sync(f)) for (layer, op), f in cases.items()
    ]


async def measure_stores(redis_url: str) -> list[MicroResult]:
    """Session create/read against Redis and memory, and the denylist lookup."""
    client = redis_store.connect(redis_url)
    timing = ServerTiming()
    results = []
    try:
        stores = {
            "redis": RedisSessionStore(client, 1800, sliding=False),
            "memory": MemorySessionStore(1800, sliding=False),
        }
        for name, store in stores.items():
            session_id = secrets.token_urlsafe(32)
            await store.create(session_id, "user1", timing)
            ops = {
                "create": lambda s=store: s.create(secrets.token_urlsafe(32), "user1", timing),
                "read": lambda s=store, i=session_id: s.subject(i, timing),
            }
            for op, func in ops.items():
                samples, loops = await time_async(func)
                results.append(_result(f"session-{name}", "", name, "store", op, samples, loops))
        state = TokenState(client, 86400, 300, denylist=True)
        samples, loops = await time_async(lambda: state.is_revoked("jti", "sid", timing))
        results.append(
            _result("jwt-*+deny", "", "redis", "store", "denylist_check", samples, loops)
        )
    finally:
        await _forget_sessions(client)
        await client.aclose()
    return results


async def _forget_sessions(client: aioredis.Redis) -> None:
    """The micro benchmark's sessions are throwaway; leave the store as small as it was."""
    async for key in client.scan_iter(match=SESSION_PREFIX + "*", count=1000):
        await client.delete(key)


def measure_kdf(iterations: int, keys_dir: Path) -> MicroResult:
    """One password check at the servers' KDF cost (the same for every scheme)."""
    users = load_users(keys_dir, 1, iterations)
    samples, loops = time_sync(lambda: users.verify("user0", BENCH_PASSWORD), repeats=5)
    return _result("*", "", "", "kdf", f"pbkdf2_sha256_{iterations}", samples, loops)


def _result(
    scheme: str, alg: str, store: str, layer: str, op: str, samples: list[float], loops: int
) -> MicroResult:
    median, iqr, low, high = _per_op_us(samples)
    return MicroResult(scheme, alg, store, layer, op, round(median, 3), round(iqr, 3),
                       round(low, 3), round(high, 3), len(samples), loops)  # fmt: skip


def run_micro(
    redis_url: str, kdf_iterations: int = 10_000, algorithms: tuple[str, ...] = ALGORITHMS
) -> list[MicroResult]:
    """Every micro measurement (JWT rows for the given algorithms), in a fresh keys folder."""
    with tempfile.TemporaryDirectory(prefix="authbench-micro-") as keys:
        results = [r for alg in algorithms for r in measure_jwt(alg, Path(keys))]
        results.extend(asyncio.run(measure_stores(redis_url)))
        results.append(measure_kdf(kdf_iterations, Path(keys)))
    return results


def run_micro_on_any_redis(
    kdf_iterations: int, algorithms: tuple[str, ...] = ALGORITHMS
) -> list[MicroResult]:
    """run_micro against REDIS_URL when given, else a private Redis started for it."""
    given = redis_url_from_env()
    if given:
        return run_micro(given, kdf_iterations, algorithms)
    with PrivateRedis() as server:
        return run_micro(server.url, kdf_iterations, algorithms)


def write_micro_csv(results: list[MicroResult], path: Path) -> None:
    """Save the results as micro.csv."""
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[f.name for f in fields(MicroResult)])
        writer.writeheader()
        writer.writerows(asdict(r) for r in results)


def format_table(results: list[MicroResult]) -> str:
    """A console table of the results."""
    lines = [f"{'scheme':<16}{'layer':<10}{'op':<22}{'median µs':>11}{'IQR µs':>9}"]
    for r in results:
        lines.append(f"{r.scheme:<16}{r.layer:<10}{r.op:<22}{r.median_us:>11.2f}{r.iqr_us:>9.2f}")
    return "\n".join(lines)
