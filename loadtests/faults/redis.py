"""Redis goes away: crashed and restarted (``redis-outage``) or frozen (``redis-stall``).

Both need the run's own Redis (the runner starts a private one when REDIS_URL is unset).
``redis-outage`` crashes it (SIGKILL) and starts it again on the same port ``fault_s`` later:
with ``persistence = "aof"`` it reloads its append-only file, without it comes back empty and
every session is gone; its command counters start again from zero, so the cell's Redis figures
are left empty. ``redis-stall`` freezes it (SIGSTOP) for ``fault_s``, as a failover or a fork
stall would, then lets it run (SIGCONT). Either ends when Redis serves again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from loadtests.faults.base import Fault, FaultTargets

if TYPE_CHECKING:
    from loadtests.run.matrix import Cell


class RedisFault(Fault):
    """What both Redis faults share: a Redis of the run's own, for ``fault_s``."""

    lasts = True
    what = ""

    def problem(self, cell: Cell) -> str | None:
        if cell.store != "redis":
            return f"{self.name} needs Redis; {cell.scheme} has none"
        return None

    def title(self, row: Mapping[str, Any]) -> str:
        persisted = ", AOF" if row.get("persistence") == "aof" else ""
        return f"Redis {self.what} {float(row['fault_s']):g} s{persisted}"

    def unavailable(self, targets: FaultTargets) -> str | None:
        if targets.redis is not None:
            return None
        return f"{self.name} stops the run's own Redis: unset REDIS_URL so the runner starts one"


class RedisOutage(RedisFault):
    """Redis crashes and restarts ``fault_s`` later."""

    name = "redis-outage"
    what = "down"
    blanks = ("redis_cmds_per_req", "redis_cmds_by_name", "redis_cpu_us_per_req")

    def begin(self, targets: FaultTargets) -> None:
        assert targets.redis is not None
        targets.redis.crash()

    def end(self, targets: FaultTargets) -> None:
        assert targets.redis is not None
        targets.redis.start()


class RedisStall(RedisFault):
    """Redis is frozen for ``fault_s``."""

    name = "redis-stall"
    what = "frozen"

    def begin(self, targets: FaultTargets) -> None:
        assert targets.redis is not None
        targets.redis.pause()

    def end(self, targets: FaultTargets) -> None:
        assert targets.redis is not None
        targets.redis.resume()
