"""The analysis on a small run folder made by the real runner (tests/data/run-fixture)."""

from __future__ import annotations

import json
import math
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

from analysis.charts import revocation_chart
from analysis.claims import SUPPORTED, UNDECIDED, check_claims
from analysis.compare import Figure, below_resolution, compare_runs, comparison_rows, warnings
from analysis.decision import LATE_MARK, decision_rows
from analysis.stats import Estimate
from analysis.tidy import load_run, summarise
from analysis.verdicts import Margin
from loadtests.measure.cell_metrics import COLUMNS, add_overheads, cell_row, metrics_rows
from tests.conftest import ReportedRun

FIXTURE = Path(__file__).parent / "data" / "run-fixture"


def analysis_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``authbench`` with the given arguments."""
    return subprocess.run(
        [sys.executable, "-m", "authbench", *args], capture_output=True, text=True, timeout=120
    )


@pytest.fixture()
def run_copy(tmp_path: Path) -> Path:
    """The fixture copied, so building a report never writes into tests/data."""
    return Path(shutil.copytree(FIXTURE, tmp_path / FIXTURE.name))


def equal_axes(run_rate: float | None) -> dict[str, object]:
    return {"scenario": "read", "topology": "single", "model": "open", "rate": run_rate}


def test_tidy_table_has_every_metrics_column_and_three_repetitions() -> None:
    run = load_run(FIXTURE)
    assert set(COLUMNS) <= set(run.cells.columns)
    assert (run.cells["status"] == "complete").all()
    single_read = run.summary[(run.summary.scenario == "read") & (run.summary.topology == "single")]
    assert set(single_read["repetitions"]) == {3}
    assert run.equal_load_rate("read") is not None
    assert set(run.capacity["scheme"]) == {"none", "jwt-HS256"}


def test_interval_is_students_t_on_the_cells_own_repetitions(scipy_stats: ModuleType) -> None:
    """Recomputed here from the raw cell rows with scipy, not with the module's helpers."""
    run = load_run(FIXTURE)
    done = run.cells[run.cells.status == "complete"]
    values = done[
        (done.scheme == "jwt-ES256") & (done.scenario == "read") & (done.model == "closed")
    ]["server_cpu_us_per_req"].tolist()
    mean = statistics.fmean(values)
    half = scipy_stats.t.ppf(0.975, 2) * statistics.stdev(values) / math.sqrt(3)
    found = run.get("server_cpu_us_per_req", scheme="jwt-ES256", scenario="read", topology="single")
    assert found is not None and found.n == 3
    assert (found.value, found.low, found.high) == pytest.approx((mean, mean - half, mean + half))


def test_one_repetition_cells_have_no_interval() -> None:
    run = load_run(FIXTURE)
    multi = run.matching(scheme="session-redis", scenario="read", topology="multi")
    assert len(multi) == 1 and not multi.iloc[0]["rps"].has_interval
    assert "no interval" in multi.iloc[0]["rps"].text()


def test_overheads_are_against_none_of_the_same_load_and_repetition() -> None:
    cells = load_run(FIXTURE).cells
    key = ["scenario", "topology", "nodes", "model", "repetition"]
    base = cells[(cells.scheme == "none") & ~cells.saturated & ~cells.late].set_index(key)
    checked = 0
    for _, row in cells[cells.scheme != "none"].iterrows():
        index = tuple(row[k] for k in key)
        if index not in base.index or row["saturated"] or row["late"]:
            assert math.isnan(row["server_cpu_overhead_us_per_req"])
            continue
        none_row = base.loc[index]
        assert row["server_cpu_overhead_us_per_req"] == pytest.approx(
            row["server_cpu_us_per_req"] - none_row["server_cpu_us_per_req"], abs=0.11
        )
        checked += 1
    assert checked >= 12


def test_latency_claim_pairs_equal_load_cells_by_repetition(scipy_stats: ModuleType) -> None:
    """Recomputed from the raw rows with scipy: log ratios within each repetition, t test, TOST,
    Holm over the claim's family."""
    run = load_run(FIXTURE)
    rate = run.equal_load_rate("read")
    claim = check_claims(run)[0]
    assert f"{rate:g} req/s" in claim.evidence[0]
    cells = run.cells[(run.cells.model == "open") & (run.cells.rate == rate)]

    def p50s(scheme: str) -> dict[int, float]:
        rows = cells[cells.scheme == scheme]
        return dict(zip(rows["repetition"], rows["p50_ms"], strict=True))

    session = p50s("session-redis")
    found = {}
    for scheme in ("jwt-HS256", "jwt-ES256"):
        other = p50s(scheme)
        logs = [math.log(session[r] / other[r]) for r in sorted(session.keys() & other.keys())]
        low, high = scipy_stats.t.interval(
            0.95, len(logs) - 1, loc=statistics.fmean(logs), scale=scipy_stats.sem(logs)
        )
        p_diff = scipy_stats.ttest_1samp(logs, 0.0).pvalue
        reference = statistics.fmean(other.values())
        bound = math.log1p(max(0.10, 0.1 / reference))
        p_equiv = max(
            scipy_stats.ttest_1samp(logs, -bound, alternative="greater").pvalue,
            scipy_stats.ttest_1samp(logs, bound, alternative="less").pvalue,
        )
        found[scheme] = (math.exp(low), math.exp(high), p_diff, p_equiv)
    # Holm over the family of two, by hand.
    diffs = sorted((v[2], k) for k, v in found.items())
    adjusted = {diffs[0][1]: 2 * diffs[0][0]}
    adjusted[diffs[1][1]] = max(adjusted[diffs[0][1]], diffs[1][0])
    equivs = sorted((v[3], k) for k, v in found.items())
    adjusted_eq = {equivs[0][1]: 2 * equivs[0][0]}
    adjusted_eq[equivs[1][1]] = max(adjusted_eq[equivs[0][1]], equivs[1][0])
    for scheme, (low, high, _, _) in found.items():
        line = next(e for e in claim.evidence if e.startswith("session-redis") and scheme in e)
        assert f"[{low:.3f}, {high:.3f}], paired by repetition, 3 repetitions (unpaired" in line
        assert "family of 2, Holm-corrected" in line
        if adjusted[scheme] < 0.05:
            assert ("higher by" in line) or ("lower by" in line)
        elif adjusted_eq[scheme] < 0.05:
            assert "equivalent within" in line
        else:
            assert "undecided: about" in line or "undecided: more than" in line
        assert "(unpaired, the same figures give [" in line  # what pairing bought
    assert any("2 comparison(s) on p50_ms, one Holm family" in e for e in claim.evidence)
    assert not any("closed" in e and "at saturation" not in e for e in claim.evidence)


def test_claims_are_built_from_observed_figures() -> None:
    claims = {claim.claim.split(" (")[0]: claim for claim in check_claims(load_run(FIXTURE))}
    assert claims["JWTs scale without shared state"].verdict == SUPPORTED
    revocation = claims["Sessions revoke at once; JWTs only at expiry"]
    # One repetition each in the fixture: shown, and too few to decide.
    assert revocation.verdict == UNDECIDED
    assert any("fewer than 3 repetitions" in line for line in revocation.evidence)
    session = next(line for line in revocation.evidence if line.startswith("session-redis"))
    assert "refused at the first replay on every node" in session
    assert re.search(r"within one round trip of [0-9.]+ ms; 1 repetition", session)
    plain = next(line for line in revocation.evidence if line.startswith("jwt-HS256"))
    assert "(observed, resolution one replay round trip" in plain and "access TTL 2 s" in plain
    delay_ms = float(re.search(r"still accepted for ([0-9.]+) ms", plain).group(1))
    assert 500 < delay_ms <= 2100
    assert claims["Asymmetric keys let other services verify tokens alone"].verdict == SUPPORTED


def test_a_late_cell_is_marked_and_never_used_for_a_verdict(run_copy: Path) -> None:
    """Bug caught: an open cell that never applied its offered load deciding a latency claim."""
    for cell in run_copy.glob("cells/session-redis__single-1__read__open-eq-*"):
        generators = json.loads((cell / "generators.json").read_text())
        generators["unsent"] = generators["planned_in_window"]
        (cell / "generators.json").write_text(json.dumps(generators))
    run = load_run(run_copy)
    rate = run.equal_load_rate("read")
    assert run.get("p50_ms", scheme="session-redis", **equal_axes(rate)) is None
    row = next(r for r in decision_rows(run) if r.scheme == "session-redis")
    assert LATE_MARK in row.cells[1]
    assert not any(
        "session-redis" in line and "jwt-" in line for line in check_claims(run)[0].evidence
    )


def test_capacity_is_the_highest_probe_that_held_the_slo() -> None:
    """Recomputed from the probes' metrics rows, not with the module's judge."""
    run = load_run(FIXTURE)
    search = json.loads(next(FIXTURE.glob("manifest.json")).read_text())["matrix"]["search"]
    for _, row in run.capacity.iterrows():
        folder = FIXTURE / "capacity" / row["search_id"]
        names = json.loads((folder / "search.json").read_text())["probes"]
        probes = [cell_row(folder / name) for name in names]
        held = [
            p["offered_rps"]
            for p in probes
            if p["p99_ms"] <= search["slo_p99_ms"]
            and p["achieved_rps"] >= search["min_achieved"] * p["offered_rps"]
            and not p["saturated"]
            and not p["late"]
            and (p["error_rate"] or 0) <= search["slo_error_rate"]
        ]
        assert row["capacity_rps"] == pytest.approx(max(held, default=0.0), abs=0.1)
        assert row["capacity_rps_per_server_cpu"] == pytest.approx(
            row["capacity_rps"] / row["server_cpus"], abs=0.1
        )


def test_report_command_builds_every_section_in_order_with_every_image(
    fixture_report: ReportedRun,
) -> None:
    done, run_dir = fixture_report.command, fixture_report.run_dir
    assert done.returncode == 0, done.stderr
    assert str(run_dir / "report.html") in done.stdout
    page = (run_dir / "report.html").read_text()
    sections = ("decision", "decision-table", "claims", "capacity", "charts", "methodology",
                "warnings")  # fmt: skip
    positions = [page.index(f"id='{section}'") for section in sections]
    assert positions == sorted(positions)
    images = re.findall(r"<img alt='[^']+' src='data:image/png;base64,([A-Za-z0-9+/=]+)'>", page)
    pngs = sorted((run_dir / "figures").glob("*.png"))
    assert len(images) == len(pngs) >= 8
    assert all((run_dir / "figures" / f"{p.stem}.svg").exists() for p in pngs)
    assert "http://" not in page and "https://" not in page  # opens from disk with no network
    assert "assumed" not in page and "~" not in page.split("<h2 id='methodology'")[0]
    markdown = (run_dir / "report.md").read_text()
    for link in re.findall(r"!\[[^]]*\]\(([^)]+)\)", markdown):
        assert (run_dir / link).exists()
    assert "calibration" in markdown and "equal load" in markdown


def test_report_command_refuses_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    done = analysis_cli("report", str(tmp_path))
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "not a run folder" in done.stderr


def test_an_unknown_schema_version_is_refused_in_one_line(run_copy: Path) -> None:
    manifest = json.loads((run_copy / "manifest.json").read_text())
    manifest["schema_version"] = 1
    (run_copy / "manifest.json").write_text(json.dumps(manifest))
    done = analysis_cli("report", str(run_copy))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "results schema version 1" in lines[0]
    assert not (run_copy / "report.html").exists()


def test_compare_keeps_every_figure_and_lists_what_it_could_not_match(run_copy: Path) -> None:
    for path in run_copy.glob("cells/jwt-ES256__*/cell.json"):
        meta = json.loads(path.read_text())
        meta["cell"]["kdf_iterations"] = 600_000
        path.write_text(json.dumps(meta))
    shutil.rmtree(run_copy / "cells" / "jwt-HS256__single-1__revocation__closed-4u__r1")
    before, after = load_run(FIXTURE), load_run(run_copy)
    notes = warnings(before, after)
    assert notes[0].startswith("calibration B ÷ A") and "×1.00" in notes[0]
    comparison = compare_runs(before, after)
    assert any("jwt-ES256" in n and "kdf_iterations" in n for n in comparison.unmatched)
    assert any(
        n.startswith("jwt-HS256 revocation") and "measured in A only" in n
        for n in comparison.unmatched
    )
    rows = comparison_rows(comparison)
    assert not any(row[0].startswith("jwt-ES256") for row in rows)
    labels = {(row[0], row[1]) for row in rows}
    rate = before.equal_load_rate("read")
    assert (f"session-redis read single-1 open {rate:g} req/s", "p50 ms") in labels  # equal load
    assert ("jwt-HS256 read single-1 capacity at p99 ≤ 20 ms", "capacity req/s") in labels
    verdicts = {row[5] for row in rows}
    assert not any("same" in v for v in verdicts)
    multi = next(r for r in rows if r[0].startswith("session-redis read multi-2") and "CPU" in r[1])
    assert multi[5].startswith("no interval")
    cpu = next(r for r in rows if r[0] == "session-redis read single-1 closed" and "CPU" in r[1])
    assert "relative to the machine's shift ×1.000, the median of 3 schemes" in cpu[4]
    p99 = next(
        r for r in rows if r[0].startswith("session-redis read single-1 open") and "p99" in r[1]
    )
    assert "rests on" in p99[5] and "(fewer than 50)" in p99[5]  # each repetition's own tail


def test_repetitions_pool_only_within_one_cell_identity() -> None:
    """A cell measured with another population or window is another cell, never a repetition."""
    run = load_run(FIXTURE)
    closed = run.cells[(run.cells["model"] == "closed") & (run.cells["scenario"] == "read")]
    one_cell = closed[closed["scheme"] == "jwt-HS256"]
    assert len(one_cell) == 3
    other = one_cell.copy()
    other["population"] = 200
    other["duration_s"] = 3.0
    summary = summarise(pd.concat([one_cell, other]))
    assert sorted(summary["repetitions"]) == [3, 3]
    assert set(summary["population"]) == {200, one_cell["population"].iloc[0]}


def test_capacity_is_the_mean_of_its_searches_with_a_t_interval(
    run_copy: Path, scipy_stats: ModuleType
) -> None:
    """Two more searches of HS256 made from the fixture's probes: one stopping at the first."""
    first = run_copy / "capacity" / "jwt-HS256__single-1__read__8u"
    for number, probes in ((2, 1), (3, 2)):
        other = Path(shutil.copytree(first, first.with_name(f"{first.name}__s{number}")))
        record = json.loads((other / "search.json").read_text())
        record.update(round=number, probes=record["probes"][:probes])
        (other / "search.json").write_text(json.dumps(record))
    row = load_run(run_copy).capacity.set_index("scheme").loc["jwt-HS256"]
    each = [3272.0, 2454.0, 3272.0]  # the probes' offered rates that held
    mean = statistics.fmean(each)
    half = scipy_stats.t.ppf(0.975, 2) * statistics.stdev(each) / math.sqrt(3)
    assert row["searches"] == 3
    assert row["capacity_by_search"] == "3272 2454 3272"
    assert row["capacity_rps"] == pytest.approx(mean, abs=0.1)
    assert (row["capacity_lo"], row["capacity_hi"]) == pytest.approx(
        (max(0.0, mean - half), mean + half), abs=0.1
    )
    alone = load_run(FIXTURE).capacity.set_index("scheme").loc["none"]
    assert alone["searches"] == 1 and math.isnan(alone["capacity_lo"])


def test_the_machines_shift_is_the_median_of_the_schemes_and_one_change_stands_out() -> None:
    """Three schemes moved +5% with the machine, one +20%: only that one is called worse."""
    from analysis.compare import Figure, without_common_shift
    from analysis.stats import NOT_MEASURED
    from analysis.verdicts import LogRatio, decide_family

    def figure(scheme: str, ratio: float) -> Figure:
        moved = LogRatio(math.log(ratio), 0.01, 8.0, 5, 0.0005, False)
        return Figure(
            f"{scheme} read", "server_cpu_us_per_req", "CPU", 0, "lower",
            NOT_MEASURED, NOT_MEASURED, moved, "raw", group=("read",),
        )  # fmt: skip

    figures = without_common_shift(
        [figure("none", 1.05), figure("a", 1.04), figure("b", 1.06), figure("c", 1.26)]
    )
    assert all(f.basis.startswith("relative to the machine's shift ×1.055") for f in figures)
    verdicts = decide_family([(f.ratio, 0.1) for f in figures])
    assert [v.kind for v in verdicts][3] == "higher"
    assert all(v.kind != "higher" and v.kind != "lower" for v in verdicts[:3])
    assert figures[3].raw is not None and figures[3].raw.ratio == pytest.approx(1.26)
    low, high = figures[3].ratio.interval()
    assert low < 1.26 / 1.055 < high


def test_a_latency_below_the_smallest_effect_of_interest_decides_nothing() -> None:
    """A refused replay answers in a few µs: against a 0.1 ms floor, any verdict is noise."""

    def figure(value_ms: float) -> Figure:
        found = Estimate(value_ms, value_ms * 0.9, value_ms * 1.1, 3, value_ms * 0.05)
        return Figure("session-redis revocation", "p50_ms", "p50 ms", 2, "lower", found, found,
                      None, "raw")  # fmt: skip

    latency = Margin(relative=0.10, absolute=0.1)
    assert "below 0.1 ms" in below_resolution(figure(0.004), latency).unjudged
    assert below_resolution(figure(2.0), latency).judged


def test_revocation_cells_that_observed_no_revocation_draw_no_chart_and_stop_no_report(
    run_copy: Path, tmp_path: Path
) -> None:
    """Bug caught: every revocation delay NaN (nothing revoked inside a loaded window) gave a
    log axis with no positive value, and matplotlib's error stopped ``authbench run`` after its
    cells had finished, with a traceback."""
    for cell in run_copy.glob("cells/*__revocation__*"):
        for raw in [cell / "hdr.json", *cell.glob("generator-parts/*.json")]:
            histograms = json.loads(raw.read_text())
            if "revocation delay" in histograms.get("latency_us", {}):
                del histograms["latency_us"]["revocation delay"]
                raw.write_text(json.dumps(histograms))
    run = load_run(run_copy)
    assert run.headline(scenario="revocation", topology="single")["scheme"].size == 2
    assert revocation_chart(run, tmp_path) is None
    assert revocation_chart(load_run(FIXTURE), tmp_path) is not None


OVERHEADS = ("p50_overhead_ms", "p99_overhead_ms", "server_cpu_overhead_us_per_req", "rps_vs_none")


@pytest.mark.parametrize("baseline_saturated", [False, True])
def test_overheads_are_taken_against_an_unsaturated_none_only(baseline_saturated: bool) -> None:
    """Replaces a runner test whose expectation followed whether its own none cell saturated:
    here the baseline is set both ways and the overhead is recomputed by hand."""
    rows = metrics_rows(FIXTURE)
    for row in rows:
        row.update(dict.fromkeys(OVERHEADS))
    by_id = {row["cell_id"]: row for row in rows}
    base = by_id["none__single-1__read__closed-4u__r1"]
    session = by_id["session-redis__single-1__read__closed-4u__r1"]
    base["saturated"] = baseline_saturated
    session["saturated"] = False
    add_overheads(rows)
    if baseline_saturated:
        assert all(session[column] is None for column in OVERHEADS)
    else:
        expected = session["server_cpu_us_per_req"] - base["server_cpu_us_per_req"]
        assert session["server_cpu_overhead_us_per_req"] == pytest.approx(expected, abs=0.05)
        assert session["rps_vs_none"] == pytest.approx(session["rps"] / base["rps"], abs=0.0005)
