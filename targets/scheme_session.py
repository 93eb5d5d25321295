"""Server-side sessions: a random id in an HttpOnly cookie, the subject in a store.

Every login mints a new id whatever cookie came in (no fixation); /me is one store read (GETEX
when sliding expiry is on); /logout deletes the session at once, so every node refuses it next.
"""

from __future__ import annotations

import re
import secrets

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from common.credentials import SESSION_COOKIE
from targets.call_chain import call_chain_for, me_answer
from targets.context import LoginRequest, ServerContext
from targets.http_errors import AuthFailure, start_timing
from targets.lookup_cache import LookupCache
from targets.server_timing import HEADER as SERVER_TIMING
from targets.session_store import (
    CachedSessionStore,
    MemorySessionStore,
    RedisSessionStore,
    SessionStore,
)

COOKIE_NAME = SESSION_COOKIE
SESSION_ID_BYTES = 32
SESSION_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{43}$")


def make_store(context: ServerContext) -> SessionStore:
    """The configured session store (behind the lookup cache when ``--store-cache`` is set)."""
    s = context.settings
    if s.store == "memory":
        return MemorySessionStore(s.session_ttl, s.sliding_session)
    assert context.redis is not None
    store = RedisSessionStore(context.redis, s.session_ttl, s.sliding_session)
    if s.store_cache:
        return CachedSessionStore(store, LookupCache(s.store_cache))
    return store


def session_id_from(request: Request) -> str | None:
    """The request's session id if it is shaped like one we issue; None otherwise."""
    value = request.cookies.get(COOKIE_NAME)
    if value is None or not SESSION_ID_PATTERN.match(value):
        return None
    return value


def install_session_routes(app: FastAPI, context: ServerContext) -> None:
    """Register /login, /me and /logout of a session server (those of its role in split)."""
    store = make_store(context)
    settings = context.settings
    node = settings.node_id

    if settings.serves_resources:
        chain = call_chain_for(context)

        @app.get("/me")
        async def me(request: Request) -> JSONResponse:
            timing = start_timing(request)
            with timing.auth():
                session_id = session_id_from(request)
                subject = await store.subject(session_id, timing) if session_id else None
                if subject is None:
                    raise AuthFailure("no valid session")
            return await me_answer(request, chain, subject, node, timing)

    if not settings.issues:
        return

    @app.post("/login")
    async def login(credentials: LoginRequest, request: Request) -> JSONResponse:
        timing = start_timing(request)
        with timing.auth():
            subject = context.check_password(credentials, timing)
            session_id = secrets.token_urlsafe(SESSION_ID_BYTES)
            await store.create(session_id, subject, timing)
        response = JSONResponse({"sub": subject}, headers={SERVER_TIMING: timing.header_value()})
        response.set_cookie(
            COOKIE_NAME,
            session_id,
            # A sliding session outlives any fixed Max-Age; the store's TTL is what governs.
            max_age=None if settings.sliding_session else settings.session_ttl,
            path="/",
            httponly=True,
            samesite="lax",
            secure=settings.secure_cookie,
        )
        return response

    @app.post("/logout", status_code=204)
    async def logout(request: Request) -> Response:
        timing = start_timing(request)
        session_id = session_id_from(request)
        if session_id is not None:
            await store.delete(session_id, timing)
        response = Response(status_code=204)
        response.delete_cookie(
            COOKIE_NAME, path="/", httponly=True, samesite="lax", secure=settings.secure_cookie
        )
        return response
