"""A run folder's raw files as tidy pandas tables.

``cells``: one row per cell and repetition (the columns of ``metrics.csv``, recomputed from the raw
cell files, plus the server CPU split into framework, auth step and the rest). ``summary``: one
row per cell across repetitions, each metric as median with a 95% interval.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.stats import Estimate, estimate
from loadtests.cell_metrics import metrics_rows

CELL_KEY = ["scheme", "topology", "nodes", "balancer", "scenario", "users", "model"]
HEADLINE_DEFAULTS = {"model": "closed", "balancer": "client"}
BASELINE_KEY = ["topology", "nodes", "balancer", "scenario", "users", "model", "repetition"]
# How each summarised metric varies from run to run (picks the assumed band for 1 repetition).
METRIC_KINDS = {
    "rps": "throughput",
    "p50_ms": "latency",
    "p90_ms": "latency",
    "p99_ms": "latency",
    "p999_ms": "latency",
    "max_ms": "latency",
    "server_cpu_us_per_req": "cpu",
    "cpu_framework_us": "cpu",
    "cpu_auth_us": "cpu",
    "cpu_rest_us": "cpu",
    "auth_compute_mean_us": "cpu",
    "kdf_mean_us": "cpu",
    "auth_p50_us": "cpu",
    "rps_per_server_cpu_s": "cpu",
    "redis_cpu_us_per_req": "cpu",
    "redis_cmds_per_req": "exact",
    "redis_bytes_per_session": "exact",
    "credential_bytes": "exact",
    "generator_cpu_pct": "exact",
}


class RunFolderError(Exception):
    """The folder is not a readable authbench run; the message is one line."""


@dataclass
class RunData:
    """Everything the report needs from one run folder."""

    run_dir: Path
    manifest: dict[str, Any]
    cells: pd.DataFrame
    summary: pd.DataFrame
    micro: pd.DataFrame
    first_complete_cell: dict[str, dict[str, Any]]

    @property
    def run_id(self) -> str:
        return str(self.manifest.get("run_id", self.run_dir.name))

    def cell_meta(self, scheme: str) -> dict[str, Any]:
        """cell.json of the scheme's first complete cell ({} when there is none)."""
        return self.first_complete_cell.get(scheme, {})

    def verify_checks(self, scheme: str) -> list[str]:
        """What the verify gate established about the scheme's target."""
        return list(self.cell_meta(scheme).get("verify", {}).get("checks", []))

    def complete(self) -> pd.DataFrame:
        """Rows of cells that produced numbers."""
        return self.cells[self.cells["status"] == "complete"]

    def closed_model(self) -> pd.DataFrame:
        """Summary rows of closed-model cells (open-model cells answer another question)."""
        return self.summary[self.summary["model"] == "closed"]

    def headline(self, **axes: Any) -> pd.DataFrame:
        """Summary rows matching the axes, one per scheme: the headline cell of each.

        Unless the axes say otherwise, the headline is the closed model with client-side
        spreading; among several user counts, the largest.
        """
        axes = {**HEADLINE_DEFAULTS, **axes}
        rows = self.summary
        for axis, value in axes.items():
            rows = rows[rows[axis] == value]
        return rows.sort_values("users").groupby("scheme", sort=False).tail(1)

    def get(self, metric: str, **axes: Any) -> Estimate | None:
        """The summarised metric of the headline cell matching the axes, if there is one."""
        rows = self.headline(**axes)
        if len(rows) != 1:
            return None
        found = rows.iloc[0][metric]
        return found if isinstance(found, Estimate) and not math.isnan(found.value) else None


def via_balancer(row: pd.Series) -> str:
    """' via nginx' for cells behind the nginx balancer, '' for client-side spreading."""
    return " via nginx" if row.get("balancer") == "nginx" else ""


def add_cpu_split(cells: pd.DataFrame) -> pd.DataFrame:
    """Server CPU per request = framework (the none baseline) + auth step + the rest.

    The password hash runs in every scheme's /login, ``none`` included, so it is part of the
    framework share; the auth step is the Server-Timing auth work minus store waits and KDF.
    """
    cells = cells.copy()
    baseline = cells[(cells["scheme"] == "none") & (cells["status"] == "complete")][
        [*BASELINE_KEY, "server_cpu_us_per_req"]
    ].rename(columns={"server_cpu_us_per_req": "cpu_framework_us"})
    cells = cells.merge(baseline, on=BASELINE_KEY, how="left")
    cells["cpu_auth_us"] = cells["auth_compute_mean_us"].fillna(0.0) - cells["kdf_mean_us"].fillna(
        0.0
    )
    cells.loc[cells["scheme"] == "none", "cpu_auth_us"] = 0.0
    rest = cells["server_cpu_us_per_req"] - cells["cpu_framework_us"] - cells["cpu_auth_us"]
    cells["cpu_rest_us"] = rest
    return cells


def summarise(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: each metric across repetitions as an Estimate."""
    done = cells[cells["status"] == "complete"]
    records = []
    for key, group in done.groupby(CELL_KEY, sort=False):
        record: dict[str, Any] = dict(zip(CELL_KEY, key, strict=True))
        record["alg"] = group["alg"].iloc[0]
        record["store"] = group["store"].iloc[0]
        record["repetitions"] = len(group)
        record["saturated"] = bool(group["saturated"].astype(bool).any())
        for metric, kind in METRIC_KINDS.items():
            values = pd.to_numeric(group[metric], errors="coerce").tolist()
            record[metric] = estimate(values, kind)
        records.append(record)
    return pd.DataFrame.from_records(records)


def _to_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(rows)
    numeric = [c for c in frame.columns if c in METRIC_KINDS or c.endswith(("_ms", "_us"))]
    for column in [*numeric, "requests", "failures", "all_requests", "window_s"]:
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame["saturated"] = frame["saturated"].fillna(False).astype(bool)
    return frame


def _first_complete_cells(run_dir: Path) -> dict[str, dict[str, Any]]:
    """cell.json of each scheme's first complete cell, read once."""
    first: dict[str, dict[str, Any]] = {}
    for meta_path in sorted((run_dir / "cells").glob("*/cell.json")):
        meta = json.loads(meta_path.read_text())
        if meta["status"] == "complete":
            first.setdefault(meta["cell"]["scheme"], meta)
    return first


def load_run(run_dir: Path) -> RunData:
    """Read a run folder's raw files into tables; RunFolderError when it is not one."""
    run_dir = run_dir.resolve()
    manifest_path = run_dir / "manifest.json"
    if not manifest_path.is_file() or not (run_dir / "cells").is_dir():
        raise RunFolderError(f"{run_dir}: not a run folder (no manifest.json and cells/)")
    try:
        manifest = json.loads(manifest_path.read_text())
        rows = metrics_rows(run_dir)
    except (OSError, ValueError, KeyError) as exc:
        raise RunFolderError(f"{run_dir}: unreadable run folder: {exc}") from None
    if not rows:
        raise RunFolderError(f"{run_dir}: the run has no finished cells yet")
    cells = add_cpu_split(_to_frame(rows))
    micro_path = run_dir / "micro.csv"
    micro = pd.read_csv(micro_path) if micro_path.exists() else pd.DataFrame()
    return RunData(
        run_dir, manifest, cells, summarise(cells), micro, _first_complete_cells(run_dir)
    )
