"""The split topology through the real runner: an issuer, resource nodes, call chains, a key
rotation, a kid flood and the issuer crashed or frozen under Locust load, then the report's
microservices and resilience sections."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from loadtests.load.verify import NO_KEY_ON_RESOURCES, ROLES_SPLIT
from tests.conftest import build_report, run_matrix

# The run's per-request figures come from service counters read at the window's edges: with
# other test files sharing the CPUs an edge read lands inside the window (seen in make test) and
# the issuer's calls per request drift from 2 to 1.7. The file runs in the quiet phase.
pytestmark = [pytest.mark.long_running, pytest.mark.quiet_machine]

MATRIX = """
generator_ceiling_rps = 100000
[defaults]
users = 6
warmup_s = 0.5
duration_s = 2.5
population = 50
kdf_iterations = 1000
model = "open"
rate = 60

[[cells]]
schemes = ["session-redis", "jwt-ES256", "jwt-ES256+introspect", "jwt-HS256"]
topologies = ["split"]
scenarios = ["read"]
hops = 2

[[cells]]
schemes = ["jwt-ES256"]
topologies = ["split"]
scenarios = ["read"]
fault = "key-rotation"
fault_at_s = 1
jwks_cooldown_s = 0.5

[[cells]]
schemes = ["jwt-ES256"]
topologies = ["split"]
scenarios = ["read"]
fault = "kid-flood"
kid_flood_share = 0.3
jwks_cooldown_s = 0.5

# The issuer down for 1.5 s, with resource nodes trusting their JWKS 1 s only: their refreshes
# fail during the outage (and stall while it is frozen) and must keep the keys they hold.
[[cells]]
schemes = ["jwt-ES256", "jwt-ES256+introspect"]
topologies = ["split"]
scenarios = ["read"]
fault = "issuer-outage"
fault_at_s = 1
fault_s = 1.5
duration_s = 4
jwks_ttl_s = 1

[[cells]]
schemes = ["jwt-ES256"]
topologies = ["split"]
scenarios = ["read"]
fault = "issuer-stall"
fault_at_s = 1
fault_s = 1.5
duration_s = 4
jwks_ttl_s = 1
"""


@pytest.fixture(scope="module")
def split_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp_path = tmp_path_factory.mktemp("split")
    matrix = tmp_path / "split.toml"
    matrix.write_text(MATRIX)
    done = run_matrix(matrix, tmp_path / "results", {"REDIS_URL": ""})
    assert done.returncode == 0, done.stderr
    return (tmp_path / "results" / "latest").resolve()


def rows(run_dir: Path) -> dict[tuple[str, str], dict[str, str]]:
    with (run_dir / "metrics.csv").open(newline="") as handle:
        return {(r["scheme"], r["fault"]): r for r in csv.DictReader(handle)}


def test_every_hop_authenticates_and_only_introspection_asks_the_issuer(split_run: Path) -> None:
    found = rows(split_run)
    for scheme in ("session-redis", "jwt-ES256", "jwt-ES256+introspect", "jwt-HS256"):
        row = found[(scheme, "")]
        assert row["status"] == "complete" and int(row["failures"]) == 0, scheme
        assert row["hops"] == "2"
        assert float(row["resource_cpu_us_per_req"]) > 0
    # Only introspection makes the issuer work for a read; with the counters read at the
    # window's edges, nothing else wakes it inside the window.
    introspected = found[("jwt-ES256+introspect", "")]
    assert float(introspected["issuer_cpu_us_per_req"]) > 0
    local = found[("jwt-ES256", "")]
    assert float(local["issuer_cpu_us_per_req"]) < 0.1 * float(local["resource_cpu_us_per_req"])
    assert float(found[("jwt-ES256", "")]["issuer_calls_per_req"]) == 0
    assert float(found[("jwt-ES256", "")]["redis_cmds_per_req"]) < 0.05
    # One introspection per service in the chain: 2, not 1 or 3. The issuer's counter is read at
    # the window's edges and the requests are counted by the recorder, so requests in flight at
    # an edge move the ratio by a few percent on a slow day (1.86 seen here): ±0.25 still tells
    # 2 from 1 and 3.
    assert float(found[("jwt-ES256+introspect", "")]["issuer_calls_per_req"]) == pytest.approx(
        2, abs=0.25
    )
    assert float(found[("session-redis", "")]["redis_cmds_per_req"]) == pytest.approx(2, abs=0.15)
    assert found[("jwt-HS256", "")]["can_mint"] == "3"  # the issuer and both resource nodes
    assert found[("jwt-ES256", "")]["can_mint"] == "1"
    cell = split_run / "cells" / found[("jwt-ES256", "")]["cell_id"]
    checks = json.loads((cell / "cell.json").read_text())["verify"]["checks"]
    assert checks[ROLES_SPLIT] is True and checks[NO_KEY_ON_RESOURCES] is True


def test_a_key_rotation_under_load_is_learnt_without_false_rejects(split_run: Path) -> None:
    row = rows(split_run)[("jwt-ES256", "key-rotation")]
    assert row["status"] == "complete"
    assert int(row["spurious_401"]) == 0 and int(row["failures"]) == 0
    assert int(row["rotation_jwks_fetches"]) == 2  # one per resource node
    assert 0 < float(row["rotation_first_accept_ms"]) < 2000


def test_a_kid_flood_stays_within_one_fetch_per_cooldown(split_run: Path) -> None:
    row = rows(split_run)[("jwt-ES256", "kid-flood")]
    assert row["status"] == "complete" and int(row["failures"]) == 0  # valid reads unharmed
    assert int(row["unknown_kid_requests"]) > 20
    assert 1 <= int(row["jwks_fetches"]) <= int(row["jwks_fetch_bound"])


def test_local_verification_outlives_the_issuer_and_introspection_does_not(
    split_run: Path,
) -> None:
    """Bugs caught: a JWKS refresh that fails wiping the keys held (pyjwt #1162), and a stale
    JWKS holding every request while a frozen issuer does not answer the refresh."""
    found = rows(split_run)
    for fault in ("issuer-outage", "issuer-stall"):
        local = found[("jwt-ES256", fault)]
        assert local["status"] == "complete", fault
        assert float(local["ok_share_during_fault"]) == 1.0, fault
        assert int(local["failures"]) == 0 and int(local["spurious_401"]) == 0, fault
        assert int(local["jwks_fetches"]) >= 1, fault  # refreshes were due during the fault
        assert float(local["p99_ms"]) < 500, fault  # none waited on the frozen issuer
    asking = found[("jwt-ES256+introspect", "issuer-outage")]
    assert asking["status"] == "complete"
    assert float(asking["ok_share_during_fault"]) < 0.5
    assert int(asking["fault_failures"]) > 0 and int(asking["spurious_401"]) == 0
    assert asking["issuer_calls_per_req"] == ""  # the restarted issuer's counters began anew


def test_the_report_carries_the_microservices_section(split_run: Path) -> None:
    report = build_report(split_run)
    assert "## Microservices: issuer, resource services, call chains" in report
    assert "Services trust a verified JWT without asking the issuer: supported" in report
    assert (split_run / "figures" / "timeline-key-rotation.png").exists()
    assert "| jwt-ES256+introspect | issuer down 1.5 s |" in report


def test_service_counters_are_read_at_the_windows_edges_only(split_run: Path) -> None:
    """GET /counters is load on the measured services: never polled inside the window."""
    row = rows(split_run)[("jwt-ES256+introspect", "")]
    cell = split_run / "cells" / row["cell_id"]
    window = json.loads((cell / "window.json").read_text())
    start, end = window["window_start"], window["window_end"]
    with (cell / "samples.csv").open(newline="") as handle:
        reads = sorted(
            float(r["t"])
            for r in csv.DictReader(handle)
            if r["source"] == "issuer" and r["metric"] == "introspections_answered"
        )
    inside = [t for t in reads if start + 0.1 < t < end - 0.1]
    assert inside == [], "counters polled inside the window"
    # The sampler's start and stop, and one read at each of the window's edges, within 0.3 s of
    # it (this file runs in make test's quiet phase: with other files on the CPUs, more than
    # 0.3 s late was seen).
    assert len(reads) == 4
    assert sum(t <= start + 0.1 for t in reads) == sum(t >= end - 0.1 for t in reads) == 2
    assert any(abs(t - start) < 0.3 for t in reads) and any(abs(t - end) < 0.3 for t in reads)
