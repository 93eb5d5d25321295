"""The decision page: a workload sized on a run, the TTL trade-off, and the history of runs."""

from __future__ import annotations

import csv
import json
import math
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.cost import (
    ZERO,
    Sizing,
    Span,
    cheapest,
    sizing_table,
    sizings,
    span,
    unmet_windows,
)
from analysis.history import write_history
from analysis.stats import Estimate
from analysis.tidy import load_run
from analysis.workload import Workload, WorkloadError, load_workload
from tests.planting import scale_server_cpu

FIXTURE = Path(__file__).parent / "data" / "run-fixture"
EXAMPLE = Path(__file__).parent.parent / "analysis" / "workloads" / "example.toml"
WORKLOAD = """
[workload]
reads_per_s = 2000
logins_per_s = 10
active_users = 30000
access_ttl_s = 300
nodes = 2
max_revocation_window_s = {window}
headroom = 0.25
price_per_core_hour = 0.05
"""


def analysis_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "authbench", *args], capture_output=True, text=True, timeout=120
    )


def write_workload(tmp_path: Path, window: float = 600) -> Path:
    path = tmp_path / "workload.toml"
    path.write_text(WORKLOAD.format(window=window))
    return path


def fixture_rows(scheme: str, scenario: str) -> list[dict[str, str]]:
    """The fixture's metrics.csv rows of one closed single-node cell, read with csv alone."""
    with (FIXTURE / "metrics.csv").open(newline="") as handle:
        return [
            row
            for row in csv.DictReader(handle)
            if (row["scheme"], row["scenario"], row["model"], row["topology"])
            == (scheme, scenario, "closed", "single")
        ]


def test_cost_model_row_is_the_arithmetic_by_hand(tmp_path: Path) -> None:
    """jwt-HS256, recomputed from capacity.csv and metrics.csv without the module."""
    workload = load_workload(write_workload(tmp_path))
    with (FIXTURE / "capacity.csv").open(newline="") as handle:
        capacity = next(r for r in csv.DictReader(handle) if r["scheme"] == "jwt-HS256")
    logins = fixture_rows("jwt-HS256", "login")
    reads = fixture_rows("jwt-HS256", "read")
    assert all(
        row["saturated"] == "False" for row in logins + reads
    )  # usable, so the model uses them
    # A refresh: the login's CPU minus the password hash the same cell timed, per repetition.
    kdf_us = statistics.fmean(float(r["kdf_mean_us"]) for r in logins)
    login_us = statistics.fmean(float(r["server_cpu_us_per_req"]) for r in logins)
    redis_login_us = statistics.fmean(float(r["redis_cpu_us_per_req"]) for r in logins)
    redis_read_us = statistics.fmean(float(r["redis_cpu_us_per_req"]) for r in reads)
    refreshes = 30000 / 300
    app = (
        2000 / float(capacity["capacity_rps_per_server_cpu"])
        + 10 * login_us / 1e6
        + refreshes * (login_us - kdf_us) / 1e6
    ) / 0.75
    redis = (2000 * redis_read_us + (10 + refreshes) * redis_login_us) / 1e6 / 0.75

    row = next(r for r in sizings(load_run(FIXTURE), workload) if r.scheme == "jwt-HS256")
    assert row.app_cores is not None and row.redis_cores is not None
    assert row.app_cores.value == pytest.approx(app, rel=1e-6)
    assert row.redis_cores.value == pytest.approx(redis, rel=1e-6, abs=1e-9)
    assert row.app_cores.low <= row.app_cores.value <= row.app_cores.high
    assert row.meets_window  # a 300 s token within a 600 s window


def test_a_window_no_plain_jwt_meets_is_shown_plainly(tmp_path: Path) -> None:
    rows = sizings(load_run(FIXTURE), load_workload(write_workload(tmp_path, window=0)))
    plain = [r for r in rows if r.scheme in ("jwt-HS256", "jwt-ES256")]
    assert plain and not any(r.meets_window for r in plain)
    assert all(r.access_ttl_s == 300 for r in plain)  # no TTL meets 0 s: no alternative row
    session = next(r for r in rows if r.scheme == "session-redis")
    assert session.meets_window
    best, verdict = cheapest(rows)
    assert best is not None and best.scheme == "session-redis"
    assert "session-redis" in verdict
    assert unmet_windows(rows, load_workload(write_workload(tmp_path, window=0))) == [
        "No access-token lifetime meets a 0 s revocation window: plain JWTs are out; only "
        "sessions or a denylist revoke in time"
    ]


def test_a_plain_jwt_missing_the_window_is_also_costed_at_the_ttl_that_meets_it(
    tmp_path: Path,
) -> None:
    rows = sizings(load_run(FIXTURE), load_workload(write_workload(tmp_path, window=60)))
    hs256 = {r.access_ttl_s: r for r in rows if r.scheme == "jwt-HS256"}
    assert not hs256[300].meets_window and hs256[60].meets_window
    assert hs256[60].app_cores.value > hs256[300].app_cores.value  # five times the refreshes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[workload]\nlogins_per_s = 3\n", "workload.reads_per_s: is required"),
        ("[workload]\nreads_per_s = -5\n", "workload.reads_per_s: -5 must be above 0"),
        ("[workload]\nreads_per_s = 'lots'\n", "workload.reads_per_s: 'lots' is not a number"),
        ("[workload]\nreads_per_s = 5\ncolour = 1\n", "workload.colour: unknown key"),
        ("[workload]\nreads_per_s = 5\nheadroom = 1.5\n", "workload.headroom: a share"),
        ("[workload]\nreads_per_s = 5\nnodes = 2.5\n", "workload.nodes: 2.5 is not a whole"),
        ("reads_per_s = 5\n", "needs one [workload] table"),
        ("[workload\n", "cannot read"),
    ],
)
def test_a_bad_workload_file_is_a_one_line_error(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(WorkloadError) as caught:
        load_workload(path)
    assert expected in str(caught.value) and "\n" not in str(caught.value)
    done = analysis_cli("decide", str(FIXTURE), "--workload", str(path))
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and expected in done.stderr


def test_the_shipped_example_workload_loads() -> None:
    example = load_workload(EXAMPLE)
    assert isinstance(example, Workload) and example.max_revocation_window_s == 60


@pytest.fixture(scope="module")
def decided(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A copy of the fixture after ``authbench decide`` with the example workload (one report
    build shared by the tests that read it)."""
    run_copy = Path(shutil.copytree(FIXTURE, tmp_path_factory.mktemp("decided") / "run"))
    return run_copy, analysis_cli("decide", str(run_copy), "--workload", str(EXAMPLE))


def test_decide_prints_the_table_and_writes_it_into_the_report(
    decided: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    run_copy, done = decided
    assert done.returncode == 0, done.stderr
    assert "app cores" in done.stdout and "session-redis" in done.stdout
    assert (run_copy / "workload.toml").read_text() == EXAMPLE.read_text()
    markdown = (run_copy / "report.md").read_text()
    assert "## Your workload" in markdown and "monthly cost" in markdown
    # Every term at one load, stated where the table is read.
    assert "Operating point: every term is the server at its limit" in done.stdout
    assert "every term is the server at its limit" in markdown
    assert (run_copy / "figures" / "ttl_tradeoff.png").exists()
    assert (run_copy / "figures" / "ttl_tradeoff.svg").exists()


def test_the_report_puts_the_workload_before_the_charts_with_the_ttl_tradeoff(
    decided: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    """decide keeps the workload beside the run and rebuilds the report, which finds it there."""
    page = (decided[0] / "report.html").read_text()
    assert page.index("id='workload'") < page.index("id='charts'")
    assert "Access-TTL trade-off" in page


def copy_run(results: Path, run_id: str, started: str) -> Path:
    run_dir = Path(shutil.copytree(FIXTURE, results / run_id))
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest.update(run_id=run_id, started=started)
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    return run_dir


def set_calibration_scale(run_dir: Path, factor: float) -> None:
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["calibration"]["start"]["python_loop_us"] *= factor
    (run_dir / "manifest.json").write_text(json.dumps(manifest))


def test_history_flags_a_planted_regression_but_not_a_slower_machine(tmp_path: Path) -> None:
    results = tmp_path / "results"
    copy_run(results, "run-a", "2026-01-01T00:00:00+00:00")
    slower_machine = copy_run(results, "run-b", "2026-01-02T00:00:00+00:00")
    scale_server_cpu(slower_machine, 1.8)  # everything 1.8x slower …
    set_calibration_scale(slower_machine, 1.8)  # … and the calibration says the machine was
    regressed = copy_run(results, "run-c", "2026-01-03T00:00:00+00:00")
    scale_server_cpu(regressed, 1.8 * 2.5)  # the same machine as run-b, but the code got slower
    set_calibration_scale(regressed, 1.8)

    flagged, paths = write_history(results)
    assert all(path.exists() for path in paths)
    assert not [c for c in flagged if c.after.run_id == "run-b"]
    regressions = {
        c.scheme for c in flagged if c.after.run_id == "run-c" and c.kind == "regression"
    }
    assert {"session-redis", "jwt-HS256", "jwt-ES256"} <= regressions
    index = json.loads((results / "index.json").read_text())
    assert [entry["run_id"] for entry in index] == ["run-a", "run-b", "run-c"]
    assert "regression" in (results / "history" / "history.md").read_text()


def test_a_one_repetition_input_is_an_unbounded_range_and_never_names_the_cheapest() -> None:
    """A single repetition has no interval: it must not read as a certain, zero-width cost."""
    once = span(Estimate(500.0, math.nan, math.nan, 1, math.nan))
    assert once == Span(500.0, 0.0, math.inf)
    assert "no interval" in once.text()

    def sized(scheme: str, cores: Span) -> Sizing:
        return Sizing(scheme, None, cores, ZERO, None, True)

    measured = sized("session-redis", Span(2.0, 1.9, 2.1))
    single = sized("jwt-HS256", Span(1.0, 0.0, math.inf))
    best, verdict = cheapest([measured, single])
    assert best is not None and verdict.startswith("undecided between")


def test_the_cheapest_is_named_only_when_the_interval_of_the_difference_excludes_zero() -> None:
    """1.0 [0.8, 1.2] and 1.35 [1.15, 1.55] overlap, yet their difference, 0.35 ± 0.28, excludes
    zero: named. 1.0 [0.8, 1.2] against 1.25 [1.05, 1.45]: 0.25 ± 0.28 includes zero."""

    def sized(scheme: str, cores: Span) -> Sizing:
        return Sizing(scheme, None, cores, ZERO, None, True)

    cheap = sized("jwt-HS256", Span(1.0, 0.8, 1.2))
    best, verdict = cheapest([cheap, sized("session-redis", Span(1.35, 1.15, 1.55))])
    assert best is cheap and "is cheapest, 0.35 [0.07, 0.63] cores below" in verdict
    best, verdict = cheapest([cheap, sized("session-redis", Span(1.25, 1.05, 1.45))])
    assert verdict.startswith("undecided between") and "includes zero" in verdict


def test_your_own_work_adds_to_every_scheme_and_gives_authentications_share(
    tmp_path: Path,
) -> None:
    path = tmp_path / "workload.toml"
    path.write_text(
        "[workload]\nreads_per_s = 3000\nlogins_per_s = 20\nactive_users = 50000\n"
        "headroom = 0.3\napp_cpu_us_per_req = 1500\nlatency_budget_ms = 50\n"
    )
    workload = load_workload(path)
    rows = sizings(load_run(FIXTURE), workload)
    table = sizing_table(rows, workload).set_index("scheme")
    work = 1500e-6 * (3000 + 20) / 0.7  # by hand: µs per request × requests/s, at 70% busy
    es256 = next(r for r in rows if r.scheme == "jwt-ES256")
    auth = es256.total_cores
    assert table.loc[es256.label, "your work cores"] == f"{work:.2f} (your figure)"
    share = auth.value / (auth.value + work)
    low, high = auth.low / (auth.low + work), auth.high / (auth.high + work)
    assert table.loc[es256.label, "auth share"] == f"{share:.0%} [{low:.0%}, {high:.0%}]"
    assert table.loc[es256.label, "total cores"].startswith(f"{auth.value + work:.2f} [")
    with (FIXTURE / "metrics.csv").open(newline="") as handle:
        equal = [r for r in csv.DictReader(handle) if r["equal_load"] == "True"]
    p50 = {(r["scheme"], r["repetition"]): float(r["p50_ms"]) for r in equal}
    added = statistics.mean(
        p50[("jwt-ES256", rep)] - p50[("none", rep)] for scheme, rep in p50 if scheme == "none"
    )  # by hand: the mean over repetitions of ES256's p50 minus none's, at equal load
    assert table.loc[es256.label, "p50 added of budget"].startswith(
        f"{added:.2f} ms = {added / 50:.1%} ["
    )
    without = sizings(load_run(FIXTURE), workload.model_copy(update={"app_cpu_us_per_req": None}))
    assert cheapest(rows)[1] == cheapest(without)[1]  # the same work for all: same answer
