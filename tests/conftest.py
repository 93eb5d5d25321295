"""Shared fixtures: a real Redis, real reference servers on free loopback ports, HTTP clients."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from filelock import FileLock

from common.credentials import BENCH_PASSWORD
from loadtests.services.private_redis import PrivateRedis, redis_url_from_env
from loadtests.services.target_process import TargetNode

TEST_USERS = 20
TEST_KDF_ITERATIONS = 1000
PASSWORD = BENCH_PASSWORD

StartTarget = Callable[..., TargetNode]


LONG_RUNNING_TIMEOUT_S = 300


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Long-running files first, each test of theirs with a longer timeout.

    Under ``pytest -n N --dist loadfile --no-loadscope-reorder`` (``make test``) a file is sent
    to one worker in collection order (xdist's default reorders by test count): a 90 s file
    collected last would start when the others are done and alone set the suite's wall time.
    Their module fixtures run whole matrices, which take longer than the default timeout while
    other files share the CPUs.
    """
    for item in items:
        if item.get_closest_marker("long_running") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(LONG_RUNNING_TIMEOUT_S))
    items.sort(key=lambda item: item.get_closest_marker("long_running") is None)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """REDIS_URL when given, else a private redis-server for the whole test session."""
    given = redis_url_from_env()
    if given:
        yield given
        return
    with PrivateRedis() as server:
        yield server.url


@pytest.fixture(scope="session")
def scipy_stats() -> ModuleType:
    """scipy.stats, the independent reference the statistics are checked against. Imported by
    the worker that runs such a test only: the import costs about 1.2 s of CPU in every process
    that collects the test files."""
    from scipy import stats

    return stats


@pytest.fixture()
def private_redis() -> Iterator[PrivateRedis]:
    """A Redis of this test's own, which the test may stop and restart."""
    with PrivateRedis() as server:
        yield server


def launch(
    args: list[str], redis_url: str, keys_dir: Path, require_healthy: bool = True
) -> TargetNode:
    """Start one reference server with test-sized users and KDF cost."""
    sizing = ["--users", str(TEST_USERS), "--kdf-iterations", str(TEST_KDF_ITERATIONS)]
    keys_dir.mkdir(parents=True, exist_ok=True)
    node = TargetNode([*args, "--keys-dir", str(keys_dir), *sizing], env={"REDIS_URL": redis_url})
    node.start(require_healthy=require_healthy)
    return node


@pytest.fixture()
def start_target(redis_url: str, tmp_path: Path) -> Iterator[StartTarget]:
    """Factory: start servers for this test (shared keys folder by default); all stop after it."""
    nodes: list[TargetNode] = []

    def start(
        *args: str,
        redis: str | None = None,
        keys_dir: Path | None = None,
        require_healthy: bool = True,
    ) -> TargetNode:
        node = launch(
            list(args), redis or redis_url, keys_dir or tmp_path / "keys", require_healthy
        )
        nodes.append(node)
        return node

    yield start
    for node in nodes:
        node.stop()


FIXTURE_RUN = Path(__file__).parent / "data" / "run-fixture"


@dataclass(frozen=True)
class ReportedRun:
    """A copy of the checked-in fixture run with its report, built once by ``authbench report``."""

    run_dir: Path
    command: subprocess.CompletedProcess[str]


@pytest.fixture(scope="session")
def fixture_report(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> ReportedRun:
    """The fixture's report, built once for every test that only reads it (a build takes about
    11 s of CPU here), by the first xdist worker that asks and read by the others; a test that
    changes the run or asks for another report copies the fixture."""
    shared = worker_id != "master"  # xdist's workers share their base folder's parent
    root = tmp_path_factory.getbasetemp().parent if shared else tmp_path_factory.mktemp("report")
    run_dir, record = root / "fixture-report" / "run", root / "fixture-report" / "command.json"
    with FileLock(root / "fixture-report.lock"):
        if not record.exists():
            shutil.copytree(FIXTURE_RUN, run_dir)
            done = subprocess.run(
                [sys.executable, "-m", "authbench", "report", str(run_dir)],
                capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            record.write_text(json.dumps([done.args, done.returncode, done.stdout, done.stderr]))
    args, returncode, stdout, stderr = json.loads(record.read_text())
    return ReportedRun(run_dir, subprocess.CompletedProcess(args, returncode, stdout, stderr))


def run_matrix(
    matrix: Path, out: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``authbench run`` on a matrix file, without the micro benchmark."""
    return subprocess.run(
        [sys.executable, "-m", "authbench", "--results", str(out), "run", "--matrix", str(matrix),
         "--no-micro", "--no-report"],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
    )  # fmt: skip


def build_report(run_dir: Path) -> str:
    """``authbench report`` on a run folder (which must succeed); its report.md."""
    done = subprocess.run(
        [sys.executable, "-m", "authbench", "report", str(run_dir)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return (run_dir / "report.md").read_text()


def client_for(node: TargetNode) -> httpx.Client:
    """A fresh HTTP client (own cookie jar) for a node."""
    return httpx.Client(base_url=node.url, timeout=10.0)


def login(client: httpx.Client, user: str = "user1") -> httpx.Response:
    """POST /login with the bench password."""
    return client.post("/login", json={"username": user, "password": PASSWORD})
