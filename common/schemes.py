"""The JWT signing algorithms the reference servers offer, and which of them share a secret."""

from __future__ import annotations

HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
ALGORITHMS = (
    *HMAC_ALGORITHMS,
    "RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA",
)  # fmt: skip
DEFAULT_ALG = "RS256"
