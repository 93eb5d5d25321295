"""From a run's measurements to cores (and money) for a team's workload, per scheme.

The model, each term traceable to the run folder:

- **reads**: ``reads_per_s ÷ capacity per server core at the SLO`` (capacity.csv; the interval
  is the capacity's 95% interval over its searches; one search has none, and its row cannot
  be called cheapest). Without a capacity search, the server CPU per read at saturation
  (metrics.csv); a cell bound by the generator, not the server, ran below saturation, so its
  CPU per read is an upper bound, used as one and said so.
- **logins**: ``logins_per_s × server CPU per login`` (closed-model login cells).
- **refreshes** (JWT): ``refreshes/s × server CPU per refresh``, refreshes/s being the given rate
  or ``active_users ÷ access TTL``. Measured when the run has refresh cells (``ttl``, ``full``);
  otherwise estimated as the login's CPU minus its password hash as the server timed it in the
  same cells, repetition by repetition: a refresh does the same signing and one store write,
  without the KDF. The row says which.
- **Redis**: the same rates × Redis CPU per request of each scenario (net of the sampler).
  A single Redis core saturating (over 1 core of work) is flagged: beyond it, shard.
- **headroom**: every sum ÷ (1 - headroom). Intervals add their bounds (conservative).

A plain JWT's revocation window is its access TTL (observed in the run's revocation cells);
sessions and denylisted JWTs revoke at once, unless a node caches the store's answers
(``--store-cache S``): such a design is costed as its own row from its cached cells (single-node
reads), and its window is S, like a plain JWT's TTL (a logout on one node leaves the others
honouring the credential up to S). A scheme that misses the workload's window is marked, and a
plain JWT is also costed at the TTL that would meet it, when one exists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from analysis.decision import over_none
from analysis.stats import Estimate, estimate
from analysis.tidy import ANY, RunData
from analysis.workload import Workload
from common.schemes import parse_scheme

HOURS_PER_MONTH = 730
# The one load every term is taken at. CPU per request falls as load rises (a server's fixed
# costs spread over more requests), so mixing loads would mix prices.
OPERATING_POINT = (
    "every term is the server at its limit: reads at the highest rate that holds the SLO "
    "(capacity; without a search, saturation), logins, refreshes and Redis from closed-model "
    "cells that keep the server saturated; a server run cooler spends more CPU per request, "
    "which the headroom stands for"
)
AT_ONCE_S = 1.0  # an observed refusal this soon after logout is "at once": any window is met


@dataclass(frozen=True)
class Span:
    """A figure with a low and a high bound (low ≤ value ≤ high)."""

    value: float
    low: float
    high: float

    @classmethod
    def unbounded(cls, value: float) -> Span:
        """A figure without an interval (one repetition, one search): it can never decide."""
        return cls(value, 0.0, math.inf)

    def __add__(self, other: Span) -> Span:
        return Span(self.value + other.value, self.low + other.low, self.high + other.high)

    def scaled(self, factor: float) -> Span:
        return Span(self.value * factor, self.low * factor, self.high * factor)

    def overlaps(self, other: Span) -> bool:
        return self.low <= other.high and other.low <= self.high

    def minus(self, other: Span) -> Span:
        """self - other, each side's distance to its bound combined as for independent
        estimates (``analysis.stats.difference``); unbounded when either is."""
        value = self.value - other.value
        below = math.hypot(self.value - self.low, other.high - other.value)
        above = math.hypot(self.high - self.value, other.value - other.low)
        return Span(value, value - below, value + above)

    def text(self, digits: int = 2) -> str:
        if math.isinf(self.high):
            return f"{self.value:.{digits}f} (no interval)"
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


ZERO = Span(0.0, 0.0, 0.0)


def span(estimate: Estimate | None) -> Span | None:
    """An Estimate as a Span. A single repetition has no interval: its span is unbounded, so a
    row built on it is shown with "(no interval)" and is never named cheapest."""
    if estimate is None or math.isnan(estimate.value):
        return None
    if not estimate.has_interval:
        return Span.unbounded(estimate.value)
    return Span(estimate.value, estimate.low, estimate.high)


@dataclass
class Sizing:
    """One scheme's cores for the workload, and what it meets."""

    scheme: str
    access_ttl_s: float | None
    app_cores: Span | None
    redis_cores: Span | None
    revocation_window_s: float | None
    meets_window: bool
    notes: list[str] = field(default_factory=list)
    added_p50_ms: Estimate | None = None  # p50 over none's at equal load (with a budget only)
    store_cache_s: int = 0  # store answers cached in process this long: the window

    @property
    def complete(self) -> bool:
        return self.app_cores is not None and self.redis_cores is not None

    @property
    def total_cores(self) -> Span | None:
        if not self.complete:
            return None
        return self.app_cores + self.redis_cores  # type: ignore[operator]

    @property
    def label(self) -> str:
        if self.store_cache_s:
            return f"{self.scheme} (store cache {self.store_cache_s} s)"
        return (
            self.scheme
            if self.access_ttl_s is None
            else f"{self.scheme} (TTL {self.access_ttl_s:g} s)"
        )


def _per_request_cores(cpu_us: Span | None, rate: float) -> Span | None:
    return None if cpu_us is None else cpu_us.scaled(rate / 1e6)


def read_cores(
    run: RunData, scheme: str, reads_per_s: float, store_cache_s: int = 0
) -> tuple[Span | None, str]:
    """Cores for the reads: from capacity at the SLO (searched without a store cache), else
    CPU per read at saturation."""
    if not run.capacity.empty and not store_cache_s:
        rows = run.capacity[
            (run.capacity["scheme"] == scheme)
            & (run.capacity["scenario"] == "read")
            & (run.capacity["topology"] == "single")
        ]
        if not rows.empty and rows.iloc[0]["capacity_rps"] > 0:
            row = rows.iloc[0]
            value = reads_per_s / float(row["capacity_rps_per_server_cpu"])
            low = float(row.get("capacity_lo_per_server_cpu", math.nan))
            high = float(row.get("capacity_hi_per_server_cpu", math.nan))
            if math.isnan(low) or low <= 0:
                # One search has no interval: the cost is unbounded, so it decides nothing.
                return Span.unbounded(value), "capacity at the SLO (one search)"
            return Span(value, reads_per_s / high, reads_per_s / low), "capacity at the SLO"
    found = run.get_flagged("server_cpu_us_per_req", scheme=scheme, scenario="read",
                            topology="single", store_cache_s=store_cache_s)  # fmt: skip
    if found is None:
        return None, "server CPU per read at saturation (not measured)"
    cpu, generator_bound = found
    # A generator-bound cell ran below the server's saturation, where each request carries more
    # of the fixed costs: its CPU per read bounds the cost from above, and is used as such.
    source = "server CPU per read at saturation" + (
        " (generator-bound: an upper bound)" if generator_bound else ""
    )
    return _per_request_cores(span(cpu), reads_per_s), source


def redis_cpu(run: RunData, scheme: str, scenario: str, store_cache_s: int = 0) -> Span | None:
    """Redis CPU per request of a scenario; a store's cost does not depend on the generator."""
    found = run.get_flagged(
        "redis_cpu_us_per_req", scheme=scheme, scenario=scenario, store_cache_s=store_cache_s
    )
    return span(found[0]) if found else None


def refresh_cpu(run: RunData, scheme: str) -> tuple[Span | None, str]:
    """Server CPU per refresh: measured, else the login's minus its password hash.

    The hash is the one the same login cells timed in the server (Server-Timing ``kdf``), taken
    off repetition by repetition, so the estimate carries both uncertainties and the machine's
    speed of that moment; micro.csv's hash, timed at another moment, only when the cells have
    none (on this machine the two differed by half: a login minus micro's hash came out negative).
    """
    measured = span(run.get("server_cpu_us_per_req", scheme=scheme, scenario="refresh"))
    if measured is not None:
        return measured, "measured"
    login = run.repetitions("server_cpu_us_per_req", scheme=scheme, scenario="login")
    hashes = run.repetitions("kdf_mean_us", scheme=scheme, scenario="login")
    both = sorted(login.keys() & hashes.keys())
    if both:
        per_rep = estimate([login[rep] - hashes[rep] for rep in both], signed=True)
        return span(per_rep), "estimated: login minus its password hash, per repetition"
    cpu = span(run.get("server_cpu_us_per_req", scheme=scheme, scenario="login"))
    kdf = password_hash_us(run)
    if cpu is None or kdf is None:
        return None, "not measured"
    return cpu + Span(-kdf, -kdf, -kdf), "estimated: login minus micro's password hash"


def password_hash_us(run: RunData) -> float | None:
    """One password hash (the KDF every login runs), from micro.csv."""
    if run.micro.empty:
        return None
    rows = run.micro[run.micro["layer"] == "kdf"]
    return float(rows.iloc[0]["median_us"]) if not rows.empty else None


def observed_window_s(run: RunData, scheme: str, store_cache_s: int = 0) -> float | None:
    """The longest observed revocation delay of the scheme, in seconds (None: not observed)."""
    found = run.get_flagged(
        "max_ms", scheme=scheme, scenario="revocation", store_cache_s=store_cache_s
    )
    return None if found is None else found[0].value / 1000


def size(
    run: RunData,
    workload: Workload,
    scheme: str,
    ttl: float | None = None,
    store_cache_s: int = 0,
) -> Sizing:
    """One scheme's cores for the workload (a plain JWT at ``ttl`` when given; a design that
    caches store answers for ``store_cache_s`` from its cached read cells)."""
    kind = parse_scheme(scheme)
    plain_jwt = kind.plain_jwt
    ttl = (ttl or workload.access_ttl_s) if plain_jwt else None
    notes = []
    reads, source = read_cores(run, scheme, workload.reads_per_s, store_cache_s)
    notes.append(f"reads from {source}")
    login_cpu = span(run.get("server_cpu_us_per_req", scheme=scheme, scenario="login"))
    logins = _per_request_cores(login_cpu, workload.logins_per_s) if workload.logins_per_s else ZERO
    app_parts = [reads, logins]
    redis_parts = [
        _per_request_cores(redis_cpu(run, scheme, "read", store_cache_s), workload.reads_per_s),
        _per_request_cores(redis_cpu(run, scheme, "login"), workload.logins_per_s),
    ]
    if kind.is_jwt:
        refreshes = workload.refresh_rate(ttl if plain_jwt else None)
        cpu, how = refresh_cpu(run, scheme)
        app_parts.append(_per_request_cores(cpu, refreshes))
        redis_parts.append(_per_request_cores(redis_cpu(run, scheme, "login"), refreshes))
        notes.append(f"{refreshes:.1f} refreshes/s, CPU per refresh {how}")
    app = _sum(app_parts)
    redis = _sum(redis_parts)
    keep = 1 / (1 - workload.headroom)
    if store_cache_s:
        window: float | None = float(store_cache_s)
        observed = observed_window_s(run, scheme, store_cache_s)
        seen = "" if observed is None else f" (observed: up to {observed:.2f} s)"
        notes.append(
            f"logins and refreshes as measured without the cache; a logout reaches the other "
            f"nodes within the {store_cache_s} s their cached answer lives{seen}"
        )
    elif kind.revoked_at_once:
        window = observed_window_s(run, scheme)
        if window is None:
            window = 0.0
            notes.append("revocation not observed in this run: at once by design (verify gate)")
        else:
            notes.append(f"revocation observed within {window * 1000:.2f} ms")
    elif plain_jwt:
        window = float(ttl or 0.0)
    else:
        window = None
    limit = workload.max_revocation_window_s
    if window is not None and window < AT_ONCE_S and not plain_jwt and not store_cache_s:
        window = 0.0  # refused at once, within the probe's resolution of one round trip
    meets = limit is None or (window is not None and window <= limit)
    if scheme == "session-memory":
        notes.append("one process holds the sessions: sticky routing, no failover")
    return Sizing(
        scheme,
        ttl,
        None if app is None else app.scaled(keep),
        None if redis is None else redis.scaled(keep),
        window,
        meets,
        notes,
        over_none(run, scheme, "p50_ms") if workload.latency_budget_ms else None,
        store_cache_s,
    )


def _sum(parts: list[Span | None]) -> Span | None:
    if any(part is None for part in parts):
        return None
    total = ZERO
    for part in parts:
        total = total + part  # type: ignore[operator]
    return total


def measured_schemes(run: RunData) -> list[str]:
    """Authenticating schemes with a single-node read cell or a capacity search in this run."""
    schemes = set(run.matching(scenario="read", topology="single")["scheme"])
    if not run.capacity.empty:
        schemes |= set(run.capacity["scheme"])
    return sorted(schemes - {"none"})


def cached_designs(run: RunData, scheme: str) -> list[int]:
    """The store-cache lifetimes the scheme's single-node reads were measured with (above 0)."""
    rows = run.matching(scheme=scheme, scenario="read", topology="single", store_cache_s=ANY)
    return sorted({int(s) for s in rows["store_cache_s"] if s > 0})


def sizings(run: RunData, workload: Workload) -> list[Sizing]:
    """Every measured scheme sized; a plain JWT missing the window also at the TTL that meets it;
    a scheme measured with a store cache also as that cached design."""
    rows = []
    for scheme in measured_schemes(run):
        sized = size(run, workload, scheme)
        rows.append(sized)
        limit = workload.max_revocation_window_s
        if parse_scheme(scheme).plain_jwt and not sized.meets_window and limit:
            rows.append(size(run, workload, scheme, ttl=limit))
        rows += [size(run, workload, scheme, store_cache_s=s) for s in cached_designs(run, scheme)]
    return rows


def cheapest(rows: list[Sizing]) -> tuple[Sizing | None, str]:
    """The cheapest scheme that meets every requirement, and how sure that is."""
    eligible = [r for r in rows if r.meets_window and r.complete]
    if not eligible:
        return None, "no measured scheme meets every requirement"
    ranked = sorted(eligible, key=lambda r: r.total_cores.value)  # type: ignore[union-attr]
    best = ranked[0]
    if len(ranked) == 1:
        return best, f"{best.label} is the only measured scheme that meets every requirement"
    runner_up = ranked[1]
    # Named only when the interval of the difference excludes zero.
    margin = runner_up.total_cores.minus(best.total_cores)  # type: ignore[union-attr]
    if margin.low <= 0:
        return best, (
            f"undecided between {best.label} and {runner_up.label}: the interval of their "
            f"difference, {margin.text()} cores, includes zero"
        )
    return best, f"{best.label} is cheapest, {margin.text()} cores below {runner_up.label}"


def what_would_change(rows: list[Sizing]) -> str:
    """What would change the cheapest scheme: the requirement it meets most narrowly, or the
    next scheme's distance ("" when nothing is eligible)."""
    best, _ = cheapest(rows)
    if best is None:
        return ""
    if best.access_ttl_s is not None:
        return (
            f"a revocation window under {best.access_ttl_s:g} s (its access-token lifetime) "
            "would rule it out"
        )
    if best.store_cache_s:
        return (
            f"a revocation window under {best.store_cache_s} s (its store cache's lifetime) "
            "would rule it out"
        )
    others = [r for r in rows if r is not best and r.meets_window and r.complete]
    if not others:
        return "no other measured scheme meets every requirement"
    runner_up = min(others, key=lambda r: r.total_cores.value)  # type: ignore[union-attr]
    extra = runner_up.total_cores.value - best.total_cores.value  # type: ignore[union-attr]
    return f"next: {runner_up.label}, {extra:.2f} cores more"


def unmet_windows(rows: list[Sizing], workload: Workload) -> list[str]:
    """Plain sentences for requirements no scheme of a kind can meet."""
    limit = workload.max_revocation_window_s
    plain = [r for r in rows if r.access_ttl_s is not None]
    if limit is not None and plain and not any(r.meets_window for r in plain):
        return [
            f"No access-token lifetime meets a {limit:g} s revocation window: plain JWTs are "
            "out; only sessions or a denylist revoke in time"
        ]
    return []


def _window_text(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    return "at once" if seconds == 0 else f"{seconds:g} s"


def own_work_cores(workload: Workload) -> Span | None:
    """The application's own work for every request at the workload's headroom (None when the
    workload does not give it): the same for every scheme, so it never changes the cheapest."""
    if workload.app_cpu_us_per_req is None:
        return None
    rate = workload.reads_per_s + workload.logins_per_s
    cores = workload.app_cpu_us_per_req * rate / 1e6 / (1 - workload.headroom)
    return Span(cores, cores, cores)


def _with_own_work(record: dict[str, str], total: Span | None, work: Span | None) -> None:
    """Authentication's share of all the work, and the total cores, beside the scheme's row."""
    if work is None:
        return
    record["your work cores"] = f"{work.value:.2f} (your figure)"
    if total is None:
        record["auth share"] = record["total cores"] = "not measured"
        return
    share = total.value / (total.value + work.value)
    if math.isinf(total.high):
        record["auth share"] = f"{share:.0%} (no interval)"
    else:
        low = total.low / (total.low + work.value)
        high = total.high / (total.high + work.value)
        record["auth share"] = f"{share:.0%} [{low:.0%}, {high:.0%}]"
    record["total cores"] = (total + work).text()


def _budget_share(added: Estimate | None, budget_ms: float) -> str:
    """The p50 a scheme adds over none at equal load, as a share of the latency budget."""
    if added is None:
        return "not measured (no equal-load cells)"
    if not added.has_interval:
        return f"{added.value:.2f} ms = {added.value / budget_ms:.1%} (no interval)"
    return (
        f"{added.value:.2f} ms = {added.value / budget_ms:.1%} "
        f"[{added.low / budget_ms:.1%}, {added.high / budget_ms:.1%}] of {budget_ms:g} ms"
    )


def sizing_table(rows: list[Sizing], workload: Workload) -> pd.DataFrame:
    """The table the report and the console show."""
    records = []
    work = own_work_cores(workload)
    for row in rows:
        total = row.total_cores
        monthly = (
            total.scaled(workload.price_per_core_hour * HOURS_PER_MONTH).text(0)
            if total is not None and workload.price_per_core_hour is not None
            else "n/a"
        )
        redis = row.redis_cores
        records.append(
            {
                "scheme": row.label,
                "app cores": row.app_cores.text() if row.app_cores else "not measured",
                "per node": (
                    row.app_cores.scaled(1 / workload.nodes).text() if row.app_cores else "n/a"
                ),
                "Redis cores": (
                    ("0" if redis.high == 0 else redis.text())
                    + (" (over one core: shard)" if redis.high > 1 else "")
                    if redis
                    else "not measured"
                ),
                "revocation window": _window_text(row.revocation_window_s),
                "meets it": "yes" if row.meets_window else "NO",
                "monthly cost": monthly,
                "notes": "; ".join(row.notes),
            }
        )
        _with_own_work(records[-1], total, work)
        if workload.latency_budget_ms:
            records[-1]["p50 added of budget"] = _budget_share(
                row.added_p50_ms, workload.latency_budget_ms
            )
    return pd.DataFrame.from_records(records)
