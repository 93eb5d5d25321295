"""The run's side of the fork servers: start one per program once, start processes through it.

One fork server per preload set and per process that starts children (started at the first
start, ended when this process exits or the fork server dies). A started child is an ordinary
process in its own session: stopping it signals it (or its group), and its exit code is the one
it returned, as the fork server reports it.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from loadtests.services.processes import spawn, stop

FORKSERVER_MODULE = "loadtests.services.forkserver"
START_TIMEOUT_S = 60.0  # the fork server's own imports come first, on a machine that may be busy


class ForkServerFailed(Exception):
    """The fork server did not start or answer."""


class ForkServer:
    """A running fork server and what it has reported."""

    def __init__(self, preload: tuple[str, ...], cpus: set[int] | None) -> None:
        command = [sys.executable, "-m", FORKSERVER_MODULE, "--preload", ",".join(preload)]
        self.process = spawn(command, cpus, pipes=True)
        self.exit_codes: dict[int, int] = {}
        self._pending = b""

    def alive(self) -> bool:
        return self.process.poll() is None

    def start(
        self, module: str, args: list[str], env: dict[str, str], log: Path, cpus: set[int] | None
    ) -> int:
        """Fork a child running ``python -m module args``; its pid."""
        request = {"module": module, "args": args, "env": env, "cwd": os.getcwd(),
                   "log": str(log), "cpus": sorted(cpus) if cpus else None}  # fmt: skip
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            raise ForkServerFailed(f"the fork server for {module} ended unexpectedly") from None
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            message = self._next(deadline - time.monotonic())
            if message is None:
                raise ForkServerFailed(f"the fork server gave no pid in {START_TIMEOUT_S:g} s")
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
        """The fork server's next line (exit reports are filed on the way); None on timeout."""
        assert self.process.stdout is not None
        stream = self.process.stdout.fileno()
        while b"\n" not in self._pending:
            ready, _, _ = select.select([stream], [], [], max(0.0, timeout))
            if not ready:
                return None
            chunk = os.read(stream, 65536)
            if not chunk:
                raise ForkServerFailed("the fork server ended unexpectedly")
            self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        message = json.loads(line)
        if "exited" in message:
            self.exit_codes[int(message["exited"])] = int(message["code"])
        return message

    def close(self) -> None:
        """End the fork server: closing its stdin is its signal to exit."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            stop(self.process)


class ForkedProcess:
    """A child of a fork server, with the part of Popen's interface the run uses."""

    def __init__(self, server: ForkServer, pid: int) -> None:
        self.server = server
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.server.exit_code(self.pid, None)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Its exit code; subprocess.TimeoutExpired if it runs longer than ``timeout``."""
        if self.returncode is None:
            self.returncode = self.server.exit_code(self.pid, timeout or 1e9)
        if self.returncode is None:
            raise subprocess.TimeoutExpired(str(self.pid), timeout or 0.0)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


_servers: dict[tuple[str, ...], ForkServer] = {}


def start_preloaded(
    preload: tuple[str, ...],
    module: str,
    args: list[str],
    env: dict[str, str],
    log: Path,
    cpus: set[int] | None = None,
) -> ForkedProcess:
    """Start ``python -m module args`` through this process's fork server for ``preload``."""
    server = _servers.get(preload)
    if server is None or not server.alive():
        server = _servers[preload] = ForkServer(preload, cpus)
        atexit.register(server.close)
    return ForkedProcess(server, server.start(module, args, env, log, cpus))
