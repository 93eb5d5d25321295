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
from common.schemes import parse_scheme

MIN_CURVE_RATES = 4  # a scheme's curve is drawn from this many distinct rates
PERCENTILES = (("p50_ms", "p50"), ("p90_ms", "p90"), ("p99_ms", "p99"), ("p999_ms", "p99.9"))
LATENCY_CAPTION = (
    "Exact percentiles of successful requests from the repetitions' merged HDR histograms "
    "(whiskers: bootstrap 95% interval over repetitions), at saturation (closed model, no "
    "wait): here latency is users ÷ throughput (Little's law), so compare latency on the "
    "equal-load chart instead. † marks generator-saturated cells."
)
CAPTIONS = {
    "latency_read": ("Latency at saturation: read", LATENCY_CAPTION),
    "latency_login": ("Latency at saturation: login", LATENCY_CAPTION),
    "latency_open_model": (
        "Latency at equal load",
        "Open model at one offered rate for every scheme, below each one's capacity: requests "
        "arrive on schedule whatever the latency and each is timed from its intended start "
        "(no coordinated omission); percentiles of the repetitions' merged histograms, whiskers "
        "their bootstrap 95% interval. ‡ marks cells that did not apply the offered load.",
    ),
    "throughput": (
        "Throughput at saturation",
        "Successful requests per second in the measured window (closed model); error bars are "
        "the measured 95% interval across repetitions. † marks cells where the load generator, "
        "not the server, was the limit: their throughput is a floor.",
    ),
    "cpu_per_request": (
        "Server CPU per request, and the auth step's time",
        "Left: CPU time of every server process over the window divided by successful requests, "
        "at equal load (the dashed line is none's: the framework). Right: the auth step as the "
        "server timed it per request (Server-Timing auth minus store waits and password hash, "
        "wall time), drawn apart because it is time, not CPU.",
    ),
    "cpu_vs_rate": (
        "CPU per request against load",
        "Server CPU per request at every rate this run served a read at: the capacity probes "
        "(open model, rising rates), the equal-load cells and the closed model (saturation). "
        "At a low rate each request also carries the server's fixed costs (event-loop "
        "wake-ups, timers), which saturation spreads over many more requests: that is why CPU "
        "at equal load is higher than at saturation, and why every CPU figure names its load.",
    ),
    "capacity": (
        "Capacity at the SLO",
        "Highest open-model rate that held the SLO (p99 bound, error bound, achieved ≥ 95% of "
        "planned), per server CPU core: the mean of the searches with its 95% interval, and the "
        "bound that stopped them; a hatched bar is a floor set by the load generator.",
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
        "Revocation delay, observed",
        "From the logout response to the first refused replay on each node: median (bar) and "
        "longest (whisker). A plain JWT is refused only when its access token expires.",
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
    """The run id and the machine in a corner: a chart taken out of the report keeps both."""
    environment = run.manifest.get("environment", {})
    machine = f"{environment.get('cpu_model', 'unknown CPU')}, {environment.get('cpu_count')} CPUs"
    figure.text(0.995, 0.005, f"run {run.run_id} · {machine}", ha="right", va="bottom",
                fontsize=7, color="#666666")  # fmt: skip


def save_figure(figure: Figure, run: RunData, out: Path, name: str) -> tuple[Path, Path]:
    """Stamp the run id, then save the figure as PNG and SVG."""
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


def _marked(row) -> str:  # type: ignore[no-untyped-def]
    """The scheme's label, marked when its cell was saturated (†) or late (‡)."""
    mark = " †" if row["saturated"] else (" ‡" if row["late"] else "")
    return f"{row['scheme']}{mark}"


def _whiskers(
    estimates: list[Estimate], scale: float = 1.0
) -> tuple[list[float], list[list[float]]]:
    """Bar heights and their 95% interval as matplotlib's yerr (none where there is none)."""
    values, lows, highs = [], [], []
    for value in estimates:
        values.append(value.value * scale if not math.isnan(value.value) else 0.0)
        lows.append(max(0.0, (value.value - value.low) * scale) if not math.isnan(value.low) else 0)
        highs.append(
            max(0.0, (value.high - value.value) * scale) if not math.isnan(value.high) else 0
        )
    return values, [lows, highs]


def _bars(axis: Axes, rows: list, metric: str, scale: float = 1.0) -> None:  # type: ignore[type-arg]
    names = [row["scheme"] for row in rows]
    values, errors = _whiskers([row[metric] for row in rows], scale)
    axis.bar(
        range(len(rows)),
        values,
        yerr=errors,
        capsize=3,
        color=[colour(n) for n in names],
        edgecolor="black",
        linewidth=0.4,
    )
    axis.set_xticks(
        range(len(rows)), [_marked(r) for r in rows], rotation=45, ha="right", fontsize=8
    )
    axis.grid(axis="y", alpha=0.3)


def latency_chart(run: RunData, out: Path, scenario: str) -> Chart | None:
    rows = _rows(run, scenario)
    if not rows:
        return None
    title = f"{scenario}: latency at saturation (single node, closed model)"
    return _percentile_chart(run, out, rows, title, f"latency_{scenario}")


def open_model_chart(run: RunData, out: Path) -> Chart | None:
    rate = run.equal_load_rate("read")
    frame = run.headline(scenario="read", topology="single", model="open", rate=rate)
    if rate is None or frame.empty:
        return None
    rows = [frame[frame["scheme"] == s].iloc[0] for s in ordered(frame["scheme"].tolist())]
    title = f"read at equal load: {rate:g} req/s offered to every scheme (open model)"
    return _percentile_chart(run, out, rows, title, "latency_open_model")


def _percentile_chart(run: RunData, out: Path, rows: list, title: str, name: str) -> Chart:  # type: ignore[type-arg]
    figure, axis = plt.subplots(figsize=(10, 4.2))
    width = 0.8 / len(PERCENTILES)
    for index, (metric, label) in enumerate(PERCENTILES):
        positions = [i + (index - 1.5) * width for i in range(len(rows))]
        values, errors = _whiskers([row[metric] for row in rows])
        axis.bar(
            positions,
            values,
            width,
            yerr=errors,
            capsize=2,
            error_kw={"linewidth": 0.7},
            label=label,
            color=[colour(r["scheme"]) for r in rows],
            alpha=0.45 + 0.18 * index,
            edgecolor="black",
            linewidth=0.3,
        )
    axis.set_xticks(
        range(len(rows)), [_marked(r) for r in rows], rotation=45, ha="right", fontsize=8
    )
    axis.set_yscale("log")
    axis.set_ylabel("latency (ms, log scale)")
    axis.set_title(title)
    axis.legend(
        title="percentile (lighter → higher)",
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.01, 1),
    )  # beside the bars, never over them
    axis.grid(axis="y", alpha=0.3, which="both")
    png, svg = save_figure(figure, run, out, name)
    return _chart(name, png, svg)


def throughput_chart(run: RunData, out: Path) -> Chart | None:
    scenarios = [s for s in ("read", "login") if _rows(run, s)]
    if not scenarios:
        return None
    figure, axes = plt.subplots(1, len(scenarios), figsize=(6 * len(scenarios), 4.2), squeeze=False)
    for axis, scenario in zip(axes[0], scenarios, strict=True):
        rows = _rows(run, scenario)
        _bars(axis, rows, "rps")
        axis.set_ylabel("throughput (requests/s)")
        axis.set_title(f"{scenario} (single node)")
    png, svg = save_figure(figure, run, out, "throughput")
    return _chart("throughput", png, svg)


def cpu_split_chart(run: RunData, out: Path) -> Chart | None:
    rate = run.equal_load_rate("read")
    frame = run.headline(scenario="read", topology="single", model="open", rate=rate)
    if rate is None or frame.empty:
        return None
    rows = [frame[frame["scheme"] == s].iloc[0] for s in ordered(frame["scheme"].tolist())]
    figure, (cpu_axis, auth_axis) = plt.subplots(1, 2, figsize=(12, 4.4))
    _bars(cpu_axis, rows, "server_cpu_us_per_req")
    baseline = [r for r in rows if r["scheme"] == "none"]
    if baseline:
        cpu_axis.axhline(
            baseline[0]["server_cpu_us_per_req"].value, color="black", linestyle="--",
            linewidth=0.8, label="none (the framework)",
        )  # fmt: skip
        cpu_axis.legend(fontsize=8)
    cpu_axis.set_ylabel("server CPU per request (µs)")
    cpu_axis.set_title(f"read at {rate:g} req/s: server CPU per request")
    authed = [r for r in rows if r["scheme"] != "none"]
    _bars(auth_axis, authed, "auth_compute_mean_us")
    auth_axis.set_ylabel("auth step per request (µs, wall time)")
    auth_axis.set_title("the auth step alone (Server-Timing, not CPU)")
    png, svg = save_figure(figure, run, out, "cpu_per_request")
    return _chart("cpu_per_request", png, svg)


def capacity_chart(run: RunData, out: Path) -> Chart | None:
    if run.capacity.empty:
        return None
    frame = run.capacity[run.capacity["scenario"] == "read"]
    order = ordered(frame["scheme"].tolist())
    rows = [frame[frame["scheme"] == s].iloc[0] for s in order]
    figure, axis = plt.subplots(figsize=(9, 4.2))
    values = [float(r["capacity_rps_per_server_cpu"]) for r in rows]
    low = [float(r.get("capacity_lo_per_server_cpu", math.nan)) for r in rows]
    high = [float(r.get("capacity_hi_per_server_cpu", math.nan)) for r in rows]
    errors = [
        [0 if math.isnan(lo) else v - lo for v, lo in zip(values, low, strict=True)],
        [0 if math.isnan(hi) else hi - v for v, hi in zip(values, high, strict=True)],
    ]
    bars = axis.bar(
        range(len(rows)),
        values,
        yerr=errors,
        capsize=4,
        color=[colour(r["scheme"]) for r in rows],
        edgecolor="black",
        linewidth=0.4,
    )
    for index, row in enumerate(rows):
        floor = row["bound"] == "generator"
        if floor:
            bars[index].set_hatch("//")  # the generator's limit: the server can do more
        label = "floor (generator)" if floor else row["bound"]
        if int(row.get("searches", 1) or 1) < 2:
            label += ", 1 search"
        top = values[index] if math.isnan(high[index]) else high[index]
        axis.annotate(label, (index, top), ha="center", va="bottom", fontsize=7)
    axis.set_xticks(range(len(rows)), [r["scheme"] for r in rows], rotation=45, ha="right")
    axis.set_ylabel("requests/s per server CPU core")
    slo = rows[0]["slo_p99_ms"] if rows else 0
    axis.set_title(
        f"read: capacity at p99 ≤ {slo:g} ms, 95% interval over the searches "
        "(label: what stopped them)"
    )
    axis.grid(axis="y", alpha=0.3)
    png, svg = save_figure(figure, run, out, "capacity")
    return _chart("capacity", png, svg)


def cpu_vs_rate_chart(run: RunData, out: Path) -> Chart | None:
    """Server CPU per request against the rate served: the operating point each figure has."""
    points: dict[str, list[tuple[float, float, str]]] = {}
    probes = run.probes
    if not probes.empty:
        for _, row in probes[(probes["status"] == "complete") & ~probes["saturated"]].iterrows():
            points.setdefault(row["scheme"], []).append(
                (row["achieved_rps"], row["server_cpu_us_per_req"], "probe")
            )
    cells = run.complete()
    cells = cells[(cells["scenario"] == "read") & (cells["topology"] == "single")]
    cells = cells[(cells["fault"].fillna("") == "") & (cells["store_delay_ms"] == 0)]
    for _, row in cells.iterrows():
        closed = row["model"] == "closed"
        rate = row["rps"] if closed else row["achieved_rps"]
        kind = "saturation" if closed else "equal load" if row["equal_load"] else "probe"
        points.setdefault(row["scheme"], []).append((rate, row["server_cpu_us_per_req"], kind))
    shown = {
        scheme: [p for p in found if p[0] == p[0] and p[1] == p[1]]
        for scheme, found in points.items()
        if len({round(p[0], -1) for p in found}) >= MIN_CURVE_RATES
    }
    if not shown:
        return None
    figure, axis = plt.subplots(figsize=(9, 4.6))
    markers = {"probe": "o", "equal load": "D", "saturation": "s"}
    for scheme in ordered(list(shown)):
        found = sorted(shown[scheme])
        axis.plot([p[0] for p in found], [p[1] for p in found], color=colour(scheme), alpha=0.4)
        for kind, marker in markers.items():
            mine = [p for p in found if p[2] == kind]
            axis.scatter(
                [p[0] for p in mine], [p[1] for p in mine], color=colour(scheme), marker=marker,
                s=22, label=f"{scheme} ({kind})" if mine else None,
            )  # fmt: skip
    axis.set_xlabel("requests/s served")
    axis.set_ylabel("server CPU per request (µs)")
    axis.set_title("CPU per request against load: every CPU figure has an operating point")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=6, ncol=3)
    png, svg = save_figure(figure, run, out, "cpu_vs_rate")
    return _chart("cpu_vs_rate", png, svg)


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
    png, svg = save_figure(figure, run, out, "store_overhead")
    return _chart("store_overhead", png, svg)


def credential_chart(run: RunData, out: Path) -> Chart | None:
    rows = [r for r in _rows(run, "read") if r["scheme"] != "none"]
    if not rows:
        return None
    figure, axis = plt.subplots(figsize=(9, 4))
    _bars(axis, rows, "credential_bytes")
    axis.set_ylabel("credential header on the wire (bytes)")
    axis.set_title("Credential size sent with every request")
    png, svg = save_figure(figure, run, out, "credential_size")
    return _chart("credential_size", png, svg)


def scaling_chart(run: RunData, out: Path) -> Chart | None:
    read = run.matching(scenario="read")
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
            cpu = points["server_cpu_us_per_req"]
            axes[1].errorbar(
                nodes,
                [e.value for e in cpu],
                yerr=_whiskers(cpu)[1],
                capsize=3,
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
    png, svg = save_figure(figure, run, out, "scaling")
    return _chart("scaling", png, svg)


def revocation_chart(run: RunData, out: Path) -> Chart | None:
    frame = run.headline(scenario="revocation", topology="single")
    if frame.empty:
        return None
    rows = [frame[frame["scheme"] == s].iloc[0] for s in ordered(frame["scheme"].tolist())]
    # A cell that observed no revocation (NaN) has no bar; with none left there is no chart,
    # where a log axis of nothing but NaN would stop the report.
    rows = [r for r in rows if not math.isnan(r["revocation_delay_ms"].value)]
    if not rows:
        return None
    floor_ms = 0.01  # a refusal at the first replay shows as this, so the log axis can hold it
    medians = [max(r["revocation_delay_ms"].value, floor_ms) for r in rows]
    # max(mid, NaN) is mid: a cell without a longest delay draws no whisker
    longest = [max(mid, r["max_ms"].value) for r, mid in zip(rows, medians, strict=True)]
    figure, axis = plt.subplots(figsize=(9, 4))
    axis.bar(
        range(len(rows)),
        medians,
        yerr=[[0] * len(rows), [hi - mid for hi, mid in zip(longest, medians, strict=True)]],
        capsize=3,
        color=[colour(r["scheme"]) for r in rows],
        edgecolor="black",
        linewidth=0.4,
    )
    labels = [
        f"{r['scheme']} (TTL {r['access_ttl']:g} s)" if r["access_ttl"] == r["access_ttl"]
        and parse_scheme(r["scheme"]).plain_jwt else r["scheme"]
        for r in rows
    ]  # fmt: skip
    axis.set_xticks(range(len(rows)), labels, rotation=30, ha="right", fontsize=8)
    axis.set_yscale("log")
    axis.set_ylabel("logout response → refused (ms, log)")
    axis.set_title("Revocation delay, observed on every node")
    axis.grid(axis="y", alpha=0.3, which="both")
    png, svg = save_figure(figure, run, out, "revocation")
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
            pairs.append((micro_row["scheme"], float(micro_row["median_us"]), server))
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
    server_values, server_errors = _whiskers([p[2] for p in pairs])
    axis.bar(
        [p + 0.2 for p in positions],
        server_values,
        0.4,
        yerr=server_errors,
        capsize=3,
        label="in-server auth step",
        color=[colour(p[0]) for p in pairs],
        edgecolor="black",
        linewidth=0.3,
    )
    for index, (_, micro_us, server) in enumerate(pairs):
        server_us = server.value
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
    png, svg = save_figure(figure, run, out, "micro_vs_server")
    return _chart("micro_vs_server", png, svg)


def draw_all(run: RunData, out: Path) -> list[Chart]:
    """Every chart the run's data supports, in report order."""
    out.mkdir(parents=True, exist_ok=True)
    makers: list[Callable[[RunData, Path], Chart | None]] = [
        lambda r, o: latency_chart(r, o, "read"),
        lambda r, o: latency_chart(r, o, "login"),
        open_model_chart,
        throughput_chart,
        capacity_chart,
        cpu_vs_rate_chart,
        cpu_split_chart,
        store_chart,
        credential_chart,
        scaling_chart,
        revocation_chart,
        micro_chart,
    ]
    return [chart for make in makers if (chart := make(run, out)) is not None]
