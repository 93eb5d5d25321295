"""A Redis outage under concurrent load: what users see, request by request.

Eight clients read back to back while the private Redis is stopped for 1.5 s and started again.
A fault must never log a user out: no 401 while the store is down (503 instead). Plain JWT reads
never touch Redis and keep answering 200. Once Redis is back, a new login works within 2 s; the
sessions themselves are gone (this Redis keeps nothing on disk), which is a 401 by design.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx

from loadtests.services.private_redis import PrivateRedis
from tests.conftest import StartTarget, client_for, login
from tests.polling import RECOVERY_S, wait_for_status

CLIENTS = 8
BEFORE_S, OUTAGE_S, AFTER_S = 0.8, 1.5, 1.0


def hammer(
    clients: list[tuple[httpx.Client, dict[str, str]]], redis_server: PrivateRedis
) -> tuple[list[tuple[float, int]], float, float]:
    """Every client reads while Redis goes away and comes back: (t, status), stop, restart."""
    seen: list[tuple[float, int]] = []
    lock = threading.Lock()
    done = threading.Event()

    def read(client: httpx.Client, headers: dict[str, str]) -> None:
        while not done.is_set():
            status = client.get("/me", headers=headers).status_code
            with lock:
                seen.append((time.monotonic(), status))

    threads = [threading.Thread(target=read, args=pair) for pair in clients]
    for thread in threads:
        thread.start()
    try:
        time.sleep(BEFORE_S)
        stopped = time.monotonic()
        redis_server.stop()
        time.sleep(OUTAGE_S)
        # The outage ends when Redis starts accepting again, somewhere inside start(): only what
        # finished before start() was called is surely "during". (After it, this Redis is empty:
        # the sessions are gone, a 401 by design.)
        restarting = time.monotonic()
        redis_server.start()
        time.sleep(AFTER_S)
    finally:
        done.set()
        for thread in threads:
            thread.join(10)
    return seen, stopped, restarting


def logged_in(
    node_url: str, count: int, credential: Callable[[httpx.Response], dict[str, str]]
) -> list[tuple[httpx.Client, dict[str, str]]]:
    """One client per user, logged in, with the headers its reads carry (cookies stay in it)."""
    pairs = []
    for index in range(count):
        client = httpx.Client(base_url=node_url, timeout=10.0)
        pairs.append((client, credential(login(client, f"user{index}"))))
    return pairs


def test_a_session_store_outage_under_load_gives_503_never_401(
    start_target: StartTarget, private_redis: PrivateRedis
) -> None:
    node = start_target("--scheme", "session", "--store", "redis", redis=private_redis.url)
    clients = logged_in(node.url, CLIENTS, lambda response: {})
    try:
        seen, stopped, started = hammer(clients, private_redis)
    finally:
        for client, _ in clients:
            client.close()
    before = [status for t, status in seen if t < stopped]
    during = [status for t, status in seen if stopped + 0.05 < t < started]
    assert before and set(before) == {200}
    assert during and 503 in during
    assert set(during) <= {200, 503}, "a store outage must never answer 401 to a valid session"
    with client_for(node) as fresh:
        assert wait_for_status(lambda: login(fresh), 200, RECOVERY_S) == 200


def test_plain_jwt_reads_keep_answering_through_a_store_outage(
    start_target: StartTarget, private_redis: PrivateRedis
) -> None:
    node = start_target("--scheme", "jwt", "--alg", "HS256", redis=private_redis.url)
    clients = logged_in(
        node.url,
        CLIENTS,
        lambda response: {"Authorization": f"Bearer {response.json()['access_token']}"},
    )
    try:
        seen, stopped, started = hammer(clients, private_redis)
    finally:
        for client, _ in clients:
            client.close()
    during = [status for t, status in seen if stopped < t < started]
    assert len(during) > 50 and set(status for _, status in seen) == {200}
