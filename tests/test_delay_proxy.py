"""The store-distance proxy adds the latency asked for, measured with real Redis round trips."""

from __future__ import annotations

import pytest

from loadtests.services.delay_proxy import DelayProxy, added_round_trip_ms, proxied_url
from loadtests.services.private_redis import PrivateRedis


@pytest.mark.quiet_machine  # a loaded machine adds its own milliseconds
@pytest.mark.parametrize("delay_ms", [1.0, 2.0, 5.0])
def test_a_round_trip_through_the_proxy_costs_the_asked_delay(delay_ms: float) -> None:
    with PrivateRedis() as server, DelayProxy(server.url, delay_ms) as proxy:
        added = added_round_trip_ms(server.url, proxy.url)
    assert 0.8 * delay_ms <= added <= 1.2 * delay_ms, added


def test_the_proxy_keeps_the_url_but_its_address() -> None:
    assert (
        proxied_url("redis://:secret@10.0.0.9:6380/2", 5555) == "redis://:secret@127.0.0.1:5555/2"
    )
    assert proxied_url("redis://127.0.0.1:6379/0", 7) == "redis://127.0.0.1:7/0"
