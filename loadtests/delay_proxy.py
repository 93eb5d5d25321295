"""A store in another zone, simulated: a TCP proxy that delays every byte by a fixed time.

Between the nodes and Redis, each direction holds what it reads for half the asked delay before
passing it on (order kept), so one request/reply round trip costs ``delay_ms`` more, as a store
one zone away would (tc netem is not available on these machines). It runs as a child process
on the generator's CPU, sampled apart from the servers.

    python -m loadtests.delay_proxy LISTEN_PORT UPSTREAM_HOST UPSTREAM_PORT DELAY_MS
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

from loadtests.ports import free_port, wait_for_port
from loadtests.processes import Service, spawn, stop

CHUNK = 65536
# What passing through the proxy costs a round trip by itself (two thread hand-offs per
# direction), measured on this machine class with no delay asked: subtracted from the asked
# delay so a round trip costs what was asked. The runner measures what it really added.
HOP_COST_MS = 0.25


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


def serve(port: int, upstream_host: str, upstream_port: int, delay_ms: float) -> None:
    """Proxy 127.0.0.1:port to the upstream until killed."""
    one_way_s = max(0.0, delay_ms - HOP_COST_MS) / 2000
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
        self.port = free_port()
        self.url = proxied_url(redis_url, self.port)
        self._cpus = cpus
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> None:
        """Launch the proxy and wait until it accepts connections."""
        host, port = self.upstream
        command = [sys.executable, "-m", "loadtests.delay_proxy", str(self.port), host, str(port),
                   f"{self.delay_ms:g}"]  # fmt: skip
        self._process = spawn(command, self._cpus)
        if not wait_for_port("127.0.0.1", self.port, 10):
            self.close()
            raise OSError(f"the delay proxy did not start on port {self.port}")

    def close(self) -> None:
        """Stop the proxy by its PID."""
        stop(self._process)
        self._process = None


if __name__ == "__main__":
    listen, host, upstream, delay = sys.argv[1:5]
    serve(int(listen), host, int(upstream), float(delay))
