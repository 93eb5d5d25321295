"""Faults and bad credentials under load, through the real runner, servers, Redis and Locust.

Two short runs (module fixtures): a Redis crash with and without an append-only file, whose
recovery is judged on latency and so needs the machine to itself (``make test``'s quiet phase);
a node killed under sticky memory sessions and under a shared Redis, and the validation
scenario. Apart from them: a frozen Redis is resumed when the run is interrupted mid-fault, and the
validation scenario catches a server that does not check signatures.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from analysis.tidy import load_run
from loadtests.measure.fault_metrics import fault_figures
from loadtests.services.ports import free_port, wait_for_port
from loadtests.services.private_redis import PrivateRedis
from loadtests.services.processes import stop
from tests.conftest import build_report, run_matrix

pytestmark = pytest.mark.long_running

DEFAULTS = """
generator_ceiling_rps = 100000
[defaults]
users = 8
warmup_s = 0.5
duration_s = 4
population = 50
kdf_iterations = 1000
model = "open"
rate = 150
"""
OUTAGE_MATRIX = f"""{DEFAULTS}
[[cells]]
schemes = ["session-redis", "jwt-HS256"]
topologies = ["single"]
scenarios = ["read"]
fault = "redis-outage"
fault_at_s = 2  # 300 answers before it: a p99 to judge recovery by, not one noisy second's
fault_s = 1.5
duration_s = 7  # 3.5 s after the fault: room for a slow restore to show its recovery

[[cells]]
schemes = ["session-redis"]
topologies = ["single"]
scenarios = ["read"]
fault = "redis-outage"
fault_at_s = 2  # 300 answers before it: a p99 to judge recovery by, not one noisy second's
fault_s = 1.5
duration_s = 7  # 3.5 s after the fault: room for a slow restore to show its recovery
persistence = "aof"
"""
MATRIX = f"""{DEFAULTS}
[[cells]]
schemes = ["session-memory", "session-redis"]
topologies = ["multi"]
nodes = [2]
scenarios = ["read"]
fault = "node-kill"
fault_at_s = 1

[[cells]]
schemes = ["session-redis", "jwt-ES256+deny"]
topologies = ["single"]
scenarios = ["validation"]
access_ttl = 2
warmup_s = 3.6
duration_s = 3
"""
NO_REDIS_URL = {"REDIS_URL": ""}  # faults stop the run's own Redis, never one we were given
# The run's recovery figures judge latency after the fault against latency before it: other
# tests' processes sharing the CPUs disturb a stretch as a slow restore would.
quiet_machine = pytest.mark.quiet_machine


def run_faults(tmp_path_factory: pytest.TempPathFactory, matrix_text: str) -> Path:
    tmp_path = tmp_path_factory.mktemp("faults")
    matrix = tmp_path / "faults.toml"
    matrix.write_text(matrix_text)
    done = run_matrix(matrix, tmp_path / "results", NO_REDIS_URL)
    assert done.returncode == 0, done.stderr
    return (tmp_path / "results" / "latest").resolve()


@pytest.fixture(scope="module")
def outage_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Redis crashed under load, restarted without and with an append-only file."""
    return run_faults(tmp_path_factory, OUTAGE_MATRIX)


@pytest.fixture(scope="module")
def fault_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A node killed under load, and the validation scenario."""
    return run_faults(tmp_path_factory, MATRIX)


def rows(run_dir: Path) -> dict[tuple[str, str, str, str], dict[str, str]]:
    with (run_dir / "metrics.csv").open(newline="") as handle:
        return {
            (r["scheme"], r["scenario"], r["fault"], r["persistence"]): r
            for r in csv.DictReader(handle)
        }


@quiet_machine
def test_a_redis_crash_gives_503_never_401_and_a_restart_without_aof_logs_everyone_out(
    outage_run: Path,
) -> None:
    found = rows(outage_run)
    plain = found[("session-redis", "read", "redis-outage", "none")]
    persisted = found[("session-redis", "read", "redis-outage", "aof")]
    for row in (plain, persisted):
        assert row["status"] == "complete"
        assert int(row["spurious_401"]) == 0  # 503 while Redis is down, never "logged out"
        assert float(row["ok_share_during_fault"]) < 0.2
        assert int(row["fault_failures"]) > 0
        assert float(row["recovery_s"]) <= 2.0
    # Back empty: every user is refused once and logs in again. From its AOF: nobody is.
    assert int(plain["sessions_lost"]) == 8
    assert int(persisted["sessions_lost"]) == 0
    jwt = found[("jwt-HS256", "read", "redis-outage", "none")]
    assert float(jwt["ok_share_during_fault"]) == 1.0 and int(jwt["fault_failures"]) == 0
    cell = outage_run / "cells" / plain["cell_id"]
    fault = json.loads((cell / "fault.json").read_text())
    assert fault["started"] < fault["restoring"] < fault["ended"]
    timeline = json.loads((cell / "timeline.json").read_text())
    statuses = {status for _bucket, _node, status, _count in timeline["counts"]}
    assert {200, 401, 503} <= statuses


def test_a_killed_node_loses_its_memory_sessions_but_not_the_shared_ones(fault_run: Path) -> None:
    found = rows(fault_run)
    memory = found[("session-memory", "read", "node-kill", "none")]
    shared = found[("session-redis", "read", "node-kill", "none")]
    for row in (memory, shared):
        assert row["status"] == "complete"
        assert 0 < int(row["fault_failures"]) <= 8  # one refused connection per user at most
    assert 0 < int(memory["sessions_lost"]) < 8  # the sticky users of the dead node
    assert int(shared["sessions_lost"]) == 0 and int(shared["spurious_401"]) == 0


def test_validation_under_load_classifies_every_kind_correctly(fault_run: Path) -> None:
    found = rows(fault_run)
    for scheme, kinds in (
        ("session-redis", {"valid", "held", "expired", "tampered", "unknown_session", "revoked"}),
        ("jwt-ES256+deny", {"valid", "held", "expired", "tampered", "bad_signature", "alg_none",
                            "refresh_as_access", "wrong_iss", "wrong_aud", "revoked"}),
    ):  # fmt: skip
        row = found[(scheme, "validation", "", "none")]
        assert (row["false_accepts"], row["false_rejects"], row["validation_errors"]) == (
            "0",
            "0",
            "0",
        ), scheme
        tallies = json.loads((fault_run / "cells" / row["cell_id"] / "tallies.json").read_text())
        assert {key.split("|")[0] for key in tallies} == kinds, scheme
        assert all(key.endswith("|correct") and count > 0 for key, count in tallies.items())


@quiet_machine
def test_the_report_carries_the_resilience_section(outage_run: Path) -> None:
    report = build_report(outage_run)
    assert "## Resilience: faults, store distance, bad credentials" in report
    assert "when Redis is down" in report
    assert "8 of 8 users logged out after the restart (no persistence)" in report
    for figure in ("timeline-redis-outage", "timeline-redis-outage-aof"):
        assert (outage_run / "figures" / f"{figure}.png").exists()
    assert load_run(outage_run).cells["fault"].tolist().count("redis-outage") == 3


def test_the_report_draws_the_node_kill_timeline(fault_run: Path) -> None:
    report = build_report(fault_run)
    assert "## Resilience: faults, store distance, bad credentials" in report
    assert (fault_run / "figures" / "timeline-node-kill.png").exists()


def test_a_frozen_redis_is_resumed_when_the_run_is_interrupted(tmp_path: Path) -> None:
    matrix = tmp_path / "stall.toml"
    matrix.write_text(
        "generator_ceiling_rps = 100000\n[defaults]\nusers = 4\nwarmup_s = 0.5\n"
        "duration_s = 30\nkdf_iterations = 1000\n[[cells]]\nschemes = ['session-redis']\n"
        "topologies = ['single']\nscenarios = ['read']\nfault = 'redis-stall'\n"
        "fault_at_s = 0.5\nfault_s = 25\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "authbench", "--results", str(tmp_path / "results"), "run",
         "--matrix", str(matrix), "--no-micro", "--no-report"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, **NO_REDIS_URL},
    )  # fmt: skip
    frozen = None
    deadline = time.monotonic() + 90
    while frozen is None and time.monotonic() < deadline:
        for child in psutil.Process(process.pid).children(recursive=True):
            try:
                if "redis-server" in child.name() and child.status() == psutil.STATUS_STOPPED:
                    frozen = child
            except psutil.NoSuchProcess:
                continue
        time.sleep(0.1)
    assert frozen is not None, "the stall never froze the run's Redis"
    children = psutil.Process(process.pid).children(recursive=True)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    _, alive = psutil.wait_procs(children, timeout=5)
    assert not alive, f"left behind: {[(p.pid, p.name()) for p in alive]}"
    cell = next((tmp_path / "results").glob("*/cells/*"))
    assert json.loads((cell / "cell.json").read_text())["status"] == "interrupted"
    fault = json.loads((cell / "fault.json").read_text())
    assert fault["fault"] == "redis-stall" and fault["ended"] >= fault["started"]


def test_validation_catches_a_server_that_does_not_check_signatures(
    tmp_path: Path, private_redis: PrivateRedis
) -> None:
    port = free_port()
    (tmp_path / "keys").mkdir()
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.broken_target", "--scheme", "jwt", "--alg", "HS256",
         "--users", "20", "--kdf-iterations", "1000", "--keys-dir", str(tmp_path / "keys"),
         "--port", str(port)],
        env={**os.environ, "REDIS_URL": private_redis.url}, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert wait_for_port("127.0.0.1", port, 20), "the broken target did not start"
        locust = subprocess.run(
            [sys.executable, "-m", "locust", "-f", "loadtests/locustfile.py", "--headless",
             "--host", f"http://127.0.0.1:{port}", "-u", "4", "-r", "4", "-t", "3s",
             "--loglevel", "ERROR", "--exit-code-on-error", "0", "ValidationUser"],
            env={**os.environ, "AUTHBENCH_USERS": "20", "AUTHBENCH_WARMUP_S": "0.5",
                 "AUTHBENCH_HDR_OUT": str(tmp_path / "hdr.json"),
                 "AUTHBENCH_KEYS_DIR": str(tmp_path / "keys")},
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert locust.returncode == 0, locust.stderr
    finally:
        stop(server)
    tallies = json.loads((tmp_path / "tallies.json").read_text())
    for kind in ("tampered", "bad_signature", "wrong_iss", "wrong_aud"):
        assert tallies.get(f"{kind}|false_accept", 0) > 0, kind
    assert tallies.get("refresh_as_access|correct", 0) > 0  # the typ check still holds
    assert tallies.get("valid|correct", 0) > 0


def write_fault_cell(
    folder: Path,
    fault: dict[str, object],
    refused_at: list[float],
    users: list[str] | None = None,
    slow: dict[int, float] | None = None,
) -> Path:
    """A cell folder with only the raw files the fault figures are computed from: 50 buckets of
    100 ms with 10 answers of 1 ms each (``slow``: one answer of a bucket that much slower)."""
    folder.mkdir()
    (folder / "fault.json").write_text(json.dumps(fault))
    counts = [[b, "n", 200, 10] for b in range(50)] + [[35, "n", 401, len(refused_at)]]
    latencies = {str(b): [1.0] * 9 + [(slow or {}).get(b, 1.0)] for b in range(50)}
    who = users or [f"user{index}" for index in range(len(refused_at))]
    (folder / "timeline.json").write_text(json.dumps({
        "window_start": 100.0, "bucket_s": 0.1, "counts": counts,
        "ok_latency_ms": latencies, "refused": [list(r) for r in zip(refused_at, who, strict=True)],
    }))  # fmt: skip
    return folder


def test_sessions_lost_counts_users_not_refusals(tmp_path: Path) -> None:
    """A user refused, logged in again and refused again lost one session, not two."""
    outage = write_fault_cell(
        tmp_path / "outage",
        {"fault": "redis-outage", "started": 101.0, "restoring": 103.0, "ended": 103.1},
        [103.5, 103.6, 103.7],
        users=["a", "b", "a"],
    )
    assert fault_figures(outage)["sessions_lost"] == 2


def test_recovery_is_judged_on_stretches_of_a_hundred_requests_not_on_one_outlier(
    tmp_path: Path,
) -> None:
    """One slow answer among 10 is a 100 ms bucket's p99 (its maximum); among 100 it is not."""
    fault = {"fault": "redis-stall", "started": 101.0, "restoring": 102.0, "ended": 102.0}
    outlier = write_fault_cell(tmp_path / "outlier", fault, [], slow={40: 80.0})
    assert fault_figures(outlier)["recovery_s"] == 0.0
    # One slow answer in each of ten buckets: a tenth of the stretch, so its p99 is slow.
    sustained = write_fault_cell(
        tmp_path / "sustained", fault, [], slow={b: 80.0 for b in range(20, 30)}
    )
    assert fault_figures(sustained)["recovery_s"] == pytest.approx(1.0)


def test_noise_the_baseline_also_had_is_no_disturbance_at_the_windows_end(
    tmp_path: Path,
) -> None:
    """Bug caught: the last stretch's p99 (nearly its maximum) was held against the pooled p99
    of all answers before the fault, so two hiccups the baseline had too left the window
    "still disturbed" and recovery empty (seen twice in a day on a busy machine)."""
    fault = {"fault": "redis-stall", "started": 102.0, "restoring": 102.5, "ended": 102.5}
    noisy = {2: 8.0, 5: 8.0, 43: 8.0, 47: 8.0}  # two hiccups before the fault, two at the end
    assert (
        fault_figures(write_fault_cell(tmp_path / "noisy", fault, [], slow=noisy))["recovery_s"]
        == 0.0
    )
    # The same end without the baseline's hiccups is slower than anything before: disturbed.
    late = {43: 8.0, 47: 8.0}
    assert (
        fault_figures(write_fault_cell(tmp_path / "late", fault, [], slow=late))["recovery_s"]
        is None
    )


def test_401s_after_an_instant_fault_are_its_false_rejects_but_after_a_restart_lost_sessions(
    tmp_path: Path,
) -> None:
    """Bug caught: a key rotation's 401s were never counted, whatever the resource nodes did."""
    rotation = write_fault_cell(
        tmp_path / "rotation",
        {"fault": "key-rotation", "started": 102.0, "ended": 102.0},
        [103.5, 103.6],
    )
    figures = fault_figures(rotation)
    assert (figures["spurious_401"], figures["sessions_lost"]) == (2, 2)
    outage = write_fault_cell(
        tmp_path / "outage",
        {"fault": "redis-outage", "started": 101.0, "restoring": 103.0, "ended": 103.1},
        [103.5, 103.6],
    )
    figures = fault_figures(outage)
    assert (figures["spurious_401"], figures["sessions_lost"]) == (0, 2)
