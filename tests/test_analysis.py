"""The analysis on a small run folder made by the real runner (tests/data/run-fixture)."""

from __future__ import annotations

import math
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.claims import (
    NOT_DISTINGUISHABLE,
    SUPPORTED,
    check_claims,
    compare,
    sessions_add_latency,
)
from analysis.compare import comparison_rows
from analysis.report import write_report
from analysis.stats import Estimate, estimate, t_critical
from analysis.tidy import load_run
from loadtests.cell_metrics import COLUMNS

FIXTURE = Path(__file__).parent / "data" / "run-fixture"


def analysis_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m analysis`` with the given arguments."""
    return subprocess.run(
        [sys.executable, "-m", "analysis", *args], capture_output=True, text=True, timeout=120
    )


@pytest.fixture()
def run_copy(tmp_path: Path) -> Path:
    """The fixture copied, so building a report never writes into tests/data."""
    return Path(shutil.copytree(FIXTURE, tmp_path / FIXTURE.name))


def test_tidy_table_has_every_metrics_column_and_the_cpu_split() -> None:
    run = load_run(FIXTURE)
    assert set(COLUMNS) <= set(run.cells.columns)
    assert {"cpu_framework_us", "cpu_auth_us", "cpu_rest_us"} <= set(run.cells.columns)
    assert (run.cells["status"] == "complete").all()
    assert len(run.cells) == 21  # 8 cells x 2 repetitions + 3 multi + 2 revocation
    single_read = run.summary[(run.summary.scenario == "read") & (run.summary.topology == "single")]
    assert set(single_read["repetitions"]) == {2}


def test_cpu_split_adds_up_to_the_measured_cpu() -> None:
    run = load_run(FIXTURE)
    done = run.cells.dropna(subset=["cpu_framework_us"])
    total = done["cpu_framework_us"] + done["cpu_auth_us"] + done["cpu_rest_us"]
    assert total.tolist() == pytest.approx(done["server_cpu_us_per_req"].tolist())
    none_rows = done[done["scheme"] == "none"]
    assert (none_rows["cpu_framework_us"] == none_rows["server_cpu_us_per_req"]).all()


def test_overheads_are_differences_from_none_of_the_same_scenario_topology_and_repetition() -> None:
    cells = load_run(FIXTURE).cells
    key = ["scenario", "topology", "nodes", "repetition"]
    base = cells[cells.scheme == "none"].set_index(key)
    checked = 0
    for _, row in cells[cells.scheme != "none"].iterrows():
        index = tuple(row[k] for k in key)
        if index not in base.index:
            assert math.isnan(row["p50_overhead_ms"])  # no baseline (revocation): no overhead
            continue
        none_row = base.loc[index]
        assert row["p50_overhead_ms"] == pytest.approx(row["p50_ms"] - none_row["p50_ms"], abs=1e-3)
        assert row["server_cpu_overhead_us_per_req"] == pytest.approx(
            row["server_cpu_us_per_req"] - none_row["server_cpu_us_per_req"], abs=0.11
        )
        assert row["rps_vs_none"] == pytest.approx(row["rps"] / none_row["rps"], abs=1e-3)
        checked += 1
    assert checked >= 12


def test_interval_across_two_repetitions_is_student_t() -> None:
    run = load_run(FIXTURE)
    values = run.cells[(run.cells.scheme == "jwt-ES256") & (run.cells.scenario == "read")][
        "server_cpu_us_per_req"
    ].tolist()
    found = run.get("server_cpu_us_per_req", scheme="jwt-ES256", scenario="read", topology="single")
    assert found is not None and found.n == 2 and not found.assumed
    half = t_critical(1) * statistics.stdev(values) / math.sqrt(2)
    assert found.low == pytest.approx(statistics.fmean(values) - half)
    assert found.high == pytest.approx(statistics.fmean(values) + half)
    assert found.value == pytest.approx(statistics.median(values))


def test_one_repetition_gets_the_assumed_noise_band() -> None:
    single = estimate([200.0], "cpu")
    assert (single.low, single.high, single.assumed) == (186.0, 214.0, True)
    assert estimate([10.0], "throughput").high == pytest.approx(13.0)


def test_overlapping_intervals_are_never_called_a_difference() -> None:
    a = Estimate(100.0, 90.0, 110.0, 3, False)
    b = Estimate(108.0, 104.0, 112.0, 3, False)
    c = Estimate(130.0, 120.0, 140.0, 3, False)
    assert compare(b, a) == NOT_DISTINGUISHABLE
    assert compare(c, a) == SUPPORTED


def test_latency_claim_follows_the_fixture_intervals() -> None:
    run = load_run(FIXTURE)
    session = run.get("p50_ms", scheme="session-redis", scenario="read", topology="single")
    hs256 = run.get("p50_ms", scheme="jwt-HS256", scenario="read", topology="single")
    es256 = run.get("p50_ms", scheme="jwt-ES256", scenario="read", topology="single")
    claim = sessions_add_latency(run)
    implied = {compare(session, hs256), compare(session, es256)}
    expected = implied.pop() if len(implied) == 1 else NOT_DISTINGUISHABLE
    assert claim.verdict == expected
    # session-redis and jwt-ES256 reads overlap in this fixture: that pair is no difference,
    # and a claim whose pairs disagree is not distinguishable as a whole.
    assert session.overlaps(es256)
    es256_line = next(line for line in claim.evidence if line.startswith("vs jwt-ES256"))
    assert es256_line.split("ms (")[1].startswith(NOT_DISTINGUISHABLE)
    assert claim.verdict == NOT_DISTINGUISHABLE


def test_every_claim_has_evidence_and_a_known_verdict() -> None:
    claims = check_claims(load_run(FIXTURE))
    assert len(claims) == 5
    verdicts = {"supported", "not supported", "not distinguishable", "not measured"}
    for claim in claims:
        assert claim.evidence and claim.verdict in verdicts
    by_text = {claim.claim.split(" (")[0]: claim for claim in claims}
    assert by_text["JWTs scale without shared state"].verdict == SUPPORTED
    revocation = by_text["Sessions revoke at once; JWTs only at expiry"]
    assert revocation.verdict == SUPPORTED
    jwt_line = next(line for line in revocation.evidence if line.startswith("jwt-HS256"))
    delay_ms = float(re.search(r"refused in ([0-9.]+)", jwt_line).group(1))
    assert 4000 < delay_ms <= 5100  # the fixture's access TTL is 5 s
    asymmetric = by_text["Asymmetric keys let other services verify tokens alone"]
    assert asymmetric.verdict == SUPPORTED


def test_report_has_its_sections_in_order_and_every_image(run_copy: Path) -> None:
    html_path, md_path = write_report(load_run(run_copy))
    page = html_path.read_text()
    positions = [
        page.index(f"id='{section}'")
        for section in ("decision", "decision-table", "claims", "charts", "methodology", "warnings")
    ]
    assert positions == sorted(positions)
    images = re.findall(r"<img alt='[^']+' src='data:image/png;base64,([A-Za-z0-9+/=]+)'>", page)
    pngs = sorted((run_copy / "figures").glob("*.png"))
    assert len(images) == len(pngs) >= 8
    assert all((run_copy / "figures" / f"{p.stem}.svg").exists() for p in pngs)
    assert "http://" not in page and "https://" not in page  # opens from disk with no network
    markdown = md_path.read_text()
    for link in re.findall(r"!\[[^]]*\]\(([^)]+)\)", markdown):
        assert (run_copy / link).exists()
    assert markdown.index("## Decision table") < markdown.index("## Claims checked")


def test_report_command_rebuilds_from_raw_files(run_copy: Path) -> None:
    done = analysis_cli("report", str(run_copy))
    assert done.returncode == 0, done.stderr
    assert str(run_copy / "report.html") in done.stdout


def test_report_command_refuses_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    done = analysis_cli("report", str(tmp_path))
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "not a run folder" in done.stderr


def test_comparing_a_run_with_itself_finds_no_change() -> None:
    run = load_run(FIXTURE)
    rows = comparison_rows(run, run)
    assert len(rows) == len(run.summary)
    assert all("(same within noise)" in cell for row in rows for cell in row[1:])
