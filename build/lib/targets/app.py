"""Builds the FastAPI app of one reference server: shared parts, then the scheme's routes."""

from __future__ import annotations

import asyncio
import signal
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from targets import redis_store
from targets.body_limit import BodySizeLimit
from targets.context import ServerContext
from targets.http_errors import install_error_handlers
from targets.scheme_jwt import install_jwt_routes
from targets.scheme_none import install_none_routes
from targets.scheme_session import install_session_routes

ROUTES_BY_SCHEME = {
    "none": install_none_routes,
    "session": install_session_routes,
    "jwt": install_jwt_routes,
}


def create_app(context: ServerContext) -> FastAPI:
    """The app for the context's scheme, with /healthz and the error handlers."""

    @asynccontextmanager
    async def lifespan(_: FastAPI):  # type: ignore[no-untyped-def]
        loop = asyncio.get_running_loop()
        for reload in context.reloaders:
            loop.add_signal_handler(signal.SIGHUP, reload)
        yield
        for close in context.closers:
            await close()
        if context.redis is not None:
            await context.redis.aclose()

    app = FastAPI(
        title=f"authbench {context.settings.scheme_id}",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.planted_cost_ns = context.settings.planted_cost_us * 1000
    app.add_middleware(BodySizeLimit)
    install_error_handlers(app)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        reachable = context.redis is None or await redis_store.is_reachable(context.redis)
        status = "ok" if reachable else "store unavailable"
        return JSONResponse(
            {"status": status, **context.describe()}, status_code=200 if reachable else 503
        )

    ROUTES_BY_SCHEME[context.settings.scheme](app, context)
    return app
