"""The fork server: a forked Locust behaves like a freshly started one, and no fork server
outlives the process that started it.

Real Locust children of a real fork server, against the trivial server.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from loadtests.load.locust_process import LOCUSTFILE, PRELOAD, LocustRun
from loadtests.run.cell_run import CpuPlan, expect_results
from loadtests.run.matrix import Cell, CellSettings
from loadtests.services.forkserver_client import start_preloaded
from loadtests.services.trivial_server import TrivialServer


def closed_cell(duration_s: float = 1.0) -> Cell:
    settings = CellSettings(warmup_s=0.2, duration_s=duration_s)
    return Cell("none", "single", 1, "read", 4, settings)


def test_a_locust_forked_long_after_the_fork_server_started_gets_its_whole_window(
    tmp_path: Path,
) -> None:
    """The fork server's event loop clock is stale by the time it forks: Locust's --run-time timer,
    set from it, ended the cell before its window (the child must read the clock anew)."""
    cpus = CpuPlan.for_this_machine()
    cell = closed_cell()
    with TrivialServer(cpus.servers) as server:
        for attempt in ("first", "later"):
            folder = tmp_path / attempt
            folder.mkdir()
            locust = LocustRun(cell, [server.url], folder, cpus.generator)
            try:
                locust.wait()
            finally:
                locust.stop()
            window = expect_results(folder, cell.settings.duration_s)
            assert window["window_end"] - window["window_start"] >= 0.95
            time.sleep(3.0)  # longer than the whole first run


def test_a_failing_locust_reports_its_own_exit_code_and_writes_into_its_log(
    tmp_path: Path,
) -> None:
    log = tmp_path / "locust.log"
    arguments = ["-f", str(LOCUSTFILE), "--no-such-option"]
    locust = start_preloaded(PRELOAD, "locust", arguments, dict(os.environ), log)
    assert locust.wait(30) not in (0, None)
    assert "no-such-option" in log.read_text()


def test_stopping_a_forked_locust_ends_its_process_group_and_closing_ends_the_fork_server(
    tmp_path: Path,
) -> None:
    cpus = CpuPlan.for_this_machine()
    with TrivialServer(cpus.servers) as server:
        locust = LocustRun(closed_cell(duration_s=30.0), [server.url], tmp_path, cpus.generator)
        pid = locust.pid
        try:
            assert os.getpgid(pid) == pid  # its own session: Ctrl-C at the terminal never hits it
            with pytest.raises(subprocess.TimeoutExpired):
                locust.process.wait(1.0)
        finally:
            locust.stop()
    assert locust.process.poll() is not None
    assert not [p for p in psutil.process_iter() if _group(p) == pid]
    server = locust.process.server
    server.close()
    assert server.process.poll() is not None


def _group(process: psutil.Process) -> int | None:
    try:
        return os.getpgid(process.pid)
    except ProcessLookupError:
        return None


def test_the_fork_server_ends_when_its_parent_dies() -> None:
    """No stray fork server: a parent killed outright closes its stdin, and it exits."""
    script = (
        "import time\n"
        "from loadtests.services.forkserver_client import ForkServer\n"
        f"server = ForkServer({PRELOAD!r}, None)\n"
        "print(server.process.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        server_pid = int(parent.stdout.readline())
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 30
    while psutil.pid_exists(server_pid) and time.monotonic() < deadline:
        if psutil.Process(server_pid).status() == psutil.STATUS_ZOMBIE:
            break
        time.sleep(0.1)
    assert not psutil.pid_exists(server_pid) or (
        psutil.Process(server_pid).status() == psutil.STATUS_ZOMBIE
    )
