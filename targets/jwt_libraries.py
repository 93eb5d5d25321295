"""The JWT libraries a server can sign and verify with: PyJWT, joserfc and jwcrypto.

Each library does what it is for, in its own documented idiom: serialising and signing, and on
verification parsing, checking the signature with the server's one algorithm, and validating
``exp``, ``nbf`` and ``iat`` (with the leeway), ``iss``, ``aud`` and the required claims. What the
libraries do not share is :mod:`targets.jwt_tokens`'s, the same for all three: the header rules
(``choose_key`` sees the header before any signature is checked) and the claims every library
must have refused (:func:`targets.jwt_tokens.check_claims`). So a token accepted by one library
is accepted by the others, and their costs differ only by the library.

Keys stay the ``cryptography`` objects of :class:`targets.jwt_keys.KeyRing`; a library that wants
its own key type converts each key once (``import_key``), when a kid is first used.
"""

from __future__ import annotations

import base64
import json
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import jwt as pyjwt
from joserfc import jwt as joserfc_jwt
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jwt as jwcrypto_jwt
from jwcrypto.common import JWException

from common.schemes import JWT_LIBRARIES, is_hmac

REQUIRED_CLAIMS = ("exp", "iat", "sub", "iss", "aud", "jti")

# RFC 9864 deprecates the polymorphic "EdDSA" in favour of "Ed25519"; the suite's scheme ids keep
# "EdDSA" (what PyJWT and jwcrypto call it), so joserfc's once-per-token warning is noise here.
warnings.filterwarnings("ignore", message="EdDSA is deprecated", category=SecurityWarning)

KeyChooser = Callable[[dict[str, Any]], Any]


class LibraryRefused(Exception):
    """The library refused the token (signature, format or a claim); the message says why."""


class JwtLibrary(ABC):
    """Sign and verify compact JWS tokens of one algorithm with one library."""

    name: str

    def __init__(self, alg: str, issuer: str, audience: str, leeway_s: int) -> None:
        self.alg = alg
        self.issuer = issuer
        self.audience = audience
        self.leeway_s = leeway_s

    def import_key(self, key: Any) -> Any:
        """The library's form of a ``cryptography`` key (or HMAC secret); called once per key."""
        return key

    @abstractmethod
    def sign(self, header: dict[str, Any], claims: dict[str, Any], key: Any) -> str:
        """The compact token of these header fields (``alg`` is added) and claims."""

    @abstractmethod
    def verify(self, token: str, choose_key: KeyChooser) -> tuple[dict[str, Any], dict[str, Any]]:
        """Header and claims of a token whose signature and time, issuer, audience and required
        claims hold. ``choose_key`` gets the header first and returns the library's key or
        raises; LibraryRefused for anything the library refuses."""


class PyJwtLibrary(JwtLibrary):
    """PyJWT: read the header, pick the key, then ``PyJWT.decode`` with every check on."""

    name = "pyjwt"

    def __init__(self, alg: str, issuer: str, audience: str, leeway_s: int) -> None:
        super().__init__(alg, issuer, audience, leeway_s)
        self._decoder = pyjwt.PyJWT(options={"require": list(REQUIRED_CLAIMS), "strict_aud": True})

    def sign(self, header: dict[str, Any], claims: dict[str, Any], key: Any) -> str:
        return pyjwt.encode(claims, key, algorithm=self.alg, headers=header)

    def verify(self, token: str, choose_key: KeyChooser) -> tuple[dict[str, Any], dict[str, Any]]:
        try:
            header = pyjwt.get_unverified_header(token)
            key = choose_key(header)
            claims = self._decoder.decode(
                token,
                key,
                algorithms=[self.alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_s,
            )
        except (pyjwt.InvalidTokenError, TypeError, ValueError) as exc:
            raise LibraryRefused(str(exc)) from None
        return header, claims


class JoserfcLibrary(JwtLibrary):
    """joserfc: ``jwt.decode`` with a key callable, then a ``JWTClaimsRegistry``."""

    name = "joserfc"
    KEY_TYPES: ClassVar = {"HS": OctKey, "RS": RSAKey, "PS": RSAKey, "ES": ECKey, "Ed": OKPKey}

    def __init__(self, alg: str, issuer: str, audience: str, leeway_s: int) -> None:
        super().__init__(alg, issuer, audience, leeway_s)
        essential = {"essential": True}
        self._claims = joserfc_jwt.JWTClaimsRegistry(
            leeway=leeway_s,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            exp=essential,
            iat=essential,
            sub=essential,
            jti=essential,
        )

    def import_key(self, key: Any) -> Any:
        return self.KEY_TYPES[self.alg[:2]].import_key(key)

    def sign(self, header: dict[str, Any], claims: dict[str, Any], key: Any) -> str:
        fields = {"alg": self.alg, **header}
        return joserfc_jwt.encode(fields, claims, key, algorithms=[self.alg], default_type=None)

    def verify(self, token: str, choose_key: KeyChooser) -> tuple[dict[str, Any], dict[str, Any]]:
        try:
            decoded = joserfc_jwt.decode(
                token, lambda obj: choose_key(obj.headers()), algorithms=[self.alg]
            )
            self._claims.validate(decoded.claims)
        except (JoseError, TypeError, ValueError) as exc:
            raise LibraryRefused(str(exc) or type(exc).__name__) from None
        return decoded.header, decoded.claims


class JwcryptoLibrary(JwtLibrary):
    """jwcrypto: ``JWT.deserialize`` without a key, pick it from the header, ``validate``."""

    name = "jwcrypto"

    def __init__(self, alg: str, issuer: str, audience: str, leeway_s: int) -> None:
        super().__init__(alg, issuer, audience, leeway_s)
        self._check_claims: dict[str, Any] = {name: None for name in REQUIRED_CLAIMS}
        self._check_claims.update(iss=issuer, aud=audience)

    def import_key(self, key: Any) -> Any:
        if is_hmac(self.alg):
            secret = base64.urlsafe_b64encode(key).rstrip(b"=").decode()
            return jwcrypto_jwk.JWK(kty="oct", k=secret)
        return jwcrypto_jwk.JWK.from_pyca(key)

    def sign(self, header: dict[str, Any], claims: dict[str, Any], key: Any) -> str:
        token = jwcrypto_jwt.JWT(header={"alg": self.alg, **header}, claims=claims)
        token.make_signed_token(key)
        return token.serialize()

    def verify(self, token: str, choose_key: KeyChooser) -> tuple[dict[str, Any], dict[str, Any]]:
        parsed = jwcrypto_jwt.JWT(
            algs=[self.alg],
            check_claims=self._check_claims,
            expected_type="JWS",
            strict_serialization=True,
        )
        parsed.leeway = self.leeway_s
        try:
            parsed.deserialize(token)
            header = parsed.token.jose_header
            parsed.validate(choose_key(header))
            claims = json.loads(parsed.claims)
        except (JWException, TypeError, ValueError, KeyError) as exc:
            raise LibraryRefused(str(exc) or type(exc).__name__) from None
        return header, claims


def jwt_library(name: str, alg: str, issuer: str, audience: str, leeway_s: int) -> JwtLibrary:
    """The named library, set up for one algorithm, issuer, audience and leeway."""
    kinds = {kind.name: kind for kind in (PyJwtLibrary, JoserfcLibrary, JwcryptoLibrary)}
    assert tuple(kinds) == JWT_LIBRARIES, "every library named in common.schemes is built here"
    return kinds[name](alg, issuer, audience, leeway_s)
