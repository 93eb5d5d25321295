"""A fork server: one long-lived process imports a program's libraries once, then forks a ready
child per start, which runs ``python -m <module> <args>`` as a fresh process would.

Starting Locust or a reference server costs most of a second of CPU in imports (Locust, gevent
and Flask; FastAPI, uvicorn and cryptography), and a run starts one Locust per cell and per
capacity probe and a set of servers per cell group: over a hundred starts in the quick matrix.
This process pays the third-party imports once (``--preload``). Each child takes its own
session, CPUs, environment, working folder and log, then runs the module as ``__main__``. The
project's own modules are imported afresh by each child, never here: several read their
settings from the environment when imported.

Protocol, one JSON object per line: the parent writes ``{"module", "args", "env", "cwd", "log",
"cpus"}`` on stdin and reads ``{"pid": N}`` back, sent once the child leads its own session;
when a child ends, ``{"exited": N, "code": C}`` follows (C as ``subprocess`` reports it:
negative for a signal). The process ends when stdin closes, which is also what happens when its
parent dies, so it never outlives the run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import runpy
import select
import signal
import sys
from collections.abc import Callable
from typing import Any

REAP_EVERY_S = 0.05


def _original(module: Any, name: str) -> Callable[..., Any]:
    """The standard library's own function, also where a preload (Locust) patched it for gevent:
    the fork server never runs gevent's hub, it blocks and forks with the unpatched calls."""
    if "gevent.monkey" in sys.modules:
        return sys.modules["gevent.monkey"].get_original(module.__name__, name)
    return getattr(module, name)


def _become(request: dict[str, Any], in_session: int) -> None:
    """In the forked child: take the start's session (then say so on ``in_session``), CPUs,
    environment, folder and log, then run the module, whose SystemExit ends this process."""
    os.setsid()
    os.write(in_session, b".")
    os.close(in_session)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if request.get("cpus"):
        os.sched_setaffinity(0, request["cpus"])
    if "gevent" in sys.modules:
        gevent = sys.modules["gevent"]
        gevent.reinit()
        # The event loop's clock was last read when the fork server started: timers set from a
        # stale "now" (Locust's --run-time among them) would fire early.
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
    sys.argv = [request["module"], *request["args"]]
    runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
    sys.exit(0)


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _reap(children: set[int], waitpid: Callable[..., tuple[int, int]]) -> None:
    """Report every child that has ended."""
    for pid in list(children):
        ended, status = waitpid(pid, os.WNOHANG)
        if ended:
            children.discard(pid)
            _say({"exited": pid, "code": os.waitstatus_to_exitcode(status)})


def serve(preload: list[str]) -> None:
    """Import ``preload`` in order, then fork a child per request line until stdin closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    for module in preload:
        importlib.import_module(module)
    fork, waitpid = _original(os, "fork"), _original(os, "waitpid")
    wait_readable = _original(select, "select")
    children: set[int] = set()
    stdin = sys.stdin.fileno()
    buffered = b""
    while True:
        readable, _, _ = wait_readable([stdin], [], [], REAP_EVERY_S)
        _reap(children, waitpid)
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
            pid = fork()
            if pid == 0:
                os.close(session_read)
                _become(request, session_written)
            os.close(session_written)
            os.read(session_read, 1)  # b"" if it died first: then it is reaped as exited
            os.close(session_read)
            children.add(pid)
            _say({"pid": pid})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--preload", default="", help="modules to import once, comma-separated")
    serve([name for name in parser.parse_args().preload.split(",") if name])
