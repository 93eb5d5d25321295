"""The machine's speed, measured: a fixed reference workload timed at a run's start and end.

The same code on the same class of machine measured 3x apart on different days. Every run
therefore times three fixed workloads, pinned to the servers' CPUs: pure Python (a fixed
arithmetic loop), one RSA-2048 PKCS#1 v1.5 SHA-256 verification (the asymmetric verify every
JWT server pays) and one Redis ``PING`` round trip. Comparing two runs' figures means comparing
them *relative to* these: ``analysis compare`` shows the ratios.
"""

from __future__ import annotations

import os
import statistics
from typing import Any

import redis
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from loadtests.measure.calibration_figures import PYTHON_LOOP
from loadtests.measure.micro import time_sync
from loadtests.run.run_folder import utc_now


def _python_loop() -> int:
    total = 0
    for index in range(PYTHON_LOOP):
        total += index * index % 7
    return total


def _rsa_verifier() -> Any:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    message = b"authbench calibration"
    signature = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    public = key.public_key()
    return lambda: public.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())


def calibrate(redis_url: str | None, cpus: set[int] | None = None) -> dict[str, Any]:
    """Median µs of each reference workload, on ``cpus`` when given."""
    previous = os.sched_getaffinity(0)
    if cpus:
        os.sched_setaffinity(0, cpus)
    try:
        figures: dict[str, Any] = {"at": utc_now()}
        figures["python_loop_us"] = round(statistics.median(time_sync(_python_loop)[0]), 2)
        figures["rsa2048_verify_us"] = round(statistics.median(time_sync(_rsa_verifier())[0]), 2)
        if redis_url:
            client = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
            try:
                figures["redis_ping_us"] = round(statistics.median(time_sync(client.ping)[0]), 2)
            except redis.RedisError:
                figures["redis_ping_us"] = None  # unreachable: the cells will say so
            finally:
                client.close()
    finally:
        os.sched_setaffinity(0, previous)
    return figures
