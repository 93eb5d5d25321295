"""A team's workload, as a TOML file: the traffic, the users and the requirements to size for.

``[workload]`` holds ``reads_per_s`` (required) and optionally ``logins_per_s``,
``active_users``, ``access_ttl_s`` or ``refreshes_per_s``, ``nodes``, ``store_delay_ms``,
``max_revocation_window_s``, ``headroom``, ``price_per_core_hour`` and
``app_cpu_us_per_req`` and ``latency_budget_ms`` (your application's own CPU per request and
what a request may take in all, to see authentication's share of each);
the shipped ``analysis/workloads/example.toml`` (``--workload example``) explains each. The
table is checked by pydantic (``common.validation``: strict TOML types); any problem is one line
naming the file and the key.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from common.outcomes import BadInput
from common.validation import STRICT, TableError, number, validated

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


class Workload(BaseModel):
    """What to size for. Rates are per second at peak; times in seconds. A missing optional
    figure is None (not given), never 0."""

    model_config = STRICT

    reads_per_s: number(above=0)
    logins_per_s: number(at_least=0) = 0.0
    active_users: number(at_least=0) = 0.0
    access_ttl_s: number(above=0) = 300.0
    refreshes_per_s: number(at_least=0) | None = None
    nodes: number(above=0, whole=True) = 1
    store_delay_ms: number(at_least=0) = 0.0
    max_revocation_window_s: number(at_least=0) | None = None
    headroom: number(at_least=0) = 0.3
    price_per_core_hour: number(at_least=0) | None = None
    # the application's own work per request, yours
    app_cpu_us_per_req: number(at_least=0) | None = None
    # what a request may take in all, for authentication's share of it
    latency_budget_ms: number(above=0) | None = None

    def refresh_rate(self, access_ttl_s: float | None = None) -> float:
        """JWT refreshes per second: given, or every active user once per access lifetime."""
        if self.refreshes_per_s is not None and access_ttl_s is None:
            return self.refreshes_per_s
        ttl = access_ttl_s if access_ttl_s is not None else self.access_ttl_s
        return self.active_users / ttl


def parse_workload(data: dict[str, Any], source: str) -> Workload:
    """Validate parsed TOML into a Workload."""
    table = data.get("workload")
    if set(data) - {"workload"} or not isinstance(table, dict):
        raise WorkloadError(f"{source}: needs one [workload] table and nothing else")
    try:
        workload = validated(Workload, table)
    except TableError as exc:
        raise WorkloadError(f"{source}: workload.{exc}") from None
    if workload.headroom >= 1:
        raise WorkloadError(f"{source}: workload.headroom: a share of each core, below 1")
    if {"refreshes_per_s", "active_users"} <= workload.model_fields_set:
        raise WorkloadError(
            f"{source}: workload.refreshes_per_s: give it or active_users, not both"
        )
    return workload


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
