"""Token introspection (RFC 7662) between resource services and the issuer.

The issuer's ``POST /introspect`` takes ``token=…`` as a form, from a client that authenticates
with HTTP Basic (``resource`` and the shared ``--introspect-secret``; anything else is a 401),
and answers ``{"active": true, "sub", "exp", "iss", "aud", "jti", "token_type"}`` for a valid,
unrevoked access token, else ``{"active": false}``. A resource node with ``--introspect`` asks
it on every request, optionally keeping an *active* answer for ``--introspect-cache`` seconds
(never past the token's ``exp``; inactive answers are never kept).
"""

from __future__ import annotations

import base64
import hmac
import json
import time
from urllib.parse import parse_qs

from fastapi import Request

from targets.http_errors import AuthFailure, BadRequest, UpstreamUnavailable
from targets.jwt_tokens import MAX_TOKEN_CHARS
from targets.peer_http import PEER_ERRORS, PeerClient

CLIENT_ID = "resource"
BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="introspection"'}
TIMEOUT_S = 5.0
MAX_CACHED = 100_000
MAX_FIELDS = 4  # token, token_type_hint, and room for a client's extras


def check_client(request: Request, secret: str | None) -> None:
    """AuthFailure (401) unless the request carries the introspection client's credentials."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    try:
        client_id, _, given = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        client_id, given = "", ""
    expected = f"{CLIENT_ID}:{secret}".encode()
    presented = f"{client_id}:{given}".encode()
    if scheme.lower() != "basic" or secret is None or not hmac.compare_digest(presented, expected):
        raise AuthFailure("introspection client not authenticated", BASIC_CHALLENGE)


async def token_from_form(request: Request) -> str:
    """The ``token`` field of a form body (RFC 7662 §2.1); '' when absent or too long;
    BadRequest (400) for a body that is no small form."""
    body = await request.body()
    try:
        fields = parse_qs(body.decode("ascii", errors="replace"), max_num_fields=MAX_FIELDS)
    except ValueError:
        raise BadRequest(f"an introspection request has at most {MAX_FIELDS} form fields") from None
    token = (fields.get("token") or [""])[0]
    return token if len(token) <= MAX_TOKEN_CHARS else ""


class IntrospectionClient:
    """A resource node's introspection calls, with the optional cache of active answers."""

    def __init__(self, issuer_url: str, secret: str, cache_s: int) -> None:
        self.url = issuer_url + "/introspect"
        self.cache_s = cache_s
        self.calls = 0
        self._cache: dict[str, tuple[float, str]] = {}
        self._client = PeerClient(TIMEOUT_S, auth=(CLIENT_ID, secret))

    async def close(self) -> None:
        await self._client.close()

    async def subject(self, token: str) -> str | None:
        """The token's subject when the issuer says it is active, else None."""
        now = time.time()
        cached = self._cache.get(token)
        if cached is not None and cached[0] > now:
            return cached[1]
        self.calls += 1
        try:
            answer = await self._client.request("POST", self.url, form={"token": token})
            if answer.status >= 400:
                raise ValueError(f"the issuer answered {answer.status}")
            body = json.loads(answer.body)
        except (*PEER_ERRORS, ValueError) as exc:
            raise UpstreamUnavailable(str(exc) or type(exc).__name__) from None
        if body.get("active") is not True or not isinstance(body.get("sub"), str):
            return None
        if self.cache_s:
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
            keep_until = min(now + self.cache_s, float(body.get("exp", now)))
            self._cache[token] = (keep_until, body["sub"])
        return str(body["sub"])
