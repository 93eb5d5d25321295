"""The benchmark's user population and its salted password hashes.

``user0`` … ``user{N-1}`` all have the password ``bench-password``, stored as a per-user salted
PBKDF2-HMAC-SHA256 hash whose iteration count is a setting. Every scheme, ``none`` included, runs
the same check at /login, so login costs compare fairly. Hashing a large population takes seconds,
so the table is cached in the keys folder and shared by nodes started with the same folder.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

from common.credentials import BENCH_PASSWORD

KDF_NAME = "pbkdf2-sha256"
SALT_BYTES = 16


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, salt: bytes, iterations: int) -> bytes:
    """The stored form of a password: PBKDF2-HMAC-SHA256 with the given salt and cost."""
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)


class UserDirectory:
    """Username → (salt, hash); checks passwords in constant time, known user or not."""

    def __init__(self, records: dict[str, tuple[bytes, bytes]], iterations: int) -> None:
        self._records = records
        self._iterations = iterations
        # An unknown user costs the same KDF work as a known one: no user enumeration by timing.
        self._decoy = (secrets.token_bytes(SALT_BYTES), secrets.token_bytes(32))

    @property
    def iterations(self) -> int:
        """The KDF cost every login pays."""
        return self._iterations

    def __len__(self) -> int:
        return len(self._records)

    def verify(self, username: str, password: str) -> bool:
        """Whether the password is the user's; takes the KDF's time in every case."""
        known = self._records.get(username)
        salt, expected = known or self._decoy
        actual = hash_password(password, salt, self._iterations)
        return hmac.compare_digest(actual, expected) and known is not None


def _generate(count: int, iterations: int) -> dict[str, tuple[bytes, bytes]]:
    records = {}
    for index in range(count):
        salt = secrets.token_bytes(SALT_BYTES)
        records[f"user{index}"] = (salt, hash_password(BENCH_PASSWORD, salt, iterations))
    return records


def _cache_path(keys_dir: Path, count: int, iterations: int) -> Path:
    return keys_dir / "users" / f"{KDF_NAME}-{iterations}-{count}.json"


def _read_cache(path: Path) -> dict[str, tuple[bytes, bytes]] | None:
    try:
        raw = json.loads(path.read_text())
        return {name: (_unb64(salt), _unb64(digest)) for name, (salt, digest) in raw.items()}
    except (OSError, ValueError, TypeError):
        return None


def _write_cache(path: Path, records: dict[str, tuple[bytes, bytes]]) -> None:
    body = json.dumps({name: [_b64(s), _b64(d)] for name, (s, d) in records.items()})
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(body)
    os.replace(tmp, path)


def load_users(keys_dir: Path, count: int, iterations: int) -> UserDirectory:
    """The user table for this population and cost, from the shared cache or freshly hashed."""
    path = _cache_path(keys_dir, count, iterations)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        records = _read_cache(path)
        if records is None or len(records) != count:
            records = _generate(count, iterations)
            _write_cache(path, records)
    return UserDirectory(records, iterations)
