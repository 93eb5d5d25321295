"""The issuer goes away (split): crashed and restarted (``issuer-outage``) or frozen
(``issuer-stall``) for ``fault_s``.

This is where the split designs differ most in production. Resource nodes that verify JWTs
themselves keep answering from the keys they hold (a JWKS refresh that fails keeps the cached
keys, so a JWKS TTL shorter than the outage costs nothing); introspecting nodes answer 503, or
from their cache of active answers while it lasts; session nodes read Redis, not the issuer;
logins fail (refused, or timed out while frozen). The crashed issuer comes back on the same port
with the same keys folder and store; its in-process counters and CPU start again, so its
per-request figures are left empty for the cell.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from loadtests.faults.base import Fault, FaultTargets

if TYPE_CHECKING:
    from loadtests.run.matrix import Cell


class IssuerFault(Fault):
    """What both issuer faults share: the split's issuer, for ``fault_s``."""

    lasts = True
    what = ""

    def problem(self, cell: Cell) -> str | None:
        return None if cell.is_split else f"{self.name} needs the split topology's issuer"

    def title(self, row: Mapping[str, Any]) -> str:
        return f"issuer {self.what} {float(row['fault_s']):g} s"

    def unavailable(self, targets: FaultTargets) -> str | None:
        return None if targets.issuer is not None else f"{self.name}: this cell has no issuer"


class IssuerOutage(IssuerFault):
    """The issuer crashes (SIGKILL) and starts again ``fault_s`` later."""

    name = "issuer-outage"
    what = "down"
    blanks = ("issuer_cpu_us_per_req", "issuer_calls_per_req")

    def begin(self, targets: FaultTargets) -> None:
        assert targets.issuer is not None
        targets.issuer.crash()

    def end(self, targets: FaultTargets) -> None:
        assert targets.issuer is not None
        targets.issuer.start(targets.issuer.cpus)


class IssuerStall(IssuerFault):
    """The issuer is frozen (SIGSTOP) for ``fault_s``: connections open, no answers."""

    name = "issuer-stall"
    what = "frozen"

    def begin(self, targets: FaultTargets) -> None:
        assert targets.issuer is not None
        targets.issuer.pause()

    def end(self, targets: FaultTargets) -> None:
        assert targets.issuer is not None
        targets.issuer.resume()
