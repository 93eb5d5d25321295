"""The open model tells the truth about the generator: lateness, unsent requests, K processes,
and the capacity search finding a limit that is known in advance.

Real Locust processes against the trivial server (answers at once, or after a fixed service
time that caps it at a known rate), measured the way the runner measures a cell.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from loadtests.load.histograms import CENSORED, LATENCY, HistogramSet, recorded
from loadtests.load.locust_process import LocustRun
from loadtests.measure.capacity import judge, search_plan, search_rates
from loadtests.measure.cell_metrics import cell_row
from loadtests.measure.sampling import Sampler
from loadtests.run.cell_run import CpuPlan, expect_results
from loadtests.run.matrix import Cell, CellSettings, SearchSettings
from loadtests.run.run_folder import write_json
from loadtests.services.trivial_server import TrivialServer
from tests.hdr_counts import answered_in_merge, answered_in_parts


def open_cell(
    rate: float,
    users: int,
    processes: int = 1,
    duration_s: float = 1.5,
    arrivals: str = "poisson",
) -> Cell:
    """An open-model read cell against whatever answers like the none scheme."""
    settings = CellSettings(
        warmup_s=0.5, duration_s=duration_s, model="open", rate=rate,
        generator_processes=processes, arrivals=arrivals,
    )  # fmt: skip
    return Cell("none", "single", 1, "read", users, settings)


def measure(
    cell: Cell, url: str, folder: Path, cpus: CpuPlan, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run one cell's Locust against url, sampling the generator; return its metrics row."""
    folder.mkdir(parents=True)
    meta = {"cell_id": cell.cell_id(1), "repetition": 1, "cell": cell.describe(),
            "status": "complete", **cpus.describe()}  # fmt: skip
    with Sampler({}, None) as sampler:
        locust = LocustRun(cell, [url], folder, cpus.generator, env)
        try:
            sampler.add_process("generator", locust.pid)
            locust.wait()
        finally:
            locust.stop()
    sampler.save(folder / "samples.csv")
    write_json(folder / "cell.json", meta)
    return cell_row(folder)


@pytest.mark.quiet_machine  # its window's planned arrivals drift under shared CPUs
def test_unsent_and_late_requests_are_recorded_when_the_rate_exceeds_the_generator(
    tmp_path: Path,
) -> None:
    cpus = CpuPlan.for_this_machine()
    with TrivialServer(cpus.servers) as server:
        cell = open_cell(rate=100_000, users=8, arrivals="uniform")
        row = measure(cell, server.url, tmp_path / "cell", cpus)
    generators = json.loads((tmp_path / "cell" / "generators.json").read_text())
    window_s = row["window_s"]
    assert abs(generators["planned_in_window"] - 100_000 * window_s) <= 8  # one per user at most
    assert row["unsent"] > 0.5 * generators["planned_in_window"]
    assert row["achieved_rps"] < 0.5 * row["offered_rps"]
    assert row["late_p99_ms"] > 100
    assert row["late"] is True


@pytest.mark.quiet_machine
def test_an_open_cell_within_reach_sends_everything_on_time(tmp_path: Path) -> None:
    cpus = CpuPlan.for_this_machine()
    with TrivialServer(cpus.servers) as server:
        row = measure(open_cell(rate=300, users=8), server.url, tmp_path / "cell", cpus)
    assert row["unsent"] == row["censored"] == 0
    assert 0.95 * row["planned_rps"] <= row["achieved_rps"] <= 1.05 * row["planned_rps"]
    assert 0.8 * 300 <= row["planned_rps"] <= 1.2 * 300  # Poisson: about 4 standard deviations
    assert row["late"] is False


@pytest.mark.quiet_machine
def test_two_processes_offer_the_total_rate_not_twice_it(tmp_path: Path) -> None:
    cpus = CpuPlan.for_this_machine(generator_processes=2)
    cell = open_cell(rate=400, users=8, processes=2, duration_s=2.0)
    with TrivialServer(cpus.servers) as server:
        row = measure(cell, server.url, tmp_path / "cell", cpus)
    generators = json.loads((tmp_path / "cell" / "generators.json").read_text())
    processes = generators["processes"]
    assert len(processes) == 2
    assert 0.8 * 400 <= row["achieved_rps"] <= 1.2 * 400  # not 800 (Poisson: ±4 sd)
    for part in processes.values():
        assert part["requests"] > 0.3 * generators["merged_requests"]
        # Each process's own Locust count agrees with what its recorder saw.
        assert part["locust_since_open"] == part["seen_since_open"]
    # Counted again from the raw part files, apart from the merge's own bookkeeping.
    cell_dir = tmp_path / "cell"
    raw = answered_in_parts(cell_dir)
    assert {name: part["requests"] for name, part in processes.items()} == raw
    assert generators["merged_requests"] == answered_in_merge(cell_dir) == sum(raw.values())
    assert row["unsent"] == 0


@pytest.mark.quiet_machine
def test_capacity_search_finds_the_limit_of_a_fixed_cost_target(tmp_path: Path) -> None:
    """A target that holds its loop 2 ms per request cannot serve more than 500 requests/s."""
    cpus = CpuPlan.for_this_machine()
    search = SearchSettings(slo_p99_ms=50.0)
    probes: list[dict[str, Any]] = []

    with TrivialServer(cpus.servers, service_us=2000) as server:

        def probe(rate: float) -> Any:
            folder = tmp_path / f"probe{len(probes) + 1:02d}"
            # Evenly spaced arrivals: a Poisson queue breaks the p99 well below the service limit.
            cell = open_cell(rate=rate, users=16, arrivals="uniform")
            row = measure(cell, server.url, folder, cpus)
            probes.append(row)
            return judge(row, search)

        capacity, bound, steps = search_rates(probe, 300.0, 100.0, 25.0, max_steps=6)
    seen = [(p["offered_rps"], p["p99_ms"], p["censored"]) for p in probes]
    assert 350 <= capacity <= 500, seen
    assert bound == "server"
    assert steps == len(probes) <= 6
    # Nothing at or beyond the service limit ever held the SLO.
    assert not any(p["offered_rps"] >= 500 and judge(p, search).held for p in probes), seen


@pytest.mark.parametrize(
    ("rate", "bound_ms", "stops_early"), [(900.0, 50.0, True), (200.0, 1000.0, False)]
)
def test_a_probe_whose_p99_is_certain_to_break_the_bound_ends_its_window_early(
    tmp_path: Path, rate: float, bound_ms: float, stops_early: bool
) -> None:
    """A target capped at 500 requests/s, offered 900: once more than 1% of the window's planned
    requests were slower than the bound, the p99 can only be above it, and the window ends
    there. A probe that holds the bound is measured to its end."""
    cpus = CpuPlan.for_this_machine()
    cell = open_cell(rate=rate, users=16, duration_s=6.0, arrivals="uniform")
    # The window opens while users are still starting (a probe on a busy machine can do that).
    cell = replace(cell, settings=replace(cell.settings, warmup_s=0.02))
    bound = {"AUTHBENCH_STOP_ABOVE_MS": f"{bound_ms:g}"}
    folder = tmp_path / "probe"
    with TrivialServer(cpus.servers, service_us=2000) as server:
        row = measure(cell, server.url, folder, cpus, bound)
    window = expect_results(folder, cell.settings.duration_s)
    lasted = window["window_end"] - window["window_start"]
    if not stops_early:
        assert "stopped_early" not in window and lasted >= 0.95 * 6.0
        return
    assert "stopped_early" in window and lasted < 4.0, window
    # Judged only once every user's schedule was known: "at most M" counts the whole window's
    # planned requests, not only those of the users started when the window opened.
    at_most = int(window["stopped_early"].split(" of at most ")[1].split()[0])
    assert at_most >= 0.95 * rate * 6.0, window["stopped_early"]
    assert row["p99_ms"] > bound_ms
    # More than 1% of a whole window's planned requests were slower than the bound (counted
    # from the raw histograms): the whole window's p99 could only have been above it too.
    above = 0
    for metric, _, histogram in HistogramSet.load(folder / "hdr.json").items():
        if metric in (LATENCY, CENSORED):
            values, counts = recorded(histogram)
            above += int(counts[values > bound_ms * 1000].sum())
    assert above > 0.01 * rate * 6.0 * 0.9


def test_every_capacity_round_plans_from_the_closed_throughput_not_from_the_first_round() -> None:
    """Round 1 of RS256 once stalled at 613 req/s (closed: 2,045); rounds planned around that
    result could only climb to 1.25 times it, and three "agreeing" rounds confirmed the stall.
    Every round's plan now depends on the closed throughput and its round number alone."""
    search = SearchSettings()
    first = search_plan(search, 2000.0, 1)
    assert first == pytest.approx((1200.0, 400.0, 200.0))
    later = [search_plan(search, 2000.0, number) for number in (2, 3)]
    for start, step, resolution in later:
        assert 0.85 * 1200 <= start <= 1.15 * 1200
        assert step == pytest.approx(start / 3) and resolution == pytest.approx(start / 6)
        assert start + 2 * step >= 0.85 * 2000  # each round reaches the closed throughput
    assert len({first[0], later[0][0], later[1][0]}) == 3  # no common grid
    assert later == [search_plan(search, 2000.0, number) for number in (2, 3)]  # reproducible


def test_requests_unanswered_at_the_stop_are_censored_into_the_percentiles(
    tmp_path: Path,
) -> None:
    """A target that stops answering mid-window: its hung requests are the p99, not dropped.

    Its counts also guard against Locust's double stop (its run-time limit quitting again while
    the window's own stop still waits for the hung users), which once doubled Locust's request
    count; since --run-time has 5 s of slack the limit no longer fires during that wait here.
    """
    cpus = CpuPlan.for_this_machine()
    with TrivialServer(cpus.servers, stall_after_s=1.5) as server:
        row = measure(open_cell(rate=200, users=8), server.url, tmp_path / "cell", cpus)
    generators = json.loads((tmp_path / "cell" / "generators.json").read_text())
    unanswered = generators["planned_in_window"] - generators["sent_on_schedule"]
    assert row["censored"] == generators["censored"] == unanswered > 0
    # Censored at (stop - intended start): at least the drain after the window's end.
    assert row["p99_ms"] >= 500
    assert row["max_ms"] >= 500
    assert row["requests"] > 0 and row["censored"] > 0.01 * row["requests"]
    assert row["locust_requests"] == row["recorded_requests"] == generators["seen_since_open"]
    window = json.loads((tmp_path / "cell" / "window.json").read_text())
    assert window["drain_ended"] == "bound"  # the hung requests held the drain to its bound


def test_the_drain_ends_once_every_request_of_the_window_is_answered(tmp_path: Path) -> None:
    """A target that answers at once: the drain after the window ends on the last answer of
    the window's planned requests, with nothing censored, not after its whole bound."""
    cpus = CpuPlan.for_this_machine()
    with TrivialServer(cpus.servers) as server:
        row = measure(open_cell(rate=200, users=8), server.url, tmp_path / "cell", cpus)
    window = json.loads((tmp_path / "cell" / "window.json").read_text())
    assert window["drain_ended"] == "answered"
    assert row["censored"] == row["unsent"] == 0
    assert row["requests"] >= 0.8 * 200 * row["window_s"]
