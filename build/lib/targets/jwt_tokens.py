"""Issuing and verifying access and refresh tokens, by the rules of RFC 8725 and RFC 9068.

The accepted algorithm is the server's one configured algorithm, never the token header's. Every
token carries ``kid``; the header may hold nothing but ``alg``, ``kid`` and ``typ`` (so ``jku``,
``x5u``, ``x5c``, ``jwk`` and ``crit`` are refused, never followed). ``exp``, ``iat``, ``sub``,
``iss``, ``aud`` and ``jti`` are required; ``iat`` or ``nbf`` in the future is refused. Access
tokens are ``typ: at+jwt`` and refresh tokens ``typ: refresh+jwt``: neither is accepted in the
other's place. ``sid`` names the login (the refresh family) a token was issued from.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import jwt

from targets.jwt_keys import KeyRing

ACCESS_TYP = "at+jwt"
REFRESH_TYP = "refresh+jwt"
ALLOWED_HEADER_FIELDS = frozenset({"alg", "kid", "typ"})
REQUIRED_CLAIMS = ["exp", "iat", "sub", "iss", "aud", "jti"]
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
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._access_ttl_s = access_ttl_s
        self._refresh_ttl_s = refresh_ttl_s
        self._leeway_s = leeway_s
        self._decoder = jwt.PyJWT(options={"require": REQUIRED_CLAIMS, "strict_aud": True})

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
        headers = {"kid": self._keys.signing_kid, "typ": typ}
        return jwt.encode(claims, self._keys.signing_key, algorithm=self._keys.alg, headers=headers)

    def _verify(self, token: str, typ: str) -> VerifiedToken:
        if len(token) > MAX_TOKEN_CHARS:
            raise InvalidToken("token too long")
        try:
            header = jwt.get_unverified_header(token)
            if not ALLOWED_HEADER_FIELDS.issuperset(header):
                raise InvalidToken("unexpected header field")
            if header.get("typ") != typ:
                raise InvalidToken("wrong token type")
            key = self._keys.verification_keys.get(header.get("kid"))
            if key is None:
                raise InvalidToken("unknown kid")
            claims = self._decoder.decode(
                token,
                key,
                algorithms=[self._keys.alg],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway_s,
            )
        except (jwt.InvalidTokenError, TypeError, ValueError) as exc:
            raise InvalidToken(str(exc)) from None
        family_id = claims.get("sid")
        if not isinstance(family_id, str):
            raise InvalidToken("missing sid")
        return VerifiedToken(claims["sub"], claims["jti"], family_id, int(claims["exp"]))
