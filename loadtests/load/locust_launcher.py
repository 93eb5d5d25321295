"""A Locust that is already imported: one long-lived process forks a ready generator per cell.

Starting Locust costs about a second of CPU before the first request (importing Locust, gevent,
Flask and the rest), and a run starts one Locust per cell and per capacity probe: a hundred
starts in the quick matrix. This process pays the imports once; for each cell it forks a child
that becomes an ordinary headless Locust (its own session, CPUs, environment, working folder and
log), exactly as ``python -m locust`` with the same arguments would be. The project's own
modules (the locustfile, the recorder and the scenarios read their settings from the
environment when imported) are imported afresh by each child, never here.

Protocol, one JSON object per line: the parent writes ``{"args", "env", "cwd", "log", "cpus"}``
on stdin and reads ``{"pid": N}`` back; when a child ends, ``{"exited": N, "code": C}`` follows
(C as ``subprocess`` reports it: negative for a signal). The process ends when stdin closes,
which is also what happens when its parent dies, so it never outlives the run.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
from typing import Any

import gevent
from gevent import monkey

# What this process exists to import once, in this order: Locust first, because importing it
# patches the standard library for gevent, which must happen before anything imports ssl.
PRELOADED = ("locust.main", "locust.contrib.fasthttp", "hdrh.histogram", "jwt")
# The launcher itself never runs gevent's hub: it blocks and forks with the unpatched calls.
_fork = monkey.get_original("os", "fork")
_waitpid = monkey.get_original("os", "waitpid")
_select = monkey.get_original("select", "select")
REAP_EVERY_S = 0.05


def _become_locust(request: dict[str, Any], in_session: int) -> None:
    """In the forked child: take the cell's session (then say so on ``in_session``), CPUs,
    environment and log, then run Locust's own main(), whose SystemExit ends this process
    with Locust's exit code."""
    os.setsid()
    os.write(in_session, b".")
    os.close(in_session)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if request.get("cpus"):
        os.sched_setaffinity(0, request["cpus"])
    gevent.reinit()
    # The event loop's clock was last read when the launcher started: timers set from a stale
    # "now" (Locust's --run-time among them) would fire early.
    gevent.get_hub().loop.update_now()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = ["locust", *request["args"]]
    importlib.import_module("locust.main").main()
    sys.exit(0)


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _reap(children: set[int]) -> None:
    """Report every child that has ended."""
    for pid in list(children):
        ended, status = _waitpid(pid, os.WNOHANG)
        if ended:
            children.discard(pid)
            _say({"exited": pid, "code": os.waitstatus_to_exitcode(status)})


def serve() -> None:
    """Fork a Locust per request line until stdin closes; report each child's pid and end."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    for module in PRELOADED:
        importlib.import_module(module)
    children: set[int] = set()
    stdin = sys.stdin.fileno()
    buffered = b""
    while True:
        readable, _, _ = _select([stdin], [], [], REAP_EVERY_S)
        _reap(children)
        if not readable:
            continue
        chunk = os.read(stdin, 65536)
        if not chunk:
            return
        buffered += chunk
        while b"\n" in buffered:
            line, buffered = buffered.split(b"\n", 1)
            request = json.loads(line)
            sys.stdout.flush()
            # The pid is reported once the child leads its own session, so that stopping its
            # group can never miss it.
            session_read, session_written = os.pipe()
            pid = _fork()
            if pid == 0:
                os.close(session_read)
                _become_locust(request, session_written)
            os.close(session_written)
            os.read(session_read, 1)  # b"" if it died first: then it is reaped as exited
            os.close(session_read)
            children.add(pid)
            _say({"pid": pid})


if __name__ == "__main__":
    serve()
