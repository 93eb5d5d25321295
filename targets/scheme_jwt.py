"""Stateless JWTs (PyJWT), with rotating single-use refresh tokens and an optional denylist.

/me verifies the signature and claims alone, so without ``--denylist`` it keeps answering while
Redis is down; /login, /refresh and /logout need Redis for the refresh families. Keys are parsed
once at start-up; JWKS publishes the public keys of asymmetric algorithms.
"""

from __future__ import annotations

import json
import time

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from targets.context import LoginRequest, ServerContext
from targets.http_errors import AuthFailure, start_timing
from targets.jwt_keys import load_key_ring
from targets.jwt_tokens import MAX_TOKEN_CHARS, InvalidToken, TokenPair, TokenService, VerifiedToken
from targets.server_timing import HEADER as SERVER_TIMING
from targets.server_timing import ServerTiming
from targets.token_state import Rotation, TokenState

BEARER_CHALLENGE = {"WWW-Authenticate": "Bearer"}


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
    """The JWT server's credential logic, independent of HTTP."""

    def __init__(self, context: ServerContext) -> None:
        s = context.settings
        assert s.alg is not None and context.redis is not None
        self.keys = load_key_ring(context.keys_dir, s.alg, s.rsa_bits)
        self.tokens = TokenService(
            self.keys, s.issuer, s.audience, s.access_ttl, s.refresh_ttl, s.leeway
        )
        self.state = TokenState(context.redis, s.refresh_ttl, s.access_ttl + s.leeway, s.denylist)
        self.denylist = s.denylist
        self.leeway = s.leeway

    async def authenticate(self, token: str, timing: ServerTiming) -> VerifiedToken:
        """A valid, unrevoked access token's claims, or AuthFailure."""
        try:
            verified = self.tokens.verify_access(token)
        except InvalidToken as exc:
            raise AuthFailure(f"invalid token: {exc}", BEARER_CHALLENGE) from None
        if self.denylist and await self.state.is_revoked(
            verified.token_id, verified.family_id, timing
        ):
            raise AuthFailure("token revoked", BEARER_CHALLENGE)
        return verified

    async def login(self, subject: str, timing: ServerTiming) -> TokenPair:
        """A new family and its first token pair."""
        pair = self.tokens.issue_pair(subject)
        await self.state.start_family(pair.family_id, pair.refresh_token_id, timing)
        return pair

    async def refresh(self, refresh_token: str, timing: ServerTiming) -> TokenPair:
        """Rotate a refresh token; a reused one revokes its family."""
        try:
            presented = self.tokens.verify_refresh(refresh_token)
        except InvalidToken as exc:
            raise AuthFailure(f"invalid refresh token: {exc}") from None
        pair = self.tokens.issue_pair(presented.subject, presented.family_id)
        outcome = await self.state.rotate(
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
        await self.state.revoke(families, access.token_id, deny_for_s, timing)


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


def install_jwt_routes(app: FastAPI, context: ServerContext) -> None:
    """Register /login, /me, /refresh, /logout and the JWKS of a JWT server."""
    authority = JwtAuthority(context)
    node = context.settings.node_id
    expires_in = context.settings.access_ttl
    jwks_body = json.dumps(authority.keys.jwks()).encode()

    @app.post("/login")
    async def login(credentials: LoginRequest, request: Request) -> JSONResponse:
        timing = start_timing(request)
        with timing.auth():
            subject = context.check_password(credentials, timing)
            pair = await authority.login(subject, timing)
        return token_response(pair, expires_in, timing)

    @app.get("/me")
    async def me(request: Request) -> JSONResponse:
        timing = start_timing(request)
        with timing.auth():
            verified = await authority.authenticate(bearer_token(request), timing)
        return JSONResponse(
            {"sub": verified.subject, "node": node}, headers={SERVER_TIMING: timing.header_value()}
        )

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

    if not authority.keys.is_symmetric:

        @app.get("/.well-known/jwks.json")
        async def jwks() -> Response:
            return Response(jwks_body, media_type="application/json")
