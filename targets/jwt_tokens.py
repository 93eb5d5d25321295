"""Issuing and verifying access and refresh tokens, by the rules of RFC 8725 and RFC 9068.

The accepted algorithm is the server's one configured algorithm, never the token header's. Every
token carries ``kid``; the header may hold nothing but ``alg``, ``kid`` and ``typ`` (so ``jku``,
``x5u``, ``x5c``, ``jwk`` and ``crit`` are refused, never followed). ``exp``, ``iat``, ``sub``,
``iss``, ``aud`` and ``jti`` are required; ``iat`` or ``nbf`` in the future is refused. Access
tokens are ``typ: at+jwt`` and refresh tokens ``typ: refresh+jwt``: neither is accepted in the
other's place. ``sid`` names the login (the refresh family) a token was issued from.

The JWT library (:mod:`targets.jwt_libraries`) signs, checks the signature and validates the
registered claims; the header rules and the last claim checks here are the same for every library,
so the three accept exactly the same tokens.
"""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass
from typing import Any

from common.schemes import DEFAULT_JWT_LIBRARY
from targets.jwt_keys import KeyRing
from targets.jwt_libraries import LibraryRefused, jwt_library

ACCESS_TYP = "at+jwt"
REFRESH_TYP = "refresh+jwt"
ALLOWED_HEADER_FIELDS = frozenset({"alg", "kid", "typ"})
MAX_TOKEN_CHARS = 8192


class InvalidToken(Exception):
    """The token is not one this server issued and still honours."""


@dataclass(frozen=True)
class VerifiedToken:
    """The claims of a token whose signature and claims checked out."""

    subject: str
    token_id: str
    family_id: str
    expires_at: int
    key_id: str = ""


@dataclass(frozen=True)
class TokenPair:
    """What /login and /refresh hand out."""

    access_token: str
    refresh_token: str
    family_id: str
    refresh_token_id: str


class TokenService:
    """Signs with the key ring's newest key; verifies against every key it holds."""

    def __init__(
        self,
        keys: KeyRing,
        issuer: str,
        audience: str,
        access_ttl_s: int,
        refresh_ttl_s: int,
        leeway_s: int,
        library: str = DEFAULT_JWT_LIBRARY,
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._access_ttl_s = access_ttl_s
        self._refresh_ttl_s = refresh_ttl_s
        self._leeway_s = leeway_s
        self._library = jwt_library(library, keys.alg, issuer, audience, leeway_s)
        # (use, kid) -> (the ring's key, the library's form of it): converted once per key, and
        # again only when a JWKS refresh or a key rotation puts another key under the same kid.
        self._library_keys: dict[tuple[str, str], tuple[Any, Any]] = {}

    @property
    def access_ttl_s(self) -> int:
        """Lifetime of an access token, seconds."""
        return self._access_ttl_s

    def issue_pair(self, subject: str, family_id: str | None = None) -> TokenPair:
        """A new access + refresh token; a new family unless rotating an existing one."""
        family_id = family_id or secrets.token_urlsafe(16)
        refresh_id = secrets.token_urlsafe(16)
        now = int(time.time())
        access = self._sign(subject, family_id, secrets.token_urlsafe(16), now, ACCESS_TYP)
        refresh = self._sign(subject, family_id, refresh_id, now, REFRESH_TYP)
        return TokenPair(access, refresh, family_id, refresh_id)

    def verify_access(self, token: str) -> VerifiedToken:
        """The claims of a valid access token, or InvalidToken."""
        return self._verify(token, ACCESS_TYP)

    def verify_refresh(self, token: str) -> VerifiedToken:
        """The claims of a valid refresh token, or InvalidToken."""
        return self._verify(token, REFRESH_TYP)

    def _sign(self, subject: str, family_id: str, token_id: str, now: int, typ: str) -> str:
        ttl = self._access_ttl_s if typ == ACCESS_TYP else self._refresh_ttl_s
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": subject,
            "iat": now,
            "exp": now + ttl,
            "jti": token_id,
            "sid": family_id,
        }
        header = {"kid": self._keys.signing_kid, "typ": typ}
        key = self._library_key("sign", self._keys.signing_kid, self._keys.signing_key)
        return self._library.sign(header, claims, key)

    def _library_key(self, use: str, kid: str, key: Any) -> Any:
        known = self._library_keys.get((use, kid))
        if known is None or known[0] is not key:
            known = (key, self._library.import_key(key))
            self._library_keys[(use, kid)] = known
        return known[1]

    def _verify(self, token: str, typ: str) -> VerifiedToken:
        if len(token) > MAX_TOKEN_CHARS:
            raise InvalidToken("token too long")

        def choose_key(header: dict[str, Any]) -> Any:
            if not ALLOWED_HEADER_FIELDS.issuperset(header):
                raise InvalidToken("unexpected header field")
            if header.get("typ") != typ:
                raise InvalidToken("wrong token type")
            kid = header.get("kid")
            key = self._keys.verification_keys.get(kid) if isinstance(kid, str) else None
            if key is None:
                raise InvalidToken("unknown kid")
            return self._library_key("verify", kid, key)

        try:
            header, claims = self._library.verify(token, choose_key)
        except LibraryRefused as exc:
            raise InvalidToken(str(exc)) from None
        check_claims(claims, self._audience, self._leeway_s)
        return VerifiedToken(
            claims["sub"], claims["jti"], claims["sid"], int(claims["exp"]), header["kid"]
        )


def check_claims(claims: dict[str, Any], audience: str, leeway_s: int) -> None:
    """What every library must have refused, checked once more for all of them: the claims this
    server needs, of the right types, ``aud`` this service alone (a list naming others too is
    refused, as PyJWT's ``strict_aud`` does), and no ``iat`` or ``nbf`` in the future."""
    if claims.get("aud") != audience:
        raise InvalidToken("aud is not this service alone")
    for name in ("sub", "jti", "sid"):
        if not isinstance(claims.get(name), str):
            raise InvalidToken(f"missing or malformed {name}")
    latest = time.time() + leeway_s
    for name in ("exp", "iat", "nbf"):
        value = claims.get(name)
        if value is None and name == "nbf":
            continue
        finite = isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
        if isinstance(value, bool) or not finite:
            raise InvalidToken(f"malformed {name}")
    if claims["iat"] > latest or claims.get("nbf", 0) > latest:
        raise InvalidToken("token not valid yet")
