"""``summary.json`` and ``summary.md``: a run's answer for machines and for a CI job summary.

``summary.json`` follows ``analysis/summary.schema.json`` (its ``schema_version`` changes when a
field changes meaning): the claims and their verdicts, each scheme's decision figures with their
95% intervals, capacity, the sizing when the run has a workload, the thresholds and the
warnings. ``summary.md`` says the same in at most 40 lines.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analysis.decision import equal_axes, read_capacity
from analysis.stats import Estimate
from analysis.tidy import RunData

if TYPE_CHECKING:
    from analysis.report import Report

SCHEMA_VERSION = 1
SCHEMA_FILE = Path(__file__).with_name("summary.schema.json")
MAX_MARKDOWN_LINES = 40


def _number(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 6)


def interval(found: Estimate | None) -> dict[str, Any] | None:
    """An Estimate as JSON: value, 95% interval (null without one) and repetitions."""
    if found is None or math.isnan(found.value):
        return None
    has = found.has_interval
    return {
        "value": _number(found.value),
        "low": _number(found.low) if has else None,
        "high": _number(found.high) if has else None,
        "n": int(found.n),
    }


def _scheme_figures(run: RunData, scheme: str) -> dict[str, Any]:
    equal = equal_axes(run)
    saturation = {"scheme": scheme, "scenario": "read", "topology": "single"}
    figures: dict[str, Any] = {"scheme": scheme, "equal_load": None, "saturation": None}
    if equal["rate"] is not None:
        figures["equal_load"] = {
            "rate_rps": equal["rate"],
            **{metric: interval(run.get(metric, scheme=scheme, **equal))
               for metric in ("p50_ms", "p99_ms", "server_cpu_us_per_req")},
        }  # fmt: skip
    if run.get_flagged("rps", **saturation) is not None:
        figures["saturation"] = {
            metric: interval(run.get(metric, **saturation))
            for metric in ("rps", "server_cpu_us_per_req", "p50_ms")
        }
    figures["capacity"] = _capacity(run, scheme)
    return figures


def _capacity(run: RunData, scheme: str) -> dict[str, Any] | None:
    row = read_capacity(run, scheme)
    if row is None:
        return None
    return {
        "rps": _number(float(row["capacity_rps"])),
        "low": _number(float(row.get("capacity_lo", math.nan))),
        "high": _number(float(row.get("capacity_hi", math.nan))),
        "searches": int(row.get("searches", 1) or 1),
        "bound": str(row["bound"]),
        "slo_p99_ms": _number(float(row["slo_p99_ms"])),
        "floor": row["bound"] == "generator",
    }


def summary(report: Report) -> dict[str, Any]:
    """The report's answer as plain JSON values."""
    run = report.run
    environment = run.manifest.get("environment", {})
    workload = report.workload
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run.run_id,
        "status": run.manifest.get("status"),
        "matrix": run.manifest.get("matrix", {}).get("name"),
        "started": run.manifest.get("started"),
        "ended": run.manifest.get("ended"),
        "git_commit": environment.get("git_commit"),
        "cpu_model": environment.get("cpu_model"),
        "claims": [
            {"key": c.key, "claim": c.claim, "verdict": c.verdict, "evidence": c.evidence}
            for c in report.claims
        ],
        "schemes": [_scheme_figures(run, row[0]) for row in report.decision],
        "sizing": None
        if workload is None
        else {"asked": workload.asked, "answer": workload.verdict,
              "rows": [dict(zip(workload.headers, row, strict=True)) for row in workload.rows]},
        "thresholds": [
            {"rule": check.rule, "passed": check.passed, "detail": check.detail}
            for check in report.thresholds
        ],
        "thresholds_passed": all(check.passed for check in report.thresholds),
        "warnings": report.warnings,
    }  # fmt: skip


def _short(found: dict[str, Any] | None, digits: int) -> str:
    if not found:
        return "—"
    if found["low"] is None:
        return f"{found['value']:.{digits}f}"
    return f"{found['value']:.{digits}f} [{found['low']:.{digits}f}, {found['high']:.{digits}f}]"


def summary_markdown(data: dict[str, Any]) -> str:
    """At most 40 lines: verdicts, the per-scheme headline figures, thresholds."""
    lines = [f"### authbench {data['run_id']} ({data['matrix']}, {data['status']})", ""]
    lines += [f"- **{c['verdict']}**: {c['claim']}" for c in data["claims"]]
    if data["sizing"]:
        lines += ["", f"Your workload: {data['sizing']['answer']}"]
    lines += ["", "| scheme | equal-load p99 ms | CPU µs/req (equal load) | capacity req/s |",
              "|---|---|---|---|"]  # fmt: skip
    for scheme in data["schemes"][: MAX_MARKDOWN_LINES - 24]:
        equal = scheme["equal_load"] or {}
        capacity = scheme["capacity"]
        cap = (
            "—"
            if not capacity
            else _short(
                {"value": capacity["rps"], "low": capacity["low"], "high": capacity["high"]}, 0
            )
        )
        lines.append(f"| {scheme['scheme']} | {_short(equal.get('p99_ms'), 2)} | "
                     f"{_short(equal.get('server_cpu_us_per_req'), 0)} | {cap} |")  # fmt: skip
    checks = data["thresholds"]
    if checks:
        broken = [c for c in checks if not c["passed"]]
        lines += ["", f"Thresholds: {len(checks) - len(broken)} of {len(checks)} held"]
        lines += [f"- VIOLATED `{c['rule']}`: {c['detail']}" for c in broken[:5]]
    lines += ["", f"{len(data['warnings'])} warning(s); intervals are 95% over repetitions."]
    return "\n".join(lines[:MAX_MARKDOWN_LINES]) + "\n"


def write_summary(report: Report) -> tuple[Path, Path]:
    """summary.json and summary.md in the run folder."""
    data = summary(report)
    json_path = report.run.run_dir / "summary.json"
    md_path = report.run.run_dir / "summary.md"
    json_path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    md_path.write_text(summary_markdown(data))
    return json_path, md_path
