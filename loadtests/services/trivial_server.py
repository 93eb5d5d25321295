"""A trivial HTTP server for measuring the load generator's own ceiling.

It answers every request with the same small JSON (which claims to be the ``none`` scheme), with
keep-alive and nothing else, so it is far cheaper than any reference server: whatever rate
Locust reaches against it is what the generator can do on this machine.

With a service time it becomes a target of known capacity: every request holds the one event
loop for that long (a blocking wait, not CPU), so it serves at most 1 / service time requests per
second whatever else the machine does. The capacity search is checked against it.

With a stall time it becomes a target that hangs: every request that arrives that long after
the first one is never answered, so the load generator still has requests in flight when it
stops (censoring is checked against it).

    python -m loadtests.services.trivial_server PORT [SERVICE_US [STALL_AFTER_S]]
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

from loadtests.services.ports import free_port, wait_for_port
from loadtests.services.processes import Service, spawn, stop

BODY = json.dumps(
    {"status": "ok", "scheme": "none", "alg": None, "store": None, "node": "trivial", "sub": "x"}
).encode()
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(BODY)).encode()
    + b"\r\n\r\n"
    + BODY
)


class TrivialProtocol(asyncio.Protocol):
    """Answers each complete request head (and its declared body) with RESPONSE."""

    first_request: float | None = None  # shared by every connection of the process

    def __init__(self, service_s: float = 0.0, stall_after_s: float | None = None) -> None:
        self.buffer = b""
        self.service_s = service_s
        self.stall_after_s = stall_after_s
        self.transport: asyncio.Transport | None = None

    def stalled(self) -> bool:
        """Whether requests are no longer answered (the stall time has passed)."""
        now = time.monotonic()
        if TrivialProtocol.first_request is None:
            TrivialProtocol.first_request = now
        if self.stall_after_s is None:
            return False
        return now - TrivialProtocol.first_request >= self.stall_after_s

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            body_length = 0
            for line in self.buffer[:head_end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    body_length = int(value.strip() or 0)
            end = head_end + 4 + body_length
            if len(self.buffer) < end:
                return
            self.buffer = self.buffer[end:]
            assert self.transport is not None
            if self.stalled():
                continue  # held forever: the client sees a request that never ends
            if self.service_s:
                time.sleep(self.service_s)  # holds the whole loop: requests are served one by one
            self.transport.write(RESPONSE)


async def serve(port: int, service_us: float = 0.0, stall_after_s: float | None = None) -> None:
    """Serve on 127.0.0.1:port until cancelled."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: TrivialProtocol(service_us / 1e6, stall_after_s), "127.0.0.1", port, backlog=2048
    )
    async with server:
        await server.serve_forever()


class TrivialServer(Service):
    """The trivial server as a child process on a free loopback port, stopped by its PID."""

    def __init__(
        self,
        cpus: set[int] | None = None,
        service_us: float = 0.0,
        stall_after_s: float | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._cpus = cpus
        self._service_us = service_us
        self._stall_after_s = stall_after_s
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Launch the server and wait until it accepts connections."""
        command = [
            sys.executable, "-m", "loadtests.services.trivial_server", str(self.port),
            f"{self._service_us:g}",
        ]  # fmt: skip
        if self._stall_after_s is not None:
            command.append(f"{self._stall_after_s:g}")
        self._process = spawn(command, self._cpus)
        if not wait_for_port("127.0.0.1", self.port, 10):
            self.close()
            raise OSError(f"the trivial server did not start on port {self.port}")

    def close(self) -> None:
        """Stop the server by its PID."""
        stop(self._process)
        self._process = None


if __name__ == "__main__":
    arguments = [float(value) for value in sys.argv[2:4]]
    asyncio.run(serve(int(sys.argv[1]), *arguments))
