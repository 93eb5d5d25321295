"""Invalid credentials built from valid ones, as an attacker (or a broken client) would send them.

Used by the validation scenario under load and by the attack tests: base64url segments, a claim
changed without re-signing, a signature by a key the server never had, ``alg: none``, and claims
signed with the server's own key for another issuer or audience (only with the keys folder).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt

from common.key_files import generate_private_key


def b64url(data: bytes) -> str:
    """Unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(value: Any) -> str:
    """Unpadded base64url of compact JSON."""
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def decode_segment(segment: str) -> dict[str, Any]:
    """JSON object of a base64url segment."""
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def foreign_key(alg: str) -> Any:
    """A signing key of ``alg`` that no server ever saw."""
    return generate_private_key(alg)


def with_claims(token: str, **changes: Any) -> str:
    """The token with claims changed and its original signature kept (a tampered token)."""
    header, payload, signature = token.split(".")
    claims = {**decode_segment(payload), **changes}
    return f"{header}.{b64url_json(claims)}.{signature}"


def resigned(token: str, key: Any, **changes: Any) -> str:
    """The token's header and claims (with changes) signed again with ``key``."""
    header_segment, payload, _ = token.split(".")
    header = decode_segment(header_segment)
    claims = {**decode_segment(payload), **changes}
    alg = header.pop("alg")
    return jwt.encode(claims, key, algorithm=alg, headers=header)


def unsigned(token: str) -> str:
    """The token's claims under ``alg: none`` with no signature."""
    header_segment, payload, _ = token.split(".")
    header = {**decode_segment(header_segment), "alg": "none"}
    return f"{b64url_json(header)}.{payload}."


def flip_char(text: str, index: int) -> str:
    """The text with one base64url character changed (never to itself)."""
    replacement = "A" if text[index] != "A" else "B"
    return text[:index] + replacement + text[index + 1 :]
