"""``python -m loadtests``: matrix runs into ``results/`` and the micro benchmark.

Bad arguments end with one line on stderr and a non-zero exit; a run with failed cells exits 1
after writing everything it measured (``--resume`` tries the failed cells again).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from loadtests.matrix import MatrixError, parse_plant
from loadtests.micro import format_table, run_micro_on_any_redis, write_micro_csv
from loadtests.private_redis import RedisUnavailable
from loadtests.processes import stop_on_sigterm_like_ctrl_c
from loadtests.runner import RunInterrupted, execute, new_run, print_summary, resumed_run

PROG = "python -m loadtests"


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"{PROG}: error: {message}", file=sys.stderr)
        sys.exit(2)


def command_micro(args: argparse.Namespace) -> None:
    """Print the micro benchmark; save it when --out is given."""
    results = run_micro_on_any_redis(args.kdf_iterations)
    print(format_table(results))
    if args.out:
        write_micro_csv(results, Path(args.out))
        print(f"\nmicro benchmark written to {args.out}")


def command_run(args: argparse.Namespace) -> None:
    """Run a matrix (or resume a run) into results/, then print the summary."""
    results_root = Path(args.out)
    if not args.resume and not args.matrix:
        raise MatrixError("run needs --matrix quick|full|FILE or --resume RUN")
    run = (
        resumed_run(args.resume, results_root)
        if args.resume
        else new_run(args.matrix, results_root, parse_plant(args.plant) if args.plant else None)
    )
    print(f"run {run.run_dir.name}: {len(run.matrix.cells)} cells, up to "
          f"{run.matrix.repetitions} repetition(s) from {run.matrix.source}")  # fmt: skip
    stop_on_sigterm_like_ctrl_c()  # finished cells kept, no stray process
    rows = execute(run, with_micro=not args.no_micro)
    failed = print_summary(rows, run)
    if failed:
        sys.exit(1)


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m loadtests``."""
    parser = _OneLineParser(prog=PROG, description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_OneLineParser)
    micro = commands.add_parser("micro", help="in-process cost of each primitive")
    micro.add_argument("--out", help="also write the results to this CSV file")
    micro.add_argument("--kdf-iterations", type=int, default=10_000, help="KDF cost to time")
    run = commands.add_parser("run", help="run a matrix into a new results/<run-id>/")
    run.add_argument("--matrix", help="quick, full, or a path to a matrix TOML file")
    run.add_argument("--out", default="results", help="results root folder (default: results)")
    run.add_argument("--resume", metavar="RUN", help="finish an incomplete run (id or folder)")
    run.add_argument("--no-micro", action="store_true", help="skip the micro benchmark")
    run.add_argument(
        "--plant",
        metavar="SCHEME=US",
        help="self-test matrices only: a known extra CPU cost in one scheme's auth step",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    args = build_parser().parse_args(argv)
    handlers = {"micro": command_micro, "run": command_run}
    try:
        handlers[args.command](args)
    except (MatrixError, RedisUnavailable, FileNotFoundError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except RunInterrupted as exc:
        print(f"\n{PROG}: {exc}; finish it with --resume", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
