"""The runner end to end: real servers, a real Redis, real Locust, on tiny matrices."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from analysis.library import library_section
from analysis.tidy import load_run
from loadtests.load.locust_process import LocustFailed
from loadtests.load.verify import LOGOUT_EVERYWHERE, Expected, VerifyFailed, verify_target
from loadtests.measure.cell_metrics import COLUMNS
from loadtests.run.cell_run import expect_results
from loadtests.run.matrix import load_matrix
from loadtests.run.run_folder import SCHEMA_VERSION
from loadtests.run.runner import _nice_floor, interleaved_groups
from loadtests.services.target_process import get_health, start_nodes
from loadtests.services.trivial_server import TrivialServer
from tests.conftest import StartTarget, run_matrix

pytestmark = pytest.mark.long_running

TINY = """
[defaults]
users = 3
warmup_s = 0.5
duration_s = {duration}
population = 20
kdf_iterations = 1000

[[cells]]
schemes = {schemes}
topologies = ["single"]
scenarios = ["read"]
{extra}
"""
MULTI = """
[[cells]]
schemes = ["none", "session-redis"]
topologies = ["multi"]
nodes = [2]
scenarios = ["read"]
"""
# The same JWT served by another library: a cell of its own, which pools with nothing else.
JOSERFC = """
[[cells]]
schemes = ["jwt-HS256"]
topologies = ["single"]
scenarios = ["read"]
library = "joserfc"
"""


def write_matrix(
    tmp_path: Path, schemes: list[str], duration: float = 1.5, extra: str = ""
) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY.format(duration=duration, schemes=json.dumps(schemes), extra=extra))
    return path


def runner(matrix_or_resume: list[str], out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "authbench", "--results", str(out), "run", *matrix_or_resume,
         "--no-micro", "--no-report"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )  # fmt: skip


def finish(process: subprocess.Popen[str], timeout: float = 240) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def read_metrics(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "metrics.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == COLUMNS
        return list(reader)


def test_tiny_matrix_runs_end_to_end_and_leaves_a_complete_run_folder(tmp_path: Path) -> None:
    matrix = write_matrix(tmp_path, ["none", "session-redis", "jwt-HS256"], extra=MULTI + JOSERFC)
    out = tmp_path / "results"
    code, stdout, stderr = finish(runner(["--matrix", str(matrix)], out))
    assert code == 0, stderr
    run_dir = (out / "latest").resolve()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["schema_version"] == SCHEMA_VERSION
    assert manifest["status"] == "complete"
    assert manifest["generator_ceiling"]["1"]["source"] == "measured"
    assert manifest["generator_ceiling"]["1"]["rps"] > 0
    assert {"git_commit", "python", "cpu_model", "cpu_count", "packages"} <= set(
        manifest["environment"]
    )
    assert len(manifest["matrix"]["cells"]) == 6
    for cell in manifest["matrix"]["cells"]:
        cell_dir = run_dir / "cells" / cell["cell_id"]
        for name in ("cell.json", "hdr.json", "window.json", "samples.csv", "locust_stats.csv"):
            assert (cell_dir / name).exists(), f"{cell['cell_id']} lacks {name}"
        # Closed cells stop at the window's end: there is no drain to report.
        assert "drain_ended" not in json.loads((cell_dir / "window.json").read_text())
    started = [
        json.loads((run_dir / "cells" / cell["cell_id"] / "cell.json").read_text())["started"]
        for cell in manifest["matrix"]["cells"]
    ]
    assert started == sorted(started)  # run in the order the manifest records
    assert manifest["order"].startswith("rotated")
    # Six windows of 1.5 s measured, within the run's wall clock (DESIGN: measured and total).
    assert manifest["measured_s"] == pytest.approx(6 * 1.5, abs=0.3)
    assert manifest["measured_s"] < manifest["total_s"]
    assert "measured windows: 9 s of" in stdout
    rows = read_metrics(run_dir)
    assert [row["status"] for row in rows] == ["complete"] * 6
    by_scheme = {(row["scheme"], row["topology"], row["library"]): row for row in rows}
    assert set(by_scheme) == {
        ("none", "single", ""), ("session-redis", "single", ""), ("jwt-HS256", "single", "pyjwt"),
        ("jwt-HS256", "single", "joserfc"), ("none", "multi", ""), ("session-redis", "multi", ""),
    }  # fmt: skip
    for row in rows:
        assert int(row["requests"]) > 0 and float(row["rps"]) > 0
        assert float(row["p50_ms"]) <= float(row["p99_ms"]) <= float(row["max_ms"])
        assert float(row["server_cpu_us_per_req"]) > 0
    session = by_scheme[("session-redis", "single", "")]
    assert float(session["redis_cmds_per_req"]) == pytest.approx(1.0, abs=0.1)  # one GET per /me
    assert float(session["redis_bytes_per_session"]) > 0
    assert int(session["credential_bytes"]) > 0
    for library in ("pyjwt", "joserfc"):
        jwt = by_scheme[("jwt-HS256", "single", library)]
        assert float(jwt["redis_cmds_per_req"]) == 0.0  # stateless: /me never touches Redis
        assert float(jwt["auth_p50_us"]) > 0
    section = library_section(load_run(run_dir))
    assert section is not None
    assert [row[:2] for row in section.tables[0].rows] == [["HS256", "pyjwt"], ["HS256", "joserfc"]]
    multi = by_scheme[("session-redis", "multi", "")]
    assert multi["nodes"] == "2"
    assert "results:" in stdout and str(run_dir.name) in stdout


def test_saturated_cells_are_flagged_and_a_violated_matrix_threshold_exits_3(
    tmp_path: Path,
) -> None:
    """One real run, reported: its matrix's threshold (no read faster than 1 req/s) fails."""
    matrix = write_matrix(tmp_path, ["none"], duration=1, extra="")
    matrix.write_text(
        "generator_ceiling_rps = 1\n" + matrix.read_text()
        + '\n[thresholds]\nfail_on = ["rps@saturation<1"]\n'
    )  # fmt: skip
    out = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, "-m", "authbench", "--results", str(out), "run", "--matrix", str(matrix),
         "--no-micro"],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr  # THRESHOLD, documented in authbench --help
    assert "VIOLATED: rps@saturation<1" in done.stdout
    run_dir = (out / "latest").resolve()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["generator_ceiling"]["1"] == {"rps": 1.0, "source": "matrix"}
    assert manifest["thresholds"] == ["rps@saturation<1"]
    assert [row["saturated"] for row in read_metrics(run_dir)] == ["True"]
    assert "SATURATED" in done.stdout and "saturated the generator" in done.stdout
    assert json.loads((run_dir / "summary.json").read_text())["thresholds_passed"] is False


def test_interrupt_keeps_finished_cells_leaves_no_process_and_resume_completes(
    tmp_path: Path,
) -> None:
    matrix = write_matrix(tmp_path, ["none", "session-memory", "jwt-HS256"], duration=3)
    matrix.write_text("generator_ceiling_rps = 100000\n" + matrix.read_text())
    out = tmp_path / "results"
    process = runner(["--matrix", str(matrix)], out)
    deadline = time.monotonic() + 120
    first_cell = None
    while time.monotonic() < deadline and first_cell is None:
        for cell_json in out.glob("*/cells/*/cell.json"):
            if json.loads(cell_json.read_text())["status"] == "complete":
                first_cell = cell_json.parent
        time.sleep(0.2)
    assert first_cell is not None, "no cell finished"
    time.sleep(1.0)  # into the second cell
    children = psutil.Process(process.pid).children(recursive=True)
    assert children, "the runner should have servers and Locust running"
    os.killpg(process.pid, signal.SIGINT)
    code, _, stderr = finish(process, timeout=60)
    assert code == 130
    assert "finish it with --resume" in stderr
    _, alive = psutil.wait_procs(children, timeout=5)
    assert not alive, f"stray processes: {[p.pid for p in alive]}"
    run_dir = first_cell.parent.parent
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "incomplete"
    assert json.loads((first_cell / "cell.json").read_text())["status"] == "complete"
    kept_hdr = (first_cell / "hdr.json").read_bytes()

    code, _, stderr = finish(runner(["--resume", str(run_dir)], out))
    assert code == 0, stderr
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["resumed"]
    assert [row["status"] for row in read_metrics(run_dir)] == ["complete"] * 3
    assert (first_cell / "hdr.json").read_bytes() == kept_hdr  # finished cells are not redone


def test_verify_gate_refuses_a_target_that_accepts_any_password() -> None:
    with (
        TrivialServer() as broken,
        pytest.raises(VerifyFailed, match="wrong password answered 200"),
    ):
        verify_target([broken.url], Expected("none", None, None, False))


def test_verify_gate_refuses_a_target_that_is_not_the_scheme_asked_for(
    start_target: StartTarget,
) -> None:
    node = start_target("--scheme", "jwt", "--alg", "HS256")
    with pytest.raises(VerifyFailed, match="expected \\('jwt', 'RS256', 'redis'\\)"):
        verify_target([node.url], Expected("jwt", "RS256", "redis", False))


def test_verify_gate_refuses_a_target_that_runs_another_jwt_library(
    start_target: StartTarget,
) -> None:
    node = start_target("--scheme", "jwt", "--alg", "HS256", "--jwt-library", "jwcrypto")
    expected = Expected("jwt", "HS256", "redis", False, library="joserfc")
    with pytest.raises(VerifyFailed, match="signs and verifies with jwcrypto, expected joserfc"):
        verify_target([node.url], expected)


def test_verify_gate_passes_a_correct_multi_node_session_target(
    start_target: StartTarget,
) -> None:
    nodes = [start_target("--scheme", "session"), start_target("--scheme", "session")]
    result = verify_target([n.url for n in nodes], Expected("session", None, "redis", False))
    assert result.checks[LOGOUT_EVERYWHERE] is True
    assert result.credential_bytes == len("Cookie: session_id=") + 43


def test_nodes_started_side_by_side_are_pinned_before_they_serve_a_request(
    tmp_path: Path,
) -> None:
    """Bug caught: a node launched unpinned (to start faster) and never pinned afterwards."""
    cpu = min(os.sched_getaffinity(0))
    args = ["--scheme", "none", "--keys-dir", str(tmp_path), "--users", "5"]
    nodes = start_nodes(args, 2, {}, {cpu})
    try:
        for node in nodes:
            threads = psutil.Process(node.pid).threads()
            assert {frozenset(os.sched_getaffinity(thread.id)) for thread in threads} == {
                frozenset({cpu})
            }
            assert get_health(node.host, node.port)[0] == 200
    finally:
        for node in nodes:
            node.stop()


def test_cells_whose_target_cannot_start_are_recorded_as_failed_and_the_run_exits_1(
    tmp_path: Path,
) -> None:
    matrix = write_matrix(tmp_path, ["session-redis"], duration=1)
    matrix.write_text("generator_ceiling_rps = 100000\n" + matrix.read_text())
    out = tmp_path / "results"
    env_process = run_matrix(matrix, out, {"REDIS_URL": "redis://127.0.0.1:1/0"}, timeout=120)
    assert env_process.returncode == 1, env_process.stderr
    assert "--resume tries them again" in env_process.stdout
    rows = read_metrics((out / "latest").resolve())
    assert rows[0]["status"] == "failed"
    assert "services did not start" in rows[0]["reason"]
    assert rows[0]["rps"] == ""


def test_repetitions_rotate_the_order_of_cell_groups(tmp_path: Path) -> None:
    """Counterbalanced: each scheme takes each place in the order once over three repetitions."""
    matrix = load_matrix(
        str(write_matrix(tmp_path, ["none", "session-redis", "jwt-HS256"], extra=""))
    )
    matrix = replace(
        matrix,
        cells=tuple(replace(c, settings=replace(c.settings, repetitions=3)) for c in matrix.cells),
        repetitions=3,
    )
    order = [next(cell.scheme for cell, _ in group) for group in interleaved_groups(matrix)]
    assert order == [
        "none", "session-redis", "jwt-HS256",
        "session-redis", "jwt-HS256", "none",
        "jwt-HS256", "none", "session-redis",
    ]  # fmt: skip


def test_auto_equal_load_rate_rounds_down_to_one_two_or_five() -> None:
    """Two runs whose capacities differ a little land on one rate, so compare can match them."""
    assert [_nice_floor(r) for r in (1300.0, 1200.0, 640.0, 2100.0, 99.0)] == [
        1000.0, 1000.0, 500.0, 2000.0, 50.0,
    ]  # fmt: skip


def test_a_window_cut_short_fails_the_cell(tmp_path: Path) -> None:
    """Locust stopping before the recorder closed its window (a late start on a busy machine)
    left a complete cell of 0 requests in 4 ms; such a cell must fail so --resume retries it."""
    for name in ("hdr.json", "locust_stats.csv"):
        (tmp_path / name).write_text("{}")
    window = {"window_start": 100.0, "window_end": 100.004}
    (tmp_path / "window.json").write_text(json.dumps(window))
    with pytest.raises(LocustFailed, match=r"lasted 0.004 s of 1 s: cut short"):
        expect_results(tmp_path, 1.0)
    (tmp_path / "window.json").write_text(json.dumps({**window, "window_end": 101.0}))
    expect_results(tmp_path, 1.0)
