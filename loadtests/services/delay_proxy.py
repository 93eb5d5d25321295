"""A store in another zone, simulated: a TCP proxy that delays every byte by a fixed time.

Between the nodes and Redis, each direction holds what it reads for half the proxy's sleep
before passing it on (order kept), so one request/reply round trip costs ``delay_ms`` more, as
a store one zone away would (tc netem is not available on these machines). It runs as a child
process on the generator's CPU, sampled apart from the servers.

The proxy's own cost (thread hand-offs, sleep overshoot) depends on the machine and the day, so
:class:`DelayProxy` closes the loop when it starts: it measures the round trip it really adds
with real PINGs and, when that misses the asked delay, restarts once with the sleep corrected
by the miss.

    python -m loadtests.services.delay_proxy LISTEN_PORT UPSTREAM_HOST UPSTREAM_PORT SLEEP_MS
"""

from __future__ import annotations

import contextlib
import queue
import socket
import statistics
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit, urlunsplit

import redis

from loadtests.services.ports import free_port, wait_for_port
from loadtests.services.processes import Service, spawn, stop

CHUNK = 65536
# First guess of what passing through the proxy costs a round trip by itself (two thread
# hand-offs per direction); the start-up measurement corrects it for the machine of the day.
HOP_COST_MS = 0.25
CORRECT_ABOVE = 0.03  # a start-up miss larger than this share of the delay is corrected


def _pipe(source: socket.socket, target: socket.socket, delay_s: float) -> None:
    """Copy source → target, each chunk sent ``delay_s`` after it arrived, in order.

    A reader and a sender thread per direction: ``time.sleep`` wakes within tens of µs, where
    an event loop's timers round up to whole milliseconds.
    """
    pending: queue.Queue[tuple[float, bytes]] = queue.Queue()

    def send() -> None:
        while True:
            due, data = pending.get()
            if not data:
                break
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                target.sendall(data)
            except OSError:
                break
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        while data := source.recv(CHUNK):
            pending.put((time.monotonic() + delay_s, data))
    except OSError:
        pass
    finally:
        pending.put((0.0, b""))
        sender.join()


def _connect(client: socket.socket, upstream: tuple[str, int], delay_s: float) -> None:
    try:
        server = socket.create_connection(upstream)
    except OSError:
        client.close()
        return
    for sock in (client, server):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    back = threading.Thread(target=_pipe, args=(server, client, delay_s), daemon=True)
    back.start()
    _pipe(client, server, delay_s)
    back.join()
    client.close()
    server.close()


def serve(port: int, upstream_host: str, upstream_port: int, sleep_ms: float) -> None:
    """Proxy 127.0.0.1:port to the upstream until killed, sleeping ``sleep_ms`` per round trip."""
    one_way_s = max(0.0, sleep_ms) / 2000
    listener = socket.create_server(("127.0.0.1", port), backlog=1024)
    while True:
        client, _ = listener.accept()
        threading.Thread(
            target=_connect, args=(client, (upstream_host, upstream_port), one_way_s), daemon=True
        ).start()


def median_ping_ms(url: str, pings: int = 100) -> float:
    """Median Redis PING round trip (ms) on one connection, connected outside the timing."""
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        client.ping()
        samples = []
        for _ in range(pings):
            started = time.perf_counter()
            client.ping()
            samples.append((time.perf_counter() - started) * 1000)
        return statistics.median(samples)
    finally:
        client.close()


def added_round_trip_ms(direct_url: str, proxied: str) -> float:
    """What the proxy really adds to a Redis round trip: median PING through it minus direct."""
    return round(median_ping_ms(proxied) - median_ping_ms(direct_url), 3)


def proxied_url(redis_url: str, port: int) -> str:
    """The Redis URL with its host and port replaced by the proxy's."""
    parts = urlsplit(redis_url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@127.0.0.1:{port}" if credentials else f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


class DelayProxy(Service):
    """The proxy as a child process on a free loopback port in front of a Redis URL."""

    def __init__(self, redis_url: str, delay_ms: float, cpus: set[int] | None = None) -> None:
        parts = urlsplit(redis_url)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self.delay_ms = delay_ms
        self.redis_url = redis_url
        self.sleep_ms = 0.0
        self.port = free_port()
        self.url = proxied_url(redis_url, self.port)
        self._cpus = cpus
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> None:
        """Launch the proxy, measure what it adds, and relaunch once corrected if it missed."""
        self.sleep_ms = max(0.0, self.delay_ms - HOP_COST_MS)
        self._launch()
        if self.delay_ms <= 0:
            return
        miss = added_round_trip_ms(self.redis_url, self.url) - self.delay_ms
        if abs(miss) > CORRECT_ABOVE * self.delay_ms:
            self.close()
            self.sleep_ms = max(0.0, self.sleep_ms - miss)
            self._launch()

    def _launch(self) -> None:
        host, port = self.upstream
        command = [sys.executable, "-m", "loadtests.services.delay_proxy", str(self.port), host,
                   str(port), f"{self.sleep_ms:.4f}"]  # fmt: skip
        self._process = spawn(command, self._cpus)
        if not wait_for_port("127.0.0.1", self.port, 10):
            self.close()
            raise OSError(f"the delay proxy did not start on port {self.port}")

    def close(self) -> None:
        """Stop the proxy by its PID."""
        stop(self._process)
        self._process = None


if __name__ == "__main__":
    listen, host, upstream, sleep = sys.argv[1:5]
    serve(int(listen), host, int(upstream), float(sleep))
