"""The errors a reference server answers with, and the handlers that keep them 4xx/503 JSON.

Handlers attach the request's ``Server-Timing`` so error responses carry it too.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from targets.redis_store import StoreUnavailable
from targets.server_timing import HEADER as SERVER_TIMING
from targets.server_timing import ServerTiming


class AuthFailure(Exception):
    """The credential is missing, invalid, expired or revoked (or the password is wrong)."""

    def __init__(self, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}


class BadRequest(Exception):
    """A request this server cannot act on (a 400 with the reason)."""


class UpstreamUnavailable(Exception):
    """A service this one depends on (the issuer) did not answer properly: a 503."""


def start_timing(request: Request) -> ServerTiming:
    """A fresh ServerTiming for this request, visible to the error handlers."""
    timing = ServerTiming(getattr(request.app.state, "planted_cost_ns", 0))
    request.state.timing = timing
    return timing


def _timing_headers(request: Request) -> dict[str, str]:
    timing = getattr(request.state, "timing", None)
    return {SERVER_TIMING: timing.header_value()} if timing is not None else {}


async def _auth_failure(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AuthFailure)
    headers = {**exc.headers, **_timing_headers(request)}
    return JSONResponse({"detail": exc.detail}, status_code=401, headers=headers)


async def _store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(
        {"detail": "store unavailable"}, status_code=503, headers=_timing_headers(request)
    )


async def _bad_request(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=400, headers=_timing_headers(request))


async def _upstream_unavailable(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(
        {"detail": "issuer unavailable"}, status_code=503, headers=_timing_headers(request)
    )


def install_error_handlers(app: FastAPI) -> None:
    """Answer AuthFailure with 401, BadRequest with 400, StoreUnavailable and
    UpstreamUnavailable with 503, as JSON."""
    app.add_exception_handler(AuthFailure, _auth_failure)
    app.add_exception_handler(BadRequest, _bad_request)
    app.add_exception_handler(StoreUnavailable, _store_unavailable)
    app.add_exception_handler(UpstreamUnavailable, _upstream_unavailable)
