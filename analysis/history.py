"""Every run under ``results/`` in one index, and the headline figures across them.

Like asv's results per machine: ``results/index.json`` lists the runs (id, start, commit,
matrix, calibration). The headline figure is each scheme's server CPU per read at saturation
(closed model, single node, usable cells only), *normalised by the run's calibration*: the
machine's speed moves up to 3x between days, so every figure is rescaled to the first run's
pure-Python reference speed. A change between consecutive runs is flagged only when the
normalised intervals do not overlap: a regression (more CPU) or an improvement.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from analysis.page import Heading, Image, Items, Page, render_html, render_markdown
from analysis.palette import colour, ordered
from analysis.stats import Estimate
from analysis.tidy import RunData, RunFolderError, load_run

REFERENCE = "python_loop_us"
HISTORY_DIR = "history"
METRIC = "server_cpu_us_per_req"


@dataclass(frozen=True)
class Point:
    """One scheme's normalised headline figure in one run."""

    run_id: str
    commit: str
    scheme: str
    value: float
    low: float
    high: float
    scale: float  # first run's reference ÷ this run's: above 1, this machine was faster


@dataclass(frozen=True)
class Change:
    """A difference between consecutive runs beyond the noise."""

    scheme: str
    before: Point
    after: Point
    kind: str  # regression | improvement


def run_folders(results_root: Path) -> list[RunData]:
    """Every readable run folder, oldest first; others are skipped (the index says why not)."""
    runs = []
    for manifest in sorted(results_root.glob("*/manifest.json")):
        if manifest.parent.is_symlink():
            continue
        try:
            runs.append(load_run(manifest.parent))
        except RunFolderError:
            continue
    return sorted(runs, key=lambda run: str(run.manifest.get("started")))


def write_index(results_root: Path, runs: list[RunData]) -> Path:
    """results/index.json: one entry per run, what a reader needs to find and trust it."""
    entries = [
        {
            "run_id": run.run_id,
            "started": run.manifest.get("started"),
            "status": run.manifest.get("status"),
            "git_commit": run.manifest.get("environment", {}).get("git_commit"),
            "matrix": run.manifest.get("matrix", {}).get("name"),
            "calibration": run.manifest.get("calibration", {}).get("start"),
        }
        for run in runs
    ]
    path = results_root / "index.json"
    path.write_text(json.dumps(entries, indent=1) + "\n")
    return path


def points(runs: list[RunData]) -> list[Point]:
    """Normalised headline figures of every run that has a calibration."""
    calibrated = [
        r for r in runs if r.manifest.get("calibration", {}).get("start", {}).get(REFERENCE)
    ]
    if not calibrated:
        return []
    reference = calibrated[0].manifest["calibration"]["start"][REFERENCE]
    found = []
    for run in calibrated:
        scale = reference / run.manifest["calibration"]["start"][REFERENCE]
        commit = (run.manifest.get("environment", {}).get("git_commit") or "?")[:8]
        for scheme in ordered(run.matching(scenario="read", topology="single")["scheme"].tolist()):
            estimate: Estimate | None = run.get(
                METRIC, scheme=scheme, scenario="read", topology="single"
            )
            if estimate is None or not estimate.has_interval:
                continue
            found.append(
                Point(
                    run.run_id,
                    commit,
                    scheme,
                    estimate.value * scale,
                    estimate.low * scale,
                    estimate.high * scale,
                    scale,
                )
            )
    return found


def changes(found: list[Point]) -> list[Change]:
    """Consecutive runs of a scheme whose normalised intervals do not overlap."""
    flagged = []
    by_scheme: dict[str, list[Point]] = {}
    for point in found:
        by_scheme.setdefault(point.scheme, []).append(point)
    for scheme, series in by_scheme.items():
        for before, after in itertools.pairwise(series):
            if after.low > before.high:
                flagged.append(Change(scheme, before, after, "regression"))
            elif after.high < before.low:
                flagged.append(Change(scheme, before, after, "improvement"))
    return flagged


def _chart(found: list[Point], flagged: list[Change], out: Path) -> tuple[Path, Path]:
    run_ids = list(dict.fromkeys(p.run_id for p in found))
    position = {run_id: index for index, run_id in enumerate(run_ids)}
    figure, axis = plt.subplots(figsize=(max(7, 1.2 * len(run_ids) + 4), 4.6))
    for scheme in ordered(list({p.scheme for p in found})):
        series = [p for p in found if p.scheme == scheme]
        axis.errorbar(
            [position[p.run_id] for p in series], [p.value for p in series],
            yerr=[[p.value - p.low for p in series], [p.high - p.value for p in series]],
            marker="o", capsize=3, color=colour(scheme), label=scheme,
        )  # fmt: skip
    for change in flagged:
        edge = "red" if change.kind == "regression" else "green"
        axis.scatter([position[change.after.run_id]], [change.after.value], s=220,
                     facecolors="none", edgecolors=edge, linewidths=2, zorder=4)  # fmt: skip
    labels = [f"{run_id[:16]}\n{next(p.commit for p in found if p.run_id == run_id)}"
              for run_id in run_ids]  # fmt: skip
    axis.set_xticks(range(len(run_ids)), labels, fontsize=7)
    axis.set_ylabel("server CPU per read (µs, at the first run's machine speed)")
    regressions = sum(1 for c in flagged if c.kind == "regression")
    finding = (
        f"{regressions} regression(s) beyond the noise"
        if regressions
        else "no regression beyond the noise"
    )
    axis.set_title(
        f"Headline CPU per read across runs, calibration-normalised: {finding}", fontsize=10
    )
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    png, svg = out / "history.png", out / "history.svg"
    figure.savefig(png, dpi=110)
    figure.savefig(svg)
    plt.close(figure)
    return png, svg


def write_history(results_root: Path) -> tuple[list[Change], list[Path]]:
    """Index the runs, draw the history and write history.md/html; the flagged changes."""
    runs = run_folders(results_root)
    index = write_index(results_root, runs)
    found = points(runs)
    if not found:
        raise RunFolderError(f"{results_root}: no calibrated run with repeated read cells to chart")
    flagged = changes(found)
    out = results_root / HISTORY_DIR
    out.mkdir(exist_ok=True)
    png, svg = _chart(found, flagged, out)
    lines = [
        f"{c.kind}: {c.scheme} {c.before.value:.0f} [{c.before.low:.0f}, {c.before.high:.0f}] µs "
        f"({c.before.run_id}) → {c.after.value:.0f} [{c.after.low:.0f}, {c.after.high:.0f}] µs "
        f"({c.after.run_id}), normalised by calibration"
        for c in flagged
    ] or ["no change beyond the noise between consecutive runs"]
    scale_lines = [
        f"{run_id}: machine speed ×{next(p.scale for p in found if p.run_id == run_id):.2f} "
        "of the first run (pure-Python reference)"
        for run_id in dict.fromkeys(p.run_id for p in found)
    ]
    page = Page("authbench history", [
        Image("History", "CPU per read of each scheme over the runs, normalised by each run's "
              "calibration", png, embed=False),
        Heading("Changes", anchor="changes"), Items(lines),
        Heading("Calibration", anchor="calibration"), Items(scale_lines),
    ])  # fmt: skip
    (out / "history.md").write_text(render_markdown(page, out))
    (out / "history.html").write_text(render_html(page))
    return flagged, [index, out / "history.md", out / "history.html", png, svg]
