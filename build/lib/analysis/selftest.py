"""The statistics judged on known truths: an A/A pair of runs and a planted difference.

Run B repeats run A's self-test matrix and adds a *planted arm*: one scheme's cells again, with
a known CPU cost burnt in their auth step (``--plant``), interleaved with the rest. Two checks:

- **A/A**: every figure both runs measured is compared as ``compare`` would (one Holm family);
  nothing changed between the runs, so each one called different is a false call.
- **Planted**: within run B, the planted arm against the same scheme without it, paired by
  repetition (measured seconds apart, as the report's claims are): the one question asked of
  it, a family of one. It must be called higher, with the planted size inside the interval.
  The planted size, as a ratio, is 1 + cost ÷ the scheme's CPU per request without it in B.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

from analysis.compare import Comparison, Figure, compare_runs, write_comparison
from analysis.tidy import RunData, RunFolderError
from analysis.verdicts import (
    HIGHER,
    LOWER,
    METRIC_FAMILY,
    Verdict,
    decide_family,
    margins_from,
    paired_log_ratio,
)

MAX_FALSE_SHARE = 1 / 20
PLANTED_METRIC = "server_cpu_us_per_req"


@dataclass(frozen=True)
class SelfTest:
    """What the self-test found: false calls among A/A figures, and the planted figure."""

    scheme: str
    cost_us: int
    false_calls: list[str]
    aa_figures: int
    expected_ratio: float
    figure: Figure
    verdict: Verdict

    @property
    def false_share(self) -> float:
        return len(self.false_calls) / self.aa_figures if self.aa_figures else 0.0

    @property
    def detected(self) -> bool:
        """Called worse (higher CPU), as planted."""
        return self.verdict.kind == HIGHER

    @property
    def size_inside(self) -> bool:
        """The planted ratio lies inside the estimate's 95% interval."""
        ratio = self.figure.ratio
        if ratio is None:
            return False
        low, high = ratio.interval()
        return low <= self.expected_ratio <= high

    @property
    def passed(self) -> bool:
        return self.false_share <= MAX_FALSE_SHARE and self.detected and self.size_inside

    def lines(self) -> list[str]:
        """The self-test's findings, one sentence each, the verdict last."""
        figure, verdict = self.figure, self.verdict
        estimate = "no interval"
        if figure.ratio is not None:
            low, high = figure.ratio.interval()
            estimate = f"{figure.ratio.ratio - 1:+.1%} [{low - 1:+.1%}, {high - 1:+.1%}]"
        false = "; ".join(self.false_calls) or "none"
        return [
            f"A/A figures called different: {len(self.false_calls)} of {self.aa_figures} "
            f"({self.false_share:.0%}; at most {MAX_FALSE_SHARE:.0%} allowed): {false}",
            f"planted: +{self.cost_us} µs per auth step in {self.scheme}, "
            f"{self.expected_ratio - 1:+.1%} of its CPU per request without it "
            f"({figure.a.value:.0f} µs)",
            f"estimated: {estimate} ({figure.basis}); verdict: {verdict.short()} (the one "
            "question asked of it: a family of one)",
            f"detected: {'yes' if self.detected else 'no'}; planted size inside the interval: "
            f"{'yes' if self.size_inside else 'no'}",
            f"self-test {'passed' if self.passed else 'FAILED'}",
        ]


def _planted(run: RunData) -> dict[str, object] | None:
    return run.manifest.get("planted")


def judge_selftest(before: RunData, after: RunData) -> tuple[SelfTest, Comparison]:
    """The self-test of run B (planted arm) against run A; RunFolderError if they are not."""
    planted = _planted(after)
    if not planted:
        raise RunFolderError(f"{after.run_id}: no planted cost (run it with --plant SCHEME=US)")
    if _planted(before):
        raise RunFolderError(f"{before.run_id}: run A must have no planted cost")
    scheme, cost = str(planted["scheme"]), int(planted["cost_us"])  # type: ignore[call-overload]
    comparison = compare_runs(before, after)
    aa = [(f, v) for f, v in comparison.figures if f.judged and f.metric != "capacity_rps"]
    false_calls = [
        f"{f.cell} {f.label}: {v.short()}" for f, v in aa if v and v.kind in (HIGHER, LOWER)
    ]
    return SelfTest(scheme, cost, false_calls, len(aa), *_planted_arm(after, scheme, cost)), (
        comparison
    )


def _planted_arm(run: RunData, scheme: str, cost: int) -> tuple[float, Figure, Verdict]:
    """The planted arm vs the plain one within the run: expected ratio, figure, verdict."""
    axes = {"scheme": scheme, "scenario": "read", "topology": "single"}
    axes["model"] = str(run.cells[run.cells["scheme"] == scheme]["model"].iloc[0])
    if axes["model"] == "open":
        axes["rate"] = float(run.cells[run.cells["scheme"] == scheme]["rate"].iloc[0])
    plain = run.get(PLANTED_METRIC, **axes)
    arm = run.get(PLANTED_METRIC, **axes, planted_cost_us=cost)
    if plain is None or arm is None:
        raise RunFolderError(f"{run.run_id}: no usable {scheme} read cells with and without it")
    pairs = run.pairs(PLANTED_METRIC, {**axes, "planted_cost_us": cost}, axes)
    ratio = paired_log_ratio(pairs)
    margin = margins_from(run.manifest)[METRIC_FAMILY[PLANTED_METRIC]].relative
    (verdict,) = decide_family([(ratio, margin)])
    figure = Figure(
        cell=f"{scheme} read, +{cost} µs planted vs without, within {run.run_id}",
        metric=PLANTED_METRIC,
        label="server CPU µs/req",
        digits=0,
        better="lower",
        a=plain,
        b=arm,
        ratio=ratio,
        basis="paired by repetition within run B",
    )
    return 1 + cost / plain.value, figure, verdict


def write_selftest(before: RunData, after: RunData, out: Path) -> tuple[SelfTest, list[Path]]:
    """selftest.md and selftest.html (with the full comparison beside them) in ``out``."""
    result, comparison = judge_selftest(before, after)
    paths = write_comparison(before, after, out, comparison)
    title = f"authbench self-test: {before.run_id} (A) → {after.run_id} (B, planted)"
    lines = result.lines()
    md = out / "selftest.md"
    md.write_text(
        f"# {title}\n\n" + "".join(f"- {line}\n" for line in lines)
        + "\nEvery figure: [comparison.md](comparison.md)\n"
    )  # fmt: skip
    page = out / "selftest.html"
    e = html.escape
    page.write_text(
        f"<!doctype html><meta charset='utf-8'><title>{e(title)}</title><h1>{e(title)}</h1>"
        f"<ul>{''.join(f'<li>{e(line)}</li>' for line in lines)}</ul>"
        "<p>Every figure: <a href='comparison.html'>comparison.html</a></p>"
    )
    return result, [md, page, *paths]
