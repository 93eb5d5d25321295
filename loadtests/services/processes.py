"""Starting and stopping the child processes a run owns, always by their own PID or group."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Sequence
from typing import IO, Any, Protocol

STOP_TIMEOUT_S = 5.0


class ChildProcess(Protocol):
    """What stopping needs of a process: a Popen, or a child of a fork server."""

    pid: int

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def send_signal(self, sig: int) -> None: ...


def spawn(
    command: Sequence[str],
    cpus: set[int] | None = None,
    output: IO[Any] | int = subprocess.DEVNULL,
    env: dict[str, str] | None = None,
    pipes: bool = False,
) -> subprocess.Popen[bytes]:
    """Start a process in its own session (Ctrl-C reaches only us), pinned to ``cpus``.

    ``pipes``: talk to it over its stdin and stdout instead (its errors go to ours)."""
    errors = subprocess.DEVNULL if output == subprocess.DEVNULL else subprocess.STDOUT
    if pipes:
        output, errors = subprocess.PIPE, None
    process = subprocess.Popen(
        list(command),
        stdin=subprocess.PIPE if pipes else None,
        stdout=output,
        stderr=errors,
        env=env,
        start_new_session=True,
    )
    try:
        pin(process.pid, cpus)
    except BaseException:
        stop(process)
        raise
    return process


def pin(pid: int, cpus: set[int] | None) -> None:
    """Pin every thread of a running process to ``cpus`` (threads it starts later inherit it)."""
    if not cpus:
        return
    for thread in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):  # the thread ended meanwhile
            os.sched_setaffinity(int(thread), cpus)


def stop(process: ChildProcess | None, group: bool = False) -> None:
    """SIGTERM the process (or its whole group), SIGKILL after STOP_TIMEOUT_S; always reaped."""
    if process is None or process.poll() is not None:
        return

    def send(sig: signal.Signals) -> None:
        try:
            if group:
                os.killpg(process.pid, sig)
            else:
                process.send_signal(sig)
        except ProcessLookupError:
            pass

    send(signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        process.wait()


class Service:
    """A started-then-stopped helper: ``with`` calls start() and close()."""

    def start(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Service:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def stop_on_sigterm_like_ctrl_c() -> None:
    """A polite kill (SIGTERM) interrupts like Ctrl-C, so the same clean-up runs."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
