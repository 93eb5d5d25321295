"""The article's claims, checked against this run's numbers, each verdict built from the values.

Each comparison is a ratio judged by :mod:`analysis.verdicts`: paired by repetition when the
two schemes were measured in the same interleaved repetitions (the machine's drift cancels),
Welch's unpaired t otherwise; higher or lower when the Holm-corrected t test says so, equivalent
when two one-sided tests put the ratio inside the metric's margin, else undecided with the
repetitions that would decide. A claim's comparisons are its family: the family size is stated
and the correction is over it. Each claim decides on one metric named up front; other figures
are shown as context and never rescue an undecided verdict. Latency claims use the equal-load
(open-model) cells only. Exact evidence (Redis commands per request, verify-gate facts) decides
on its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from analysis.stats import Estimate
from analysis.tidy import RunData
from analysis.verdicts import (
    EQUIVALENT,
    HIGHER,
    LOWER,
    METRIC_FAMILY,
    LogRatio,
    Verdict,
    decide_family,
    margins_from,
    paired_log_ratio,
    unpaired_log_ratio,
)
from common.schemes import parse_scheme
from loadtests.load.verify import JWKS_ALONE
from loadtests.run.matrix import PRIMARY_COMPARISONS

SUPPORTED = "supported"
NOT_SUPPORTED = "not supported"
EQUIVALENT_CLAIM = "equivalent"
UNDECIDED = "undecided"
DEPENDS = "depends on the algorithm"
NOT_MEASURED = "not measured"
JWT_COMPARE = ("jwt-HS256", "jwt-RS256", "jwt-ES256", "jwt-EdDSA", "jwt-ES384")
MIN_PAIRS = 3
# Store commands per request are counted from Redis INFO sampled every 0.2 s and interpolated at
# the window's edges: exact to a few hundredths, so "none" and "one per request" are bands.
STATELESS_MAX = 0.01
ONE_LOOKUP_MIN = 0.9
ASYMMETRIC_COMPARE = ("jwt-RS256", "jwt-ES256", "jwt-EdDSA", "jwt-ES384")
# A replay refused after less than this share of its own round trip was refused at the first try.
FIRST_REPLAY_SHARE = 1.0
MIN_REVOCATION_REPETITIONS = 3


@dataclass(frozen=True)
class Claim:
    """One claim, the evidence from this run, and the verdict."""

    claim: str
    evidence: list[str]
    verdict: str
    key: str = ""  # a stable name for thresholds and summary.json (CLAIM_KEYS)


@dataclass(frozen=True)
class Side:
    """One side of a comparison: how it is named, and the cell it is read from."""

    label: str
    axes: dict[str, Any]


def log_ratio(run: RunData, metric: str, mine: Side, other: Side) -> LogRatio | None:
    """mine/other on a metric: paired by repetition when enough pairs exist, else unpaired."""
    pairs = run.pairs(metric, mine.axes, other.axes)
    if len(pairs) >= MIN_PAIRS:
        return paired_log_ratio(pairs)
    return unpaired_log_ratio(
        list(run.repetitions(metric, **mine.axes).values()),
        list(run.repetitions(metric, **other.axes).values()),
    )


def _unpaired_note(run: RunData, metric: str, mine: Side, other: Side) -> str:
    """What pairing bought: the interval the same figures would have unpaired."""
    unpaired = unpaired_log_ratio(
        list(run.repetitions(metric, **mine.axes).values()),
        list(run.repetitions(metric, **other.axes).values()),
    )
    if unpaired is None:
        return ""
    low, high = unpaired.interval()
    return f" (unpaired, the same figures give [{low:.3f}, {high:.3f}])"


def judged(
    run: RunData, metric: str, comparisons: list[tuple[Side, Side]], unit: str, digits: int
) -> list[tuple[Verdict, str]]:
    """Each (mine, other) on one metric, judged as one Holm family: (verdict, sentence)."""
    margin = margins_from(run.manifest)[METRIC_FAMILY[metric]]
    ratios, margins, sentences, asides = [], [], [], []
    for mine, other in comparisons:
        a, b = run.get(metric, **mine.axes), run.get(metric, **other.axes)
        ratio = log_ratio(run, metric, mine, other)
        ratios.append(ratio)
        margins.append(margin.around(b.value) if b is not None else margin.relative)
        sentence = (
            f"{mine.label} {_text(a, digits, unit)} vs {other.label} {_text(b, digits, unit)}"
        )
        paired = ratio is not None and ratio.paired
        asides.append(_unpaired_note(run, metric, mine, other) if paired else "")
        sentences.append(sentence)
    verdicts = decide_family(list(zip(ratios, margins, strict=True)), planned_looks(run))
    return [
        (verdict, f"{sentence}: {verdict.text(aside)}")
        for verdict, sentence, aside in zip(verdicts, sentences, asides, strict=True)
    ]


def _text(found: Estimate | None, digits: int, unit: str) -> str:
    return found.text(digits, unit) if found is not None else "not measured"


def as_claim(verdict: Verdict) -> str:
    """A comparison's verdict as the claim's word, where "mine higher" is what the claim says."""
    if verdict.kind == HIGHER:
        return SUPPORTED
    if verdict.kind == LOWER:
        return NOT_SUPPORTED
    return EQUIVALENT_CLAIM if verdict.kind == EQUIVALENT else UNDECIDED


def overall(verdicts: list[str]) -> str:
    """One verdict from several comparisons of the same claim."""
    if not verdicts:
        return NOT_MEASURED
    kinds = set(verdicts)
    if len(kinds) == 1:
        return verdicts[0]
    if SUPPORTED in kinds and kinds & {NOT_SUPPORTED, EQUIVALENT_CLAIM}:
        return DEPENDS
    if UNDECIDED in kinds:
        return UNDECIDED
    return NOT_SUPPORTED


def context(run: RunData, metric: str, mine: Side, other: Side) -> str:
    """A ratio shown for context: its interval, and no verdict (it is in no family)."""
    ratio = log_ratio(run, metric, mine, other)
    if ratio is None:
        return f"{mine.label} vs {other.label}: no interval (context, not part of the verdict)"
    low, high = ratio.interval()
    return (
        f"{mine.label} vs {other.label}: ratio {ratio.ratio:.3f} [{low:.3f}, {high:.3f}] "
        "(context, not part of the verdict)"
    )


def planned_looks(run: RunData) -> int:
    """How many times an adaptive run planned to look at its verdicts (1 for a fixed run)."""
    return int(run.manifest.get("until_decided", {}).get("planned_looks", 1))


def _family_note(run: RunData, metric: str, size: int) -> str:
    margin = margins_from(run.manifest)[METRIC_FAMILY[metric]]
    unit = "ms" if METRIC_FAMILY[metric] == "latency" else "µs"
    looks = planned_looks(run)
    sequential = (
        f"; an adaptive run planned {looks} looks, so every test is at 5% ÷ {looks} (Bonferroni "
        "over looks: stopping when decided cannot inflate the error)"
        if looks > 1
        else ""
    )
    return (
        f"{size} comparison(s) on {metric}, one Holm family; smallest effect of interest "
        f"{margin.describe(unit)} (equivalence: the 90% interval of the ratio inside it)"
        f"{sequential}"
    )


def latency_comparisons(run: RunData) -> list[tuple[Side, Side]]:
    """Sessions vs each JWT on p50 at equal load (the open-model cells of one rate)."""
    axes = {
        "scenario": "read", "topology": "single", "model": "open",
        "rate": run.equal_load_rate("read"),
    }  # fmt: skip
    if run.get("p50_ms", scheme="session-redis", **axes) is None:
        return []
    mine = Side("session-redis p50", {"scheme": "session-redis", **axes})
    return [
        (mine, Side(scheme, {"scheme": scheme, **axes}))
        for scheme in JWT_COMPARE
        if run.get("p50_ms", scheme=scheme, **axes) is not None
    ]


def hmac_comparisons(run: RunData) -> list[tuple[Side, Side]]:
    """Each asymmetric algorithm vs HS256 on server CPU per read at saturation."""
    axes = {"scenario": "read", "topology": "single"}
    if run.get("server_cpu_us_per_req", scheme="jwt-HS256", **axes) is None:
        return []
    hmac = Side("jwt-HS256", {"scheme": "jwt-HS256", **axes})
    return [
        (Side(f"{scheme} server CPU/read (at saturation)", {"scheme": scheme, **axes}), hmac)
        for scheme in ASYMMETRIC_COMPARE
        if run.get("server_cpu_us_per_req", scheme=scheme, **axes) is not None
    ]


@dataclass(frozen=True)
class Primary:
    """A comparison family a claim decides on, that ``until-decided`` may repeat until decided."""

    metric: str
    unit: str
    digits: int
    comparisons: Callable[[RunData], list[tuple[Side, Side]]]


PRIMARY = {
    "sessions-latency": Primary("p50_ms", "ms", 3, latency_comparisons),
    "hmac-cpu": Primary("server_cpu_us_per_req", "µs", 0, hmac_comparisons),
}
assert set(PRIMARY) == set(PRIMARY_COMPARISONS), "the matrix and the claims name the same ones"


def judged_primary(run: RunData, primary: Primary) -> list[tuple[Verdict, str]]:
    """A primary family's verdicts in this run (corrected for its planned looks)."""
    return judged(run, primary.metric, primary.comparisons(run), primary.unit, primary.digits)


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
    mine = Side("session-redis p50", {"scheme": "session-redis", **axes})
    if run.get("p50_ms", scheme="none", **axes) is not None:
        evidence.append(context(run, "p50_ms", mine, Side("none", {"scheme": "none", **axes})))
    found = judged_primary(run, PRIMARY["sessions-latency"])
    evidence += [sentence for _, sentence in found]
    verdicts = [as_claim(verdict) for verdict, _ in found]
    if verdicts:
        evidence.append(_family_note(run, "p50_ms", len(verdicts)))
    else:
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
        elif parse_scheme(scheme).plain_jwt:
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


@dataclass(frozen=True)
class Revocation:
    """A scheme's revocation cell across its repetitions."""

    scheme: str
    median: Estimate  # logout response → first refused replay, median over nodes and logouts
    longest: Estimate  # the longest such delay
    replay_rtt_ms: float  # the replay's median round trip: the delay's resolution
    method: str  # observed, or computed from the token's remaining lifetime
    access_ttl: object

    @property
    def at_first_replay(self) -> bool:
        """Every refusal came at the first replay: no delay reached one replay round trip."""
        return (
            self.method == "observed"
            and not math.isnan(self.replay_rtt_ms)
            and self.longest.value < FIRST_REPLAY_SHARE * self.replay_rtt_ms
        )

    def text(self) -> str:
        """What the measurement shows, in words that fit it."""
        reps = f"{self.median.n} repetition(s)"
        if self.at_first_replay:
            return (
                f"{self.scheme}: refused at the first replay on every node, in every logout "
                f"(within one round trip of {self.replay_rtt_ms:.2f} ms; {reps})"
            )
        resolution = (
            f", resolution one replay round trip of {self.replay_rtt_ms:.2f} ms"
            if not math.isnan(self.replay_rtt_ms)
            else ""
        )
        return (
            f"{self.scheme}: still accepted for {self.median.value:.0f} ms (median), up to "
            f"{self.longest.value:.0f} ms after the logout response ({self.method}{resolution}; "
            f"{reps})"
        )


def _revocation(run: RunData, scheme: str) -> Revocation | None:
    """A scheme's revocation cell, or None when it was not measured."""
    median = run.get_flagged("revocation_delay_ms", scheme=scheme, scenario="revocation")
    longest = run.get_flagged("max_ms", scheme=scheme, scenario="revocation")
    if median is None or longest is None:
        return None
    row = run.headline(scheme=scheme, scenario="revocation").iloc[0]
    replay = run.get_flagged("replay_rtt_ms", scheme=scheme, scenario="revocation")
    rtt = replay[0].value if replay is not None else float("nan")
    return Revocation(
        scheme, median[0], longest[0], rtt, str(row["revocation_method"]), row["access_ttl"]
    )


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
        session.text(),
        f"{plain.text()}: with access TTL {plain.access_ttl:g} s, the stolen-token window is "
        "the access TTL",
    ]
    if deny is not None:
        evidence.append(deny.text())
    evidence.append(
        "a delay is timed from the logout response to the send of the first refused replay; "
        "replays pause 5 ms between rounds"
    )
    few = [r.scheme for r in (session, plain) if r.median.n < MIN_REVOCATION_REPETITIONS]
    if few:
        evidence.append(
            f"{', '.join(few)}: fewer than {MIN_REVOCATION_REPETITIONS} repetitions, too few "
            "to decide"
        )
        return Claim(text, evidence, UNDECIDED)
    at_once = session.at_first_replay and plain.method == "observed"
    verdict = SUPPORTED if at_once and session.longest.value < plain.median.value else UNDECIDED
    return Claim(text, evidence, verdict)


def hmac_cheaper(run: RunData) -> Claim:
    """HMAC costs less CPU than RSA/ECDSA/EdDSA, but every verifier must hold the secret."""
    text = "HMAC is cheaper than RSA/ECDSA, but shares a secret"
    axes = {"scenario": "read", "topology": "single"}
    hmac = Side("jwt-HS256", {"scheme": "jwt-HS256", **axes})
    if run.get("server_cpu_us_per_req", **hmac.axes) is None:
        return Claim(text, ["no usable jwt-HS256 read cell"], NOT_MEASURED)
    pairs = hmac_comparisons(run)
    found = judged_primary(run, PRIMARY["hmac-cpu"])
    evidence = [sentence for _, sentence in found]
    verdicts = [as_claim(verdict) for verdict, _ in found]
    if verdicts:
        evidence.append(_family_note(run, "server_cpu_us_per_req", len(verdicts)))
    for side, _ in pairs:
        auth = Side(side.label.replace("server CPU/read (at saturation)", "auth step"), side.axes)
        evidence.append(context(run, "auth_compute_mean_us", auth, Side("jwt-HS256", hmac.axes)))
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
        kind = parse_scheme(scheme)
        if not kind.is_jwt or kind.is_hmac:
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
    return Claim(text, evidence, SUPPORTED if passed and not failed else UNDECIDED)


# Each claim's stable name and the shipped matrix that measures it when a run did not.
CLAIM_KEYS = {
    "sessions-latency": (sessions_add_latency, "quick"),
    "stateless-scaling": (jwts_scale_statelessly, "quick"),
    "revocation": (revocation, "quick"),
    "hmac-cpu": (hmac_cheaper, "quick"),
    "asymmetric-verify": (asymmetric_verify_alone, "quick"),
}


def check_claims(run: RunData) -> list[Claim]:
    """Every claim, in the report's order, each under its stable name."""
    return [replace(check(run), key=key) for key, (check, _) in CLAIM_KEYS.items()]


def measured_by(claim: Claim) -> str:
    """The shipped matrix that measures a claim (for "not measured")."""
    return CLAIM_KEYS[claim.key][1]
