"""docker-compose, nginx and distributed Locust: validated and exercised without a Docker engine."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from loadtests.load.locust_process import LOCUSTFILE
from loadtests.load.verify import LOGOUT_EVERYWHERE, THROUGH_BALANCER
from loadtests.services.nginx_balancer import check_config, render_config
from loadtests.services.ports import free_port
from loadtests.services.target_process import TargetNode, get_health
from targets.settings import environment_variables
from tests.conftest import StartTarget, build_report, run_matrix
from tests.hdr_counts import answered_in_merge, answered_in_parts

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
IN_CI = bool(os.environ.get("CI"))
LOCUST_SOURCES = [
    ROOT / "loadtests" / "load" / "recorder.py",
    *(ROOT / "loadtests" / "load" / "scenarios").glob("*.py"),
]


def needs(tool: str) -> pytest.MarkDecorator:
    """Skip where the tool is missing, except in CI, whose .ci/run installs it."""
    missing = shutil.which(tool) is None and shutil.which(tool, path="/usr/sbin") is None
    return pytest.mark.skipif(missing and not IN_CI, reason=f"{tool} is not installed")


def compose_services() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())["services"]


def locustfile_reads() -> set[str]:
    """AUTHBENCH_* names the locustfile's modules read from the environment."""
    pattern = re.compile(r"""environ(?:\.get)?[\[(]\s*["'](AUTHBENCH_[A-Z_]+)["']""")
    return {name for path in LOCUST_SOURCES for name in pattern.findall(path.read_text())}


@needs("docker-compose")
def test_compose_file_validates_with_docker_compose() -> None:
    for profile in ("sut", "loadgen"):
        done = subprocess.run(
            ["docker-compose", "-f", str(COMPOSE_FILE), "--profile", profile, "config", "-q"],
            capture_output=True, text=True, timeout=60, cwd=ROOT,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr


def test_every_variable_the_app_container_sets_is_one_the_app_reads() -> None:
    app_env = compose_services()["app"]["environment"]
    unknown = set(app_env) - set(environment_variables()) - {"REDIS_URL"}
    assert not unknown, f"the app does not read {sorted(unknown)}"


def test_every_variable_the_locust_containers_set_is_one_the_locustfile_reads() -> None:
    reads = locustfile_reads()
    assert {"AUTHBENCH_NODES", "AUTHBENCH_WARMUP_S", "AUTHBENCH_HDR_OUT"} <= reads
    for service in ("locust-master", "locust-worker"):
        unknown = set(compose_services()[service]["environment"]) - reads
        assert not unknown, f"{service}: the locustfile does not read {sorted(unknown)}"


def test_compose_nginx_conf_is_the_rendered_one() -> None:
    assert (ROOT / "deploy" / "nginx.conf").read_text() == render_config(["app:8000"], "80")


@needs("nginx")
def test_nginx_configuration_passes_nginx_t(tmp_path: Path) -> None:
    config = tmp_path / "nginx.conf"
    config.write_text(render_config(["127.0.0.1:18001", "127.0.0.1:18002"], "127.0.0.1:18000",
                                    str(tmp_path)))  # fmt: skip
    done = check_config(config)
    assert done.returncode == 0, done.stderr
    assert "syntax is ok" in done.stderr


def test_two_workers_merge_exactly_and_collect_into_a_run_folder(
    start_target: StartTarget, tmp_path: Path
) -> None:
    node = start_target("--scheme", "jwt", "--alg", "HS256")
    env = {
        **os.environ,
        "AUTHBENCH_USERS": "20",
        "AUTHBENCH_WARMUP_S": "0.5",
        "AUTHBENCH_DURATION_S": "2",
        "AUTHBENCH_HDR_OUT": str(tmp_path / "hdr.json"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--processes", "2",
         "--host", node.url, "--users", "4", "--spawn-rate", "4", "--run-time", "4s",
         "--only-summary", "ReadUser"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    # What compose-bench does with such a folder: merge the parts into a run folder that the
    # analysis reads like any other.
    results = tmp_path / "results"
    collected = subprocess.run(
        [sys.executable, "-m", "loadtests.compose_stack", "--results", str(results), "collect",
         str(tmp_path)],
        capture_output=True, text=True, timeout=60, env={**os.environ, "SCHEME": "jwt",
                                                         "ALG": "HS256", "LOCUST_USERS": "4"},
    )  # fmt: skip
    assert collected.returncode == 0, collected.stderr
    generators = json.loads((tmp_path / "generators.json").read_text())
    per_worker = {name: part["requests"] for name, part in generators["processes"].items()}
    assert len(per_worker) == 2 and all(count > 0 for count in per_worker.values())
    # Counted again from the workers' raw part files, apart from the merge's own bookkeeping:
    # a part dropped or merged twice (the 2x counts of issue 16) cannot agree.
    raw = answered_in_parts(tmp_path)
    assert per_worker == raw
    assert generators["merged_requests"] == answered_in_merge(tmp_path) == sum(raw.values())
    # Each worker's own Locust count since the window opened matches what it recorded.
    for part in generators["processes"].values():
        assert part["locust_since_open"] == part["seen_since_open"]
    run_dir = (results / "latest").resolve()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert (manifest["topology"], manifest["workers"]) == ("compose", 2)
    with (run_dir / "metrics.csv").open() as handle:
        row = next(csv.DictReader(handle))
    assert (row["scheme"], row["status"]) == ("jwt-HS256", "complete")
    assert int(row["requests"]) == generators["merged_requests"]
    build_report(run_dir)
    assert (run_dir / "report.html").exists()


@needs("nginx")
def test_multi_node_cell_behind_real_nginx_passes_the_gate_and_completes(tmp_path: Path) -> None:
    matrix = tmp_path / "nginx.toml"
    matrix.write_text(
        "generator_ceiling_rps = 100000\n[defaults]\nusers = 3\nwarmup_s = 0.5\nduration_s = 1.5\n"
        "population = 20\nkdf_iterations = 1000\n[[cells]]\nschemes = ['session-redis']\n"
        "topologies = ['multi']\nnodes = [2]\nscenarios = ['read']\nbalancer = 'nginx'\n"
    )
    out = tmp_path / "results"
    done = run_matrix(matrix, out, timeout=180)
    assert done.returncode == 0, done.stderr
    run_dir = (out / "latest").resolve()
    cell = json.loads(next((run_dir / "cells").glob("*/cell.json")).read_text())
    assert cell["status"] == "complete", cell.get("reason")
    assert cell["load_balancing"].startswith("nginx")
    assert cell["verify"]["checks"][LOGOUT_EVERYWHERE] is True
    assert cell["verify"]["checks"][THROUGH_BALANCER] is True
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["matrix"]["cells"][0]["balancer"] == "nginx"


def test_the_app_starts_from_the_compose_environment_alone(redis_url: str, tmp_path: Path) -> None:
    """The compose defaults (empty optional values included) configure a working server."""
    default = re.compile(r"\$\{[A-Z_]+:-([^}]*)\}")
    env = {name: default.sub(r"\1", str(value))
           for name, value in compose_services()["app"]["environment"].items()}  # fmt: skip
    port = free_port()
    (tmp_path / "keys").mkdir()
    env.update(
        AUTHBENCH_HOST="127.0.0.1",
        AUTHBENCH_PORT=str(port),
        AUTHBENCH_KEYS_DIR=str(tmp_path / "keys"),
        AUTHBENCH_USERS="20",
        AUTHBENCH_KDF_ITERATIONS="1000",
        REDIS_URL=redis_url,
    )
    node = TargetNode([], port=port, env=env)
    node.start()
    try:
        status, health = get_health("127.0.0.1", port)
        assert status == 200
        assert (health["scheme"], health["alg"], health["denylist"]) == ("jwt", "RS256", False)
    finally:
        node.stop()
