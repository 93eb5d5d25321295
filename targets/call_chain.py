"""Call chains of the split topology: a resource service calls the next with the same credential.

A user request carries ``X-Authbench-Hops: K`` (default 1). A resource service authenticates
the credential itself, then, while hops remain, calls ``--downstream`` with the same credential
headers and ``K - 1``, and answers once the next service has answered: K services authenticate
the one user request. A downstream refusal is passed on as it came (a 401 stays a 401); a
downstream that cannot be reached is a 502.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from targets.context import ServerContext
from targets.http_errors import BadRequest
from targets.peer_http import PEER_ERRORS, PeerClient
from targets.server_timing import HEADER as SERVER_TIMING
from targets.server_timing import ServerTiming
from targets.settings import MAX_HOPS

HOPS_HEADER = "x-authbench-hops"
FORWARDED = ("authorization", "cookie")
TIMEOUT_S = 10.0


def hops_asked(request: Request) -> int:
    """How many services the request asks to pass through, this one included."""
    text = request.headers.get(HOPS_HEADER, "1")
    if not text.isdigit() or not 1 <= int(text) <= MAX_HOPS:
        raise BadRequest(f"{HOPS_HEADER} must be a whole number from 1 to {MAX_HOPS}")
    return int(text)


class CallChain:
    """The client a resource service uses to call the next one (one pooled connection set)."""

    def __init__(self, downstream: str | None) -> None:
        self.downstream = downstream
        self._client = PeerClient(TIMEOUT_S) if downstream else None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()

    async def onward(self, request: Request, hops: int) -> JSONResponse | list[Any] | None:
        """None at the chain's end; else the next services' chain, or their refusal as is."""
        if hops <= 1:
            return None
        if self._client is None:
            raise BadRequest(f"{hops} hops asked of a service without --downstream")
        headers = {name: request.headers[name] for name in FORWARDED if name in request.headers}
        headers[HOPS_HEADER] = str(hops - 1)
        try:
            answer = await self._client.request("GET", f"{self.downstream}/me", headers=headers)
        except PEER_ERRORS:
            return JSONResponse({"detail": "downstream service unreachable"}, status_code=502)
        try:
            body = json.loads(answer.body)
        except ValueError:
            body = {"detail": f"downstream service answered {answer.status}"}
        if answer.status != 200:
            challenge = {"WWW-Authenticate": answer.challenge} if answer.challenge else {}
            return JSONResponse(body, status_code=answer.status, headers=challenge)
        return list(body.get("chain", []))


def call_chain_for(context: ServerContext) -> CallChain:
    """The server's client to its ``--downstream``, closed when the server shuts down."""
    chain = CallChain(context.settings.downstream)
    context.closers.append(chain.close)
    return chain


async def me_answer(
    request: Request, chain: CallChain, subject: str, node: str, timing: ServerTiming
) -> JSONResponse:
    """/me's answer once this service has authenticated the request: after the rest of the
    chain has (``chain`` lists the services in order when the request asked for hops)."""
    hops = hops_asked(request)
    onward = await chain.onward(request, hops)
    if isinstance(onward, JSONResponse):
        return onward
    body: dict[str, Any] = {"sub": subject, "node": node}
    if HOPS_HEADER in request.headers:
        body["chain"] = [node, *(onward or [])]
    return JSONResponse(body, headers={SERVER_TIMING: timing.header_value()})
