"""The split topology's figures for one cell, from its raw samples, histograms and records.

Per user request (a successful ``GET /me`` at the front service): CPU of the issuer and of the
resource nodes, calls the issuer answered (introspections), JWKS fetches the resource nodes made
in the window. A kid flood also counts its made-up-kid requests and the most JWKS fetches the
cooldown allows; a key rotation (``fault.json``) gives the time from the rotation to the first
accepted token of the new key on the slowest node and the fetches it caused (counters read
just before it and at the cell's end, in ``cell.json``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from loadtests.histograms import FAILED, LATENCY, HistogramSet
from loadtests.sampling import summed_delta

UNKNOWN_KID = "/me (unknown kid)"  # the read scenario's name for its made-up-kid requests
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
    nodes = int(params["nodes"])
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
    if params.get("fault") == "kid-flood":
        cooldown = float(params.get("jwks_cooldown_s", 2.0))
        figures["jwks_fetch_bound"] = nodes * (int((end - start) / cooldown) + 1)
        figures["unknown_kid_requests"] = histograms.total(LATENCY, [UNKNOWN_KID]) + (
            histograms.total(FAILED, [UNKNOWN_KID])
        )
    figures.update(_rotation(cell_dir, split.get("counters", {})))
    return figures


def _rotation(cell_dir: Path, final: dict[str, Any]) -> dict[str, Any]:
    try:
        fault = json.loads((cell_dir / "fault.json").read_text())
    except (OSError, ValueError):
        return {}
    if fault.get("fault") != "key-rotation" or "new_kid" not in fault:
        return {}
    before = fault.get("counters_before", {})
    accepted = [
        counters.get("kid_first_accepted", {}).get(fault["new_kid"])
        for name, counters in final.items()
        if name.startswith("node")
    ]
    fetched = sum(
        counters.get("jwks_fetches", 0) - before.get(name, {}).get("jwks_fetches", 0)
        for name, counters in final.items()
        if name.startswith("node")
    )
    first = (
        round((max(accepted) - fault["started"]) * 1000, 1)
        if accepted and all(t is not None for t in accepted)
        else None
    )
    return {"rotation_first_accept_ms": first, "rotation_jwks_fetches": fetched}
