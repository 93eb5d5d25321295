"""The article's claims, checked against this run's numbers, each verdict built from the values.

Two schemes measured in the same interleaved repetitions are compared *paired*: the ratio of
their values within each repetition (measured seconds apart, so the machine's drift cancels),
with a t interval on the log ratios; a difference is called only when that interval excludes
1. Without pairs the two cells' own 95% intervals must not overlap. Either way, an undecided
comparison says how many repetitions would separate a difference of the size seen.
Latency claims use the equal-load (open-model) cells only; saturated or late cells never feed a
verdict. Exact evidence (Redis commands per request, verify-gate facts) decides on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from analysis.stats import Estimate, paired_ratio, pairs_to_separate, repetitions_to_separate
from analysis.tidy import RunData
from loadtests.verify import JWKS_ALONE

SUPPORTED = "supported"
NOT_SUPPORTED = "not supported"
NOT_DISTINGUISHABLE = "not distinguishable"
DEPENDS = "depends on the algorithm"
NOT_MEASURED = "not measured"
JWT_COMPARE = ("jwt-HS256", "jwt-RS256", "jwt-ES256", "jwt-EdDSA", "jwt-ES384")
MIN_PAIRS = 3
# Store commands per request are counted from Redis INFO sampled every 0.2 s and interpolated at
# the window's edges: exact to a few hundredths, so "none" and "one per request" are bands.
STATELESS_MAX = 0.01
ONE_LOOKUP_MIN = 0.9
ASYMMETRIC_COMPARE = ("jwt-RS256", "jwt-ES256", "jwt-EdDSA", "jwt-ES384")


@dataclass(frozen=True)
class Claim:
    """One claim, the evidence from this run, and the verdict."""

    claim: str
    evidence: list[str]
    verdict: str


def separated(higher: Estimate, lower: Estimate) -> str:
    """Whether ``higher`` really is above ``lower``: only non-overlapping intervals decide."""
    if higher.overlaps(lower):
        return NOT_DISTINGUISHABLE
    return SUPPORTED if higher.value > lower.value else NOT_SUPPORTED


def what_would_decide(a: Estimate, b: Estimate, cell_seconds: float) -> str:
    """The run that would separate a difference of the size seen (or why none would)."""
    needed = repetitions_to_separate(a, b)
    if not (a.has_interval and b.has_interval):
        return "needs at least 3 repetitions per cell to have intervals at all"
    if needed is None:
        return "no difference seen at all, or one too small for 10,000 repetitions to resolve"
    return (
        f"about {needed} interleaved repetitions per cell (≈ {needed * cell_seconds:.0f} s of "
        "measurement each) would separate a difference this size, if it is real"
    )


def overall(verdicts: list[str]) -> str:
    """One verdict from several comparisons of the same claim."""
    if not verdicts:
        return NOT_MEASURED
    if len(set(verdicts)) == 1:
        return verdicts[0]
    if SUPPORTED in verdicts and NOT_SUPPORTED in verdicts:
        return DEPENDS
    return NOT_DISTINGUISHABLE


def _cell_seconds(run: RunData, **axes: object) -> float:
    rows = run.headline(**axes)
    return float(rows["window_s"].max()) if not rows.empty else 2.0


def _versus(
    run: RunData,
    metric: str,
    mine: tuple[str, dict[str, Any]],
    other: tuple[str, dict[str, Any]],
    unit: str,
    digits: int,
) -> tuple[str, str]:
    """Whether ``mine`` is above ``other`` on a metric, paired by repetition where possible."""
    (label, mine_axes), (other_label, other_axes) = mine, other
    a, b = run.get(metric, **mine_axes), run.get(metric, **other_axes)
    if a is None or b is None:
        return NOT_MEASURED, f"{label} vs {other_label}: not measured"
    sentence = f"{label} {a.text(digits, unit)} vs {other_label} {b.text(digits, unit)}"
    ratio = paired_ratio(run.pairs(metric, mine_axes, other_axes))
    if ratio.n >= MIN_PAIRS:
        verdict = (
            SUPPORTED if ratio.low > 1 else NOT_SUPPORTED if ratio.high < 1 else NOT_DISTINGUISHABLE
        )
        sentence += (
            f"; paired by repetition, ratio {ratio.value:.2f} [{ratio.low:.2f}, {ratio.high:.2f}] "
            f"over {ratio.n} pairs: {verdict}"
        )
        if verdict == NOT_DISTINGUISHABLE:
            needed = pairs_to_separate(ratio)
            seconds = _cell_seconds(run, **mine_axes)
            sentence += (
                f" (about {needed} interleaved repetitions, ≈ {needed * seconds:.0f} s of "
                "measurement per cell, would separate a ratio this size, if it is real)"
                if needed
                else " (no difference a feasible run could resolve)"
            )
        return verdict, sentence
    verdict = separated(a, b)
    sentence += f": {verdict}"
    if verdict == NOT_DISTINGUISHABLE:
        sentence += f" ({what_would_decide(a, b, _cell_seconds(run, **mine_axes))})"
    return verdict, sentence


def sessions_add_latency(run: RunData) -> Claim:
    """Sessions add latency to every request, compared with JWTs: decided at equal load."""
    text = "Sessions add latency to every request (a store lookup that a JWT avoids)"
    rate = run.equal_load_rate("read")
    axes = {"scenario": "read", "topology": "single", "model": "open", "rate": rate}
    session = run.get("p50_ms", scheme="session-redis", **axes)
    if rate is None or session is None:
        return Claim(text, ["no usable equal-load read cell for session-redis"], NOT_MEASURED)
    session_p99 = run.get("p99_ms", scheme="session-redis", **axes)
    evidence = [
        f"open model at {rate:g} req/s for every scheme (equal load, below each one's capacity); "
        f"session-redis p50 {session.text(3, 'ms')}, p99 "
        f"{session_p99.text(2, 'ms') if session_p99 else 'n/a'}"
    ]
    mine = ("session-redis p50", {"scheme": "session-redis", **axes})
    if run.get("p50_ms", scheme="none", **axes) is not None:
        evidence.append(
            _versus(run, "p50_ms", mine, ("none", {"scheme": "none", **axes}), "ms", 3)[1]
        )
    verdicts = []
    for scheme in JWT_COMPARE:
        if run.get("p50_ms", scheme=scheme, **axes) is None:
            continue
        verdict, sentence = _versus(
            run, "p50_ms", mine, (scheme, {"scheme": scheme, **axes}), "ms", 3
        )
        verdicts.append(verdict)
        evidence.append(sentence)
    if not verdicts:
        evidence.append("no usable equal-load JWT cell to compare with")
    evidence.append(
        "closed-model latency (at saturation) is not used: there mean latency = users ÷ "
        "throughput (Little's law), a throughput comparison in disguise"
    )
    return Claim(text, evidence, overall(verdicts))


def jwts_scale_statelessly(run: RunData) -> Claim:
    """JWT verification needs no shared state: exact store commands per request decide."""
    text = "JWTs scale without shared state (no store round trip per request)"
    evidence, jwt_counts, session_count = [], [], None
    for scheme in ("session-redis", *JWT_COMPARE, "jwt-ES256+deny"):
        found = run.get_flagged("redis_cmds_per_req", scheme=scheme, scenario="read")
        if found is None:
            continue
        commands = found[0].value
        evidence.append(
            f"{scheme}: {commands:.2f} Redis commands per read (counted from Redis INFO)"
        )
        if scheme == "session-redis":
            session_count = commands
        elif not scheme.endswith("+deny"):
            jwt_counts.append(commands)
    if not jwt_counts:
        return Claim(text, evidence or ["no JWT read cell"], NOT_MEASURED)
    stateless = all(count < STATELESS_MAX for count in jwt_counts)
    if session_count is not None:
        stateless = stateless and session_count >= ONE_LOOKUP_MIN
    evidence.append(
        "a revocable JWT (+deny) pays the same one lookup per request as a session: the "
        "statelessness is what makes plain JWTs unrevocable"
    )
    return Claim(text, evidence, SUPPORTED if stateless else NOT_SUPPORTED)


def _revocation(run: RunData, scheme: str) -> tuple[Estimate, Estimate, str, object] | None:
    """(median delay, max delay, method, access TTL) of a scheme's revocation cell."""
    median = run.get_flagged("revocation_delay_ms", scheme=scheme, scenario="revocation")
    longest = run.get_flagged("max_ms", scheme=scheme, scenario="revocation")
    if median is None or longest is None:
        return None
    rows = run.headline(scheme=scheme, scenario="revocation")
    row = rows.iloc[0]
    return median[0], longest[0], str(row["revocation_method"]), row["access_ttl"]


def revocation(run: RunData) -> Claim:
    """Sessions revoke at once; plain JWTs only at expiry: observed, logout response → refusal."""
    text = "Sessions revoke at once; JWTs only at expiry"
    session = _revocation(run, "session-redis")
    plain = next((found for s in JWT_COMPARE if (found := _revocation(run, s)) is not None), None)
    deny = _revocation(run, "jwt-ES256+deny")
    if session is None or plain is None:
        return Claim(
            text, ["no revocation cells for both session-redis and a plain JWT"], NOT_MEASURED
        )
    evidence = [
        f"session-redis: refused {session[0].value:.2f} ms (median) after the logout response, "
        f"at most {session[1].value:.2f} ms on any node ({session[2]})",
        f"plain JWT with access TTL {plain[3]:g} s: still accepted for {plain[0].value:.0f} ms "
        f"(median), up to {plain[1].value:.0f} ms after logout ({plain[2]}): the stolen-token "
        "window is the access TTL",
    ]
    if deny is not None:
        evidence.append(
            f"jwt-ES256+deny: refused {deny[0].value:.2f} ms (median), at most "
            f"{deny[1].value:.2f} ms after logout ({deny[2]})"
        )
    evidence.append("resolution: one replay round trip; replays pause 5 ms between rounds")
    observed = session[2] == "observed" and plain[2] == "observed"
    verdict = SUPPORTED if observed and session[1].value < plain[0].value else NOT_DISTINGUISHABLE
    return Claim(text, evidence, verdict)


def hmac_cheaper(run: RunData) -> Claim:
    """HMAC costs less CPU than RSA/ECDSA/EdDSA, but every verifier must hold the secret."""
    text = "HMAC is cheaper than RSA/ECDSA, but shares a secret"
    axes = {"scenario": "read", "topology": "single"}
    hmac = ("jwt-HS256", {"scheme": "jwt-HS256", **axes})
    if run.get("server_cpu_us_per_req", **hmac[1]) is None:
        return Claim(text, ["no usable jwt-HS256 read cell"], NOT_MEASURED)
    evidence, verdicts = [], []
    for scheme in ASYMMETRIC_COMPARE:
        mine = (f"{scheme} server CPU/read (at saturation)", {"scheme": scheme, **axes})
        if run.get("server_cpu_us_per_req", **mine[1]) is None:
            continue
        verdict, sentence = _versus(run, "server_cpu_us_per_req", mine, hmac, "µs", 0)
        if verdict == NOT_DISTINGUISHABLE:
            auth = (f"{scheme} auth step/read", mine[1])
            verdict, auth_sentence = _versus(run, "auth_compute_mean_us", auth, hmac, "µs", 1)
            sentence += f"; the auth step alone (Server-Timing, per request): {auth_sentence}"
        verdicts.append(verdict)
        evidence.append(sentence)
    for scheme in ("jwt-HS256", "jwt-RS256", "jwt-ES256"):
        issue = run.get("auth_compute_mean_us", scheme=scheme, scenario="login", topology="single")
        if issue is not None:
            evidence.append(f"{scheme} login: auth step {issue.text(0, 'µs')} (signing two tokens)")
    evidence.append("the secret: an HMAC server publishes no key; anyone who can verify can sign")
    return Claim(text, evidence, overall(verdicts))


def asymmetric_verify_alone(run: RunData) -> Claim:
    """With RSA/ECDSA/EdDSA, another service verifies with the public key alone."""
    text = "Asymmetric keys let other services verify tokens alone"
    passed, failed = [], []
    for scheme in sorted(set(run.complete()["scheme"])):
        if not scheme.startswith("jwt-") or scheme.startswith("jwt-HS"):
            continue
        (passed if run.verify_checks(scheme).get(JWKS_ALONE) else failed).append(scheme)
    if not passed and not failed:
        return Claim(text, ["no asymmetric JWT cell"], NOT_MEASURED)
    evidence = [
        "verified with only the public JWKS key (no secret, no call to the issuer): "
        f"{', '.join(passed) or 'none'} (verify gate)"
    ]
    if failed:
        evidence.append(f"not shown for: {', '.join(failed)}")
    return Claim(text, evidence, SUPPORTED if passed and not failed else NOT_DISTINGUISHABLE)


def check_claims(run: RunData) -> list[Claim]:
    """Every claim, in the report's order."""
    return [
        sessions_add_latency(run),
        jwts_scale_statelessly(run),
        revocation(run),
        hmac_cheaper(run),
        asymmetric_verify_alone(run),
    ]
