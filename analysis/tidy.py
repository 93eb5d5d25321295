"""A run folder's raw files as tidy pandas tables.

``cells``: one row per cell and repetition (the columns of ``metrics.csv``, recomputed from the
raw cell files). ``summary``: one row per cell across repetitions, each metric as a mean with its
measured 95% interval, plus whether any repetition was saturated or late; the latency
percentiles instead come from the repetitions' histograms merged, with a bootstrap interval
over repetitions (:mod:`analysis.percentiles`). ``capacity``: the rows
of ``capacity.csv``, recomputed from the searches' probe folders. Only *usable* summary rows
(complete, never saturated, never late) answer :meth:`RunData.get`, which is what verdicts use;
flagged rows stay visible through :meth:`RunData.get_flagged` for display, marked.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hdrh.histogram import HdrHistogram

from analysis.percentiles import pooled_percentiles
from analysis.stats import Estimate, estimate
from common.outcomes import BadInput
from loadtests.load.histograms import HistogramSet
from loadtests.measure.capacity import finished_searches, summarise_searches
from loadtests.measure.cell_metrics import metrics_rows, percentile_histogram
from loadtests.run.matrix import IDENTITY, CellSettings
from loadtests.run.run_folder import SCHEMA_VERSION

CELL_KEY = list(IDENTITY)  # repetitions of one cell: the same identity, nothing else
# Headline figures come from undisturbed cells next to their store: a fault cell or a distant
# store is only ever asked for by name.
ANY: Any = object()  # an axis left free, where a headline lookup would fix it
HEADLINE_DEFAULTS = {
    "model": "closed", "balancer": "client", "fault": "", "sliding_session": False,
    "store_cache_s": 0, "store_delay_ms": 0.0, "planted_cost_us": 0,
    "library": (CellSettings.library, ""),  # PyJWT's JWTs, and every scheme without a JWT
}  # fmt: skip
SUMMARISED = (
    "rps", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms", "min_ms",
    "server_cpu_us_per_req", "auth_compute_mean_us", "auth_p50_us", "kdf_mean_us",
    "store_mean_us", "rps_per_server_cpu_s", "redis_cpu_us_per_req", "redis_cmds_per_req",
    "redis_bytes_per_session", "credential_bytes", "generator_cpu_pct", "error_rate",
    "achieved_rps", "late_p99_ms", "revocation_delay_ms", "replay_rtt_ms",
    "balancer_cpu_us_per_req",
    "server_cpu_overhead_us_per_req", "p50_overhead_ms", "issuer_cpu_us_per_req",
    "resource_cpu_us_per_req", "issuer_calls_per_req",
)  # fmt: skip


class RunFolderError(BadInput):
    """The folder is not a readable authbench run; the message is one line."""


def _where(frame: pd.DataFrame, axes: dict[str, Any]) -> pd.DataFrame:
    """The rows equal to every value given, or to any value of a tuple, on every axis not left
    free with ``ANY`` (one mask, one copy: the report asks hundreds of times, and a copy per axis
    made the report's tables slower than its charts)."""
    mask = np.ones(len(frame), dtype=bool)
    for axis, value in axes.items():
        if value is ANY:
            continue
        matches = frame[axis].isin(value) if isinstance(value, tuple) else frame[axis] == value
        mask &= matches.to_numpy()
    return frame[mask]


@dataclass
class RunData:
    """Everything the report needs from one run folder."""

    run_dir: Path
    manifest: dict[str, Any]
    cells: pd.DataFrame
    summary: pd.DataFrame
    capacity: pd.DataFrame
    micro: pd.DataFrame
    probes: pd.DataFrame  # every capacity probe's metrics row (open model, rising rates)
    first_complete_cell: dict[str, dict[str, Any]]

    @property
    def run_id(self) -> str:
        return str(self.manifest.get("run_id", self.run_dir.name))

    def cell_meta(self, scheme: str) -> dict[str, Any]:
        """cell.json of the scheme's first complete cell ({} when there is none)."""
        return self.first_complete_cell.get(scheme, {})

    def verify_checks(self, scheme: str) -> dict[str, bool]:
        """What the verify gate established about the scheme's target (check name → shown)."""
        return dict(self.cell_meta(scheme).get("verify", {}).get("checks", {}))

    def complete(self) -> pd.DataFrame:
        """Rows of cells that produced numbers."""
        return self.cells[self.cells["status"] == "complete"]

    def matching(self, **axes: Any) -> pd.DataFrame:
        """Summary rows matching the axes (closed model, client spreading unless said)."""
        return _where(self.summary, {**HEADLINE_DEFAULTS, **axes})

    def headline(self, **axes: Any) -> pd.DataFrame:
        """One summary row per scheme matching the axes: among several user counts, the largest."""
        return self.matching(**axes).sort_values("users").groupby("scheme", sort=False).tail(1)

    def _one(self, metric: str, usable_only: bool, **axes: Any) -> tuple[Estimate, bool] | None:
        rows = self.headline(**axes)
        if usable_only:
            rows = rows[rows["usable"]]
        if len(rows) != 1:
            return None
        found = rows.iloc[0][metric]
        if not isinstance(found, Estimate) or math.isnan(found.value):
            return None
        return found, not bool(rows.iloc[0]["usable"])

    def get(self, metric: str, **axes: Any) -> Estimate | None:
        """The metric of the usable headline cell matching the axes: what a verdict may use."""
        found = self._one(metric, True, **axes)
        return found[0] if found else None

    def get_flagged(self, metric: str, **axes: Any) -> tuple[Estimate, bool] | None:
        """The metric and whether its cell was saturated or late: for display, marked."""
        return self._one(metric, False, **axes)

    def usable_cells(self) -> pd.DataFrame:
        """Rows of complete cells that were neither saturated nor late: what verdicts use."""
        done = self.cells["status"] == "complete"
        return self.cells[done & ~self.cells["saturated"] & ~self.cells["late"]]

    def repetitions(
        self, metric: str, *, usable_only: bool = True, **axes: Any
    ) -> dict[int, float]:
        """A usable (or, asked, any complete) cell's value per repetition (the largest user count
        when several match)."""
        cells = self.usable_cells() if usable_only else self.complete()
        rows = _where(cells, {**HEADLINE_DEFAULTS, **axes})
        if rows.empty:
            return {}
        rows = rows[rows["users"] == rows["users"].max()]
        return {
            int(rep): float(value)
            for rep, value in zip(rows["repetition"], rows[metric], strict=True)
            if value == value
        }

    def pairs(
        self, metric: str, first: dict[str, Any], second: dict[str, Any], usable_only: bool = True
    ) -> list[tuple[float, float]]:
        """Two cells' values matched by repetition: interleaved, so measured close in time."""
        a = self.repetitions(metric, usable_only=usable_only, **first)
        b = self.repetitions(metric, usable_only=usable_only, **second)
        return [(a[rep], b[rep]) for rep in sorted(a.keys() & b.keys())]

    def equal_load_rate(self, scenario: str = "read") -> float | None:
        """The rate the runner chose for the equal-load cells of a scenario, if any."""
        for key, chosen in self.manifest.get("equal_load", {}).items():
            if key.startswith(f"{scenario}__"):
                return float(chosen["rate"])
        return None


def via_balancer(row: pd.Series) -> str:
    """' via nginx' for cells behind the nginx balancer, '' for client-side spreading."""
    return " via nginx" if row.get("balancer") == "nginx" else ""


def summarise(cells: pd.DataFrame, latency: dict[str, HdrHistogram] | None = None) -> pd.DataFrame:
    """One row per cell: each metric across repetitions as an Estimate with a measured interval.

    With the repetitions' latency histograms (by cell id), the percentiles are those of the
    merged histograms, never a mean of per-repetition percentiles.
    """
    done = cells[cells["status"] == "complete"]
    groups = list(done.groupby(CELL_KEY, sort=False, dropna=False))
    records = []
    for key, group in groups:
        record: dict[str, Any] = dict(zip(CELL_KEY, key, strict=True))
        record["alg"] = group["alg"].iloc[0]
        record["store"] = group["store"].iloc[0]
        record["repetitions"] = len(group)
        record["saturated"] = bool(group["saturated"].astype(bool).any())
        record["late"] = bool(group["late"].astype(bool).any())
        record["usable"] = not (record["saturated"] or record["late"])
        record["equal_load"] = bool(group["equal_load"].astype(bool).any())
        record["revocation_method"] = group["revocation_method"].dropna().max()
        record["window_s"] = float(group["window_s"].mean())
        for metric in SUMMARISED:
            values = pd.to_numeric(group[metric], errors="coerce").tolist()
            record[metric] = estimate(values)
        histograms = [
            latency[cell_id] for cell_id in group["cell_id"] if cell_id in (latency or {})
        ]
        if histograms and len(histograms) == len(group):
            record.update(pooled_percentiles(histograms))
        records.append(record)
    return pd.DataFrame.from_records(records)


def _to_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(rows)
    numeric = [c for c in frame.columns if c in SUMMARISED or c.endswith(("_ms", "_us"))]
    for column in [*numeric, "requests", "failures", "all_requests", "window_s", "rate"]:
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    for flag in ("saturated", "late", "equal_load"):
        frame[flag] = frame[flag].fillna(False).astype(bool)
    # Runs from before self-tests planted nothing.
    frame["planted_cost_us"] = pd.to_numeric(frame["planted_cost_us"]).fillna(0).astype(int)
    return frame


def latency_histograms(run_dir: Path, cells: pd.DataFrame) -> dict[str, HdrHistogram]:
    """Each complete cell's latency histogram (what its percentiles are read from), by cell id."""
    found = {}
    for cell_id, scenario in zip(cells["cell_id"], cells["scenario"], strict=True):
        path = run_dir / "cells" / cell_id / "hdr.json"
        if path.exists():
            found[cell_id] = percentile_histogram(HistogramSet.load(path), scenario)
    return found


def _first_complete_cells(run_dir: Path) -> dict[str, dict[str, Any]]:
    """cell.json of each scheme's first complete cell, read once."""
    first: dict[str, dict[str, Any]] = {}
    for meta_path in sorted((run_dir / "cells").glob("*/cell.json")):
        meta = json.loads(meta_path.read_text())
        if meta["status"] == "complete":
            first.setdefault(meta["cell"]["scheme"], meta)
    return first


def check_schema(manifest: dict[str, Any], run_dir: Path) -> None:
    """Refuse, in one line, a run folder written under another results schema."""
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise RunFolderError(
            f"{run_dir}: results schema version {version!r} is not the one this analysis reads "
            f"({SCHEMA_VERSION}); re-run it, or use the authbench version that wrote it"
        )


def load_run(run_dir: Path) -> RunData:
    """Read a run folder's raw files into tables; RunFolderError when it is not one."""
    run_dir = run_dir.resolve()
    manifest_path = run_dir / "manifest.json"
    if not manifest_path.is_file() or not (run_dir / "cells").is_dir():
        raise RunFolderError(f"{run_dir}: not a run folder (no manifest.json and cells/)")
    try:
        manifest = json.loads(manifest_path.read_text())
        check_schema(manifest, run_dir)
        rows = metrics_rows(run_dir)
        searches = finished_searches(run_dir)
        capacity = pd.DataFrame.from_records(summarise_searches(searches))
        probes = pd.DataFrame.from_records([row for s in searches for row in s["rows"]])
    except (OSError, ValueError, KeyError) as exc:
        raise RunFolderError(f"{run_dir}: unreadable run folder: {exc}") from None
    if not rows:
        raise RunFolderError(f"{run_dir}: the run has no finished cells yet")
    cells = _to_frame(rows)
    micro_path = run_dir / "micro.csv"
    micro = pd.read_csv(micro_path) if micro_path.exists() else pd.DataFrame()
    done = cells[cells["status"] == "complete"]
    return RunData(
        run_dir,
        manifest,
        cells,
        summarise(cells, latency_histograms(run_dir, done)),
        capacity,
        micro,
        probes,
        _first_complete_cells(run_dir),
    )
