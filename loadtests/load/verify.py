"""The verify gate: a target must answer correctly before it is timed.

Checks, on every node: /healthz names the expected scheme; a login works and a wrong password is
refused; the credential is accepted by every node (a session made on one node works on the
others); a tampered credential is refused; after logout the credential is refused by every node
(sessions, denylisted JWTs; within the store cache's TTL plus a second when it has one) or, for
plain JWTs, the refresh family is revoked. A target that
fails gets no numbers: the cell is recorded as failed with the reason.

What the gate established is recorded as structured fields (``CHECKS``: name → what it means),
each ``True`` when it was shown, so the analysis reads facts, never sentences.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from http.client import HTTPException
from typing import Any

import jwt

from common.credentials import BENCH_PASSWORD, FIRST_USER
from common.schemes import HMAC_ALGORITHMS, is_hmac
from loadtests.load.http_probe import Reply, call

PASSWORD = BENCH_PASSWORD
USER = FIRST_USER


IDENTITY = "identity"
LOGIN = "login"
ACCEPTED_EVERYWHERE = "accepted_on_every_node"
JWKS_ALONE = "verified_with_jwks_alone"
NO_PUBLIC_KEY = "no_public_key_published"
TAMPER_REFUSED = "tampered_refused_everywhere"
LOGOUT_EVERYWHERE = "logout_refused_on_every_node"
FAMILY_REVOKED = "logout_revokes_refresh_family"
THROUGH_BALANCER = "through_balancer"
ROLES_SPLIT = "issuer_and_resource_roles"
NO_KEY_ON_RESOURCES = "resource_nodes_hold_no_signing_key"
CHECKS = {
    IDENTITY: "/healthz names the expected scheme, algorithm and store on every node",
    LOGIN: "login works and a wrong password is refused",
    ACCEPTED_EVERYWHERE: "a fresh credential is accepted on every node",
    JWKS_ALONE: "the access token verifies with the published JWKS key alone",
    NO_PUBLIC_KEY: "no public key is published (HMAC: every verifier holds the secret)",
    TAMPER_REFUSED: "a tampered credential is refused on every node",
    LOGOUT_EVERYWHERE: "after logout every node refuses the credential (within its store cache)",
    FAMILY_REVOKED: "logout revokes the refresh family (the access token lives to exp)",
    THROUGH_BALANCER: "the same checks pass through the load balancer",
    ROLES_SPLIT: "split: the issuer logs in and out, every resource node judges its credentials",
    NO_KEY_ON_RESOURCES: "split: no resource node holds a key that signs (asymmetric schemes)",
}


class VerifyFailed(Exception):
    """The target answered wrongly; the message says what and where."""


@dataclass
class VerifyResult:
    """What the gate established about a target."""

    credential_header: str = ""
    credential_bytes: int = 0
    checks: dict[str, bool] = field(default_factory=dict)


@dataclass(frozen=True)
class Expected:
    """The identity the nodes must report."""

    scheme: str  # none | session | jwt
    alg: str | None
    store: str | None
    denylist: bool
    introspect: bool = False  # split: resource nodes ask the issuer about every token
    planted_cost_us: int = 0  # a self-test's known extra cost: the nodes must burn exactly it
    store_cache_s: int = 0  # store answers cached in process: logout reaches other nodes this late
    server_timing: bool = True  # /me must say what authentication cost (Server-Timing auth;dur=)
    library: str | None = None  # the JWT library every verifying node must report; None: any


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise VerifyFailed(message)


def _credential_headers(expected: Expected, login: Reply) -> dict[str, str]:
    if expected.scheme == "jwt":
        token = (login.body or {}).get("access_token")
        _expect(isinstance(token, str) and token.count(".") == 2, "login gave no access token")
        return {"Authorization": f"Bearer {token}"}
    if expected.scheme == "session":
        cookie = login.headers.get("set-cookie", "")
        name, _, rest = cookie.partition("=")
        value = rest.split(";", 1)[0]
        _expect(name == "session_id" and len(value) >= 22, "login set no session_id cookie")
        _expect("httponly" in cookie.lower(), "session cookie is not HttpOnly")
        return {"Cookie": f"session_id={value}"}
    return {}


def _tampered(expected: Expected, headers: dict[str, str]) -> dict[str, str]:
    if expected.scheme == "jwt":
        token = headers["Authorization"].removeprefix("Bearer ")
        head, payload, signature = token.split(".")
        middle = len(signature) // 2
        swapped = "A" if signature[middle] != "A" else "B"
        forged = signature[:middle] + swapped + signature[middle + 1 :]
        return {"Authorization": f"Bearer {head}.{payload}.{forged}"}
    return {"Cookie": f"session_id={secrets.token_urlsafe(32)}"}


def _check_jwks(node: str, expected: Expected, headers: dict[str, str]) -> str:
    """The check the JWKS endpoint passed (its key in ``CHECKS``)."""
    """Asymmetric: the access token verifies with the published public key alone."""
    jwks = call(node, "GET", "/.well-known/jwks.json")
    if is_hmac(expected.alg or ""):
        _expect(jwks.status == 404, f"an HMAC server published a JWKS ({jwks.status})")
        return NO_PUBLIC_KEY
    _expect(jwks.status == 200, f"JWKS answered {jwks.status}")
    token = headers["Authorization"].removeprefix("Bearer ")
    kid = jwt.get_unverified_header(token).get("kid")
    keys = {key.get("kid"): key for key in (jwks.body or {}).get("keys", [])}
    _expect(kid in keys, "the token's kid is not in the JWKS")
    _expect(not {"d", "k"} & set(keys[kid]), "the JWKS exposes private key material")
    try:
        public = jwt.PyJWK(keys[kid], algorithm=expected.alg).key
        jwt.decode(token, public, algorithms=[expected.alg], options={"verify_aud": False})
    except jwt.PyJWTError as exc:
        raise VerifyFailed(f"the token does not verify with its JWKS key: {exc}") from None
    return JWKS_ALONE


def verify_target(nodes: list[str], expected: Expected, issuer: str | None = None) -> VerifyResult:
    """Run every check against the nodes (logging in at ``issuer`` in split); VerifyFailed on
    the first wrong answer."""
    try:
        return _verify(nodes, expected, issuer)
    except (OSError, HTTPException, ValueError, KeyError, TypeError) as exc:
        raise VerifyFailed(f"target did not answer properly: {type(exc).__name__}: {exc}") from None


def _check_roles(
    healths: dict[str, dict[str, Any]], issuer: str, expected: Expected, result: VerifyResult
) -> None:
    """Split: the issuer is one, the nodes (their /healthz already read) are resource nodes."""
    health = call(issuer, "GET", "/healthz").body or {}
    _expect(health.get("role") == "issuer", f"{issuer} is not an issuer ({health.get('role')})")
    for node, health in healths.items():
        _expect(health.get("role") == "resource", f"{node} is not a resource node")
        _expect(call(node, "POST", "/login", json_body={}).status in (404, 405),
                f"{node} logs users in: a resource node must not")  # fmt: skip
        if expected.scheme == "jwt" and expected.alg not in HMAC_ALGORITHMS:
            _expect(health.get("holds_signing_key") is False, f"{node} holds a signing key")
    result.checks[ROLES_SPLIT] = True
    if expected.scheme == "jwt" and expected.alg not in HMAC_ALGORITHMS:
        result.checks[NO_KEY_ON_RESOURCES] = True


def _check_identity(node: str, body: dict[str, Any], expected: Expected) -> dict[str, Any]:
    """The node's /healthz says what it must: scheme, algorithm, store, denylist, planted cost,
    store cache and JWT library; VerifyFailed naming the first difference."""
    identity = (body.get("scheme"), body.get("alg"), body.get("store"))
    want = (expected.scheme, expected.alg, expected.store)
    _expect(identity == want, f"{node} reports {identity}, expected {want}")
    if expected.scheme == "jwt":
        _expect(body.get("denylist") == expected.denylist, f"{node} denylist setting differs")
    planted = body.get("planted_cost_us", 0)
    _expect(
        planted == expected.planted_cost_us,
        f"{node} plants {planted} µs per auth step, expected {expected.planted_cost_us}",
    )
    cache_s = body.get("store_cache_s", 0)
    _expect(
        cache_s == expected.store_cache_s,
        f"{node} caches store answers {cache_s} s, expected {expected.store_cache_s}",
    )
    verifies = not (expected.introspect and body.get("role") == "resource")
    if expected.library and verifies:
        library = body.get("library")
        _expect(
            library == expected.library,
            f"{node} signs and verifies with {library}, expected {expected.library}",
        )
    return body


def _verify(nodes: list[str], expected: Expected, issuer: str | None) -> VerifyResult:
    result = VerifyResult()
    login_at, logout_at = issuer or nodes[0], issuer or nodes[-1]
    healths: dict[str, dict[str, Any]] = {}
    for node in nodes:
        health = call(node, "GET", "/healthz")
        _expect(health.status == 200, f"{node}/healthz answered {health.status}")
        healths[node] = _check_identity(node, health.body or {}, expected)
    result.checks[IDENTITY] = True
    if issuer is not None:
        _check_roles(healths, issuer, expected, result)

    wrong = call(login_at, "POST", "/login", json_body={"username": USER, "password": "wrong"})
    _expect(wrong.status == 401, f"wrong password answered {wrong.status}, expected 401")
    login = call(login_at, "POST", "/login", json_body={"username": USER, "password": PASSWORD})
    _expect(login.status == 200, f"login answered {login.status}, expected 200")
    headers = _credential_headers(expected, login)
    result.checks[LOGIN] = True
    if headers:
        name, value = next(iter(headers.items()))
        result.credential_header = name
        result.credential_bytes = len(f"{name}: {value}".encode())

    subject = "anonymous" if expected.scheme == "none" else USER
    for node in nodes:
        me = call(node, "GET", "/me", headers=headers)
        _expect(me.status == 200, f"{node}/me with a fresh credential answered {me.status}")
        _expect((me.body or {}).get("sub") == subject, f"{node}/me names the wrong subject")
        _expect(
            "auth;dur=" in me.headers.get("server-timing", "") or not expected.server_timing,
            f"{node}/me lacks Server-Timing",
        )
    result.checks[ACCEPTED_EVERYWHERE] = True
    if expected.scheme == "none":
        return result

    if expected.scheme == "jwt":
        result.checks[_check_jwks(login_at, expected, headers)] = True

    forged = _tampered(expected, headers)
    for node in nodes:
        me = call(node, "GET", "/me", headers=forged)
        _expect(me.status == 401, f"{node} accepted a tampered credential ({me.status})")
    result.checks[TAMPER_REFUSED] = True

    refresh_token = (login.body or {}).get("refresh_token")
    logout_body = {"refresh_token": refresh_token} if refresh_token else None
    logout = call(logout_at, "POST", "/logout", headers=headers, json_body=logout_body)
    _expect(logout.status == 204, f"logout answered {logout.status}, expected 204")
    if expected.scheme == "session" or expected.denylist or expected.introspect:
        grace_s = expected.store_cache_s + 1.0 if expected.store_cache_s else 0.0
        deadline = time.monotonic() + grace_s
        for node in nodes:
            _expect(
                _refused_by(node, headers, deadline),
                f"{node} still accepts a logged-out credential",
            )
        result.checks[LOGOUT_EVERYWHERE] = True
    else:
        again = call(login_at, "POST", "/refresh", json_body={"refresh_token": refresh_token})
        _expect(again.status == 401, f"refresh after logout answered {again.status}, expected 401")
        result.checks[FAMILY_REVOKED] = True
    return result


def _refused_by(node: str, headers: dict[str, str], deadline: float) -> bool:
    """Whether the node refuses the credential now, or (a cached node) before the deadline."""
    while True:
        if call(node, "GET", "/me", headers=headers).status == 401:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
