"""How a signing key is made and stored in a keys folder: the layout every floor shares.

``<keys-dir>/<ALG>/<kid>.pem`` (PKCS#8 private key) or ``<kid>.hmac`` (one line of base64url),
written atomically and readable by its owner only. The servers read the folder
(:mod:`targets.jwt_keys`); the runner writes a new key into it to rotate the issuer's key.
"""

from __future__ import annotations

import base64
import os
import secrets
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

HMAC_SECRET_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
EC_CURVES = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1}


def new_kid() -> str:
    """A kid that sorts after every kid made earlier: UTC time, then randomness."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(4)


def generate_private_key(alg: str, rsa_bits: int = 2048) -> Any:
    """A fresh private key (or HMAC secret bytes) for the algorithm."""
    if alg in HMAC_SECRET_BYTES:
        return secrets.token_bytes(HMAC_SECRET_BYTES[alg])
    if alg in EC_CURVES:
        return ec.generate_private_key(EC_CURVES[alg]())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    return rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)


def serialize_key(alg: str, key: Any) -> tuple[str, bytes]:
    """The file suffix and bytes under which a key is stored."""
    if alg in HMAC_SECRET_BYTES:
        return ".hmac", base64.urlsafe_b64encode(key).rstrip(b"=") + b"\n"
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return ".pem", pem


def write_key(alg_dir: Path, kid: str, alg: str, key: Any) -> Path:
    """Write a key atomically, readable by its owner only."""
    suffix, body = serialize_key(alg, key)
    final = alg_dir / f"{kid}{suffix}"
    tmp = alg_dir / f".{kid}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(body)
    os.replace(tmp, final)
    return final
