"""The "library or algorithm" section: how much of a JWT's cost is the library, not the algorithm.

For every JWT algorithm the run measured with more than one library (``--jwt-library``), one row
per library: the auth step per read as the server timed it (``Server-Timing: auth``, the token's
verification alone), server CPU per read at saturation and at equal load, the difference from
PyJWT in CPU per read (paired by repetition, since the cells were interleaved), and from
``micro.csv`` the library's in-process ``verify_access`` beside the raw signature check of the
same bytes: what the library adds to the cryptography. A closing note sets the spread across
libraries of one algorithm against the spread across algorithms of one library.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from analysis.decision import SATURATED_MARK, equal_axes, shown
from analysis.palette import ordered
from analysis.resilience import Section, Table
from analysis.stats import NOT_MEASURED, Estimate, paired_difference
from analysis.tidy import RunData
from common.schemes import DEFAULT_JWT_LIBRARY, JWT_LIBRARIES, parse_scheme

HEADERS = [
    "algorithm", "library", "auth step per read (server-timed)",
    "server CPU per read at saturation",
    f"CPU per read vs {DEFAULT_JWT_LIBRARY} (paired)", "server CPU per read at equal load",
    "verify in process (median [IQR])", "raw signature check", "library's share of verify",
]  # fmt: skip
INTRO = (
    "The same algorithm served by each JWT library, with the same hardening (the server's "
    "algorithm only, typ, kid, iss, aud, exp with leeway, refresh rotation). Auth step: the "
    "verification of the token per read as the server timed it, at saturation (closed model). "
    "Server figures are means with their 95% interval over repetitions; the difference from "
    f"{DEFAULT_JWT_LIBRARY} pairs the repetitions, which ran interleaved. In process: micro.csv's "
    "verify_access through the server's own TokenService beside the bare cryptography of the "
    "same bytes; the library's share is 1 - raw / library."
)
SATURATION = {"scenario": "read", "topology": "single", "model": "closed"}


def _micro(run: RunData, scheme: str, layer: str, op: str) -> pd.Series | None:
    micro = run.micro
    if micro.empty:
        return None
    rows = micro[(micro["scheme"] == scheme) & (micro["layer"] == layer) & (micro["op"] == op)]
    return rows.iloc[0] if len(rows) else None


def _versus_default(run: RunData, scheme: str, library: str) -> str:
    if library == DEFAULT_JWT_LIBRARY:
        return "—"
    first = {**SATURATION, "scheme": scheme, "library": library}
    second = {**SATURATION, "scheme": scheme, "library": DEFAULT_JWT_LIBRARY}
    # CPU per request stays a fair figure when the generator, not the server, bound the cell;
    # such a pair is kept and marked, as the cells themselves are.
    pairs = run.pairs("server_cpu_us_per_req", first, second, usable_only=False)
    if not pairs:
        return "n/a"
    found = paired_difference(pairs, signed=True)
    text = f"{found.value:+.0f}" + (
        f" [{found.low:+.0f}, {found.high:+.0f}] µs" if found.has_interval else " µs (1 pair)"
    )
    flagged = [run.get_flagged("server_cpu_us_per_req", **axes) for axes in (first, second)]
    return f"{text} {SATURATED_MARK}" if any(f and f[1] for f in flagged) else text


def _row(run: RunData, scheme: str, library: str) -> list[str]:
    axes: dict[str, Any] = {"scheme": scheme, "library": library}
    verify = _micro(run, scheme, library, "verify_access")
    raw = _micro(run, scheme, "raw", "verify")
    share = "n/a"
    if verify is not None and raw is not None and verify["median_us"] > 0:
        share = f"{1 - raw['median_us'] / verify['median_us']:.0%}"
    return [
        parse_scheme(scheme).alg,
        library,
        shown(run, "auth_compute_mean_us", 0, "µs", **SATURATION, **axes),
        shown(run, "server_cpu_us_per_req", 0, "µs", **SATURATION, **axes),
        _versus_default(run, scheme, library),
        shown(run, "server_cpu_us_per_req", 0, "µs", **equal_axes(run), **axes),
        "n/a" if verify is None else f"{verify['median_us']:.0f} [{verify['iqr_us']:.0f}] µs",
        "n/a" if raw is None else f"{raw['median_us']:.1f} µs",
        share,
    ]


def _auth_step(run: RunData, scheme: str, library: str) -> Estimate:
    found = run.get_flagged("auth_compute_mean_us", **SATURATION, scheme=scheme, library=library)
    return found[0] if found else NOT_MEASURED


def _spreads(run: RunData, schemes: list[str], libraries: list[str]) -> str:
    """Which moves the auth step more: the library, or the algorithm."""
    steps = {(s, lib): _auth_step(run, s, lib).value for s in schemes for lib in libraries}
    if any(math.isnan(value) for value in steps.values()):
        return "Some cells have no server-timed auth step: the spreads are not compared."

    def spread(values: list[float]) -> float:
        return max(values) - min(values)

    by_library = [spread([steps[(s, lib)] for lib in libraries]) for s in schemes]
    by_algorithm = [spread([steps[(s, lib)] for s in schemes]) for lib in libraries]
    return (
        f"Auth step per read at saturation: the library moves one algorithm's by "
        f"{min(by_library):.0f}–{max(by_library):.0f} µs (fastest to slowest library); the "
        f"algorithm moves one library's by {min(by_algorithm):.0f}–{max(by_algorithm):.0f} µs "
        "(fastest to slowest algorithm measured). Means over repetitions; each figure's interval "
        "is in the table."
    )


def library_section(run: RunData) -> Section | None:
    """The section, or None when no algorithm ran with more than one library."""
    cells = run.summary
    jwt = cells[cells["library"].isin(JWT_LIBRARIES)]
    compared = [
        scheme
        for scheme, group in jwt.groupby("scheme")
        if group["library"].nunique() > 1 and parse_scheme(str(scheme)).plain_jwt
    ]
    if not compared:
        return None
    schemes = ordered(compared)
    measured = jwt[jwt["scheme"].isin(compared)]
    libraries = [lib for lib in JWT_LIBRARIES if lib in set(measured["library"])]
    rows = [_row(run, scheme, library) for scheme in schemes for library in libraries]
    return Section(
        "Library or algorithm: what the JWT library costs",
        [Table(INTRO, HEADERS, rows)],
        notes=[_spreads(run, schemes, libraries)],
    )
