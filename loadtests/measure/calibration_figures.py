"""What a calibration measures and how two runs' calibrations compare, without running it.

The reference workloads are timed by :mod:`loadtests.measure.calibration` on the servers' CPUs; this
module holds only their names and the ratio between two runs, so the analysis reads them
without importing what runs them (the micro benchmark and the servers' code).
"""

from __future__ import annotations

from typing import Any

PYTHON_LOOP = 10_000
REFERENCES = {
    "python_loop_us": f"{PYTHON_LOOP:,} iterations of an integer loop in pure Python",
    "rsa2048_verify_us": "one RSA-2048 PKCS#1 v1.5 SHA-256 signature verification",
    "redis_ping_us": "one Redis PING round trip on loopback",
}


def calibration_ratio(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
    """after / before for each reference both measured (above 1: the machine was slower)."""
    return {
        name: round(after[name] / before[name], 3)
        for name in REFERENCES
        if before.get(name) and after.get(name)
    }
