"""The HTTP client a node calls its peers with on the hot path: the next service of a call chain,
the issuer's introspection endpoint.

aiohttp, not httpx: with 24 calls in flight, httpx's AsyncClient spent about 6.4 ms of CPU per
call against aiohttp's 0.28 ms on this machine (encode/httpx #3215), so a 3-service chain cost
15 times one service and introspection measured the client rather than the issuer. The session
is made on first use, inside the server's event loop, as aiohttp requires.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp

KEEPALIVE_CONNECTIONS = 256  # every call a loaded service has in flight keeps its connection
PEER_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError)


@dataclass(frozen=True)
class PeerAnswer:
    """A peer's answer, read whole."""

    status: int
    body: bytes
    challenge: str | None  # its WWW-Authenticate header, passed on with a refusal


class PeerClient:
    """One pooled session to the node's peers, made lazily and closed with the server."""

    def __init__(self, timeout_s: float, auth: tuple[str, str] | None = None) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._auth = aiohttp.BasicAuth(*auth) if auth else None
        self._session: aiohttp.ClientSession | None = None

    def _opened(self) -> aiohttp.ClientSession:
        if self._session is None:
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
        """The whole answer; ``PEER_ERRORS`` when the peer cannot be reached in time."""
        async with self._opened().request(method, url, headers=headers, data=form) as answer:
            body = await answer.read()
            return PeerAnswer(answer.status, body, answer.headers.get("WWW-Authenticate"))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
