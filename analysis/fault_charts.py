"""Charts of the resilience section: fault timelines and latency against store distance.

A timeline shows, per 100 ms of one fault cell's window, the answers stacked by status (2xx,
401, 5xx, no connection) and the p99 of the successful ones, with the fault shaded; every value
comes from the cell's raw ``timeline.json`` and ``fault.json``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import NullFormatter, ScalarFormatter

from analysis.charts import Chart, save_figure
from analysis.palette import colour, ordered
from analysis.tidy import RunData
from loadtests.measure.fault_metrics import p99

STATUS_CLASSES = (
    ("2xx", "#41ab5d", lambda status: 200 <= status < 300),
    ("401", "#fd8d3c", lambda status: status == 401),
    ("5xx", "#cb181d", lambda status: status >= 500),
    ("no connection", "#636363", lambda status: status == 0),
)


def timeline_charts(run: RunData, out: Path, faults: tuple[str, ...]) -> list[Chart]:
    """One figure per fault of ``faults`` (and persistence): a panel per scheme, first
    repetition."""
    cells = run.complete()
    cells = cells[cells["fault"].isin(faults) & (cells["repetition"] == 1)]
    charts = []
    for (fault, persistence), group in cells.groupby(["fault", "persistence"], sort=True):
        schemes = ordered(group["scheme"].tolist())
        figure, axes = plt.subplots(
            len(schemes), 1, figsize=(9, 2.1 * len(schemes) + 0.6), sharex=True, squeeze=False
        )
        for axis, scheme in zip(axes[:, 0], schemes, strict=True):
            row = group[group["scheme"] == scheme].iloc[0]
            _timeline_panel(axis, run.run_dir / "cells" / str(row["cell_id"]), scheme)
        axes[-1, 0].set_xlabel("seconds into the measured window (by intended start)")
        axes[0, 0].legend(loc="upper left", fontsize=7, ncol=5)
        suffix = "-aof" if persistence == "aof" else ""
        name = f"timeline-{fault}{suffix}"
        png, svg = save_figure(figure, run, out, name)
        persisted = " (Redis with an append-only file)" if persistence == "aof" else ""
        charts.append(
            Chart(
                name,
                f"Timeline: {fault}{persisted}",
                "Answers per 100 ms stacked by status (left axis) and the p99 of the successful "
                "ones (black line, right axis); the fault is shaded. From timeline.json and "
                "fault.json of each cell's first repetition.",
                png,
                svg,
            )
        )
    return charts


def _timeline_panel(axis: plt.Axes, cell_dir: Path, scheme: str) -> None:
    timeline = json.loads((cell_dir / "timeline.json").read_text())
    fault = json.loads((cell_dir / "fault.json").read_text())
    width, origin = timeline["bucket_s"], timeline["window_start"]
    seen = [row[0] for row in timeline["counts"]] or [0]
    buckets = list(range(min(seen), max(seen) + 1))  # every 100 ms, empty ones included
    x = [bucket * width for bucket in buckets]
    bottom = [0.0] * len(buckets)
    for label, shade, matches in STATUS_CLASSES:
        heights = [
            float(sum(c for b, _n, s, c in timeline["counts"] if b == bucket and matches(s)))
            for bucket in buckets
        ]
        axis.bar(x, heights, width=width, bottom=bottom, align="edge", color=shade, label=label)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    start = fault.get("started", origin) - origin
    end = max(fault.get("ended", origin) - origin, start + width / 4)
    axis.axvspan(start, end, color="#fee08b", alpha=0.6, zorder=0)
    axis.set_ylabel(f"{scheme}\nanswers", fontsize=8)
    latencies = timeline["ok_latency_ms"]
    # No successful answer in a bucket is a gap in the line, never a straight line across it.
    tails = [p99(latencies[str(b)]) if latencies.get(str(b)) else math.nan for b in buckets]
    twin = axis.twinx()
    twin.plot([v + width / 2 for v in x], tails, color="black", linewidth=1)
    twin.set_yscale("log")
    twin.yaxis.set_major_formatter(ScalarFormatter())
    twin.yaxis.set_minor_formatter(NullFormatter())
    twin.set_ylabel("p99 ms", fontsize=8)


def distance_chart(
    run: RunData, rows: pd.DataFrame, saturated: pd.DataFrame, out: Path
) -> Chart | None:
    """p50 and p99 at the fixed rate, and throughput at saturation, against the store delay."""
    if rows.empty:
        return None
    panels = 3 if not saturated.empty else 2
    figure, axes = plt.subplots(1, panels, figsize=(5 * panels, 4))
    plotted = [(axes[0], "p50_ms", rows), (axes[1], "p99_ms", rows)]
    if panels == 3:
        plotted.append((axes[2], "rps", saturated))
    for axis, metric, frame in plotted:
        for (scheme, sliding), group in frame.groupby(["scheme", "sliding_session"], sort=False):
            means = group.groupby("store_delay_ms")[metric].mean().sort_index()
            label = f"{scheme} (sliding)" if sliding else scheme
            axis.plot(means.index, means.values, "--" if sliding else "-", marker="o",
                      label=label, color=colour(scheme))  # fmt: skip
        axis.set_xlabel("store delay added per round trip (ms)")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("latency (ms)")
    axes[0].set_title("p50 at one fixed open-model rate", fontsize=10)
    axes[1].set_title("p99 at one fixed open-model rate", fontsize=10)
    if panels == 3:
        axes[2].set_ylabel("requests/s")
        axes[2].set_title("throughput at saturation (closed)", fontsize=10)
    axes[0].legend(fontsize=8)
    png, svg = save_figure(figure, run, out, "store-distance")
    return Chart(
        "store-distance",
        "Latency and throughput against store distance",
        "Reads while every Redis round trip of the nodes passes the delay proxy; a plain JWT "
        "never asks Redis (the control). Means over repetitions; the resilience table lists "
        "each value and the delay really measured.",
        png,
        svg,
    )
