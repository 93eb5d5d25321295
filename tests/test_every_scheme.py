"""Behaviour every scheme shares: login errors, bad input, Server-Timing, health."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from loadtests.services.target_process import TargetNode
from tests.conftest import PASSWORD, client_for, launch, login

SCHEMES = {
    "none": ["--scheme", "none"],
    "session-redis": ["--scheme", "session", "--store", "redis"],
    "session-memory": ["--scheme", "session", "--store", "memory"],
    "jwt-HS256": ["--scheme", "jwt", "--alg", "HS256"],
    "jwt-ES256+deny": ["--scheme", "jwt", "--alg", "ES256", "--denylist"],
}


@pytest.fixture(scope="module", params=list(SCHEMES))
def node(
    request: pytest.FixtureRequest, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TargetNode]:
    started = launch(SCHEMES[request.param], redis_url, tmp_path_factory.mktemp("keys"))
    yield started
    started.stop()


@pytest.fixture()
def client(node: TargetNode) -> Iterator[httpx.Client]:
    with client_for(node) as fresh:
        yield fresh


def authenticate(client: httpx.Client) -> dict[str, str]:
    """Log in and return the headers that authenticate later requests."""
    response = login(client)
    assert response.status_code == 200
    token = response.json().get("access_token")
    return {"Authorization": f"Bearer {token}"} if token else {}


def test_healthz_names_the_scheme(client: httpx.Client) -> None:
    body = client.get("/healthz").json()
    assert body["status"] == "ok"
    assert set(body) >= {"scheme", "alg", "store", "node"}


def test_wrong_user_and_wrong_password_look_the_same(client: httpx.Client) -> None:
    wrong_user = client.post("/login", json={"username": "nobody", "password": PASSWORD})
    wrong_password = client.post("/login", json={"username": "user1", "password": "guess"})
    assert wrong_user.status_code == wrong_password.status_code == 401
    assert wrong_user.json() == wrong_password.json()


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[1, 2]", b'{"username": "user1"}', b'{"username": 5, "password": []}', b""],
)
def test_malformed_login_body_is_4xx(client: httpx.Client, body: bytes) -> None:
    response = client.post("/login", content=body, headers={"Content-Type": "application/json"})
    assert 400 <= response.status_code < 500
    assert "detail" in response.json()


def test_oversized_bodies_are_413(client: httpx.Client) -> None:
    big = b'{"username": "' + b"x" * 100_000 + b'"}'
    declared = client.post("/login", content=big, headers={"Content-Type": "application/json"})
    streamed = client.post(
        "/login",
        content=(big[i : i + 4096] for i in range(0, len(big), 4096)),
        headers={"Content-Type": "application/json"},
    )
    assert declared.status_code == streamed.status_code == 413


def test_me_carries_server_timing_on_success_and_refusal(
    client: httpx.Client, node: TargetNode
) -> None:
    headers = authenticate(client)
    success = client.get("/me", headers=headers)
    assert success.status_code == 200
    assert success.headers["server-timing"].startswith("auth;dur=")
    login_timing = login(client).headers["server-timing"]
    assert "auth;dur=" in login_timing and "kdf;dur=" in login_timing
    scheme = client.get("/healthz").json()["scheme"]
    if scheme != "none":
        refused = client.get("/me", headers={"Authorization": "Bearer x", "Cookie": "session_id=x"})
        assert refused.status_code == 401
        assert refused.headers["server-timing"].startswith("auth;dur=")


def test_store_time_is_reported_exactly_when_redis_was_touched(client: httpx.Client) -> None:
    health = client.get("/healthz").json()
    me = client.get("/me", headers=authenticate(client)).headers["server-timing"]
    touches_redis_on_me = health["store"] == "redis" and (
        health["scheme"] == "session" or health["denylist"]
    )
    assert ("store;dur=" in me) == touches_redis_on_me


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer " + "A" * 70_000},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer a.b.c extra"},
        {"Cookie": "session_id=" + "B" * 70_000},
        {"Cookie": 'session_id="\\x00\\xff"; other=;;;='},
        {"Authorization": "Bearer \u00e9\u00e9.\u00e9.\u00e9".encode()},
        {"Cookie": b"session_id=\xff\xfe\x80"},
    ],
)
def test_bad_credentials_never_yield_5xx(
    client: httpx.Client, node: TargetNode, headers: dict[str, str | bytes]
) -> None:
    response = client.get("/me", headers=headers)
    assert response.status_code < 500
    assert client.post("/logout", headers=headers).status_code < 500
    assert client.get("/healthz").status_code == 200


def test_jwks_is_absent_for_hmac_and_non_jwt_servers(client: httpx.Client) -> None:
    health = client.get("/healthz").json()
    response = client.get("/.well-known/jwks.json")
    asymmetric = health["scheme"] == "jwt" and not health["alg"].startswith("HS")
    assert response.status_code == (200 if asymmetric else 404)
