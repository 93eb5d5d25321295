"""Decide until decided: extra repetitions go to the undecided primary comparisons' cells only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.long_running

MATRIX = """
primary = ["sessions-latency"]
generator_ceiling_rps = 100000  # not measured (5 s): this test is about which cells repeat

[defaults]
users = 4
warmup_s = 0.3
duration_s = 1.0
repetitions = 2
population = 20
kdf_iterations = 1000

[[cells]]
schemes = ["session-redis", "jwt-HS256"]
topologies = ["single"]
scenarios = ["read"]

[[cells]]
schemes = ["session-redis", "jwt-HS256"]
topologies = ["single"]
scenarios = ["read"]
model = "open"
equal_load = true
users = 8
"""


def test_until_decided_repeats_only_the_undecided_cells_and_records_its_looks(
    tmp_path: Path,
) -> None:
    matrix = tmp_path / "adaptive.toml"
    matrix.write_text(MATRIX)
    out = tmp_path / "results"
    adaptive = subprocess.run(  # what `make bench UNTIL=decided` runs
        [sys.executable, "-m", "authbench", "--results", str(out), "run", "--matrix", str(matrix),
         "--no-micro", "--no-report", "--until", "decided", "--budget-s", "12"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert adaptive.returncode in (0, 1), adaptive.stderr  # 1: still undecided at the end
    run_dir = (out / "latest").resolve()
    assert "look 1 of 3" in adaptive.stdout
    assert "sessions-latency: session-redis p50 vs jwt-HS256:" in adaptive.stdout
    manifest = json.loads((run_dir / "manifest.json").read_text())
    record = manifest["until_decided"]
    assert record["planned_looks"] == 3 and manifest["status"] == "complete"
    assert len(record["looks"]) >= 1
    extra = sorted(p.name for p in (run_dir / "cells").glob("*__r3"))
    if "adding" in adaptive.stdout:  # undecided after look 1: the equal-load cells got more
        assert extra and all("open-eq" in name for name in extra)
        assert {name.split("__")[0] for name in extra} == {"session-redis", "jwt-HS256"}
        listed = {cell["cell_id"] for cell in manifest["matrix"]["cells"]}
        assert set(extra) <= listed
    else:
        assert not extra
    again = subprocess.run(
        [sys.executable, "-m", "authbench", "--results", str(out), "until-decided", "latest"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert again.returncode == 2 and "already decided adaptively once" in again.stderr
