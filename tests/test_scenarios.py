"""Every scenario, through the real runner and Locust, against the scheme it is meant for."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from loadtests.load.histograms import FAILED, LATENCY, HistogramSet
from tests.conftest import run_matrix

pytestmark = pytest.mark.long_running

MATRIX = """
generator_ceiling_rps = 100000
[defaults]
users = 3
warmup_s = 0.5
duration_s = 1.5
population = 20
kdf_iterations = 1000
access_ttl = 30

[[cells]]
schemes = ["session-redis"]
topologies = ["single"]
scenarios = ["logout", "mixed", "revocation"]

[[cells]]
schemes = ["jwt-HS256"]
topologies = ["multi"]
nodes = [2]
scenarios = ["refresh"]

# Revocation observed on two nodes; the plain JWT's access token lives 2 s.
[[cells]]
schemes = ["jwt-HS256", "jwt-ES256+deny"]
topologies = ["multi"]
nodes = [2]
scenarios = ["revocation"]
access_ttl = 2
duration_s = 3

# A 1 s store cache on two nodes: the node that did not revoke honours the session about 1 s.
[[cells]]
schemes = ["session-redis"]
topologies = ["multi"]
nodes = [2]
scenarios = ["revocation"]
store_cache_s = 1
duration_s = 3

# A store one zone away: every /me waits on Redis through the 5 ms delay proxy.
[[cells]]
schemes = ["session-redis"]
topologies = ["single"]
scenarios = ["read"]
store_delay_ms = 5

# Tokens expire inside the window: /me answers 401 from then on.
[[cells]]
schemes = ["jwt-HS256"]
topologies = ["single"]
scenarios = ["read"]
access_ttl = 2
duration_s = 3

[[cells]]
schemes = ["none"]
topologies = ["single"]
scenarios = ["read"]
model = "open"
rate = 200
users = 8
"""


@pytest.fixture(scope="module")
def scenario_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run of the matrix above, shared by the tests of this file."""
    tmp_path = tmp_path_factory.mktemp("scenarios")
    matrix = tmp_path / "scenarios.toml"
    matrix.write_text(MATRIX)
    out = tmp_path / "results"
    done = run_matrix(matrix, out, {"AUTHBENCH_REVOCATION_PROBE_S": "0.5"})
    assert done.returncode == 0, done.stderr
    return (out / "latest").resolve()


def test_every_scenario_measures_what_it_promises(scenario_run: Path) -> None:
    with (scenario_run / "metrics.csv").open(newline="") as handle:
        every = list(csv.DictReader(handle))
    assert {row["status"] for row in every} == {"complete"}
    rows = {(r["scheme"], r["scenario"]): r for r in every if r["store_cache_s"] == "0"}
    for key, row in rows.items():
        assert int(row["requests"]) > 0, key
        if key != ("jwt-HS256", "read"):
            assert int(row["failures"]) == 0, key
    # Observed from the logout response: a deleted session and a denylisted JWT are refused at
    # once on every node; a plain JWT lives out its 2 s access token.
    for scheme in ("session-redis", "jwt-ES256+deny", "jwt-HS256"):
        assert rows[(scheme, "revocation")]["revocation_method"] == "observed", scheme
    assert float(rows[("session-redis", "revocation")]["revocation_delay_ms"]) < 100
    assert float(rows[("jwt-ES256+deny", "revocation")]["revocation_delay_ms"]) < 100
    assert 500 < float(rows[("jwt-HS256", "revocation")]["revocation_delay_ms"]) <= 2_100
    # A cached session: refused at once by the node that revoked it (the median of the two
    # nodes' delays), after about the cache's 1 s by the other (the longest).
    (cached,) = [r for r in every if r["store_cache_s"] == "1"]
    assert float(cached["revocation_delay_ms"]) < 100
    assert 500 < float(cached["max_ms"]) <= 1_300
    # Login SET, five GETs, logout DEL: one store command per request of the visit.
    assert abs(float(rows[("session-redis", "logout")]["redis_cmds_per_req"]) - 1.0) < 0.15
    commands = rows[("session-redis", "logout")]["redis_cmds_by_name"]
    assert {part.split("=")[0] for part in commands.split()} >= {"get", "set", "del"}
    # The open model holds its arrival rate instead of running flat out.
    assert 150 < float(rows[("none", "read")]["rps"]) < 250


def test_a_distant_store_adds_its_delay_to_every_session_read(scenario_run: Path) -> None:
    with (scenario_run / "metrics.csv").open(newline="") as handle:
        row = next(r for r in csv.DictReader(handle) if (r["scheme"], r["scenario"]) == (
            "session-redis", "read"))  # fmt: skip
    assert float(row["store_delay_ms"]) == 5
    assert 4.0 <= float(row["store_delay_measured_ms"]) <= 6.0  # what the proxy really added
    assert float(row["store_mean_us"]) >= 4000  # each /me waited on the distant store
    assert float(row["p50_ms"]) >= 5


def test_failed_requests_are_counted_apart_and_kept_out_of_latency(scenario_run: Path) -> None:
    """Bug caught: fast 401s inside the latency histogram flatter every percentile."""
    run_dir = scenario_run
    cell = next(run_dir.glob("cells/jwt-HS256__single-1__read__*"))
    with (run_dir / "metrics.csv").open(newline="") as handle:
        row = next(r for r in csv.DictReader(handle) if r["cell_id"] == cell.name)
    histograms = HistogramSet.load(cell / "hdr.json")
    requests, failures = int(row["requests"]), int(row["failures"])
    assert requests > 0 and failures > 0  # the token expired half way through the window
    assert histograms.total(LATENCY, ["/me"]) == requests
    assert histograms.total(FAILED, ["/me"]) == failures
    assert float(row["error_rate"]) == pytest.approx(failures / (requests + failures), abs=1e-5)
