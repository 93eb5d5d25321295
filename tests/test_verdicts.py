"""Verdict statistics against scipy, hand-computed values and simulated data of known truth."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from analysis.stats import estimate
from analysis.verdicts import (
    EQUIVALENT,
    HIGHER,
    LOWER,
    NO_INTERVAL,
    UNDECIDED,
    Margin,
    decide_family,
    holm,
    paired_log_ratio,
    unpaired_log_ratio,
)

SIMULATIONS = 4000


def test_holm_matches_hand_computed_step_down_values() -> None:
    # sorted: 0.005×4 = 0.02, 0.01×3 = 0.03, 0.03×2 = 0.06, 0.04×1 = 0.04 → kept monotone at 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5]) == [0.5]
    assert holm([0.6, 0.7]) == [1.0, 1.0]


def test_paired_ratio_is_scipys_one_sample_t_on_log_ratios() -> None:
    pairs = [(105.0, 100.0), (112.0, 101.0), (103.0, 99.0), (108.0, 100.5)]
    logs = [math.log(a / b) for a, b in pairs]
    ratio = paired_log_ratio(pairs)
    assert ratio is not None and ratio.paired and ratio.n == 4
    assert ratio.p_different() == pytest.approx(scipy_stats.ttest_1samp(logs, 0.0).pvalue)
    low, high = ratio.interval()
    expected = scipy_stats.t.interval(0.95, 3, loc=np.mean(logs), scale=scipy_stats.sem(logs))
    assert (math.log(low), math.log(high)) == pytest.approx(expected)


def test_unpaired_ratio_is_welchs_t_on_log_values() -> None:
    a, b = [210.0, 190.0, 205.0, 230.0], [150.0, 170.0, 160.0]
    ratio = unpaired_log_ratio(a, b)
    assert ratio is not None and not ratio.paired
    welch = scipy_stats.ttest_ind(np.log(a), np.log(b), equal_var=False)
    assert ratio.p_different() == pytest.approx(welch.pvalue)
    assert ratio.degrees == pytest.approx(welch.df)


def test_equivalence_is_two_one_sided_tests_inside_the_margin() -> None:
    pairs = [(100.0 + d, 100.0) for d in (1.0, -2.0, 0.5, 1.5, -1.0, 0.0)]
    logs = np.log([a / b for a, b in pairs])
    margin = 0.10
    lower = scipy_stats.ttest_1samp(logs, -math.log1p(margin), alternative="greater").pvalue
    upper = scipy_stats.ttest_1samp(logs, math.log1p(margin), alternative="less").pvalue
    ratio = paired_log_ratio(pairs)
    assert ratio is not None
    assert ratio.p_equivalent(margin) == pytest.approx(max(lower, upper))
    # The same decision as "the 90% interval lies inside [1/1.1, 1.1]".
    low90, high90 = ratio.interval(0.90)
    assert (ratio.p_equivalent(margin) < 0.05) == (low90 > 1 / 1.1 and high90 < 1.1)


def test_a_family_is_corrected_together() -> None:
    """p = 0.03 alone is a difference; beside two comparisons that show none, it is not."""
    clear = paired_log_ratio([(1.1, 1.0), (1.2, 1.0), (1.13, 1.0)])
    assert clear is not None and 0.01 < clear.p_different() < 0.05
    alone = decide_family([(clear, 0.01)])
    assert alone[0].kind == HIGHER and "family of 1" in alone[0].text()
    noisy = paired_log_ratio([(1.0, 1.0), (2.0, 1.0), (0.5, 1.0)])
    family = decide_family([(clear, 0.01), (noisy, 0.01), (noisy, 0.01)])
    assert family[0].kind == UNDECIDED and family[0].family == 3
    assert "repetitions per cell would decide" in family[0].text()


def test_verdict_words_name_direction_equivalence_and_missing_intervals() -> None:
    lower = paired_log_ratio([(80.0, 100.0), (82.0, 100.0), (79.0, 100.0), (81.0, 100.0)])
    same = paired_log_ratio([(100.0 + d, 100.0) for d in (0.5, -0.4, 0.2, -0.1, 0.3)])
    verdicts = decide_family([(lower, 0.1), (same, 0.1), (None, 0.1)])
    assert [v.kind for v in verdicts] == [LOWER, EQUIVALENT, NO_INTERVAL]
    assert verdicts[0].text().startswith("lower by 19.5%")
    assert verdicts[1].text().startswith("equivalent within ±10%")
    assert "decides nothing" in verdicts[2].text()


def test_latency_margin_has_an_absolute_floor() -> None:
    margin = Margin(0.10, 0.1)
    assert margin.around(0.5) == pytest.approx(0.2)  # 0.1 ms of 0.5 ms
    assert margin.around(5.0) == pytest.approx(0.10)


def _simulated_pairs(rng: np.random.Generator, truth: float, sd: float, n: int) -> np.ndarray:
    """SIMULATIONS runs of n pairs whose log ratio is normal around log(truth)."""
    return rng.normal(math.log(truth), sd, size=(SIMULATIONS, n))


def test_the_interval_rule_covers_about_95_percent_of_known_truths() -> None:
    rng = np.random.default_rng(20261202)
    for n in (3, 5):
        logs = _simulated_pairs(rng, 1.07, 0.05, n)
        covered = 0
        for row in logs:
            ratio = paired_log_ratio([(math.exp(v), 1.0) for v in row])
            low, high = ratio.interval()
            covered += low <= 1.07 <= high
        assert 0.93 <= covered / SIMULATIONS <= 0.97
        values = rng.normal(250.0, 20.0, size=(SIMULATIONS, n))
        shown = [estimate(list(row)) for row in values]
        share = sum(e.low <= 250.0 <= e.high for e in shown) / SIMULATIONS
        assert 0.93 <= share <= 0.97


def test_a_a_families_call_at_most_one_in_twenty_different() -> None:
    rng = np.random.default_rng(7)
    calls = total = 0
    for _ in range(600):
        family = [
            (paired_log_ratio([(math.exp(v), 1.0) for v in rng.normal(0, 0.05, 3)]), 0.1)
            for _ in range(4)
        ]
        verdicts = decide_family(family)
        calls += sum(v.kind in (HIGHER, LOWER) for v in verdicts)
        total += len(verdicts)
    assert calls / total <= 0.05


def test_repetitions_to_decide_give_about_80_percent_power() -> None:
    """At the n it names, simulated runs with the seen ratio and spread decide ≥ 75% of the time."""
    rng = np.random.default_rng(11)
    seen = paired_log_ratio([(math.exp(v), 1.0) for v in (0.06, 0.01, 0.11)])
    assert seen is not None
    (verdict,) = decide_family([(seen, 0.02)])
    assert verdict.kind == UNDECIDED
    n = verdict.needed
    assert n is not None and n > 3
    sd = math.sqrt(seen.unit_variance)
    decided = 0
    for row in _simulated_pairs(rng, seen.ratio, sd, n)[:1000]:
        ratio = paired_log_ratio([(math.exp(v), 1.0) for v in row])
        decided += decide_family([(ratio, 0.02)])[0].kind != UNDECIDED
    assert decided / 1000 >= 0.75
    fewer = 0
    for row in _simulated_pairs(rng, seen.ratio, sd, max(n - 3, 2))[:1000]:
        ratio = paired_log_ratio([(math.exp(v), 1.0) for v in row])
        fewer += decide_family([(ratio, 0.02)])[0].kind != UNDECIDED
    assert fewer < decided  # fewer repetitions decide less often: n is not padded for nothing


def test_planned_looks_multiply_every_p_so_stopping_when_decided_keeps_five_percent() -> None:
    clear = paired_log_ratio([(1.1, 1.0), (1.2, 1.0), (1.13, 1.0)])
    assert clear is not None and 0.01 < clear.p_different() < 0.05
    (once,) = decide_family([(clear, 0.01)])
    (thrice,) = decide_family([(clear, 0.01)], looks=3)
    assert once.kind == HIGHER and thrice.kind == UNDECIDED
    assert thrice.p_different == pytest.approx(min(1.0, 3 * clear.p_different()))
    assert "× 3 looks" in thrice.text()
    assert thrice.needed is not None and thrice.needed > (once.needed or 0)
