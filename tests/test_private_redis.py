"""The embedded default Redis: started on a free port, stopped by its own PID only."""

from __future__ import annotations

import redis

from loadtests.services.private_redis import PrivateRedis


def test_private_redis_starts_serves_and_stops() -> None:
    server = PrivateRedis()
    server.start()
    try:
        client = redis.Redis.from_url(server.url)
        assert client.ping()
        assert client.config_get("save")["save"] == ""
        assert client.config_get("appendonly")["appendonly"] == "no"
        pid = server.pid
        assert pid is not None
    finally:
        server.close()
    assert server.pid is None


def test_stopping_one_private_redis_leaves_another_running() -> None:
    with PrivateRedis() as first, PrivateRedis() as second:
        assert first.port != second.port
        first.stop()
        assert redis.Redis.from_url(second.url).ping()
