"""One reference server node as a child process: start it, wait until healthy, stop it by PID.

Nodes are forked by a fork server (:mod:`loadtests.services.forkserver`) that imported the web
stack once, so a cell group's servers start without most of a second of imports each.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtests.services.forkserver_client import ForkedProcess, ForkServerFailed, start_preloaded
from loadtests.services.ports import free_port
from loadtests.services.processes import pin, stop

HEALTHY_TIMEOUT_S = 60.0
# The third-party part of a node's imports, loaded once by the fork server; the servers' own
# modules (some read the environment when imported) load in each node.
PRELOAD = (
    "uvicorn", "uvicorn.config", "uvicorn.server", "uvicorn.loops.auto",
    "uvicorn.protocols.http.auto", "uvicorn.lifespan.on", "fastapi", "fastapi.responses",
    "pydantic", "redis.asyncio", "jwt", "cryptography.hazmat.primitives.asymmetric.ec",
    "cryptography.hazmat.primitives.asymmetric.rsa",
    "cryptography.hazmat.primitives.asymmetric.ed25519",
    "cryptography.hazmat.primitives.asymmetric.padding",
)  # fmt: skip


class TargetFailedToStart(Exception):
    """The node exited or never became healthy; the message holds its last stderr line."""


def get_health(host: str, port: int, timeout_s: float = 1.0) -> tuple[int, dict[str, Any]]:
    """Status and body of GET /healthz."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


@dataclass
class TargetNode:
    """A running ``python -m targets`` process."""

    args: list[str]
    host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    process: ForkedProcess | None = None
    log: Path | None = None
    cpus: set[int] | None = None  # where it was pinned: a restart keeps it there
    paused: bool = False

    @property
    def url(self) -> str:
        """Base URL of the node."""
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        """PID of the node process."""
        assert self.process is not None
        return self.process.pid

    def start(self, cpus: set[int] | None = None, require_healthy: bool = True) -> None:
        """Launch the node and wait for /healthz to answer (200, or any status if not required)."""
        self.launch(cpus)
        self.wait_started(require_healthy)

    def launch(self, cpus: set[int] | None = None) -> None:
        """Start the process without waiting for it: several nodes then start side by side.

        It starts on any CPU and is pinned to ``cpus`` once healthy, before anything is
        measured: nodes pinned from the start would share one CPU while they import and load.
        """
        self.cpus = cpus
        args = [*self.args, "--host", self.host, "--port", str(self.port)]
        # Output goes to a file, not a pipe: a pipe nobody drains would stall a chatty server.
        handle, name = tempfile.mkstemp(prefix="authbench-node-", suffix=".log")
        os.close(handle)
        self.log = Path(name)
        try:
            self.process = start_preloaded(
                PRELOAD, "targets", args, {**os.environ, **self.env}, self.log
            )
        except ForkServerFailed as exc:
            raise TargetFailedToStart(str(exc)) from None

    def wait_started(self, require_healthy: bool = True) -> None:
        """Wait for /healthz to answer (200, or any status if not required); stop the node if
        it fails or the wait is interrupted, so that no stray process is left."""
        try:
            self._wait_healthy(require_healthy)
            pin(self.pid, self.cpus)
        except BaseException:
            self.stop()
            raise

    def _wait_healthy(self, require_healthy: bool) -> None:
        assert self.process is not None
        deadline = time.monotonic() + HEALTHY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = self._last_error()
                self.stop()
                raise TargetFailedToStart(error)
            try:
                status, _ = get_health(self.host, self.port)
                if status == 200 or not require_healthy:
                    return
            except (OSError, ValueError, http.client.HTTPException):
                pass
            time.sleep(0.05)
        raise TargetFailedToStart(f"no healthy answer on {self.url} in {HEALTHY_TIMEOUT_S:.0f} s")

    def _last_error(self) -> str:
        assert self.process is not None and self.log is not None
        err = self.log.read_text(errors="replace")
        lines = [line for line in err.strip().splitlines() if line.strip()]
        return lines[-1] if lines else f"exited with code {self.process.returncode}"

    def crash(self) -> None:
        """Kill the node at once (SIGKILL), as a crash would; ``start(node.cpus)`` brings it
        back on the same port."""
        self.resume()
        if self.process is not None:
            self.process.kill()
            self.process.wait()
        self.stop()

    def pause(self) -> None:
        """Freeze the node (SIGSTOP): it holds its connections and answers nothing."""
        if self.process is not None and not self.paused:
            os.kill(self.process.pid, signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        """Let a paused node run again (SIGCONT); harmless when it is not paused."""
        if self.process is not None and self.paused:
            os.kill(self.process.pid, signal.SIGCONT)
        self.paused = False

    def stop(self) -> None:
        """Stop the node by its PID (SIGTERM, then SIGKILL) and reap it."""
        self.resume()
        stop(self.process)
        self.process = None
        if self.log is not None:
            self.log.unlink(missing_ok=True)
            self.log = None


def start_nodes(
    args: Sequence[str], count: int, env: Mapping[str, str], cpus: set[int] | None = None
) -> list[TargetNode]:
    """Start ``count`` nodes with the same arguments (share a keys folder to share keys)."""
    nodes = [
        TargetNode([*args, "--node-id", f"node{index}"], env=dict(env)) for index in range(count)
    ]
    start_together(nodes, cpus)
    return nodes


def start_together(nodes: Sequence[TargetNode], cpus: set[int] | None = None) -> None:
    """Launch every node, then wait for each: they start side by side, not one after another.
    If one fails (or the wait is interrupted), all are stopped."""
    try:
        for node in nodes:
            node.launch(cpus)
        for node in nodes:
            node.wait_started()
    except BaseException:
        for node in nodes:
            node.stop()
        raise
