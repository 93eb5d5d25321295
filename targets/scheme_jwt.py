"""Stateless JWTs (PyJWT), with rotating single-use refresh tokens and an optional denylist.

/me verifies the signature and claims alone, so without ``--denylist`` it keeps answering while
Redis is down; /login, /refresh and /logout need Redis for the refresh families. Keys are parsed
once at start-up (and again on SIGHUP, when the issuer rotates to the newest key of its keys
folder); JWKS publishes the public keys of asymmetric algorithms.

Roles (split topology): the issuer serves /login, /refresh, /logout, JWKS and, with an
``--introspect-secret``, ``POST /introspect``; a resource node serves /me only, verifying with
the issuer's JWKS (:mod:`targets.jwks_cache`; it never holds a private key), with the HMAC
secret of the shared keys folder, or by asking the issuer (``--introspect``). ``GET /counters``
tells the runner how often keys were fetched and tokens introspected.
"""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from targets.call_chain import call_chain_for, me_answer
from targets.context import LoginRequest, ServerContext
from targets.http_errors import AuthFailure, start_timing
from targets.introspection import IntrospectionClient, check_client, token_from_form
from targets.jwks_cache import JwksCache
from targets.jwt_keys import KeyRing, load_key_ring
from targets.jwt_tokens import MAX_TOKEN_CHARS, InvalidToken, TokenPair, TokenService, VerifiedToken
from targets.server_timing import HEADER as SERVER_TIMING
from targets.server_timing import ServerTiming
from targets.token_state import Rotation, TokenState

BEARER_CHALLENGE = {"WWW-Authenticate": "Bearer"}
NO_STORE = {"Cache-Control": "no-store"}


class RefreshRequest(BaseModel):
    """Body of POST /refresh."""

    refresh_token: str = Field(min_length=1, max_length=MAX_TOKEN_CHARS)


class LogoutRequest(BaseModel):
    """Optional body of POST /logout."""

    refresh_token: str | None = Field(default=None, max_length=MAX_TOKEN_CHARS)


def bearer_token(request: Request) -> str:
    """The token of an ``Authorization: Bearer`` header, or AuthFailure."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise AuthFailure("missing bearer token", BEARER_CHALLENGE)
    return token.strip()


class JwtAuthority:
    """The JWT server's credential logic, independent of HTTP.

    An issuer (or a server in every role) holds its keys folder's ring; a resource node holds
    the JWKS cache's public keys, the HMAC secret, or only an introspection client.
    """

    def __init__(
        self,
        context: ServerContext,
        jwks: JwksCache | None = None,
        introspection: IntrospectionClient | None = None,
    ) -> None:
        s = context.settings
        assert s.alg is not None
        self.context = context
        self.jwks = jwks
        self.introspection = introspection
        self.state = (
            TokenState(
                context.redis, s.refresh_ttl, s.access_ttl + s.leeway, s.denylist, s.store_cache
            )
            if context.redis is not None and introspection is None
            else None
        )
        self.denylist = s.denylist and introspection is None
        self.leeway = s.leeway
        self.kid_first_accepted: dict[str, float] = {}
        self.introspections = 0
        self.jwks_served = 0
        if jwks is not None:
            self.use_keys(jwks.ring)
        elif introspection is not None:
            self.use_keys(KeyRing(s.alg, "", None, {}))  # the issuer verifies for this node
        else:
            self.use_keys(load_key_ring(context.keys_dir, s.alg, s.rsa_bits))
        context.facts["holds_signing_key"] = self.keys.signing_key is not None

    def use_keys(self, keys: KeyRing) -> None:
        """Sign and verify with this ring from now on (its JWKS document made once)."""
        s = self.context.settings
        self.keys = keys
        self.tokens = TokenService(
            keys, s.issuer, s.audience, s.access_ttl, s.refresh_ttl, s.leeway, s.jwt_library
        )
        self.jwks_body = json.dumps(keys.jwks()).encode() if keys.signing_key else b""

    def rotate(self) -> None:
        """Reload the keys folder: its newest key signs from now on, every key still verifies."""
        s = self.context.settings
        assert s.alg is not None
        self.use_keys(load_key_ring(self.context.keys_dir, s.alg, s.rsa_bits))

    async def authenticate(self, token: str, timing: ServerTiming) -> VerifiedToken:
        """A valid, unrevoked access token's claims, or AuthFailure."""
        if self.introspection is not None:
            subject = await self.introspection.subject(token)
            if subject is None:
                raise AuthFailure("token inactive", BEARER_CHALLENGE)
            return VerifiedToken(subject, "", "", 0)
        if self.jwks is not None:
            await self.jwks.keys_for(_unverified_kid(token))
        try:
            verified = self.tokens.verify_access(token)
        except InvalidToken as exc:
            raise AuthFailure(f"invalid token: {exc}", BEARER_CHALLENGE) from None
        if self.denylist and await self._state().is_revoked(
            verified.token_id, verified.family_id, timing
        ):
            raise AuthFailure("token revoked", BEARER_CHALLENGE)
        if verified.key_id not in self.kid_first_accepted:
            self.kid_first_accepted[verified.key_id] = time.time()
        return verified

    def _state(self) -> TokenState:
        assert self.state is not None, "this role keeps no token state"
        return self.state

    def counters(self) -> dict[str, Any]:
        """What the runner reads: keys fetched or served, introspections, kids first accepted."""
        return {
            "jwks_fetches": self.jwks.fetches if self.jwks else 0,
            "jwks_served": self.jwks_served,
            "introspections_asked": self.introspection.calls if self.introspection else 0,
            "introspections_answered": self.introspections,
            "signing_kid": self.keys.signing_kid or None,
            "kid_first_accepted": self.kid_first_accepted,
        }

    async def login(self, subject: str, timing: ServerTiming) -> TokenPair:
        """A new family and its first token pair."""
        pair = self.tokens.issue_pair(subject)
        await self._state().start_family(pair.family_id, pair.refresh_token_id, timing)
        return pair

    async def refresh(self, refresh_token: str, timing: ServerTiming) -> TokenPair:
        """Rotate a refresh token; a reused one revokes its family."""
        try:
            presented = self.tokens.verify_refresh(refresh_token)
        except InvalidToken as exc:
            raise AuthFailure(f"invalid refresh token: {exc}") from None
        pair = self.tokens.issue_pair(presented.subject, presented.family_id)
        outcome = await self._state().rotate(
            presented.family_id, presented.token_id, pair.refresh_token_id, timing
        )
        if outcome is Rotation.REUSED:
            raise AuthFailure("refresh token reused: its login is revoked")
        if outcome is Rotation.UNKNOWN_FAMILY:
            raise AuthFailure("refresh token revoked or expired")
        return pair

    async def logout(
        self, access: VerifiedToken, refresh_token: str | None, timing: ServerTiming
    ) -> None:
        """Revoke the access token's family (and the given refresh token's, if the same user's)."""
        families = {access.family_id}
        if refresh_token:
            try:
                refresh = self.tokens.verify_refresh(refresh_token)
                if refresh.subject == access.subject:
                    families.add(refresh.family_id)
            except InvalidToken:
                pass  # the access token's family is revoked regardless
        deny_for_s = access.expires_at + self.leeway - int(time.time())
        await self._state().revoke(families, access.token_id, deny_for_s, timing)


def token_response(pair: TokenPair, expires_in: int, timing: ServerTiming) -> JSONResponse:
    """The OAuth-style token response."""
    body = {
        "access_token": pair.access_token,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "refresh_token": pair.refresh_token,
    }
    return JSONResponse(
        body, headers={SERVER_TIMING: timing.header_value(), "Cache-Control": "no-store"}
    )


def _unverified_kid(token: str) -> Any:
    """The kid a token claims (checked later by verification), or None when unreadable."""
    try:
        return jwt.get_unverified_header(token).get("kid")
    except jwt.InvalidTokenError:
        return None


def make_authority(context: ServerContext) -> JwtAuthority:
    """The authority of this server's role (a resource's JWKS is fetched at start-up)."""
    s = context.settings
    assert s.alg is not None
    if s.introspect:
        assert s.issuer_url and s.introspect_secret
        client = IntrospectionClient(s.issuer_url, s.introspect_secret, s.introspect_cache)
        context.closers.append(client.close)
        return JwtAuthority(context, introspection=client)
    if s.learns_keys:
        assert s.issuer_url
        cache = JwksCache(s.issuer_url, s.alg, s.jwks_ttl, s.jwks_cooldown)
        cache.load()
        context.closers.append(cache.close)
        return JwtAuthority(context, jwks=cache)
    return JwtAuthority(context)


def install_jwt_routes(app: FastAPI, context: ServerContext) -> None:
    """Register the routes of this server's role (every route in the default role ``all``)."""
    settings = context.settings
    authority = make_authority(context)
    node = settings.node_id
    expires_in = settings.access_ttl
    context.reloaders.append(authority.rotate)

    @app.get("/counters")
    async def counters() -> JSONResponse:
        return JSONResponse(authority.counters())

    if settings.serves_resources:
        chain = call_chain_for(context)

        @app.get("/me")
        async def me(request: Request) -> JSONResponse:
            timing = start_timing(request)
            with timing.auth():
                verified = await authority.authenticate(bearer_token(request), timing)
            return await me_answer(request, chain, verified.subject, node, timing)

    if not settings.issues:
        return

    @app.post("/login")
    async def login(credentials: LoginRequest, request: Request) -> JSONResponse:
        timing = start_timing(request)
        with timing.auth():
            subject = context.check_password(credentials, timing)
            pair = await authority.login(subject, timing)
        return token_response(pair, expires_in, timing)

    @app.post("/refresh")
    async def refresh(body: RefreshRequest, request: Request) -> JSONResponse:
        timing = start_timing(request)
        with timing.auth():
            pair = await authority.refresh(body.refresh_token, timing)
        return token_response(pair, expires_in, timing)

    @app.post("/logout", status_code=204)
    async def logout(request: Request, body: LogoutRequest | None = None) -> Response:
        timing = start_timing(request)
        with timing.auth():
            access = await authority.authenticate(bearer_token(request), timing)
            await authority.logout(access, body.refresh_token if body else None, timing)
        return Response(status_code=204)

    if settings.introspect_secret:

        @app.post("/introspect")
        async def introspect(request: Request) -> JSONResponse:
            check_client(request, settings.introspect_secret)
            authority.introspections += 1
            token = await token_from_form(request)
            try:
                verified = await authority.authenticate(token, start_timing(request))
            except AuthFailure:
                return JSONResponse({"active": False}, headers=NO_STORE)
            return JSONResponse(
                {"active": True, "sub": verified.subject, "exp": verified.expires_at,
                 "iss": settings.issuer, "aud": settings.audience, "jti": verified.token_id,
                 "token_type": "access_token"},
                headers=NO_STORE,
            )  # fmt: skip

    if not authority.keys.is_symmetric:

        @app.get("/.well-known/jwks.json")
        async def jwks() -> Response:
            authority.jwks_served += 1
            return Response(authority.jwks_body, media_type="application/json")
