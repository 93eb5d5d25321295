"""What every fault is: how a matrix may use it, how it is named, injected, undone and read.

A fault is one subclass of ``Fault`` in a module of its own, registered once in
:mod:`loadtests.faults`. The runner, the metrics and the report ask the registered fault
instead of testing its name: whether it lasts ``fault_s`` and is then undone (``lasts``) or
happens at an instant, whether anything is injected at all (a kid flood is the load itself),
which cells it fits, its cell-id label, the Locust environment it needs, the metrics columns it
makes meaningless (``blanks``) and the figures it adds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from loadtests.load.histograms import HistogramSet
    from loadtests.run.matrix import Cell, CellSettings
    from loadtests.services.private_redis import PrivateRedis
    from loadtests.services.target_process import TargetNode


@dataclass
class FaultTargets:
    """What a fault may act on in its cell, and the record it adds to ``fault.json``."""

    cell: Cell
    redis: PrivateRedis | None
    nodes: list[TargetNode]
    issuer: TargetNode | None
    keys_dir: Path | None
    record: dict[str, Any]


class FaultUnavailable(Exception):
    """This fault cannot be injected here; the message says why in one line."""


class Fault:
    """One kind of fault. Subclasses set ``name`` and override what differs."""

    name: ClassVar[str] = ""
    lasts: ClassVar[bool] = False  # lasts fault_s, then end() undoes it; else instant
    injected: ClassVar[bool] = True  # False: the load itself is the fault, for the whole window
    section: ClassVar[str] = "resilience"  # the report section whose fault table shows it
    blanks: ClassVar[tuple[str, ...]] = ()  # metrics columns it makes meaningless (counters reset)

    def problem(self, cell: Cell) -> str | None:
        """Why the fault does not fit the cell (one line), or None when it does."""
        return None

    def label(self, settings: CellSettings) -> str:
        """What the cell id says after the fault's name: its length when it lasts."""
        return f"{settings.fault_s:g}s" if self.lasts else ""

    def title(self, row: Mapping[str, Any]) -> str:
        """How the report names the fault of a metrics row."""
        return self.name

    def locust_env(self, settings: CellSettings) -> dict[str, str]:
        """Environment the load generator needs for this fault."""
        return {}

    def unavailable(self, targets: FaultTargets) -> str | None:
        """Why it cannot be injected into these services (one line), or None."""
        return None

    def begin(self, targets: FaultTargets) -> None:
        """Inject the fault (the injector has recorded ``started``; it may correct it)."""
        raise NotImplementedError

    def end(self, targets: FaultTargets) -> None:
        """Undo a lasting fault; called once, Ctrl-C included."""

    def figures(
        self,
        cell_dir: Path,
        meta: dict[str, Any],
        window: tuple[float, float],
        histograms: HistogramSet,
    ) -> dict[str, Any]:
        """Metrics columns of this fault alone, from the finished cell's raw files."""
        return {}
