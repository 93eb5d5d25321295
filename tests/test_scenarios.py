"""Every scenario, through the real runner and Locust, against the scheme it is meant for."""

from __future__ import annotations

import csv
from pathlib import Path

from tests.conftest import run_matrix

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
scenarios = ["refresh", "revocation"]

[[cells]]
schemes = ["none"]
topologies = ["single"]
scenarios = ["read"]
model = "open"
rate = 200
users = 8
"""


def test_every_scenario_measures_what_it_promises(tmp_path: Path) -> None:
    matrix = tmp_path / "scenarios.toml"
    matrix.write_text(MATRIX)
    out = tmp_path / "results"
    done = run_matrix(matrix, out, {"AUTHBENCH_REVOCATION_PROBE_S": "0.5"})
    assert done.returncode == 0, done.stderr
    with ((out / "latest") / "metrics.csv").open(newline="") as handle:
        rows = {(r["scheme"], r["scenario"]): r for r in csv.DictReader(handle)}
    assert {row["status"] for row in rows.values()} == {"complete"}
    for key, row in rows.items():
        assert int(row["requests"]) > 0, key
        assert int(row["failures"]) == 0, key
    # A deleted session is refused at once; a plain JWT lives out its 30 s lifetime.
    assert float(rows[("session-redis", "revocation")]["p50_ms"]) < 500
    assert 25_000 < float(rows[("jwt-HS256", "revocation")]["p50_ms"]) <= 30_100
    # Login SET, five GETs, logout DEL: one store command per request of the visit.
    assert abs(float(rows[("session-redis", "logout")]["redis_cmds_per_req"]) - 1.0) < 0.15
    commands = rows[("session-redis", "logout")]["redis_cmds_by_name"]
    assert {part.split("=")[0] for part in commands.split()} >= {"get", "set", "del"}
    # The open model holds its arrival rate instead of running flat out.
    assert 150 < float(rows[("none", "read")]["rps"]) < 250
