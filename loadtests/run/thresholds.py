"""The threshold rules a run must meet for CI: ``METRIC[@WHERE] OP VALUE``, parsed once.

``p99_ms@equal_load<10``: every scheme's equal-load p99 below 10 ms. ``false_accepts==0``: no
cell accepted a forged or revoked credential. ``capacity_rps@scheme=jwt-HS256>=2000``: one
scheme's capacity. ``verdict@revocation!=not supported``: a claim's verdict word.

WHERE is a comma-separated list of ``equal_load`` (the equal-load cells), ``saturation`` (the
closed-model cells) or ``column=value`` (any column of ``metrics.csv`` or ``capacity.csv``). The
rules come from a matrix's ``[thresholds] fail_on`` list and from ``--fail-on``; they are checked
by :mod:`analysis.thresholds` on the finished run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

OPERATORS = ("<=", ">=", "==", "!=", "<", ">")
SHORTCUTS = ("equal_load", "saturation")
VERDICT = "verdict"
# The operator is the last one in the rule: WHERE may hold "=", the value holds none.
_RULE = re.compile(r"^\s*([a-z_0-9]+)(?:\s*@\s*(.+?))?\s*(<=|>=|==|!=|<|>)\s*([^<>=!]+?)\s*$")


class ThresholdError(ValueError):
    """A rule that does not parse; the message is one line and quotes the rule."""


@dataclass(frozen=True)
class Threshold:
    """One parsed rule: which figure, where, and the bound it must meet."""

    text: str
    metric: str
    where: tuple[str, ...]
    operator: str
    value: float | str

    def holds(self, found: float | str) -> bool:
        """Whether one figure meets the bound."""
        op = self.operator
        if isinstance(self.value, str) or isinstance(found, str):
            same = str(found) == str(self.value)
            return same if op == "==" else not same
        compare = {
            "<": found < self.value, "<=": found <= self.value, ">": found > self.value,
            ">=": found >= self.value, "==": found == self.value, "!=": found != self.value,
        }  # fmt: skip
        return compare[op]

    def conditions(self) -> dict[str, str]:
        """The ``column=value`` parts of WHERE."""
        return dict(part.split("=", 1) for part in self.where if "=" in part)


def parse_threshold(text: str) -> Threshold:
    """A rule from its text, or ThresholdError naming what is wrong with it."""
    match = _RULE.match(text)
    if not match:
        raise ThresholdError(
            f"{text!r}: not a rule (METRIC[@WHERE] OP VALUE, OP one of {' '.join(OPERATORS)}, "
            "for example 'p99_ms@equal_load<10')"
        )
    metric, where_text, operator, value_text = match.groups()
    where = tuple(part.strip() for part in (where_text or "").split(",") if part.strip())
    if metric == VERDICT:
        if operator not in ("==", "!="):
            raise ThresholdError(f"{text!r}: a verdict is a word: compare it with == or !=")
        if len(where) != 1 or "=" in where[0]:
            raise ThresholdError(f"{text!r}: name one claim: verdict@CLAIM==WORD")
        return Threshold(text.strip(), metric, where, operator, value_text)
    for part in where:
        if part not in SHORTCUTS and not re.fullmatch(r"[a-z_0-9]+=.+", part):
            raise ThresholdError(
                f"{text!r}: {part!r} is neither {' nor '.join(SHORTCUTS)} nor column=value"
            )
    try:
        value: float | str = float(value_text)
    except ValueError:
        raise ThresholdError(f"{text!r}: {value_text!r} is not a number") from None
    return Threshold(text.strip(), metric, where, operator, value)
