"""Intervals, the search's stepping and the open model's schedule count, on known numbers."""

from __future__ import annotations

import math
import statistics
from types import ModuleType

import pytest

from analysis.stats import Estimate, difference, estimate
from loadtests.measure.capacity import Verdict, search_rates


def test_interval_is_student_t_around_the_mean_it_shows(scipy_stats: ModuleType) -> None:
    values = [100.0, 104.0, 109.0]
    found = estimate(values)
    half = scipy_stats.t.ppf(0.975, 2) * statistics.stdev(values) / math.sqrt(3)
    assert found.value == pytest.approx(statistics.fmean(values))
    assert (found.low, found.high) == pytest.approx((found.value - half, found.value + half))
    assert found.value - found.low == pytest.approx(found.high - found.value)  # centred


def test_three_agreeing_repetitions_keep_their_own_interval(scipy_stats: ModuleType) -> None:
    """One rule: no floor borrowed from other cells; t(2) is what makes three repetitions wide."""
    lucky = estimate([200.0, 200.1, 199.9])
    assert lucky.spread == pytest.approx(0.1)
    assert lucky.high - lucky.low == pytest.approx(2 * scipy_stats.t.ppf(0.975, 2) * 0.1 / 3**0.5)


def test_a_quantity_that_cannot_be_negative_gets_no_negative_bound() -> None:
    wide = estimate([1.0, 2.0, 12.0])
    assert wide.low == 0.0 and wide.high > 12.0
    signed = estimate([-1.0, 2.0, 12.0])
    assert signed.low < 0


def test_one_repetition_has_no_interval_and_never_separates() -> None:
    single = estimate([200.0])
    assert not single.has_interval and "no interval" in single.text()
    far = estimate([1000.0, 1001.0, 999.0])
    assert single.overlaps(far) and far.overlaps(single)


def test_difference_combines_both_half_widths() -> None:
    d = difference(Estimate(130.0, 120.0, 140.0, 3, 5.0), Estimate(100.0, 97.0, 103.0, 3, 2.0))
    assert d.value == 30.0
    assert d.high - d.value == pytest.approx(math.hypot(10.0, 3.0))


def test_search_steps_up_backs_off_and_halves_to_the_resolution() -> None:
    limit = 730.0
    probed: list[float] = []

    def probe(rate: float) -> Verdict:
        probed.append(rate)
        return Verdict(rate, rate <= limit, None if rate <= limit else "server")

    capacity, bound, steps = search_rates(probe, 400.0, 200.0, 50.0, max_steps=10)
    # Every failure is probed twice before it counts.
    assert probed == [400.0, 600.0, 800.0, 800.0, 700.0, 750.0, 750.0]
    assert (capacity, bound, steps) == (700.0, "server", 7)


def test_one_stall_on_fresh_servers_does_not_set_the_ceiling() -> None:
    """The first probe fails once (a stall), its repeat holds: the search goes on upwards."""
    probed: list[float] = []

    def probe(rate: float) -> Verdict:
        probed.append(rate)
        stalled = len(probed) == 1
        held = rate <= 730.0 and not stalled
        return Verdict(rate, held, None if held else "server")

    capacity, bound, _ = search_rates(probe, 400.0, 200.0, 50.0, max_steps=10)
    assert probed[:3] == [400.0, 400.0, 600.0]
    assert capacity == 700.0 and bound == "server"


def test_search_halves_a_start_that_was_already_too_high() -> None:
    def probe(rate: float) -> Verdict:
        return Verdict(rate, rate <= 130.0, "errors")

    capacity, bound, _ = search_rates(probe, 1000.0, 300.0, 20.0, max_steps=12)
    assert 100.0 <= capacity <= 130.0 and bound == "errors"
