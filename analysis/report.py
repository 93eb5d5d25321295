"""``report.html`` (one self-contained file, figures embedded) and ``report.md`` (figures linked).

Both render the same content in the same order: the decision table, the claims checked against
this run, the charts, then methodology and environment, then warnings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from analysis.charts import Chart, draw_all
from analysis.claims import NOT_MEASURED, Claim, check_claims, measured_by
from analysis.cost import (
    OPERATING_POINT,
    cheapest,
    sizing_table,
    sizings,
    unmet_windows,
    what_would_change,
)
from analysis.decision import HEADERS, capacity_text, decision_rows
from analysis.library import library_section
from analysis.microservices import microservices_section
from analysis.page import (
    Block,
    Heading,
    Image,
    Items,
    Page,
    Table,
    Text,
    render_html,
    render_markdown,
)
from analysis.resilience import Section, resilience_section
from analysis.stats import MIN_TAIL_REQUESTS
from analysis.store_cache import store_cache_section
from analysis.summary import write_summary
from analysis.thresholds import Check, check_thresholds
from analysis.tidy import RunData
from analysis.ttl_chart import ttl_chart
from analysis.verdicts import margins_from
from analysis.workload import Workload, load_workload
from loadtests.measure.calibration_figures import REFERENCES, calibration_ratio

WORKLOAD_FILE = "workload.toml"
WIDE_INTERVAL = 0.30
DRIFT_WARNING = 0.10


@dataclass
class Report:
    """The report's content, independent of its format."""

    run: RunData
    title: str
    decision: list[list[str]]
    claims: list[Claim]
    charts: list[Chart]
    methodology: list[tuple[str, str]]
    capacity: list[list[str]] = field(default_factory=list)
    workload: WorkloadSection | None = None
    resilience: Section | None = None
    microservices: Section | None = None
    store_cache: Section | None = None
    library: Section | None = None
    warnings: list[str] = field(default_factory=list)
    thresholds: list[Check] = field(default_factory=list)

    def answer(self) -> list[str]:
        """The first screen: each claim's verdict in a line, the workload's answer, thresholds."""
        lines = []
        for claim in self.claims:
            where = (
                f" (matrix {measured_by(claim)} measures it)"
                if claim.verdict == NOT_MEASURED
                else ""
            )
            lines.append(f"{claim.verdict.upper()}{where}: {claim.claim}")
        if self.workload:
            lines.append(f"Your workload: {self.workload.verdict}")
        else:
            lines.append(
                "Your workload: not sized (authbench decide RUN --workload FILE names the "
                "cheapest scheme that meets it)"
            )
        if self.thresholds:
            broken = [check for check in self.thresholds if not check.passed]
            lines.append(
                f"Thresholds: {len(self.thresholds) - len(broken)} of {len(self.thresholds)} held"
                + "".join(f"; VIOLATED {check.rule}" for check in broken)
            )
        return lines


@dataclass
class WorkloadSection:
    """The team's workload sized on this run: what was asked, the table, the answer."""

    asked: str
    headers: list[str]
    rows: list[list[str]]
    verdict: str
    caveats: list[str]


def workload_section(run: RunData) -> tuple[WorkloadSection | None, Workload | None]:
    """The section for the run folder's workload.toml (left there by ``make decide``), if any."""
    path = run.run_dir / WORKLOAD_FILE
    if not path.exists():
        return None, None
    workload = load_workload(path)
    rows = sizings(run, workload)
    table = sizing_table(rows, workload)
    asked = ", ".join(
        f"{name.replace('_', ' ')} {value:g}"
        for name, value in vars(workload).items()
        if value is not None
    )
    caveats = [
        OPERATING_POINT,
        f"headroom {workload.headroom:.0%}: every figure is sized for cores "
        f"{1 - workload.headroom:.0%} busy",
        "Redis is one process: its cores above 1 mean sharding, not a bigger machine",
        "network, TLS, the application's own work and the load balancer are left out: this "
        "is the authentication layer's share, measured on this run's machine (see calibration)"
        if workload.app_cpu_us_per_req is None
        else f"your application's own work is your figure ({workload.app_cpu_us_per_req:g} µs "
        "CPU per request, not measured here), added to every scheme alike: it changes the "
        "total and authentication's share, never which scheme is cheapest; network, TLS and "
        "the load balancer are left out",
    ]
    if workload.store_delay_ms:
        caveats.append(
            f"Redis {workload.store_delay_ms:g} ms away: this run measured loopback, so a "
            "session's latency and a denylist lookup cost more than shown here"
        )
    _, verdict = cheapest(rows)
    change = "" if verdict.startswith("undecided") else what_would_change(rows)
    verdict = " ".join(
        [*unmet_windows(rows, workload), verdict + (f" ({change})" if change else "")]
    )
    section = WorkloadSection(
        asked, list(table.columns), table.astype(str).values.tolist(), verdict, caveats
    )
    return section, workload


def _servers_text(run: RunData) -> str:
    """Whose servers were measured: the suite's reference servers, or the user's URLs."""
    target = run.manifest.get("target")
    if not target:
        return "the suite's reference servers (targets/), started and stopped by the runner"
    pids = [pid for pid in target.get("pids", []) if pid]
    cpu = f"CPU sampled for PIDs {pids}" if pids else "their CPU not measured (no --target-pid)"
    return (
        f"yours, not started by the runner: {', '.join(target.get('urls', []))} "
        f"({target.get('scheme')}, docs/target-contract.md); {cpu}"
    )


def _kdf_text(run: RunData) -> str:
    if run.manifest.get("target"):
        return "your server's own"
    return f"PBKDF2-HMAC-SHA256, {_kdf_iterations(run)} iterations, every scheme"


def _kdf_iterations(run: RunData) -> str:
    values = sorted({c["kdf_iterations"] for c in run.manifest.get("matrix", {}).get("cells", [])})
    return ", ".join(f"{v:,}" for v in values) or "unknown"


def _windows(run: RunData) -> str:
    cells = run.manifest.get("matrix", {}).get("cells", [])
    pairs = sorted({(c["warmup_s"], c["duration_s"]) for c in cells})
    return "; ".join(f"warm-up {w:g} s (discarded), window {d:g} s" for w, d in pairs) or "unknown"


def _equal_load_text(run: RunData) -> str:
    chosen = run.manifest.get("equal_load", {})
    if not chosen:
        return "no equal-load cells"
    return "; ".join(
        f"{key}: {c['rate']:g} req/s = {c['share']:g} × the lowest {c['of']} "
        f"({c['lowest_scheme']}, {c['lowest_rps']:.0f} req/s)"
        for key, c in chosen.items()
    )


def _search_text(run: RunData) -> str:
    search = run.manifest.get("matrix", {}).get("search")
    if not search:
        return "no capacity search"
    return (
        f"open model, step up and halve the step on failure; SLO p99 ≤ {search['slo_p99_ms']:g} "
        f"ms, error rate ≤ {search['slo_error_rate']:.2%}, achieved ≥ "
        f"{search['min_achieved']:.0%} of what the arrivals planned; at most "
        f"{search['max_steps']} probes a search, a failing probe repeated before it counts, a "
        "probe ended early once its p99 is certain to break the bound; "
        f"{search.get('searches', 1)} searches per scheme on fresh services, interleaved across "
        "schemes, each planned from the closed throughput independently of the others (the "
        "later ones scaled by a random factor); the capacity is their mean with a Student t "
        "95% interval"
    )


def _calibration_text(run: RunData) -> str:
    recorded = run.manifest.get("calibration", {})
    if not recorded:
        return "not measured (a run from before calibration existed)"
    parts = []
    for when in ("start", "end"):
        figures = recorded.get(when)
        if figures:
            values = ", ".join(
                f"{name.removesuffix('_us')} {figures[name]:.1f} µs"
                for name in REFERENCES
                if name in figures
            )
            parts.append(f"{when}: {values}")
    start, end = recorded.get("start"), recorded.get("end")
    if start and end:
        drift = calibration_ratio(start, end)
        parts.append(
            "end ÷ start: "
            + ", ".join(f"{k.removesuffix('_us')} ×{v:.2f}" for k, v in drift.items())
        )
    return "; ".join(parts) + " (" + "; ".join(REFERENCES.values()) + ")"


def methodology(run: RunData) -> list[tuple[str, str]]:
    """Environment and method facts, each traceable to the manifest."""
    m = run.manifest
    env = m.get("environment", {})
    packages = env.get("packages", {})
    pinning = m.get("pinning", {})
    ceilings = m.get("generator_ceiling", {})
    ceiling_text = ", ".join(
        f"{k} Locust process(es): {v['rps']:.0f} req/s ({v['source']})" for k, v in ceilings.items()
    )
    versions = ", ".join(f"{name} {version}" for name, version in packages.items() if version)
    commit = env.get("git_commit") or "unknown"
    dirty = " (uncommitted changes)" if env.get("git_dirty") else ""
    return [
        ("run", f"{run.run_id}: {m.get('status')}, {m.get('started')} → {m.get('ended')}"),
        ("matrix", f"{m.get('matrix', {}).get('name')}: {m.get('matrix', {}).get('description')}"),
        ("machine", f"{env.get('cpu_model')}, {env.get('cpu_count')} CPUs, {env.get('platform')}"),
        (
            "pinning",
            f"generator on CPUs {pinning.get('generator_cpus')}, servers and Redis on "
            f"{pinning.get('server_cpus')}"
            if pinning.get("pinned")
            else "not pinned",
        ),
        ("software", f"Python {env.get('python')}; {versions}"),
        ("code", f"git {commit}{dirty}"),
        ("servers", _servers_text(run)),
        ("password KDF", _kdf_text(run)),
        ("windows", _windows(run)),
        (
            "repetitions",
            f"up to {m.get('matrix', {}).get('repetitions')}, interleaved, the order rotated "
            "(A B C, B C A, C A B); every interval is a measured 95% Student t interval around "
            "the mean of the repetitions, from their own spread (no floor); "
            "latency percentiles are those of the repetitions' histograms merged, with a "
            "bootstrap interval over whole repetitions, and a p99 with fewer than "
            f"{MIN_TAIL_REQUESTS} requests above it is marked and decides nothing; open-model "
            "requests unanswered when the generator stopped count as at least their wait by "
            "then (censored); a cell with one repetition has no interval and decides nothing",
        ),
        ("verdicts", _verdicts_text(run)),
        ("generator ceiling", ceiling_text or "not measured"),
        (
            "load model",
            "closed (N users, no wait: latency at saturation) unless a cell says open; open "
            "cells are timed from each request's intended start (Poisson arrivals unless a "
            "cell says uniform), with lateness, achieved vs planned and unsent requests "
            "recorded; Locust FastHttpUser",
        ),
        ("equal load", _equal_load_text(run)),
        ("capacity search", _search_text(run)),
        ("calibration", _calibration_text(run)),
        ("Redis", str(m.get("redis"))),
        ("load balancing", ", ".join(m.get("load_balancing") or []) or "none (single node)"),
        (
            "raw data",
            "every figure is derived from cells/*/ (hdr.json, samples.csv, cell.json, "
            "window.json) and micro.csv by `authbench report`",
        ),
    ]


def warnings(run: RunData) -> list[str]:
    """What a reader must know before trusting a figure."""
    notes = []
    if run.manifest.get("status") != "complete":
        notes.append("The run is incomplete: some cells were not measured.")
    if run.manifest.get("environment", {}).get("git_dirty"):
        notes.append("The code had uncommitted changes when this run was made.")
    server_cpus = run.manifest.get("pinning", {}).get("server_cpus") or []
    for _, row in run.cells.iterrows():
        if row["status"] != "complete":
            notes.append(f"{row['cell_id']}: {row['status']}: {row['reason']}")
            continue
        if row["saturated"]:
            notes.append(
                f"{row['cell_id']}: † the load generator was saturated (generator CPU "
                f"{row['generator_cpu_pct']:.0f}% of {row['generator_cpus']:.0f} CPU): throughput "
                "is a floor and latency includes the generator's own delay; never a baseline "
                "or a verdict"
            )
        if row["late"]:
            lateness = row["late_p99_ms"]
            late_text = "n/a" if lateness != lateness else f"{lateness:.1f} ms"
            notes.append(
                f"{row['cell_id']}: ‡ offered {row['offered_rps']:g} req/s, achieved "
                f"{row['achieved_rps']:.0f}, {row['unsent']:.0f} unsent, lateness p99 "
                f"{late_text}: not at its offered load; never used for a verdict"
            )
        if row["failures"]:
            notes.append(
                f"{row['cell_id']}: {int(row['failures'])} failed requests (error rate "
                f"{row['error_rate']:.2%}), kept out of the latency percentiles"
            )
        locust, recorded = row.get("locust_requests"), row.get("recorded_requests")
        counted = all(isinstance(n, (int, float)) and n == n for n in (locust, recorded))
        if counted and locust != recorded:
            notes.append(
                f"{row['cell_id']}: Locust counted {locust:.0f} requests, the recorder "
                f"{recorded:.0f}: a generator process's results may be missing"
            )
        if server_cpus and row["nodes"] > len(server_cpus):
            notes.append(
                f"{row['cell_id']}: {row['nodes']} nodes share {len(server_cpus)} server CPU(s): "
                "this shows the cost of spreading, not horizontal scaling"
            )
    single = run.summary[run.summary["repetitions"] == 1]
    if not single.empty:
        notes.append(
            f"{len(single)} cell(s) have one repetition and so no interval; they decide nothing."
        )
    for _, row in run.summary.iterrows():
        estimate = row["rps"]
        if (
            estimate.has_interval
            and (estimate.high - estimate.low) > WIDE_INTERVAL * estimate.value
        ):
            notes.append(
                f"{row['scheme']} {row['scenario']} {row['topology']}-{row['nodes']}: "
                "wide throughput interval (over ±15%)"
            )
    start = run.manifest.get("calibration", {}).get("start")
    end = run.manifest.get("calibration", {}).get("end")
    if start and end:
        for name, ratio in calibration_ratio(start, end).items():
            if abs(ratio - 1) > DRIFT_WARNING:
                notes.append(
                    f"The machine drifted during the run: {name} ×{ratio:.2f} from start to end "
                    "(calibration); compare cells measured close together."
                )
    return notes


CAPACITY_HEADERS = [
    "scheme", "scenario", "capacity, 95% interval over the searches", "each search (req/s)",
    "stopped by", "probes", "p99 at capacity", "server CPU at capacity",
]  # fmt: skip


def capacity_table(run: RunData) -> list[list[str]]:
    """capacity.csv as the report shows it, one row per search."""
    rows = []
    for _, row in run.capacity.iterrows():
        p99 = row["p99_ms_at_capacity"]
        cpu = row["server_cpu_us_per_req_at_capacity"]
        rows.append(
            [
                row["scheme"],
                row["scenario"],
                capacity_text(row, per_core=False),
                str(row.get("capacity_by_search", "")),
                row["bound"],
                str(row["steps"]),
                "n/a" if p99 is None or p99 != p99 else f"{p99:.1f} ms",
                "n/a" if cpu is None or cpu != cpu else f"{cpu:.0f} µs/req",
            ]
        )
    return rows


def build_report(
    run: RunData, figures_dir: Path, rules: list[str] | None = None, baseline: RunData | None = None
) -> Report:
    """Everything the report shows, with the charts drawn into figures_dir; ``rules`` are
    thresholds beyond the matrix's own, ``baseline`` a run no figure may be worse than."""
    section, workload = workload_section(run)
    charts = draw_all(run, figures_dir)
    tradeoff = ttl_chart(run, figures_dir, workload)
    claims = check_claims(run)
    all_rules = [*run.manifest.get("thresholds", []), *(rules or [])]
    return Report(
        run=run,
        title=f"authbench report: {run.run_id}",
        decision=[row.cells for row in decision_rows(run)],
        claims=claims,
        capacity=capacity_table(run),
        charts=[*charts, tradeoff] if tradeoff else charts,
        methodology=methodology(run),
        workload=section,
        resilience=resilience_section(run, figures_dir),
        microservices=microservices_section(run, figures_dir),
        store_cache=store_cache_section(run),
        library=library_section(run),
        warnings=warnings(run),
        thresholds=check_thresholds(run, all_rules, claims, baseline),
    )


DECISION_NOTE = (
    "Every figure is a mean with its measured 95% interval across repetitions; latency "
    "percentiles are those of the repetitions' merged histograms, with a bootstrap interval. "
    "Equal load: the open-model cells at one offered rate for every scheme, the latency "
    "comparison. At saturation: the closed model. Capacity: the highest rate that held the SLO, "
    "the mean of its searches with their 95% interval (a generator-bound one is a floor). "
    "Issuance: the login's auth step per request, without store waits and the password hash. "
    "Every CPU figure names its operating point, because CPU per request depends on it: at a "
    "low offered rate each request also carries the server's fixed costs (event-loop wake-ups, "
    "timers, the sampler's polling) that saturation spreads over many more requests, so CPU at "
    "equal load is higher than at saturation and a scheme's overhead over none at equal load is "
    "not its share of capacity; size with capacity or saturation figures. † generator-saturated, "
    "‡ offered load not applied: shown, never used for a verdict."
)


def _verdicts_text(run: RunData) -> str:
    """How a comparison becomes higher, lower, equivalent or undecided in this run."""
    margins = ", ".join(
        f"{family} {margin.describe('ms' if family == 'latency' else '')}".strip()
        for family, margin in margins_from(run.manifest).items()
    )
    adaptive = run.manifest.get("until_decided")
    looks = (
        f"; adaptive (until decided): {adaptive.get('planned_looks')} planned looks, every test "
        f"at 5% ÷ {adaptive.get('planned_looks')}, {len(adaptive.get('looks', []))} made"
        if adaptive
        else ""
    )
    return (
        "ratio of the two figures on the log scale, paired by repetition (else Welch); higher or "
        "lower when the t test rejects equality at 5%, equivalent when two one-sided tests put "
        "the ratio inside the margin, else undecided with the repetitions that would decide at "
        f"80% power; Holm-corrected within each claim's family; margins: {margins}{looks}"
    )


def _verdict_class(verdict: str) -> str:
    return verdict.replace(" ", "-")


def _section_blocks(anchor: str, section: Section) -> list[Block]:
    blocks: list[Block] = [Heading(section.title, anchor=anchor)]
    for index, table in enumerate(section.tables):
        blocks += [Text(table.intro), Table(table.headers, table.rows, f"{anchor}-{index}")]
    blocks += [Image(chart.title, chart.caption, chart.png) for chart in section.charts]
    return blocks + [Text(note, "note") for note in section.notes]


def report_page(report: Report) -> Page:
    """The report as a page: the answer first, then the decision table, the claims, the
    sections the run has, the charts, the methodology and the warnings."""
    blocks: list[Block] = [
        Heading("Answer", anchor="answer"),
        Items(report.answer(), anchor="answer-list"),
        Heading("Decision table", anchor="decision"),
        Table(HEADERS, report.decision, "decision-table"),
        Text(DECISION_NOTE, "note"),
        Heading("Claims checked", anchor="claims"),
    ]
    for claim in report.claims:
        blocks += [
            Heading(claim.claim, 3, badge=claim.verdict, tone=_verdict_class(claim.verdict)),
            Items(claim.evidence),
        ]
    if report.workload:
        w = report.workload
        blocks += [Heading("Your workload", anchor="workload"), Text(w.asked),
                   Table(w.headers, w.rows, "workload-table"), Text(w.verdict, "strong"),
                   Items(w.caveats)]  # fmt: skip
    if report.capacity:
        blocks += [Heading("Capacity at the SLO", anchor="capacity"),
                   Table(CAPACITY_HEADERS, report.capacity, "capacity-table")]  # fmt: skip
    for anchor, section in (("resilience", report.resilience),
                            ("microservices", report.microservices),
                            ("store-cache", report.store_cache),
                            ("library", report.library)):  # fmt: skip
        if section is not None:
            blocks += _section_blocks(anchor, section)
    blocks.append(Heading("Charts", anchor="charts"))
    blocks += [Image(chart.title, chart.caption, chart.png) for chart in report.charts]
    blocks += [Heading("Methodology and environment", anchor="methodology"),
               Table(["", ""], [list(pair) for pair in report.methodology], "method")]  # fmt: skip
    if report.thresholds:
        blocks += [Heading("Thresholds", anchor="thresholds"),
                   Items([check.line() for check in report.thresholds])]  # fmt: skip
    blocks.append(Heading("Warnings", anchor="warnings"))
    blocks.append(Items(report.warnings, warning=True) if report.warnings else Text("None."))
    cpu = report.run.manifest.get("environment", {}).get("cpu_model")
    subtitle = f"Server-side sessions or JWTs, and which signing algorithm? Measured on {cpu}."
    return Page(report.title, blocks, subtitle)


def write_report(
    run: RunData, rules: list[str] | None = None, baseline: RunData | None = None
) -> Report:
    """(Re)build figures/, report.html, report.md, summary.json and summary.md in the run
    folder; the Report returned holds the threshold checks that set the exit code."""
    report = build_report(run, run.run_dir / "figures", rules, baseline)
    page = report_page(report)
    (run.run_dir / "report.html").write_text(render_html(page))
    (run.run_dir / "report.md").write_text(render_markdown(page, run.run_dir))
    write_summary(report)
    return report
