"""The ``none`` baseline: the same endpoints and JSON work as the other schemes, no credential.

/login still runs the password check, so login costs compare fairly; /me answers for
``anonymous``. What this scheme costs is the framework's share of every other scheme's cost.
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from targets.call_chain import call_chain_for, me_answer
from targets.context import LoginRequest, ServerContext
from targets.http_errors import start_timing
from targets.server_timing import HEADER as SERVER_TIMING


def install_none_routes(app: FastAPI, context: ServerContext) -> None:
    """Register /login, /me and /logout of the baseline."""
    node = context.settings.node_id

    chain = call_chain_for(context)

    @app.get("/me")
    async def me(request: Request) -> JSONResponse:
        timing = start_timing(request)
        with timing.auth():
            subject = "anonymous"
        return await me_answer(request, chain, subject, node, timing)

    if not context.settings.issues:
        return  # a resource node of the split baseline: /me only

    @app.post("/login")
    async def login(credentials: LoginRequest, request: Request) -> JSONResponse:
        timing = start_timing(request)
        with timing.auth():
            subject = context.check_password(credentials, timing)
        return JSONResponse({"sub": subject}, headers={SERVER_TIMING: timing.header_value()})

    @app.post("/logout", status_code=204)
    async def logout() -> Response:
        return Response(status_code=204)
