"""Session servers against the session attacks: entropy, fixation, logout, TTL, cookie flags."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from http.cookies import SimpleCookie

import httpx
import pytest

from loadtests.services.target_process import TargetNode
from tests.conftest import StartTarget, client_for, launch, login

pytestmark = pytest.mark.long_running

STORES = ["redis", "memory"]


@pytest.fixture(scope="module", params=STORES)
def session_node(
    request: pytest.FixtureRequest, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TargetNode]:
    """A session server per store with default settings, shared by the tests that log in and
    out with clients of their own (a start costs about 0.7 s of CPU)."""
    node = launch(["--scheme", "session", "--store", request.param], redis_url,
                  tmp_path_factory.mktemp("keys"))  # fmt: skip
    yield node
    node.stop()


def session_cookie(response: httpx.Response) -> SimpleCookie:
    cookie = SimpleCookie()
    cookie.load(response.headers["set-cookie"])
    return cookie


def test_login_sets_a_random_hardened_cookie(session_node: TargetNode) -> None:
    with client_for(session_node) as client:
        ids = set()
        for _ in range(5):
            response = login(client)
            assert response.status_code == 200
            assert response.json() == {"sub": "user1"}
            morsel = session_cookie(response)["session_id"]
            ids.add(morsel.value)
            assert morsel["httponly"] is True
            assert morsel["samesite"].lower() == "lax"
            assert morsel["path"] == "/"
            assert not morsel["secure"]
        assert len(ids) == 5
        # 43 base64url characters carry 256 random bits: well over the 128 required.
        assert all(len(value) == 43 for value in ids)


def test_secure_flag_is_set_behind_its_setting(start_target: StartTarget) -> None:
    node = start_target("--scheme", "session", "--secure-cookie")
    with client_for(node) as client:
        assert session_cookie(login(client))["session_id"]["secure"] is True


def test_session_grants_me_and_unknown_id_is_refused(session_node: TargetNode) -> None:
    with client_for(session_node) as client:
        assert client.get("/me").status_code == 401
        login(client, "user7")
        assert client.get("/me").json()["sub"] == "user7"
    never_issued = secrets.token_urlsafe(32)
    with client_for(session_node) as stranger:
        stranger.cookies.set("session_id", never_issued)
        response = stranger.get("/me")
        assert response.status_code == 401
        assert response.json() == {"detail": "no valid session"}


def test_login_mints_a_new_id_whatever_cookie_came_in(session_node: TargetNode) -> None:
    planted = secrets.token_urlsafe(32)
    with client_for(session_node) as client:
        client.cookies.set("session_id", planted)
        issued = session_cookie(login(client))["session_id"].value
        assert issued != planted
    with client_for(session_node) as attacker:
        attacker.cookies.set("session_id", planted)
        assert attacker.get("/me").status_code == 401


def test_logout_is_seen_at_once_by_every_node(start_target: StartTarget) -> None:
    node_a = start_target("--scheme", "session", "--store", "redis")
    node_b = start_target("--scheme", "session", "--store", "redis")
    with client_for(node_a) as on_a, client_for(node_b) as on_b:
        session_id = session_cookie(login(on_a))["session_id"].value
        on_b.cookies.set("session_id", session_id)
        assert on_b.get("/me").json()["node"] != on_a.get("/me").json()["node"]
        assert on_b.get("/me").status_code == 200
        logout = on_a.post("/logout")
        assert logout.status_code == 204
        assert (
            'session_id=""' in logout.headers["set-cookie"]
            or "Max-Age=0" in logout.headers["set-cookie"]
        )
        assert on_b.get("/me").status_code == 401
        on_a.cookies.set("session_id", session_id)
        assert on_a.get("/me").status_code == 401


def test_logout_without_a_session_is_204(session_node: TargetNode) -> None:
    with client_for(session_node) as client:
        assert client.post("/logout").status_code == 204


@pytest.mark.parametrize("store", STORES)
def test_store_ttl_is_enforced(start_target: StartTarget, store: str) -> None:
    node = start_target("--scheme", "session", "--store", store, "--session-ttl", "1")
    with client_for(node) as client:
        login(client)
        assert client.get("/me").status_code == 200
        time.sleep(2.2)
        assert client.get("/me").status_code == 401


@pytest.mark.parametrize("store", STORES)
def test_sliding_expiry_renews_an_active_session(start_target: StartTarget, store: str) -> None:
    node = start_target(
        "--scheme", "session", "--store", store, "--session-ttl", "2", "--sliding-session"
    )
    with client_for(node) as client:
        login(client)
        for _ in range(4):  # 3.2 s of activity: longer than the TTL, never idle for 2 s
            time.sleep(0.8)
            assert client.get("/me").status_code == 200
        time.sleep(3.1)
        assert client.get("/me").status_code == 401


@pytest.mark.parametrize(
    "cookie",
    ["", "x", "A" * 42, "A" * 44, "../../etc/passwd", "' OR 1=1 --", "%00" * 20, "A" * 60000],
)
def test_malformed_session_cookies_are_401(session_node: TargetNode, cookie: str) -> None:
    with client_for(session_node) as client:
        response = client.get("/me", headers={"Cookie": f"session_id={cookie}"})
        assert response.status_code == 401
