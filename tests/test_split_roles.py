"""The split topology's roles on real processes: an issuer, resource nodes, JWKS, introspection,
call chains, key rotation and a flood of unknown kids."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from common.key_files import generate_private_key, new_kid, write_key
from loadtests.load.scenarios.forgery import foreign_key, resigned, with_claims
from loadtests.services.target_process import TargetNode
from tests.conftest import PASSWORD, StartTarget

pytestmark = pytest.mark.long_running

SECRET = "introspection-test-secret"


@pytest.fixture()
def resources(redis_url: str) -> Iterator[list[TargetNode]]:
    """Resource nodes started by a test; all stopped after it."""
    started: list[TargetNode] = []
    yield started
    for node in started:
        node.stop()


def start_resource(
    started: list[TargetNode], redis_url: str, *args: str, keys_dir: Path | None = None
) -> TargetNode:
    keys = ["--keys-dir", str(keys_dir)] if keys_dir else []
    node = TargetNode(["--role", "resource", *args, *keys], env={"REDIS_URL": redis_url})
    node.start()
    started.append(node)
    return node


def token_from(issuer: TargetNode, user: str = "user1") -> dict[str, str]:
    body = httpx.post(f"{issuer.url}/login", json={"username": user, "password": PASSWORD}).json()
    return body


def me(node: TargetNode, token: str, **headers: str) -> httpx.Response:
    return httpx.get(f"{node.url}/me", headers={"Authorization": f"Bearer {token}", **headers})


def test_resource_nodes_verify_with_the_issuers_jwks_and_hold_no_private_key(
    start_target: StartTarget, resources: list[TargetNode], redis_url: str
) -> None:
    issuer = start_target("--scheme", "jwt", "--alg", "ES256", "--role", "issuer")
    nodes = [
        start_resource(resources, redis_url, "--scheme", "jwt", "--alg", "ES256",
                       "--issuer-url", issuer.url)
        for _ in range(2)
    ]  # fmt: skip
    token = token_from(issuer)["access_token"]
    for node in nodes:
        health = httpx.get(f"{node.url}/healthz").json()
        assert (health["role"], health["holds_signing_key"]) == ("resource", False)
        assert "--keys-dir" not in node.args
        assert me(node, token).json()["sub"] == "user1"
        assert httpx.post(f"{node.url}/login", json={}).status_code in (404, 405)
        # Signed by a key the issuer never published: under the issuer's kid, or a new one.
        stranger = foreign_key("ES256")
        assert me(node, resigned(token, stranger)).status_code == 401
        assert me(node, resigned(token, stranger, sub="user2")).status_code == 401
        forged_kid = jwt.encode(
            jwt.decode(token, options={"verify_signature": False}), stranger,
            algorithm="ES256", headers={"kid": "made-up", "typ": "at+jwt"},
        )  # fmt: skip
        assert me(node, forged_kid).status_code == 401
        assert me(node, with_claims(token, sub="user2")).status_code == 401
    assert httpx.get(f"{issuer.url}/me").status_code == 404  # the issuer serves no resource


def test_an_asymmetric_resource_node_refuses_a_keys_folder(redis_url: str) -> None:
    node = TargetNode(
        ["--role", "resource", "--scheme", "jwt", "--alg", "RS256", "--issuer-url",
         "http://127.0.0.1:9", "--keys-dir", "/tmp/somewhere"],
        env={"REDIS_URL": redis_url},
    )  # fmt: skip
    with pytest.raises(Exception, match="holds no private key: drop --keys-dir"):
        node.start()


def test_introspection_refuses_unauthenticated_clients_and_follows_logout(
    start_target: StartTarget, resources: list[TargetNode], redis_url: str
) -> None:
    issuer = start_target("--scheme", "jwt", "--alg", "ES256", "--role", "issuer", "--denylist",
                          "--introspect-secret", SECRET)  # fmt: skip
    node = start_resource(resources, redis_url, "--scheme", "jwt", "--alg", "ES256",
                          "--issuer-url", issuer.url, "--introspect",
                          "--introspect-secret", SECRET)  # fmt: skip
    login = token_from(issuer)
    token = login["access_token"]
    url = f"{issuer.url}/introspect"
    assert httpx.post(url, data={"token": token}).status_code == 401
    assert httpx.post(url, data={"token": token}, auth=("resource", "wrong")).status_code == 401
    assert httpx.post(url, data={"token": token}, auth=("other", SECRET)).status_code == 401
    answer = httpx.post(url, data={"token": token}, auth=("resource", SECRET)).json()
    assert answer["active"] is True and answer["sub"] == "user1"
    assert httpx.post(url, data={"token": "nonsense"}, auth=("resource", SECRET)).json() == {
        "active": False
    }
    flooded = "&".join(f"f{i}=x" for i in range(50))
    assert httpx.post(url, content=flooded, auth=("resource", SECRET)).status_code == 400
    assert me(node, token).status_code == 200
    logout = httpx.post(f"{issuer.url}/logout", headers={"Authorization": f"Bearer {token}"},
                        json={"refresh_token": login["refresh_token"]})  # fmt: skip
    assert logout.status_code == 204
    assert me(node, token).status_code == 401  # the issuer says inactive at once
    assert httpx.get(f"{node.url}/counters").json()["introspections_asked"] == 2
    # An issuer that cannot be asked is the node's dependency failing (503), never a 401.
    issuer.stop()
    assert me(node, token).status_code == 503


def test_a_call_chain_authenticates_at_every_hop(
    start_target: StartTarget, resources: list[TargetNode], redis_url: str
) -> None:
    issuer = start_target("--scheme", "session", "--role", "issuer")
    last = start_resource(resources, redis_url, "--scheme", "session", "--node-id", "b")
    first = start_resource(resources, redis_url, "--scheme", "session", "--node-id", "a",
                           "--downstream", last.url)  # fmt: skip
    login = httpx.post(f"{issuer.url}/login", json={"username": "user3", "password": PASSWORD})
    cookie = {"Cookie": f"session_id={login.cookies['session_id']}"}
    answer = httpx.get(f"{first.url}/me", headers={**cookie, "X-Authbench-Hops": "2"})
    assert answer.status_code == 200 and answer.json()["chain"] == ["a", "b"]
    assert httpx.get(f"{first.url}/me", headers=cookie).json() == {"sub": "user3", "node": "a"}
    bad = {"Cookie": "session_id=" + "x" * 43, "X-Authbench-Hops": "2"}
    assert httpx.get(f"{first.url}/me", headers=bad).status_code == 401
    for hops in ("0", "abc", "17"):
        answer = httpx.get(f"{first.url}/me", headers={**cookie, "X-Authbench-Hops": hops})
        assert answer.status_code == 400, hops
    # The last service has no downstream: 3 hops cannot be served, and say so.
    assert (
        httpx.get(f"{first.url}/me", headers={**cookie, "X-Authbench-Hops": "3"}).status_code == 400
    )
    # A downstream service that is gone is a bad gateway, named as such.
    last.stop()
    gone = httpx.get(f"{first.url}/me", headers={**cookie, "X-Authbench-Hops": "2"})
    assert gone.status_code == 502 and gone.json() == {"detail": "downstream service unreachable"}


def test_a_flood_of_unknown_kids_costs_at_most_one_jwks_fetch_per_cooldown(
    start_target: StartTarget, resources: list[TargetNode], redis_url: str
) -> None:
    issuer = start_target("--scheme", "jwt", "--alg", "ES256", "--role", "issuer")
    cooldown = 0.5
    node = start_resource(resources, redis_url, "--scheme", "jwt", "--alg", "ES256",
                          "--issuer-url", issuer.url, "--jwks-cooldown", str(cooldown))  # fmt: skip
    token = token_from(issuer)["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    stranger = foreign_key("ES256")
    floods = [
        jwt.encode(claims, stranger, algorithm="ES256", headers={"kid": f"k{i}", "typ": "at+jwt"})
        for i in range(1000)
    ]
    before = httpx.get(f"{node.url}/counters").json()["jwks_fetches"]

    async def flood() -> tuple[list[int], list[int], float]:
        # At most as many requests in flight as the client's pool holds connections: httpx's
        # wait for a free connection grows with the number waiting (1,000 queued took over
        # 30 s here and timed out; 100 at a time send them in about 3 s).
        in_flight = asyncio.Semaphore(100)

        async def me(client: httpx.AsyncClient, bearer: str) -> int:
            async with in_flight:
                reply = await client.get("/me", headers={"Authorization": f"Bearer {bearer}"})
            return reply.status_code

        async with httpx.AsyncClient(base_url=node.url, timeout=30) as client:
            began = time.monotonic()
            bad = await asyncio.gather(*(me(client, t) for t in floods))
            good = await asyncio.gather(*(me(client, token) for _ in range(100)))
            return list(bad), list(good), began

    bad, good, began = asyncio.run(flood())
    elapsed = time.monotonic() - began
    fetches = httpx.get(f"{node.url}/counters").json()["jwks_fetches"] - before
    assert set(bad) == {401} and set(good) == {200}
    assert 1 <= fetches <= elapsed / cooldown + 1, (fetches, elapsed)


def test_key_rotation_under_load_gives_no_false_rejects(
    start_target: StartTarget, resources: list[TargetNode], redis_url: str, tmp_path: Path
) -> None:
    issuer = start_target("--scheme", "jwt", "--alg", "ES256", "--role", "issuer")
    nodes = [
        start_resource(resources, redis_url, "--scheme", "jwt", "--alg", "ES256",
                       "--issuer-url", issuer.url, "--jwks-cooldown", "0.2")
        for _ in range(2)
    ]  # fmt: skip
    time.sleep(0.3)  # past the cooldown of the start-up fetch
    old_kid = httpx.get(f"{issuer.url}/counters").json()["signing_kid"]

    async def load(rotate_after_s: float, run_s: float) -> list[int]:
        statuses: list[int] = []
        async with httpx.AsyncClient(timeout=10) as client:

            async def user(index: int) -> None:
                end = time.monotonic() + run_s
                while time.monotonic() < end:
                    body = {"username": f"user{index}", "password": PASSWORD}
                    token = (await client.post(f"{issuer.url}/login", json=body)).json()
                    for node in nodes:
                        reply = await client.get(
                            f"{node.url}/me",
                            headers={"Authorization": f"Bearer {token['access_token']}"},
                        )
                        statuses.append(reply.status_code)

            async def rotate() -> None:
                await asyncio.sleep(rotate_after_s)
                write_key(tmp_path / "keys" / "ES256", new_kid(), "ES256",
                          generate_private_key("ES256"))  # fmt: skip
                os.kill(issuer.pid, signal.SIGHUP)

            await asyncio.gather(rotate(), *(user(i) for i in range(4)))
        return statuses

    statuses = asyncio.run(load(0.7, 2.0))
    new_kid_now = httpx.get(f"{issuer.url}/counters").json()["signing_kid"]
    assert new_kid_now != old_kid
    assert statuses and set(statuses) == {200}  # no false rejects across the rotation
    for node in nodes:
        counters = httpx.get(f"{node.url}/counters").json()
        assert new_kid_now in counters["kid_first_accepted"]
        assert counters["jwks_fetches"] == 2  # start-up, then once for the new kid
