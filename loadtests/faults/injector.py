"""When a cell's fault begins and ends, recorded to ``fault.json`` and always undone.

The injector waits for Locust to open the window (the ``window-open`` marker the recorder
writes), then at ``fault_at_s`` into it begins the cell's fault (:mod:`loadtests.faults`); a
lasting one is undone ``fault_s`` later and ends when its service serves again, an instant one
ends as it begins. ``undo()`` runs on every exit of the cell, Ctrl-C included: whatever was
crashed is started again and whatever was frozen resumed, so the next cell starts clean.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loadtests.faults import fault_named
from loadtests.faults.base import FaultTargets, FaultUnavailable
from loadtests.load.generator_parts import WINDOW_OPEN_MARKER

if TYPE_CHECKING:
    from loadtests.run.matrix import Cell
    from loadtests.services.private_redis import PrivateRedis
    from loadtests.services.target_process import TargetNode

WINDOW_WAIT_S = 60.0


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
        self.fault = fault_named(cell.settings.fault)
        self.at_s = cell.settings.fault_at_s
        self.length_s = cell.settings.fault_s
        self.marker = cell_dir / WINDOW_OPEN_MARKER
        self.record: dict[str, Any] = {"fault": self.fault.name, "fault_at_s": self.at_s}
        self.targets = FaultTargets(cell, redis, nodes, issuer, keys_dir, self.record)
        problem = self.fault.unavailable(self.targets)
        if problem:
            raise FaultUnavailable(problem)
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
            self.fault.begin(self.targets)
        if not self.fault.lasts:
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

    def _end(self) -> None:
        """Undo a lasting fault (once); the instant its service serves again ends the fault."""
        if "ended" in self.record or "started" not in self.record:
            return
        self.record["restoring"] = time.time()  # a 401 answered before this was while down
        self.fault.end(self.targets)
        self.record["ended"] = time.time()

    def undo(self) -> dict[str, Any]:
        """Stop waiting, restore what was broken, and return what happened (epoch seconds)."""
        self._cancel.set()
        with self._lock:
            if self.fault.lasts:
                self._end()
        self._thread.join(5.0)
        return self.record
