"""The split topology's figures for one cell, from its raw samples, histograms and records.

Per user request (a successful ``GET /me`` at the front service): CPU of the issuer and of the
resource nodes, calls the issuer answered (introspections), JWKS fetches the resource nodes made
in the window. A split fault adds its own figures (:mod:`loadtests.faults.split_keys`: a kid
flood's made-up-kid requests, a key rotation's time to the first accepted token of the new key).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loadtests.faults import fault_named
from loadtests.load.histograms import HistogramSet
from loadtests.measure.sampling import summed_delta

COLUMNS = [
    "hops", "can_mint", "issuer_cpu_us_per_req", "resource_cpu_us_per_req",
    "issuer_calls_per_req", "jwks_fetches", "jwks_fetch_bound", "unknown_kid_requests",
    "rotation_first_accept_ms", "rotation_jwks_fetches",
]  # fmt: skip


def split_figures(
    cell_dir: Path,
    meta: dict[str, Any],
    series: dict[tuple[str, str], Any],
    window: tuple[float, float],
    requests: int,
    histograms: HistogramSet,
) -> dict[str, Any]:
    """The split columns of a finished split cell ({} for other topologies)."""
    split = meta.get("split")
    if not split:
        return {}
    params = meta["cell"]
    start, end = window
    issuer_cpu_s = summed_delta(series, "issuer", "cpu_s", start, end)
    resource_cpu_s = summed_delta(series, "node", "cpu_s", start, end)
    answered = summed_delta(series, "issuer", "introspections_answered", start, end)
    figures: dict[str, Any] = {
        "hops": int(params.get("hops", 1)),
        "can_mint": split.get("can_mint"),
        "issuer_cpu_us_per_req": round(issuer_cpu_s * 1e6 / requests, 1) if requests else None,
        "resource_cpu_us_per_req": round(resource_cpu_s * 1e6 / requests, 1) if requests else None,
        "issuer_calls_per_req": round(answered / requests, 4) if requests else None,
        "jwks_fetches": round(summed_delta(series, "node", "jwks_fetches", start, end)),
    }
    if params.get("fault"):
        fault = fault_named(params["fault"])
        figures.update(fault.figures(cell_dir, meta, window, histograms))
    return figures
