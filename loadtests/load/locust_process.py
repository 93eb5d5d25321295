"""Locust as a headless child process for one cell, pinned, logging into the cell folder.

The child is forked by a fork server (:mod:`loadtests.services.forkserver`) that imported
Locust once for the whole run, so a cell starts measuring without a second of imports.
"""

from __future__ import annotations

import math
import os
import subprocess
from pathlib import Path

from loadtests.faults import fault_named
from loadtests.load.generator_parts import merge_parts
from loadtests.run.matrix import Cell
from loadtests.services.forkserver_client import ForkServerFailed, start_preloaded
from loadtests.services.processes import stop

LOCUSTFILE = Path(__file__).parent.parent / "locustfile.py"
USER_CLASSES = {
    "read": "ReadUser",
    "login": "LoginUser",
    "refresh": "RefreshUser",
    "logout": "LogoutUser",
    "mixed": "MixedUser",
    "revocation": "RevocationUser",
    "validation": "ValidationUser",
}
GRACE_S = 30.0
# Every user starts within a tenth of a second (at one user per second per user it took a
# second); the recorder opens the window only once all have started, then warms up.
SPAWN_RATE_PER_USER = 10
SPAWN_ALLOWANCE_S = 0.3  # users start within this, so the window is never cut short
# --run-time is only the upper bound (the recorder quits once the window and the drain after it
# are over), so it leaves room for a recorder that starts late on a busy machine: with 0.2 s to
# spare a 1 s window was closed after 4 ms when make test loaded both cores.
RUN_TIME_SLACK_S = 5.0
# Imported once by the fork server, in this order: Locust patches the standard library for
# gevent when imported, which must come before anything imports ssl.
PRELOAD = ("locust.main", "locust.contrib.fasthttp", "hdrh.histogram", "jwt")
# Open model: at most this long after the window for requests planned inside it to be sent and
# answered, so that what is still unsent at the stop is what the generator could not send, not
# what the clock cut off (a lone process stops as soon as nothing of its window is left).
DRAIN_S = 0.5


class LocustFailed(Exception):
    """Locust did not finish properly; the message points at its log."""


def locust_arguments(cell: Cell, host: str, csv_prefix: Path) -> list[str]:
    """The headless Locust command line of a cell (what follows ``locust``)."""
    settings = cell.settings
    # Locust takes whole seconds; the recorder closes the window after exactly duration_s.
    drain = DRAIN_S if settings.model == "open" else 0.0
    run_s = math.ceil(
        settings.warmup_s + settings.duration_s + SPAWN_ALLOWANCE_S + drain + RUN_TIME_SLACK_S
    )
    command = [
        "-f", str(LOCUSTFILE),
        "--headless",
        "--host", host,
        "--users", str(cell.users),
        "--spawn-rate", str(cell.users * SPAWN_RATE_PER_USER),
        "--run-time", f"{run_s}s",
        "--stop-timeout", "2",
        "--csv", str(csv_prefix),
        "--csv-full-history",
        "--only-summary",
        "--loglevel", "WARNING",
        "--exit-code-on-error", "0",
    ]  # fmt: skip
    if settings.generator_processes > 1:
        command += ["--processes", str(settings.generator_processes)]
    return [*command, USER_CLASSES[cell.scenario]]


def locust_environment(cell: Cell, nodes: list[str], cell_dir: Path) -> dict[str, str]:
    """The AUTHBENCH_* settings the scenarios and the recorder read."""
    settings = cell.settings
    env = {
        "AUTHBENCH_NODES": ",".join(nodes),
        "AUTHBENCH_USERS": str(settings.population),
        "AUTHBENCH_WARMUP_S": f"{settings.warmup_s:g}",
        "AUTHBENCH_DURATION_S": f"{settings.duration_s:g}",
        "AUTHBENCH_HDR_OUT": str(cell_dir / "hdr.json"),
        "AUTHBENCH_MODEL": settings.model,
        "AUTHBENCH_LOAD_USERS": str(cell.users),
        "AUTHBENCH_STOP_AFTER_WINDOW": f"{DRAIN_S if settings.model == 'open' else 0.0:g}",
    }
    if settings.model == "open":
        env["AUTHBENCH_RATE"] = f"{settings.rate:g}"
        env["AUTHBENCH_ARRIVALS"] = settings.arrivals
    if settings.fault:
        env["AUTHBENCH_TIMELINE"] = "1"
    if cell.scheme != "none":
        env["AUTHBENCH_CREDENTIAL_TTL"] = str(cell.credential_ttl)
    if cell.is_split:
        env["AUTHBENCH_HOPS"] = str(settings.hops)
    if settings.fault:
        env.update(fault_named(settings.fault).locust_env(settings))
    if cell.sticky_users:
        env["AUTHBENCH_STICKY"] = "1"
    return env


class LocustRun:
    """One running Locust; stop() ends it and every process it forked."""

    def __init__(
        self,
        cell: Cell,
        nodes: list[str],
        cell_dir: Path,
        cpus: set[int] | None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.cell = cell
        self.log_path = cell_dir / "locust.log"
        env = {**os.environ, **locust_environment(cell, nodes, cell_dir), **(extra_env or {})}
        arguments = locust_arguments(cell, nodes[0], cell_dir / "locust")
        try:
            self.process = start_preloaded(PRELOAD, "locust", arguments, env, self.log_path, cpus)
        except ForkServerFailed as exc:
            raise LocustFailed(str(exc)) from None

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait(self) -> None:
        """Wait for the run (every process) to end by itself, then merge what each recorded.

        LocustFailed if it overruns or crashes.
        """
        settings = self.cell.settings
        limit = settings.warmup_s + settings.duration_s + GRACE_S
        try:
            code = self.process.wait(limit)
        except ForkServerFailed as exc:
            raise LocustFailed(str(exc)) from None
        except subprocess.TimeoutExpired:
            self.stop()
            raise LocustFailed(f"locust overran {limit:.0f} s (see {self.log_path})") from None
        if code != 0:
            raise LocustFailed(f"locust exited with code {code} (see {self.log_path})")
        merge_parts(self.log_path.parent / "hdr.json")

    def stop(self) -> None:
        """Terminate Locust's whole process group (workers included) and reap it."""
        stop(self.process, group=True)
