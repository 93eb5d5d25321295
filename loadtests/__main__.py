"""``python -m loadtests``: the micro benchmark and benchmark runs into ``results/``.

Bad arguments end with one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from loadtests.micro import format_table, run_micro, write_micro_csv
from loadtests.private_redis import PrivateRedis, RedisUnavailable, redis_url_from_env
from loadtests.run_folder import (
    SCHEMA_VERSION,
    create_run_folder,
    environment,
    point_latest,
    utc_now,
    write_json,
)

PROG = "python -m loadtests"


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"{PROG}: error: {message}", file=sys.stderr)
        sys.exit(2)


def _micro_with_redis(kdf_iterations: int) -> list:
    given = redis_url_from_env()
    if given:
        return run_micro(given, kdf_iterations)
    with PrivateRedis() as server:
        return run_micro(server.url, kdf_iterations)


def command_micro(args: argparse.Namespace) -> None:
    """Print the micro benchmark; save it when --out is given."""
    results = _micro_with_redis(args.kdf_iterations)
    print(format_table(results))
    if args.out:
        write_micro_csv(results, Path(args.out))
        print(f"\nmicro benchmark written to {args.out}")


def command_bench(args: argparse.Namespace) -> None:
    """A run folder with its manifest and the micro benchmark."""
    results_root = Path(args.out)
    run_dir = create_run_folder(results_root, "micro")
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_dir.name,
        "started": utc_now(),
        "status": "incomplete",
        "environment": environment(),
        "kdf_iterations": args.kdf_iterations,
    }
    write_json(run_dir / "manifest.json", manifest)
    results = _micro_with_redis(args.kdf_iterations)
    write_micro_csv(results, run_dir / "micro.csv")
    write_json(run_dir / "manifest.json", {**manifest, "ended": utc_now(), "status": "complete"})
    point_latest(results_root, run_dir)
    print(format_table(results))
    print(f"\nrun folder: {run_dir}")


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m loadtests``."""
    parser = _OneLineParser(prog=PROG, description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_OneLineParser)
    micro = commands.add_parser("micro", help="in-process cost of each primitive")
    micro.add_argument("--out", help="also write the results to this CSV file")
    bench = commands.add_parser("bench", help="a new run folder with the micro benchmark")
    bench.add_argument("--out", default="results", help="results root folder")
    for sub in (micro, bench):
        sub.add_argument("--kdf-iterations", type=int, default=10_000, help="KDF cost to time")
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    args = build_parser().parse_args(argv)
    handlers = {"micro": command_micro, "bench": command_bench}
    try:
        handlers[args.command](args)
    except RedisUnavailable as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
