"""--store-cache S: session lookups and denylist answers kept in process, a revocation window of S.

Two real nodes share one Redis. A logout on one node must be refused there at once, honoured on
the other while its cached answer lives (a window the cache opens), and refused there within
S plus a round trip; a refusal must never be cached.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from analysis.cost import cheapest, sizings, what_would_change
from analysis.tidy import load_run
from analysis.workload import Workload
from loadtests.run.matrix import MatrixError, load_matrix
from targets.settings import SettingsError, parse_settings
from tests.conftest import StartTarget, client_for, login, run_matrix

pytestmark = pytest.mark.long_running

CACHE_S = 2
SLACK_S = 0.5  # a replay round trip and the poll's pause, generously


def _refused_after(client: httpx.Client, headers: dict[str, str], limit_s: float) -> float:
    """Seconds until the node refuses the credential (polling), or +inf past the limit."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        if client.get("/me", headers=headers).status_code == 401:
            return time.monotonic() - started
        time.sleep(0.02)
    return float("inf")


def _window_on_other_node(on_a: httpx.Client, on_b: httpx.Client, headers: dict, logout_body):
    """Read on both nodes (each caches), log out on A: A refuses at once, B after a while."""
    assert on_a.get("/me", headers=headers).status_code == 200
    assert on_b.get("/me", headers=headers).status_code == 200
    assert on_a.post("/logout", headers=headers, json=logout_body).status_code == 204
    assert on_a.get("/me", headers=headers).status_code == 401  # the revoking node knows
    assert on_b.get("/me", headers=headers).status_code == 200  # the other one's cache answers
    return _refused_after(on_b, headers, CACHE_S + 2)


def test_session_cache_opens_a_window_of_its_ttl_on_other_nodes(start_target: StartTarget) -> None:
    args = ("--scheme", "session", "--store", "redis", "--store-cache", str(CACHE_S))
    node_a, node_b = start_target(*args), start_target(*args)
    assert httpx.get(node_a.url + "/healthz").json()["store_cache_s"] == CACHE_S
    with client_for(node_a) as on_a, client_for(node_b) as on_b:
        cookie = login(on_a).headers["set-cookie"].split(";", 1)[0]
        on_a.cookies.clear()
        window = _window_on_other_node(on_a, on_b, {"Cookie": cookie}, None)
    assert CACHE_S - 1 <= window <= CACHE_S + SLACK_S


def test_denylist_cache_opens_a_window_of_its_ttl_on_other_nodes(
    start_target: StartTarget,
) -> None:
    args = ("--scheme", "jwt", "--alg", "HS256", "--denylist", "--store-cache", str(CACHE_S))
    node_a, node_b = start_target(*args), start_target(*args)
    with client_for(node_a) as on_a, client_for(node_b) as on_b:
        pair = login(on_a).json()
        headers = {"Authorization": f"Bearer {pair['access_token']}"}
        window = _window_on_other_node(
            on_a, on_b, headers, {"refresh_token": pair["refresh_token"]}
        )
    assert CACHE_S - 1 <= window <= CACHE_S + SLACK_S


def test_a_refusal_is_never_cached(start_target: StartTarget) -> None:
    """The bug this catches: caching 'no such session' would refuse a session made afterwards
    elsewhere, or keep refusing a token that was never revoked."""
    args = ("--scheme", "jwt", "--alg", "HS256", "--denylist", "--store-cache", "30")
    node = start_target(*args)
    with client_for(node) as client:
        pair = login(client).json()
        good = {"Authorization": f"Bearer {pair['access_token']}"}
        assert client.get("/me", headers=good).status_code == 200
        assert client.post("/logout", headers=good, json={}).status_code == 204
        assert client.get("/me", headers=good).status_code == 401
        fresh = login(client).json()
        headers = {"Authorization": f"Bearer {fresh['access_token']}"}
        assert client.get("/me", headers=headers).status_code == 200


def test_an_uncached_server_still_revokes_at_once(start_target: StartTarget) -> None:
    """The control: the same two-node logout without the cache is refused everywhere at once."""
    args = ("--scheme", "session", "--store", "redis")
    node_a, node_b = start_target(*args), start_target(*args)
    with client_for(node_a) as on_a, client_for(node_b) as on_b:
        cookie = {"Cookie": login(on_a).headers["set-cookie"].split(";", 1)[0]}
        on_a.cookies.clear()
        assert on_b.get("/me", headers=cookie).status_code == 200
        assert on_a.post("/logout", headers=cookie).status_code == 204
        assert on_b.get("/me", headers=cookie).status_code == 401


@pytest.mark.parametrize(
    "argv",
    [
        ["--scheme", "session", "--store", "memory", "--store-cache", "2"],
        ["--scheme", "jwt", "--alg", "ES256", "--store-cache", "2"],
        ["--scheme", "none", "--store-cache", "2"],
    ],
)
def test_a_cache_without_a_shared_store_is_refused(argv: list[str]) -> None:
    with pytest.raises(SettingsError, match="--store-cache applies to"):
        parse_settings(argv, environ={})


def test_a_matrix_caches_only_what_reads_a_shared_store(tmp_path) -> None:
    matrix = tmp_path / "m.toml"
    base = 'schemes = ["{}"]\ntopologies = ["multi"]\nscenarios = ["revocation"]\n'
    matrix.write_text("[[cells]]\n" + base.format("session-redis") + "store_cache_s = 2\n")
    (cell,) = load_matrix(str(matrix)).cells
    assert "-cache2s__" in cell.cell_id(1)
    assert cell.server_args()[-2:] == ["--store-cache", "2"]
    matrix.write_text("[[cells]]\n" + base.format("jwt-HS256") + "store_cache_s = 2\n")
    with pytest.raises(MatrixError, match=r"store_cache_s.*reads no shared store"):
        load_matrix(str(matrix))


SIZED = """
[defaults]
users = 3
warmup_s = 0.5
duration_s = 1.5
population = 20
kdf_iterations = 1000

[[cells]]
schemes = ["session-redis"]
topologies = ["single"]
scenarios = ["read", "login"]

[[cells]]
schemes = ["session-redis"]
topologies = ["single"]
scenarios = ["read"]
store_cache_s = 1
"""


def test_decide_sizes_a_cached_design_as_its_own_row_with_a_window_of_its_cache(
    tmp_path: Path,
) -> None:
    """A cached session store is another design: costed from its own cached reads, and its
    revocation window is the cache's lifetime (as a plain JWT's is its access TTL)."""
    matrix = tmp_path / "sized.toml"
    matrix.write_text(SIZED)
    done = run_matrix(matrix, tmp_path / "results")
    assert done.returncode == 0, done.stderr
    run = load_run((tmp_path / "results" / "latest").resolve())
    for limit, meets in ((0.5, False), (5.0, True)):
        workload = Workload(reads_per_s=1000, logins_per_s=1, max_revocation_window_s=limit)
        rows = {row.label: row for row in sizings(run, workload)}
        assert set(rows) == {"session-redis", "session-redis (store cache 1 s)"}
        cached, uncached = rows["session-redis (store cache 1 s)"], rows["session-redis"]
        assert (cached.revocation_window_s, cached.meets_window) == (1.0, meets)
        assert uncached.meets_window  # revoked at once: every window is met
        found = run.get_flagged("server_cpu_us_per_req", scheme="session-redis",
                                scenario="read", store_cache_s=1)  # fmt: skip
        assert found is not None and cached.complete and cached.app_cores is not None
        read_cpu, generator_bound = found
        bound = " (generator-bound: an upper bound)" if generator_bound else ""
        assert cached.notes[0] == f"reads from server CPU per read at saturation{bound}"
        login_cpu = run.get("server_cpu_us_per_req", scheme="session-redis", scenario="login")
        assert login_cpu is not None
        expected = (read_cpu.value * 1000 + login_cpu.value * 1) / 1e6 / (1 - workload.headroom)
        assert cached.app_cores.value == pytest.approx(expected)
    # Where the cached design is the one chosen, its cache's lifetime is what a stricter
    # window would take away.
    assert cheapest([cached])[0] is cached
    assert "under 1 s (its store cache's lifetime)" in what_would_change([cached])
