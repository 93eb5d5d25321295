"""Faults injected into a cell's measured window: one module per kind, registered here once.

- :mod:`~loadtests.faults.redis`: ``redis-outage``, ``redis-stall``;
- :mod:`~loadtests.faults.node_kill`: ``node-kill``;
- :mod:`~loadtests.faults.split_keys`: ``key-rotation``, ``kid-flood`` (split);
- :mod:`~loadtests.faults.issuer`: ``issuer-outage``, ``issuer-stall`` (split);
- :mod:`~loadtests.faults.injector`: when a fault begins and ends in the window, and its undo.

Adding a fault touches its own module, the tuple below and a test (docs/contributing.md).
"""

from __future__ import annotations

from loadtests.faults.base import Fault
from loadtests.faults.issuer import IssuerOutage, IssuerStall
from loadtests.faults.node_kill import NodeKill
from loadtests.faults.redis import RedisOutage, RedisStall
from loadtests.faults.split_keys import KeyRotation, KidFlood

REGISTRY: dict[str, Fault] = {
    fault.name: fault
    for fault in (
        RedisOutage(), RedisStall(), NodeKill(), KeyRotation(), KidFlood(), IssuerOutage(),
        IssuerStall(),
    )
}  # fmt: skip
NAMES = tuple(REGISTRY)


def fault_named(name: str) -> Fault:
    """The registered fault of that name (KeyError for an unknown one)."""
    return REGISTRY[name]


def sectioned(section: str) -> tuple[str, ...]:
    """The names of the faults a report section's fault table shows."""
    return tuple(name for name, fault in REGISTRY.items() if fault.section == section)
