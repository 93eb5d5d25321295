"""The report's charts (matplotlib, PNG and SVG): one colour and order per scheme everywhere,
labelled axes with units, the run id in a corner. Each chart is drawn from the tidy tables only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from analysis.palette import colour, ordered, scheme_rank
from analysis.stats import Estimate
from analysis.tidy import RunData

PERCENTILES = (("p50_ms", "p50"), ("p90_ms", "p90"), ("p99_ms", "p99"), ("p999_ms", "p99.9"))
LATENCY_CAPTION = (
    "Exact percentiles from the HDR histograms of the measured window. In a closed model latency "
    "grows with the server's cost per request."
)
CAPTIONS = {
    "latency_read": ("Latency percentiles: read", LATENCY_CAPTION),
    "latency_login": ("Latency percentiles: login", LATENCY_CAPTION),
    "latency_open_model": (
        "Latency at a fixed arrival rate",
        "Open model: requests arrive on schedule whatever the latency, and each is timed from its "
        "intended start, so queueing delay is counted (no coordinated omission).",
    ),
    "throughput": (
        "Throughput",
        "Requests per second in the measured window; error bars are the 95% interval (the assumed "
        "noise band with one repetition). 'sat.' marks cells where the load generator, not the "
        "server, was the limit.",
    ),
    "cpu_per_request": (
        "Server CPU per request",
        "CPU time of every server process over the window divided by requests, split into the "
        "none baseline, the auth step as the server timed it (without store waits and password "
        "hashing), and the rest.",
    ),
    "store_overhead": (
        "Store overhead",
        "Per /me request: Redis commands and Redis CPU; per login: bytes of Redis memory it keeps "
        "alive (MEMORY USAGE of its session or refresh-family key).",
    ),
    "credential_size": (
        "Credential size",
        "Bytes of the Cookie or Authorization header line each authenticated request carries.",
    ),
    "scaling": (
        "Scaling from 1 to N nodes",
        "Consecutive requests of a user land on different nodes. On a machine with fewer cores "
        "than nodes the nodes share CPUs, so this shows the cost of spreading, not added capacity.",
    ),
    "revocation": (
        "Revocation delay",
        "Median time from logout until every node refuses the old credential; a plain JWT stays "
        "valid until it expires.",
    ),
    "micro_vs_server": (
        "Micro vs in-server cost",
        "The same TokenService.verify_access timed alone (micro.csv) and inside the loaded server "
        "(Server-Timing auth step); the ratio is the price of cache and scheduling pressure.",
    ),
}


@dataclass(frozen=True)
class Chart:
    """A saved chart and what the report says about it."""

    name: str
    title: str
    caption: str
    png: Path
    svg: Path


def _chart(name: str, png: Path, svg: Path) -> Chart:
    title, caption = CAPTIONS[name]
    return Chart(name, title, caption, png, svg)


def _stamp(figure: Figure, run: RunData) -> None:
    figure.text(
        0.995, 0.005, f"run {run.run_id}", ha="right", va="bottom", fontsize=7, color="#666666"
    )


def _save(figure: Figure, run: RunData, out: Path, name: str) -> tuple[Path, Path]:
    _stamp(figure, run)
    figure.tight_layout(rect=(0, 0.02, 1, 1))
    png, svg = out / f"{name}.png", out / f"{name}.svg"
    figure.savefig(png, dpi=110)
    figure.savefig(svg)
    plt.close(figure)
    return png, svg


def _rows(run: RunData, scenario: str, topology: str = "single"):  # type: ignore[no-untyped-def]
    frame = run.headline(scenario=scenario, topology=topology)
    order = ordered(frame["scheme"].tolist())
    return [frame[frame["scheme"] == scheme].iloc[0] for scheme in order]


def _bars(axis: Axes, rows: list, metric: str, scale: float = 1.0) -> None:  # type: ignore[type-arg]
    names = [row["scheme"] for row in rows]
    values, lows, highs = [], [], []
    for row in rows:
        value: Estimate = row[metric]
        values.append(value.value * scale if not math.isnan(value.value) else 0.0)
        lows.append(max(0.0, (value.value - value.low) * scale) if not math.isnan(value.low) else 0)
        highs.append(
            max(0.0, (value.high - value.value) * scale) if not math.isnan(value.high) else 0
        )
    axis.bar(
        range(len(rows)),
        values,
        yerr=[lows, highs],
        capsize=3,
        color=[colour(n) for n in names],
        edgecolor="black",
        linewidth=0.4,
    )
    axis.set_xticks(range(len(rows)), names, rotation=45, ha="right", fontsize=8)
    axis.grid(axis="y", alpha=0.3)


def latency_chart(run: RunData, out: Path, scenario: str) -> Chart | None:
    rows = _rows(run, scenario)
    if not rows:
        return None
    title = f"{scenario}: latency percentiles per scheme (single node, closed model)"
    return _percentile_chart(run, out, rows, title, f"latency_{scenario}")


def open_model_chart(run: RunData, out: Path) -> Chart | None:
    frame = run.headline(scenario="read", topology="single", model="open")
    if frame.empty:
        return None
    rows = [frame[frame["scheme"] == s].iloc[0] for s in ordered(frame["scheme"].tolist())]
    rates = ", ".join(sorted({f"{r['rps'].value:.0f}" for r in rows}))
    title = f"read at a fixed arrival rate (open model; achieved req/s: {rates})"
    return _percentile_chart(run, out, rows, title, "latency_open_model")


def _percentile_chart(run: RunData, out: Path, rows: list, title: str, name: str) -> Chart:  # type: ignore[type-arg]
    figure, axis = plt.subplots(figsize=(10, 4.2))
    width = 0.8 / len(PERCENTILES)
    for index, (metric, label) in enumerate(PERCENTILES):
        positions = [i + (index - 1.5) * width for i in range(len(rows))]
        values = [row[metric].value for row in rows]
        axis.bar(
            positions,
            values,
            width,
            label=label,
            color=[colour(r["scheme"]) for r in rows],
            alpha=0.45 + 0.18 * index,
            edgecolor="black",
            linewidth=0.3,
        )
    axis.set_xticks(
        range(len(rows)), [r["scheme"] for r in rows], rotation=45, ha="right", fontsize=8
    )
    axis.set_yscale("log")
    axis.set_ylabel("latency (ms, log scale)")
    axis.set_title(title)
    axis.legend(title="percentile (lighter → higher)", fontsize=8)
    axis.grid(axis="y", alpha=0.3, which="both")
    png, svg = _save(figure, run, out, name)
    return _chart(name, png, svg)


def throughput_chart(run: RunData, out: Path) -> Chart | None:
    scenarios = [s for s in ("read", "login") if _rows(run, s)]
    if not scenarios:
        return None
    figure, axes = plt.subplots(1, len(scenarios), figsize=(6 * len(scenarios), 4.2), squeeze=False)
    for axis, scenario in zip(axes[0], scenarios, strict=True):
        rows = _rows(run, scenario)
        _bars(axis, rows, "rps")
        for index, row in enumerate(rows):
            if row["saturated"]:
                axis.annotate(
                    "sat.", (index, row["rps"].value), ha="center", va="bottom", fontsize=7
                )
        axis.set_ylabel("throughput (requests/s)")
        axis.set_title(f"{scenario} (single node)")
    png, svg = _save(figure, run, out, "throughput")
    return _chart("throughput", png, svg)


def cpu_split_chart(run: RunData, out: Path) -> Chart | None:
    scenarios = [s for s in ("read", "login") if _rows(run, s)]
    if not scenarios:
        return None
    figure, axes = plt.subplots(1, len(scenarios), figsize=(6 * len(scenarios), 4.4), squeeze=False)
    parts = (
        ("cpu_framework_us", "framework (none baseline)", "#bdbdbd"),
        ("cpu_auth_us", "auth step (Server-Timing)", "#e6550d"),
        ("cpu_rest_us", "rest (store client, I/O, scheduling)", "#3182bd"),
    )
    for axis, scenario in zip(axes[0], scenarios, strict=True):
        rows = _rows(run, scenario)
        bottom = [0.0] * len(rows)
        for metric, label, shade in parts:
            heights = [
                max(0.0, r[metric].value) if not math.isnan(r[metric].value) else 0.0 for r in rows
            ]
            axis.bar(
                range(len(rows)),
                heights,
                bottom=bottom,
                label=label,
                color=shade,
                edgecolor="black",
                linewidth=0.3,
            )
            bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
        axis.set_xticks(
            range(len(rows)), [r["scheme"] for r in rows], rotation=45, ha="right", fontsize=8
        )
        axis.set_ylabel("server CPU per request (µs)")
        axis.set_title(f"{scenario}: where the server's CPU goes")
        axis.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    png, svg = _save(figure, run, out, "cpu_per_request")
    return _chart("cpu_per_request", png, svg)


def store_chart(run: RunData, out: Path) -> Chart | None:
    rows = [r for r in _rows(run, "read") if r["scheme"] != "none"]
    if not rows:
        return None
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    specs = (
        ("redis_cmds_per_req", "Redis commands per request"),
        ("redis_cpu_us_per_req", "Redis CPU per request (µs)"),
        ("redis_bytes_per_session", "Redis bytes per live login"),
    )
    for axis, (metric, label) in zip(axes, specs, strict=True):
        _bars(axis, rows, metric)
        axis.set_ylabel(label)
    axes[1].set_title("read: what each scheme asks of the shared store")
    png, svg = _save(figure, run, out, "store_overhead")
    return _chart("store_overhead", png, svg)


def credential_chart(run: RunData, out: Path) -> Chart | None:
    rows = [r for r in _rows(run, "read") if r["scheme"] != "none"]
    if not rows:
        return None
    figure, axis = plt.subplots(figsize=(9, 4))
    _bars(axis, rows, "credential_bytes")
    axis.set_ylabel("credential header on the wire (bytes)")
    axis.set_title("Credential size sent with every request")
    png, svg = _save(figure, run, out, "credential_size")
    return _chart("credential_size", png, svg)


def scaling_chart(run: RunData, out: Path) -> Chart | None:
    read = run.closed_model()
    read = read[read["scenario"] == "read"]
    multi = set(read[read["topology"] == "multi"]["scheme"])
    if not multi:
        return None
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for scheme in ordered(list(multi)):
        for balancer, style in (("client", "-"), ("nginx", "--")):
            points = read[
                (read["scheme"] == scheme)
                & ((read["balancer"] == balancer) | (read["topology"] == "single"))
            ]
            points = points.sort_values("nodes")
            if not (points["topology"] == "multi").any():
                continue
            label = scheme if balancer == "client" else f"{scheme} via nginx"
            nodes = points["nodes"].tolist()
            rps = points["rps"].tolist()
            axes[0].errorbar(
                nodes,
                [e.value for e in rps],
                yerr=[[e.value - e.low for e in rps], [e.high - e.value for e in rps]],
                marker="o",
                capsize=3,
                label=label,
                color=colour(scheme),
                linestyle=style,
            )
            axes[1].plot(
                nodes,
                [e.value for e in points["server_cpu_us_per_req"]],
                marker="o",
                label=label,
                color=colour(scheme),
                linestyle=style,
            )
    axes[0].set_ylabel("throughput (requests/s)")
    axes[1].set_ylabel("server CPU per request (µs, all nodes)")
    for axis in axes:
        axis.set_xlabel("nodes")
        axis.set_xticks(sorted(read["nodes"].unique()))
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    axes[0].set_title("read: 1 → N nodes sharing one Redis")
    png, svg = _save(figure, run, out, "scaling")
    return _chart("scaling", png, svg)


def revocation_chart(run: RunData, out: Path) -> Chart | None:
    frame = run.headline(scenario="revocation", topology="single")
    if frame.empty:
        return None
    rows = [frame[frame["scheme"] == s].iloc[0] for s in ordered(frame["scheme"].tolist())]
    figure, axis = plt.subplots(figsize=(9, 4))
    _bars(axis, rows, "p50_ms", scale=1 / 1000)
    axis.set_yscale("log")
    axis.set_ylabel("logout → refused on every node (s, log)")
    axis.set_title("Revocation delay")
    png, svg = _save(figure, run, out, "revocation")
    return _chart("revocation", png, svg)


def micro_chart(run: RunData, out: Path) -> Chart | None:
    if run.micro.empty:
        return None
    verify = run.micro[(run.micro["layer"] == "pyjwt") & (run.micro["op"] == "verify_access")]
    pairs = []
    for _, micro_row in verify.iterrows():
        server = run.get(
            "auth_compute_mean_us", scheme=micro_row["scheme"], scenario="read", topology="single"
        )
        if server is not None:
            pairs.append((micro_row["scheme"], float(micro_row["median_us"]), server.value))
    if not pairs:
        return None
    pairs.sort(key=lambda p: scheme_rank(p[0]))
    figure, axis = plt.subplots(figsize=(10, 4.2))
    positions = range(len(pairs))
    axis.bar(
        [p - 0.2 for p in positions],
        [p[1] for p in pairs],
        0.4,
        label="micro (in-process)",
        color="#bdbdbd",
        edgecolor="black",
        linewidth=0.3,
    )
    axis.bar(
        [p + 0.2 for p in positions],
        [p[2] for p in pairs],
        0.4,
        label="in-server auth step",
        color=[colour(p[0]) for p in pairs],
        edgecolor="black",
        linewidth=0.3,
    )
    for index, (_, micro_us, server_us) in enumerate(pairs):
        axis.annotate(
            f"×{server_us / micro_us:.2f}",
            (index + 0.2, server_us),
            ha="center",
            va="bottom",
            fontsize=7,
        )
    axis.set_xticks(list(positions), [p[0] for p in pairs], rotation=45, ha="right", fontsize=8)
    axis.set_ylabel("verify an access token (µs)")
    axis.set_title("Micro benchmark vs the same work inside the loaded server (read)")
    axis.legend(fontsize=8)
    axis.grid(axis="y", alpha=0.3)
    png, svg = _save(figure, run, out, "micro_vs_server")
    return _chart("micro_vs_server", png, svg)


def draw_all(run: RunData, out: Path) -> list[Chart]:
    """Every chart the run's data supports, in report order."""
    out.mkdir(parents=True, exist_ok=True)
    makers: list[Callable[[RunData, Path], Chart | None]] = [
        lambda r, o: latency_chart(r, o, "read"),
        lambda r, o: latency_chart(r, o, "login"),
        open_model_chart,
        throughput_chart,
        cpu_split_chart,
        store_chart,
        credential_chart,
        scaling_chart,
        revocation_chart,
        micro_chart,
    ]
    return [chart for make in makers if (chart := make(run, out)) is not None]
