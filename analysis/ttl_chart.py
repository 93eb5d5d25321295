"""The access-TTL trade-off: the revocation window against what the refreshes cost.

For plain JWTs the stolen-token window is the access TTL, and every active user refreshes once
per TTL: shorter windows cost more refreshes (signing, a store write). Sessions and denylisted
JWTs revoke at once but pay a store lookup per request; with the store's answers cached in
each node for S s, they skip most lookups and their window is S. One chart: per algorithm a
curve of cores per 1,000 active users against the window, the instant-revocation schemes as
points at 0, and each cached design as a point at its S, all from the cost model on this run's
measurements.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from analysis.charts import Chart, save_figure
from analysis.cost import cached_designs, measured_schemes, size
from analysis.palette import colour, ordered
from analysis.tidy import RunData
from analysis.workload import Workload
from common.schemes import parse_scheme

TTLS_S = (30, 60, 120, 300, 600, 900)
USERS = 1000
DEFAULT_READS_PER_USER_S = 0.1  # one authenticated request every 10 s per active user
CAPTION = (
    "Cores (app + Redis, no headroom) to serve 1,000 active users, from this run's capacity at "
    "the SLO and CPU per login/refresh. A plain JWT's stolen-token window is its access TTL and "
    "each user refreshes once per TTL; sessions and denylisted JWTs revoke at once (observed) "
    "and pay a store lookup per request; cached in each node for S s (--store-cache), they skip "
    "most lookups and their window is S, like a token's TTL."
)


def reads_per_user(workload: Workload | None) -> float:
    """Authenticated requests per active user per second: the workload's, or the default."""
    if workload is not None and workload.active_users:
        return workload.reads_per_s / workload.active_users
    return DEFAULT_READS_PER_USER_S


def _cores(
    run: RunData, scheme: str, rate: float, ttl: float | None, store_cache_s: int = 0
) -> float | None:
    per_users = Workload(reads_per_s=rate * USERS, active_users=USERS, access_ttl_s=ttl or 300,
                         headroom=0.0)  # fmt: skip
    total = size(run, per_users, scheme, ttl=ttl, store_cache_s=store_cache_s).total_cores
    return None if total is None else total.value


def ttl_chart(run: RunData, out: Path, workload: Workload | None = None) -> Chart | None:
    """The trade-off chart, or None when the run has no plain JWT that can be costed."""
    rate = reads_per_user(workload)
    schemes = ordered(measured_schemes(run))
    plain = [s for s in schemes if parse_scheme(s).plain_jwt]
    curves = {}
    for scheme in plain:
        points = [(ttl, _cores(run, scheme, rate, ttl)) for ttl in TTLS_S]
        if all(cores is not None for _, cores in points):
            curves[scheme] = points
    if not curves:
        return None
    figure, axis = plt.subplots(figsize=(9, 4.6))
    for scheme, points in curves.items():
        axis.plot([t for t, _ in points], [c for _, c in points], marker="o",
                  color=colour(scheme), label=f"{scheme} (window = access TTL)")  # fmt: skip
    instant = []
    for scheme in schemes:
        if parse_scheme(scheme).revoked_at_once:
            cores = _cores(run, scheme, rate, None)
            if cores is not None:
                instant.append((scheme, cores))
                axis.scatter([0], [cores], s=60, marker="D", color=colour(scheme),
                             label=f"{scheme} (revokes at once)", zorder=3)  # fmt: skip
        for cache_s in cached_designs(run, scheme):
            cores = _cores(run, scheme, rate, None, cache_s)
            if cores is not None:
                label = f"{scheme}, store cache {cache_s} s (window = cache)"
                axis.scatter([cache_s], [cores], s=60, marker="s", color=colour(scheme),
                             edgecolors="black", zorder=3, label=label)  # fmt: skip
    cheapest_jwt = min(curves, key=lambda s: curves[s][-1][1])  # type: ignore[arg-type, return-value]
    short, long = curves[cheapest_jwt][0][1], curves[cheapest_jwt][-1][1]
    finding = (
        f"{cheapest_jwt}: a {TTLS_S[0]} s window costs ×{short / long:.1f} the cores of "
        f"{TTLS_S[-1]} s"  # type: ignore[operator]
    )
    if instant:
        scheme, cores = min(instant, key=lambda pair: pair[1])
        finding += f"; {scheme} revokes at once for {cores:.3f} cores"
    axis.set_title(f"{finding}\n({rate:g} requests/s per active user)", fontsize=10)
    axis.set_xlabel("revocation window: how long a stolen or logged-out credential works (s)")
    axis.set_ylabel(f"cores per {USERS:,} active users")
    axis.set_xlim(left=-30)
    axis.set_ylim(bottom=0)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    png, svg = save_figure(figure, run, out, "ttl_tradeoff")
    return Chart("ttl_tradeoff", "Access-TTL trade-off", CAPTION, png, svg)
