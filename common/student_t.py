"""Student's t distribution, the one every interval and verdict of the suite uses.

The functions scipy.stats' ``t`` itself calls (``scipy.special.stdtr`` and ``stdtrit``), so
the figures are the same to the last bit, without importing scipy.stats: that import costs
about a second in every process that computes an interval (each runner, report and test).
"""

from __future__ import annotations

from scipy.special import stdtr, stdtrit


def t_quantile(probability: float, degrees: float) -> float:
    """The value below which t with ``degrees`` degrees of freedom falls with ``probability``."""
    return float(stdtrit(degrees, probability))


def t_cdf(value: float, degrees: float) -> float:
    """P(T <= value)."""
    return float(stdtr(degrees, value))


def t_sf(value: float, degrees: float) -> float:
    """P(T > value)."""
    return float(stdtr(degrees, -value))
