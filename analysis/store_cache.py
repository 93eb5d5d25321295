"""The cached-lookups section: what an in-process cache of the store's answers saves and opens.

For every scheme and topology the run measured with ``store_cache_s`` above 0, one row per cache
setting (the uncached design first, when measured beside it): Redis commands, server CPU and
throughput per read at saturation, and the revocation window observed on the nodes (the
longest delay from a logout to the first refused replay). The saving is the store round trip
the cache skips; the price is a window of up to the cache's TTL on the nodes that did not
revoke, the same trade-off a plain JWT makes with its access-token lifetime.
"""

from __future__ import annotations

from analysis.decision import shown
from analysis.palette import ordered
from analysis.resilience import Section, Table
from analysis.tidy import RunData

HEADERS = [
    "scheme", "nodes", "store cache", "Redis commands per read", "server CPU per read",
    "throughput", "revocation window: longest refusal delay (mean over repetitions)",
]  # fmt: skip
INTRO = (
    "Session lookups and denylist answers kept in each node's memory for the cache's TTL "
    "(--store-cache). Reads are at saturation (closed model). Revocation: a user reads on every "
    "node, logs out on one, and replays the old credential on all of them; the node that "
    "revoked refuses at once, the others while their cached answer lives. Figures are means "
    "with their 95% interval over repetitions."
)


def _row(run: RunData, scheme: str, topology: str, nodes: int, cache_s: int) -> list[str]:
    axes = {"scheme": scheme, "topology": topology, "nodes": nodes, "store_cache_s": cache_s}
    read = {**axes, "scenario": "read"}
    revocation = {**axes, "scenario": "revocation"}
    return [
        scheme,
        str(nodes),
        f"{cache_s} s" if cache_s else "none",
        shown(run, "redis_cmds_per_req", 3, "", **read),
        shown(run, "server_cpu_us_per_req", 0, "µs", **read),
        shown(run, "rps", 0, "req/s", **read),
        shown(run, "max_ms", 0, "ms", **revocation),
    ]


def store_cache_section(run: RunData) -> Section | None:
    """The section, or None when no cell of the run cached store answers."""
    summary = run.summary
    cached = summary[summary["store_cache_s"] > 0]
    if cached.empty:
        return None
    rows = []
    designs = cached[["scheme", "topology", "nodes"]].drop_duplicates()
    for scheme in ordered(list(designs["scheme"].unique())):
        for _, design in designs[designs["scheme"] == scheme].iterrows():
            same = summary[
                (summary["scheme"] == scheme)
                & (summary["topology"] == design["topology"])
                & (summary["nodes"] == design["nodes"])
            ]
            for cache_s in sorted(set(same["store_cache_s"])):
                rows.append(
                    _row(run, scheme, str(design["topology"]), int(design["nodes"]), cache_s)
                )
    return Section("Cached store lookups: round trips saved, revocation window opened",
                   [Table(INTRO, HEADERS, rows)])  # fmt: skip
