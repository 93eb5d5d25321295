"""``node-kill``: the last node dies (SIGKILL) and stays dead; clients must fail over.

Instant: the fault starts and ends at the kill, and its effect is judged in the second after.
Measured with client-side spreading on several nodes, where each user skips a refused node.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from loadtests.faults.base import Fault, FaultTargets

if TYPE_CHECKING:
    from loadtests.run.matrix import Cell


class NodeKill(Fault):
    """One node of a multi-node cell killed."""

    name = "node-kill"

    def problem(self, cell: Cell) -> str | None:
        if cell.topology != "multi":
            return "node-kill needs several nodes: use it on multi"
        if cell.settings.balancer == "nginx":
            return "node-kill is measured with client-side spreading"
        return None

    def title(self, row: Mapping[str, Any]) -> str:
        return f"one of {int(row['nodes'])} nodes killed"

    def begin(self, targets: FaultTargets) -> None:
        victim = targets.nodes[-1]
        targets.record["killed_node"] = victim.url
        if victim.process is not None:
            victim.process.kill()
