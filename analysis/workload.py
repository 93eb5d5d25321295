"""A team's workload, as a TOML file: the traffic, the users and the requirements to size for.

``[workload]`` holds ``reads_per_s`` (required) and optionally ``logins_per_s``,
``active_users``, ``access_ttl_s`` or ``refreshes_per_s``, ``nodes``, ``store_delay_ms``,
``max_revocation_window_s``, ``headroom``, ``price_per_core_hour`` and
``app_cpu_us_per_req`` and ``latency_budget_ms`` (your application's own CPU per request and
what a request may take in all, to see authentication's share of each);
the shipped ``analysis/workloads/example.toml`` (``--workload example``) explains each. Any
problem is one line naming the file and the key.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from common.outcomes import BadInput

WORKLOADS_DIR = Path(__file__).with_name("workloads")


class WorkloadError(BadInput):
    """The workload file cannot be used; the message is one line for the user."""


def resolve_workload(name_or_path: str) -> Path:
    """A workload file by path, or a shipped one by name (``example``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = WORKLOADS_DIR / f"{name_or_path}.toml"
    if not path.suffix and shipped.is_file():
        return shipped
    names = ", ".join(sorted(p.stem for p in WORKLOADS_DIR.glob("*.toml")))
    raise WorkloadError(f"{name_or_path}: no such workload file (shipped: {names})")


@dataclass(frozen=True)
class Workload:
    """What to size for. Rates are per second at peak; times in seconds."""

    reads_per_s: float
    logins_per_s: float = 0.0
    active_users: float = 0.0
    access_ttl_s: float = 300.0
    refreshes_per_s: float | None = None
    nodes: int = 1
    store_delay_ms: float = 0.0
    max_revocation_window_s: float | None = None
    headroom: float = 0.3
    price_per_core_hour: float | None = None
    app_cpu_us_per_req: float | None = None  # the application's own work per request, yours
    latency_budget_ms: float | None = None  # what a request may take in all, for auth's share

    def refresh_rate(self, access_ttl_s: float | None = None) -> float:
        """JWT refreshes per second: given, or every active user once per access lifetime."""
        if self.refreshes_per_s is not None and access_ttl_s is None:
            return self.refreshes_per_s
        ttl = access_ttl_s if access_ttl_s is not None else self.access_ttl_s
        return self.active_users / ttl


KEYS = {field.name for field in fields(Workload)}
POSITIVE = {"reads_per_s", "access_ttl_s", "nodes", "latency_budget_ms"}
WHOLE = {"nodes"}


def _number(source: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise WorkloadError(f"{source}: workload.{key}: {value!r} is not a number")
    if key in WHOLE and not isinstance(value, int):
        raise WorkloadError(f"{source}: workload.{key}: {value!r} is not a whole number")
    if value < 0 or (key in POSITIVE and value == 0):
        bound = "above 0" if key in POSITIVE else "at least 0"
        raise WorkloadError(f"{source}: workload.{key}: {value} must be {bound}")
    return value


def parse_workload(data: dict[str, Any], source: str) -> Workload:
    """Validate parsed TOML into a Workload."""
    table = data.get("workload")
    if set(data) - {"workload"} or not isinstance(table, dict):
        raise WorkloadError(f"{source}: needs one [workload] table and nothing else")
    for key in table:
        if key not in KEYS:
            raise WorkloadError(
                f"{source}: workload.{key}: unknown key (valid: {', '.join(sorted(KEYS))})"
            )
    if "reads_per_s" not in table:
        raise WorkloadError(f"{source}: workload.reads_per_s: is required")
    values = {key: _number(source, key, value) for key, value in table.items()}
    if values.get("headroom", 0.0) >= 1:
        raise WorkloadError(f"{source}: workload.headroom: a share of each core, below 1")
    if "refreshes_per_s" in values and "active_users" in values:
        raise WorkloadError(
            f"{source}: workload.refreshes_per_s: give it or active_users, not both"
        )
    return Workload(**values)


def load_workload(path: str | Path) -> Workload:
    """Read and validate a workload file."""
    source = str(path)
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise WorkloadError(f"{source}: no such workload file") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise WorkloadError(f"{source}: cannot read: {exc}") from None
    return parse_workload(data, source)
