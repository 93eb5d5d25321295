"""What a command line tells its user apart from a traceback: bad input, or an interrupted run.

Each package raises its own subclass (a matrix, a workload, a run folder, a missing Redis); the
``authbench`` command catches these two bases alone, so it need not import every package to
print the one line and exit with the right code.
"""

from __future__ import annotations


class BadInput(Exception):
    """The input cannot be used; the message is one line naming the file, key or variable."""


class RunInterrupted(Exception):
    """The run was stopped by the user; finished cells are kept."""
