"""Tiny blocking HTTP calls for the verify gate (not for load: Locust does that)."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Reply:
    """Status, lower-cased headers and parsed JSON body (None when not JSON)."""

    status: int
    headers: dict[str, str]
    body: Any


def call(
    base_url: str,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    json_body: Any = None,
) -> Reply:
    """One request on a fresh connection."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT_S)
    body = None if json_body is None else json.dumps(json_body).encode()
    sent = dict(headers or {})
    if body is not None:
        sent["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=body, headers=sent)
        response = conn.getresponse()
        raw = response.read()
        reply_headers = {name.lower(): value for name, value in response.getheaders()}
    finally:
        conn.close()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = None
    return Reply(response.status, reply_headers, parsed)


def service_counters(base_url: str) -> dict[str, Any]:
    """A reference server's ``GET /counters`` (split topology), or {} when it does not answer."""
    try:
        body = call(base_url, "GET", "/counters").body
    except (OSError, http.client.HTTPException):
        return {}
    return dict(body) if isinstance(body, dict) else {}
