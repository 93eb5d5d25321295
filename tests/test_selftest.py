"""The self-test's planted cost: a known CPU cost in the auth step, only where a self-test asks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from loadtests.run.matrix import MatrixError, load_matrix, with_planted_cost
from tests.conftest import StartTarget, client_for


def _auth_ms(header: str) -> float:
    return float(re.search(r"auth;dur=([0-9.]+)", header).group(1))


def test_planted_cost_is_burnt_in_every_auth_step_and_reported(
    start_target: StartTarget,
) -> None:
    plain = start_target("--scheme", "none")
    planted = start_target("--scheme", "none", "--planted-cost-us", "3000")
    with client_for(plain) as a, client_for(planted) as b:
        assert "planted_cost_us" not in a.get("/healthz").json()
        assert b.get("/healthz").json()["planted_cost_us"] == 3000
        assert all(_auth_ms(b.get("/me").headers["server-timing"]) >= 3.0 for _ in range(5))
        assert all(_auth_ms(a.get("/me").headers["server-timing"]) < 3.0 for _ in range(5))


def test_a_planted_cost_is_refused_outside_a_self_test_matrix(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text(
        '[[cells]]\nschemes = ["none"]\ntopologies = ["single"]\nscenarios = ["read"]\n'
        "planted_cost_us = 40\n"
    )
    with pytest.raises(MatrixError, match="planted_cost_us: only a self-test matrix"):
        load_matrix(str(path))


def test_plant_adds_an_interleaved_arm_and_only_to_a_self_test_matrix() -> None:
    matrix = load_matrix("selftest")
    planted = with_planted_cost(matrix, "jwt-HS256", 60)
    arm = [c for c in planted.cells if c.settings.planted_cost_us]
    assert [c.scheme for c in arm] == ["jwt-HS256"]
    assert len(planted.cells) == len(matrix.cells) + 1
    assert "-planted60us" in arm[0].cell_id(1)
    assert arm[0].server_args()[-2:] == ["--planted-cost-us", "60"]
    with pytest.raises(MatrixError, match="only a self-test matrix"):
        with_planted_cost(load_matrix("quick"), "jwt-HS256", 60)
    with pytest.raises(MatrixError, match="not in the matrix"):
        with_planted_cost(matrix, "jwt-PS256", 60)
