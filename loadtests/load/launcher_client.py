"""The run's side of the Locust launcher: start it once, launch a Locust per cell through it.

One launcher per process that runs cells (started at the first launch, pinned like the
generator, ended when this process exits or the launcher dies). A launched Locust is an
ordinary process in its own session: stopping it signals its group, and its exit code is the
one Locust returned, as the launcher reports it.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from loadtests.services.processes import spawn, stop

LAUNCHER_MODULE = "loadtests.load.locust_launcher"
LAUNCH_TIMEOUT_S = 60.0  # the launcher's own imports come first, on a machine that may be busy


class LauncherFailed(Exception):
    """The launcher did not start or answer; the message says what it said last."""


class Launcher:
    """A running launcher process and what it has reported."""

    def __init__(self, cpus: set[int] | None) -> None:
        self.process = spawn([sys.executable, "-m", LAUNCHER_MODULE], cpus, pipes=True)
        self.exit_codes: dict[int, int] = {}
        self._pending = b""

    def alive(self) -> bool:
        return self.process.poll() is None

    def launch(self, args: list[str], env: dict[str, str], log: Path, cpus: set[int] | None) -> int:
        """Fork one Locust with these arguments; its pid."""
        request = {"args": args, "env": env, "cwd": os.getcwd(), "log": str(log),
                   "cpus": sorted(cpus) if cpus else None}  # fmt: skip
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            raise LauncherFailed("the Locust launcher ended unexpectedly") from None
        deadline = time.monotonic() + LAUNCH_TIMEOUT_S
        while True:
            message = self._next(deadline - time.monotonic())
            if message is None:
                raise LauncherFailed(f"the Locust launcher gave no pid in {LAUNCH_TIMEOUT_S:g} s")
            if "pid" in message:
                return int(message["pid"])

    def exit_code(self, pid: int, timeout: float | None) -> int | None:
        """The child's exit code once it has ended, waiting up to ``timeout`` s (None: no
        wait); None while it runs."""
        deadline = time.monotonic() + (timeout or 0.0)
        while pid not in self.exit_codes:
            message = self._next(deadline - time.monotonic())
            if message is None:
                return None
        return self.exit_codes[pid]

    def _next(self, timeout: float) -> dict[str, Any] | None:
        """The launcher's next line (exit reports are filed on the way); None on timeout."""
        assert self.process.stdout is not None
        stream = self.process.stdout.fileno()
        while b"\n" not in self._pending:
            ready, _, _ = select.select([stream], [], [], max(0.0, timeout))
            if not ready:
                return None
            chunk = os.read(stream, 65536)
            if not chunk:
                raise LauncherFailed("the Locust launcher ended unexpectedly")
            self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        message = json.loads(line)
        if "exited" in message:
            self.exit_codes[int(message["exited"])] = int(message["code"])
        return message

    def close(self) -> None:
        """End the launcher: closing its stdin is its signal to exit."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            stop(self.process)


class LaunchedLocust:
    """One Locust forked by the launcher, with the part of Popen's interface a run uses."""

    def __init__(self, launcher: Launcher, pid: int) -> None:
        self.launcher = launcher
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.launcher.exit_code(self.pid, None)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Its exit code; subprocess.TimeoutExpired if it runs longer than ``timeout``."""
        if self.returncode is None:
            self.returncode = self.launcher.exit_code(self.pid, timeout or 1e9)
        if self.returncode is None:
            raise subprocess.TimeoutExpired("locust", timeout or 0.0)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        os.kill(self.pid, sig)


_launcher: Launcher | None = None


def launch_locust(
    args: list[str], env: dict[str, str], log: Path, cpus: set[int] | None
) -> LaunchedLocust:
    """Start a headless Locust with these arguments through this process's launcher."""
    global _launcher
    if _launcher is None or not _launcher.alive():
        _launcher = Launcher(cpus)
        atexit.register(_launcher.close)
    return LaunchedLocust(_launcher, _launcher.launch(args, env, log, cpus))
