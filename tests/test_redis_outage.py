"""What each scheme does while Redis is down, and that it recovers without a restart."""

from __future__ import annotations

import httpx

from loadtests.services.private_redis import PrivateRedis
from tests.conftest import StartTarget, client_for, login
from tests.polling import RECOVERY_S, wait_for_status


def assert_json_503(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json() == {"detail": "store unavailable"}


def test_stateless_jwt_keeps_verifying_while_redis_is_down(
    start_target: StartTarget, private_redis: PrivateRedis
) -> None:
    node = start_target("--scheme", "jwt", "--alg", "RS256", redis=private_redis.url)
    with client_for(node) as client:
        tokens = login(client).json()
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        private_redis.stop()
        assert client.get("/me", headers=bearer).status_code == 200
        assert_json_503(login(client))
        assert_json_503(client.post("/refresh", json={"refresh_token": tokens["refresh_token"]}))
        assert_json_503(client.post("/logout", headers=bearer))
        assert client.get("/healthz").status_code == 503
        private_redis.start()
        assert wait_for_status(lambda: login(client), 200, RECOVERY_S) == 200


def test_denylisted_jwt_needs_redis_on_every_request(
    start_target: StartTarget, private_redis: PrivateRedis
) -> None:
    node = start_target("--scheme", "jwt", "--alg", "ES256", "--denylist", redis=private_redis.url)
    with client_for(node) as client:
        bearer = {"Authorization": f"Bearer {login(client).json()['access_token']}"}
        private_redis.stop()
        assert_json_503(client.get("/me", headers=bearer))
        private_redis.start()
        assert wait_for_status(lambda: client.get("/me", headers=bearer), 200, RECOVERY_S) == 200


def test_session_server_answers_503_then_recovers_without_restart(
    start_target: StartTarget, private_redis: PrivateRedis
) -> None:
    node = start_target("--scheme", "session", "--store", "redis", redis=private_redis.url)
    with client_for(node) as client:
        login(client)
        assert client.get("/me").status_code == 200
        private_redis.stop()
        down = client.get("/me")
        assert_json_503(down)
        assert down.headers["server-timing"].startswith("auth;dur=")
        assert_json_503(login(client))
        assert client.get("/healthz").status_code == 503
        private_redis.start()
        # The private Redis keeps nothing on disk: the old session is gone, a new login works.
        assert wait_for_status(lambda: login(client), 200, RECOVERY_S) == 200
        assert client.get("/me").status_code == 200


def test_server_starts_while_redis_is_down_and_reports_unhealthy(
    start_target: StartTarget, private_redis: PrivateRedis
) -> None:
    private_redis.stop()
    node = start_target("--scheme", "session", redis=private_redis.url, require_healthy=False)
    with client_for(node) as client:
        assert client.get("/healthz").status_code == 503
        private_redis.start()
        assert wait_for_status(lambda: client.get("/healthz"), 200, RECOVERY_S) == 200
