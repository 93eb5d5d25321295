"""Faults injected into a cell's measured window, recorded to ``fault.json`` and always undone.

The injector waits for Locust to open the window (the ``window-open`` marker the recorder
writes), then at ``fault_at_s`` into it:

- ``redis-outage``: crashes the private Redis (SIGKILL) and starts it again on the same port
  ``fault_s`` later (with ``persistence = "aof"`` it reloads its append-only file; without, it
  comes back empty: every session is gone). The fault ends when Redis accepts connections again.
- ``redis-stall``: freezes Redis (SIGSTOP) for ``fault_s``, then lets it run (SIGCONT), as a
  failover or a fork stall would.
- ``node-kill``: kills the last node (SIGKILL); it stays dead. The fault starts and ends then.
- ``key-rotation`` (split): writes a new key into the issuer's keys folder and sends the issuer
  (and HMAC resource nodes, which share the folder) SIGHUP: from then on it signs with the new
  key, and resource nodes must learn it at the first token that carries it. Instant, like a kill;
  the resource nodes' counters are read just before it (``counters_before``).

``undo()`` runs on every exit of the cell, Ctrl-C included: a paused Redis is resumed, a crashed
one started again, so nothing is left stopped or frozen, and the next cell starts clean.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

from common.schemes import HMAC_ALGORITHMS
from loadtests.generator_parts import WINDOW_OPEN_MARKER
from loadtests.http_probe import service_counters
from loadtests.matrix import REDIS_FAULTS, Cell
from loadtests.private_redis import PrivateRedis
from loadtests.target_process import TargetNode
from targets.jwt_keys import generate_private_key, new_kid, write_key

WINDOW_WAIT_S = 60.0


class FaultUnavailable(Exception):
    """This fault cannot be injected here; the message says why in one line."""


class FaultInjector:
    """One cell's fault, on a thread of its own; ``undo()`` restores whatever it broke."""

    def __init__(
        self,
        cell: Cell,
        cell_dir: Path,
        redis: PrivateRedis | None,
        nodes: list[TargetNode],
        issuer: TargetNode | None = None,
        keys_dir: Path | None = None,
    ) -> None:
        self.cell = cell
        self.issuer = issuer
        self.keys_dir = keys_dir
        self.kind = cell.settings.fault
        self.at_s = cell.settings.fault_at_s
        self.length_s = cell.settings.fault_s
        self.marker = cell_dir / WINDOW_OPEN_MARKER
        self.redis = redis
        self.nodes = nodes
        if self.kind in REDIS_FAULTS and redis is None:
            raise FaultUnavailable(
                f"{self.kind} stops the run's own Redis: unset REDIS_URL so the runner starts one"
            )
        self.record: dict[str, Any] = {"fault": self.kind, "fault_at_s": self.at_s}
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="fault", daemon=True)

    def start(self) -> None:
        """Begin waiting for the window."""
        self._thread.start()

    def _run(self) -> None:
        opened = self._window_opened()
        if opened is None:
            return
        self.record["window_start"] = opened
        if self._cancel.wait(max(0.0, opened + self.at_s - time.time())):
            return
        with self._lock:
            if self._cancel.is_set():
                return
            self.record["started"] = time.time()
            self._begin()
        if self.kind not in REDIS_FAULTS:
            self.record["ended"] = self.record["started"]
            return
        self._cancel.wait(self.length_s)
        with self._lock:
            self._end()

    def _window_opened(self) -> float | None:
        deadline = time.time() + WINDOW_WAIT_S
        while not self._cancel.wait(0.01):
            try:
                return float(self.marker.read_text())
            except (OSError, ValueError):
                if time.time() > deadline:
                    return None
        return None

    def _begin(self) -> None:
        if self.kind == "redis-outage":
            assert self.redis is not None
            self.redis.crash()
        elif self.kind == "redis-stall":
            assert self.redis is not None
            self.redis.pause()
        elif self.kind == "key-rotation":
            self._rotate()
        else:
            victim = self.nodes[-1]
            self.record["killed_node"] = victim.url
            if victim.process is not None:
                victim.process.kill()

    def _rotate(self) -> None:
        """A new newest key in the folder, then SIGHUP: the issuer signs with it from now on."""
        assert self.issuer is not None and self.keys_dir is not None
        alg = self.cell.alg
        self.record["counters_before"] = {
            f"node{i}": service_counters(node.url) for i, node in enumerate(self.nodes)
        }
        kid = new_kid()
        write_key(self.keys_dir / alg, kid, alg, generate_private_key(alg))
        reloaded = [self.issuer, *(self.nodes if alg in HMAC_ALGORITHMS else [])]
        self.record["started"] = time.time()
        for node in reloaded:
            if node.process is not None:
                node.process.send_signal(signal.SIGHUP)
        self.record["new_kid"] = kid

    def _end(self) -> None:
        """Undo a Redis fault (once); the instant Redis serves again ends the fault."""
        if "ended" in self.record or "started" not in self.record:
            return
        assert self.redis is not None
        self.record["restoring"] = time.time()  # a 401 answered before this was while down
        if self.kind == "redis-outage":
            self.redis.start()
        else:
            self.redis.resume()
        self.record["ended"] = time.time()

    def undo(self) -> dict[str, Any]:
        """Stop waiting, restore what was broken, and return what happened (epoch seconds)."""
        self._cancel.set()
        with self._lock:
            if self.kind in REDIS_FAULTS:
                self._end()
        self._thread.join(5.0)
        return self.record
