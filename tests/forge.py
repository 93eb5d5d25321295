"""Hand-made tokens for the attack tests: what an attacker can build without the server's key."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Any

import jwt

from loadtests.load.scenarios.forgery import b64url, b64url_json, decode_segment, flip_char
from targets.jwt_keys import KeyRing

__all__ = ["b64url", "b64url_json", "decode_segment", "flip_char"]


def segments(token: str) -> tuple[str, str, str]:
    """The three dot-separated parts of a compact JWS."""
    header, payload, signature = token.split(".")
    return header, payload, signature


def valid_claims(**overrides: Any) -> dict[str, Any]:
    """Claims the server would accept (before signing), with overrides; None removes a claim."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": "authbench",
        "aud": "authbench",
        "sub": "user1",
        "iat": now,
        "exp": now + 300,
        "jti": secrets.token_urlsafe(16),
        "sid": secrets.token_urlsafe(16),
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def sign_with_ring(ring: KeyRing, claims: dict[str, Any], **header: Any) -> str:
    """A token signed with the server's own signing key (header fields may be overridden)."""
    headers = {"kid": ring.signing_kid, "typ": "at+jwt", **header}
    alg = headers.pop("alg", ring.alg)
    return jwt.encode(claims, ring.signing_key, algorithm=alg, headers=headers)


def hmac_token(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    """An HS256 token built by hand, so any bytes (even a public key) can be the secret."""
    signing_input = f"{b64url_json(header)}.{b64url_json(claims)}"
    digest = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(digest)}"


def unsigned_token(claims: dict[str, Any], kid: str, signature: str = "") -> str:
    """An ``alg: none`` token."""
    header = {"alg": "none", "kid": kid, "typ": "at+jwt"}
    return f"{b64url_json(header)}.{b64url_json(claims)}.{signature}"
