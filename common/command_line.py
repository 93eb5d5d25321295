"""One argparse helper for every command line of the suite: an error is one line, raised.

argparse prints the usage block and exits by itself; ``OneLineParser`` raises its
``error_class`` (a :class:`common.outcomes.BadInput` unless a command names its own) with
argparse's message alone, so each command prints it like any other bad input, one line, and
exits with its own code. Subcommand parsers inherit it through ``parser_class``.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

from common.outcomes import BadInput


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors raise ``error_class`` with one line, no usage block."""

    error_class: type[Exception] = BadInput

    def error(self, message: str) -> NoReturn:
        raise self.error_class(message)
