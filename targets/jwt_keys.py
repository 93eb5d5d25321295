"""The keys folder: load, generate and publish the signing keys of one JWT algorithm.

Layout: ``<keys-dir>/<ALG>/<kid>.pem`` (PKCS#8 private key) or ``<kid>.hmac`` (one line of
base64url). The key whose kid sorts last signs; every key verifies, so rotation is "add a key,
restart, later remove the old one". A server that finds no key generates one under a file lock
and writes it atomically, so nodes started together with one folder share one key. Keys are
parsed here, once, into key objects; nothing is read from disk per request. How a key is made
and stored is :mod:`common.key_files`, which the runner shares to rotate the issuer's key.
"""

from __future__ import annotations

import base64
import fcntl
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from common.key_files import EC_CURVES, HMAC_SECRET_BYTES, generate_private_key, new_kid, write_key

KID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class KeysFolderError(Exception):
    """The keys folder cannot be used; the message is one line for the user."""


@dataclass(frozen=True)
class KeyRing:
    """The parsed keys of one algorithm: which one signs, and every one that verifies."""

    alg: str
    signing_kid: str
    signing_key: Any
    verification_keys: dict[str, Any]

    @property
    def is_symmetric(self) -> bool:
        """Whether signing and verifying share one secret (HMAC)."""
        return self.alg in HMAC_SECRET_BYTES

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        """The public keys as a JWK set; empty for HMAC, whose secret is never published."""
        if self.is_symmetric:
            return {"keys": []}
        algorithm = jwt.get_algorithm_by_name(self.alg)
        keys = []
        for kid, public_key in sorted(self.verification_keys.items()):
            jwk = algorithm.to_jwk(public_key, as_dict=True)
            jwk.update(kid=kid, alg=self.alg, use="sig")
            keys.append(jwk)
        return {"keys": keys}


def _expected_suffix(alg: str) -> str:
    return ".hmac" if alg in HMAC_SECRET_BYTES else ".pem"


def _parse_key(alg: str, path: Path) -> Any:
    data = path.read_bytes()
    if alg in HMAC_SECRET_BYTES:
        text = data.strip()
        secret = base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))
        if len(secret) < HMAC_SECRET_BYTES[alg]:
            minimum = HMAC_SECRET_BYTES[alg]
            raise KeysFolderError(f"{path}: HMAC secret shorter than {minimum} bytes")
        return secret
    key = serialization.load_pem_private_key(data, password=None)
    expected = {
        "ES256": ec.EllipticCurvePrivateKey,
        "ES384": ec.EllipticCurvePrivateKey,
        "EdDSA": ed25519.Ed25519PrivateKey,
    }.get(alg, rsa.RSAPrivateKey)
    if not isinstance(key, expected):
        raise KeysFolderError(f"{path}: not a key for {alg}")
    if alg in EC_CURVES and not isinstance(key.curve, EC_CURVES[alg]):
        raise KeysFolderError(f"{path}: wrong curve for {alg}")
    return key


def _key_files(alg_dir: Path, alg: str) -> list[Path]:
    """The algorithm's key files; one whose name is not a kid is refused, never skipped (a
    node that silently ignored a key would stop verifying what its peers sign)."""
    suffix = _expected_suffix(alg)
    found = [path for path in alg_dir.iterdir() if path.suffix == suffix and path.is_file()]
    for path in found:
        if not KID_PATTERN.match(path.stem):
            raise KeysFolderError(
                f"{path}: the file name is not a kid (1-64 letters, digits, '-' or '_'; "
                "rename or remove it)"
            )
    return sorted(found)


def load_key_ring(keys_dir: Path, alg: str, rsa_bits: int = 2048) -> KeyRing:
    """Parse every key of the algorithm, generating the first one if the folder has none."""
    alg_dir = keys_dir / alg
    try:
        alg_dir.mkdir(parents=True, exist_ok=True)
        with open(alg_dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            files = _key_files(alg_dir, alg)
            if not files:
                write_key(alg_dir, new_kid(), alg, generate_private_key(alg, rsa_bits))
                files = _key_files(alg_dir, alg)
        private = {path.stem: _parse_key(alg, path) for path in files}
    except (OSError, ValueError) as exc:
        raise KeysFolderError(f"cannot use keys folder {alg_dir}: {exc}") from None
    signing_kid = max(private)
    if alg in HMAC_SECRET_BYTES:
        verification = dict(private)
    else:
        verification = {kid: key.public_key() for kid, key in private.items()}
    return KeyRing(alg, signing_kid, private[signing_kid], verification)
