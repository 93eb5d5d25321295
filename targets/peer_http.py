"""The HTTP client a node calls its peers with on the hot path: the next service of a call chain,
the issuer's introspection endpoint.

aiohttp, not httpx: with 24 calls in flight, httpx's AsyncClient spent about 6.4 ms of CPU per
call against aiohttp's 0.28 ms on this machine (encode/httpx #3215), so a 3-service chain cost
15 times one service and introspection measured the client rather than the issuer. The session
is made on first use, inside the server's event loop, as aiohttp requires.

aiohttp loads with the first client: a node without peers (most of them) never imports it, which
saves about 0.2 s of CPU at every start.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import aiohttp

KEEPALIVE_CONNECTIONS = 256  # every call a loaded service has in flight keeps its connection


class PeerUnreachable(Exception):
    """No answer from the peer in time: refused, reset or timed out (the cause's own words)."""


PEER_ERRORS = (PeerUnreachable,)


@dataclass(frozen=True)
class PeerAnswer:
    """A peer's answer, read whole."""

    status: int
    body: bytes
    challenge: str | None  # its WWW-Authenticate header, passed on with a refusal


class PeerClient:
    """One pooled session to the node's peers, made lazily and closed with the server."""

    def __init__(self, timeout_s: float, auth: tuple[str, str] | None = None) -> None:
        import aiohttp

        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._auth = aiohttp.BasicAuth(*auth) if auth else None
        self._errors = (aiohttp.ClientError, asyncio.TimeoutError)
        self._session: aiohttp.ClientSession | None = None

    def _opened(self) -> aiohttp.ClientSession:
        if self._session is None:
            import aiohttp

            connector = aiohttp.TCPConnector(limit=KEEPALIVE_CONNECTIONS)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, auth=self._auth
            )
        return self._session

    async def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str] | None = None,
        form: dict[str, str] | None = None,
    ) -> PeerAnswer:
        """The whole answer; ``PeerUnreachable`` when the peer cannot be reached in time."""
        try:
            async with self._opened().request(method, url, headers=headers, data=form) as answer:
                body = await answer.read()
                return PeerAnswer(answer.status, body, answer.headers.get("WWW-Authenticate"))
        except self._errors as exc:
            raise PeerUnreachable(str(exc) or type(exc).__name__) from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
