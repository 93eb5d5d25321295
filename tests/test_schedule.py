"""Open-model schedules: Poisson or evenly spaced arrivals, and the sends planned but never made."""

from __future__ import annotations

import random
import statistics

import pytest

from loadtests.run.schedule import Schedule


def test_uniform_streams_send_every_interval_and_count_the_window_exactly() -> None:
    schedule = Schedule(0.0, 0.1, "uniform", random.Random(1))
    first = schedule.next_send()
    assert 0.0 <= first < 0.1
    # Ten points per second whatever the phase: [1, 2) holds exactly ten of them.
    assert schedule.planned_between(1.0, 2.0) == 10
    assert schedule.planned_between(2.0, 2.0) == 0


def test_poisson_arrivals_have_the_mean_rate_and_poisson_dispersion() -> None:
    """Counts per second of a Poisson stream: mean = rate, variance = mean (uniform: about 0)."""
    rate = 50.0
    rng = random.Random(7)
    poisson = Schedule(0.0, 1 / rate, "poisson", rng)
    uniform = Schedule(0.0, 1 / rate, "uniform", rng)
    seconds = range(1, 401)
    counts = [poisson.planned_between(s, s + 1) for s in seconds]
    even = [uniform.planned_between(s, s + 1) for s in seconds]
    assert statistics.fmean(counts) == pytest.approx(rate, rel=0.03)
    assert statistics.variance(counts) == pytest.approx(rate, rel=0.25)
    assert statistics.variance(even) < 1.0


def test_sends_planned_in_the_window_and_never_made_are_listed() -> None:
    schedule = Schedule(0.0, 0.1, "uniform", random.Random(3))
    for _ in range(5):
        schedule.next_send()
        schedule.mark_sent()
    made = schedule.times[:5]
    unsent = schedule.unsent_between(0.0, 1.5)
    assert not set(made) & set(unsent)
    assert len(unsent) == schedule.planned_between(0.0, 1.5) - 5
    assert all(0.0 <= t < 1.5 for t in unsent)


def test_asking_twice_without_sending_returns_the_same_planned_send() -> None:
    schedule = Schedule(0.0, 0.1, "poisson", random.Random(5))
    assert schedule.next_send() == schedule.next_send()
    before = schedule.next_send()
    schedule.mark_sent()
    assert schedule.next_send() > before


def test_an_unknown_arrival_process_is_refused() -> None:
    with pytest.raises(ValueError, match="poisson, uniform"):
        Schedule(0.0, 0.1, "bursty")
