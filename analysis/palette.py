"""One colour and one position per scheme, the same in every chart and table."""

from __future__ import annotations

from common.schemes import ALGORITHMS, parse_scheme

ALGORITHM_ORDER = ALGORITHMS  # the order of the suite's settings, everywhere
SCHEME_ORDER = (
    "none",
    "session-memory",
    "session-redis",
    *(f"jwt-{alg}" for alg in ALGORITHM_ORDER),
    *(f"jwt-{alg}+deny" for alg in ALGORITHM_ORDER),
)
FAMILY_COLOURS = {
    "none": "#7f7f7f",
    "session-memory": "#9ecae1",
    "session-redis": "#2171b5",
    "HS": ("#fdae6b", "#fd8d3c", "#e6550d"),
    "RS": ("#fcbba1", "#fb6a4a", "#cb181d"),
    "PS": ("#a50f15",),
    "ES": ("#74c476", "#238b45"),
    "Ed": ("#6a51a3",),
}
DENY_COLOUR = "#252525"


def scheme_rank(scheme: str) -> int:
    """Position of a scheme in every ordering (unknown ids go last)."""
    return SCHEME_ORDER.index(scheme) if scheme in SCHEME_ORDER else len(SCHEME_ORDER)


def ordered(schemes: list[str]) -> list[str]:
    """Schemes in the suite's fixed order."""
    return sorted(dict.fromkeys(schemes), key=lambda s: (scheme_rank(s), s))


def colour(scheme: str) -> str:
    """The scheme's colour."""
    if scheme in FAMILY_COLOURS:
        return str(FAMILY_COLOURS[scheme])
    if parse_scheme(scheme).denylist:
        return DENY_COLOUR
    alg = scheme.removeprefix("jwt-")
    family = FAMILY_COLOURS.get(alg[:2])
    if isinstance(family, tuple):
        same_family = [a for a in ALGORITHM_ORDER if a[:2] == alg[:2]]
        index = same_family.index(alg) if alg in same_family else 0
        return family[min(index, len(family) - 1)]
    return "#bcbd22"
