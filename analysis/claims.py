"""The article's claims, checked against this run's numbers.

A verdict is ``supported`` or ``not supported`` only when the two 95% intervals do not overlap
(or the evidence is exact, like a count of store commands or a functional check); otherwise it
is ``not distinguishable``. Missing measurements give ``not measured``.
"""

from __future__ import annotations

from dataclasses import dataclass

from analysis.stats import Estimate
from analysis.tidy import RunData, via_balancer

SUPPORTED = "supported"
NOT_SUPPORTED = "not supported"
NOT_DISTINGUISHABLE = "not distinguishable"
NOT_MEASURED = "not measured"
JWT_READ_COMPARE = ("jwt-HS256", "jwt-RS256", "jwt-ES256", "jwt-EdDSA")


@dataclass(frozen=True)
class Claim:
    """One claim, the evidence from this run, and the verdict."""

    claim: str
    evidence: list[str]
    verdict: str


def compare(higher: Estimate, lower: Estimate) -> str:
    """Whether ``higher`` really is above ``lower``: only non-overlapping intervals decide."""
    if higher.overlaps(lower):
        return NOT_DISTINGUISHABLE
    return SUPPORTED if higher.value > lower.value else NOT_SUPPORTED


def _read(run: RunData, scheme: str, metric: str, topology: str = "single") -> Estimate | None:
    return run.get(metric, scheme=scheme, scenario="read", topology=topology)


def sessions_add_latency(run: RunData) -> Claim:
    """Sessions add latency (and cost) to every request, compared with JWTs."""
    text = "Sessions add latency to every request (a store lookup that a JWT avoids)"
    session_p50 = _read(run, "session-redis", "p50_ms")
    session_cpu = _read(run, "session-redis", "server_cpu_us_per_req")
    if session_p50 is None or session_cpu is None:
        return Claim(text, ["no session-redis read cell in this run"], NOT_MEASURED)
    evidence = [
        f"session-redis read: p50 {session_p50.text(2, 'ms')}, "
        f"server CPU {session_cpu.text(0, 'µs/request')}"
    ]
    none_p50 = _read(run, "none", "p50_ms")
    if none_p50 is not None:
        evidence.append(
            f"vs none (no auth): p50 {none_p50.text(2, 'ms')}: "
            f"{compare(session_p50, none_p50)} that sessions add latency"
        )
    verdicts = []
    for scheme in JWT_READ_COMPARE:
        jwt_p50 = _read(run, scheme, "p50_ms")
        jwt_cpu = _read(run, scheme, "server_cpu_us_per_req")
        if jwt_p50 is None or jwt_cpu is None:
            continue
        latency = compare(session_p50, jwt_p50)
        cpu = compare(session_cpu, jwt_cpu)
        verdicts.append(latency)
        evidence.append(
            f"vs {scheme}: p50 {jwt_p50.text(2, 'ms')} ({latency}), "
            f"CPU {jwt_cpu.text(0, 'µs')} ({cpu})"
        )
    if not verdicts:
        return Claim(text, [*evidence, "no JWT read cell to compare with"], NOT_MEASURED)
    verdict = verdicts[0] if len(set(verdicts)) == 1 else NOT_DISTINGUISHABLE
    if len(set(verdicts)) > 1:
        evidence.append("the answer depends on the JWT algorithm")
    return Claim(text, evidence, verdict)


def jwts_scale_statelessly(run: RunData) -> Claim:
    """JWT verification needs no shared state, so adding nodes adds no store traffic."""
    text = "JWTs scale without shared state (no store round trip per request)"
    evidence = []
    exact = []
    for scheme in ("session-redis", *JWT_READ_COMPARE):
        commands = _read(run, scheme, "redis_cmds_per_req")
        if commands is None and scheme != "session-redis":
            commands = _read(run, scheme, "redis_cmds_per_req", "multi")
        if commands is not None:
            evidence.append(f"{scheme}: {commands.value:.2f} Redis commands per read")
            exact.append((scheme, commands.value))
    for scheme in ("session-redis", *JWT_READ_COMPARE):
        closed = run.closed_model()
        multi = closed[
            (closed["scheme"] == scheme)
            & (closed["scenario"] == "read")
            & (closed["topology"] == "multi")
        ]
        single = _read(run, scheme, "server_cpu_us_per_req")
        for _, row in multi.iterrows():
            if single is not None:
                ratio = row["server_cpu_us_per_req"].value / single.value
                evidence.append(
                    f"{scheme} on {row['nodes']} nodes{via_balancer(row)}: "
                    f"CPU/request ×{ratio:.2f} of single node, {row['rps'].text(0, 'req/s')}"
                )
    jwt_commands = [value for scheme, value in exact if scheme.startswith("jwt-")]
    session_commands = [value for scheme, value in exact if scheme == "session-redis"]
    if not jwt_commands:
        return Claim(text, evidence or ["no JWT read cell"], NOT_MEASURED)
    stateless = all(value < 0.01 for value in jwt_commands)
    if session_commands:
        stateless = stateless and session_commands[0] >= 0.99
    return Claim(text, evidence, SUPPORTED if stateless else NOT_SUPPORTED)


def revocation(run: RunData) -> Claim:
    """Sessions revoke at once; JWTs only when they expire (unless a denylist is checked)."""
    text = "Sessions revoke at once; JWTs only at expiry"
    delays = run.closed_model()
    delays = delays[delays["scenario"] == "revocation"]
    evidence = []
    if not delays.empty:
        for _, row in delays.iterrows():
            evidence.append(
                f"{row['scheme']} ({row['topology']}-{row['nodes']}): logout → refused "
                f"in {row['p50_ms'].text(1, 'ms')} (median)"
            )
        sessions = delays[delays["scheme"].str.startswith("session-")]
        plain = delays[
            delays["scheme"].str.startswith("jwt-") & ~delays["scheme"].str.endswith("+deny")
        ]
        if sessions.empty or plain.empty:
            return Claim(text, evidence, NOT_MEASURED)
        verdict = compare(plain["p50_ms"].iloc[0], sessions["p50_ms"].iloc[0])
        return Claim(text, evidence, verdict)
    session_checks = run.verify_checks("session-redis")
    jwt_meta = run.cell_meta("jwt-RS256") or run.cell_meta("jwt-HS256")
    jwt_checks = jwt_meta.get("verify", {}).get("checks", [])
    if "logout seen by every node" in session_checks and jwt_checks:
        access_ttl = jwt_meta["cell"]["access_ttl"]
        evidence.append("verify gate, session-redis: after logout every node refused the cookie")
        evidence.append(
            "verify gate, plain JWT: logout revoked the refresh family only; the access token "
            f"stays valid until it expires (access TTL {access_ttl} s)"
        )
        evidence.append("no revocation scenario in this run: run bench-full for measured delays")
        return Claim(text, evidence, SUPPORTED)
    return Claim(text, ["no revocation scenario and no verify evidence"], NOT_MEASURED)


def hmac_cheaper(run: RunData) -> Claim:
    """HMAC costs less CPU than RSA/ECDSA, but every verifier must hold the secret."""
    text = "HMAC is cheaper than RSA/ECDSA, but shares a secret"
    hmac_cpu = _read(run, "jwt-HS256", "server_cpu_us_per_req")
    if hmac_cpu is None:
        return Claim(text, ["no jwt-HS256 read cell"], NOT_MEASURED)
    evidence = [f"jwt-HS256 read: {hmac_cpu.text(0, 'µs')} server CPU per request"]
    verdicts = []
    for scheme in ("jwt-RS256", "jwt-ES256", "jwt-EdDSA"):
        other = _read(run, scheme, "server_cpu_us_per_req")
        if other is None:
            continue
        verdict = compare(other, hmac_cpu)
        verdicts.append(verdict)
        evidence.append(f"{scheme} read: {other.text(0, 'µs')} ({verdict} that it costs more)")
    for scheme in ("jwt-HS256", "jwt-RS256", "jwt-ES256"):
        issue = run.get("cpu_auth_us", scheme=scheme, scenario="login", topology="single")
        if issue is not None:
            evidence.append(f"{scheme} login: auth step {issue.text(0, 'µs')} (signing two tokens)")
    evidence.append("the secret: an HMAC server publishes no key; anyone who can verify can sign")
    if not verdicts:
        return Claim(text, evidence, NOT_MEASURED)
    verdict = verdicts[0] if len(set(verdicts)) == 1 else NOT_DISTINGUISHABLE
    return Claim(text, evidence, verdict)


def asymmetric_verify_alone(run: RunData) -> Claim:
    """With RSA/ECDSA/EdDSA, another service verifies with the public key alone."""
    text = "Asymmetric keys let other services verify tokens alone"
    passed, failed = [], []
    for scheme in sorted(set(run.complete()["scheme"])):
        if not scheme.startswith("jwt-") or scheme.startswith("jwt-HS"):
            continue
        checks = run.verify_checks(scheme)
        (passed if "token verified with the published JWKS key alone" in checks else failed).append(
            scheme
        )
    if not passed and not failed:
        return Claim(text, ["no asymmetric JWT cell"], NOT_MEASURED)
    evidence = [
        f"verified with only the public JWKS key (no secret, no call to the issuer): "
        f"{', '.join(passed) or 'none'}"
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
