"""Hand-made tokens for the attack tests: what an attacker can build without the server's key."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

import jwt

from targets.jwt_keys import KeyRing


def b64url(data: bytes) -> str:
    """Unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(value: Any) -> str:
    """Unpadded base64url of compact JSON."""
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def segments(token: str) -> tuple[str, str, str]:
    """The three dot-separated parts of a compact JWS."""
    header, payload, signature = token.split(".")
    return header, payload, signature


def decode_segment(segment: str) -> dict[str, Any]:
    """JSON object of a base64url segment."""
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


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


def flip_char(text: str, index: int) -> str:
    """The text with one base64url character changed (never to itself)."""
    replacement = "A" if text[index] != "A" else "B"
    return text[:index] + replacement + text[index + 1 :]
