"""``python -m analysis report RUN``, ``compare A B``, ``selftest A B``, ``decide RUN --workload``.

RUN may be a run folder or a run id under ``results/`` (``latest`` works). Problems end with one
line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from analysis.tidy import RunFolderError, load_run
from analysis.workload import WorkloadError

PROG = "python -m analysis"


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"{PROG}: error: {message}", file=sys.stderr)
        sys.exit(2)


def resolve_run(name: str, results_root: Path) -> Path:
    """A run folder from a path or a run id under the results root."""
    path = Path(name)
    return path if path.is_dir() else results_root / name


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    parser = _OneLineParser(prog=PROG, description=__doc__)
    parser.add_argument("--results", default="results", help="results root (default: results)")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_OneLineParser)
    report = commands.add_parser("report", help="rebuild figures, report.html and report.md")
    report.add_argument("run", help="run folder or run id")
    compare = commands.add_parser("compare", help="two runs side by side")
    compare.add_argument("a", help="run folder or id (before)")
    compare.add_argument("b", help="run folder or id (after)")
    compare.add_argument("--out", help="folder for the comparison (default: results/compare-A-B)")
    selftest = commands.add_parser(
        "selftest", help="judge the statistics: run A and run B (B with a planted cost)"
    )
    selftest.add_argument("a", help="run folder or id (no planted cost)")
    selftest.add_argument("b", help="run folder or id (run with --plant)")
    selftest.add_argument("--out", help="folder (default: results/selftest-A-B)")
    until = commands.add_parser(
        "until-decided", help="repeat a finished run's undecided primary comparisons only"
    )
    until.add_argument("run", help="run folder or run id")
    until.add_argument(
        "--budget-s", type=float, default=900.0, help="time budget in seconds (default: 900)"
    )
    commands.add_parser("history", help="index the runs and chart headline figures across them")
    decide = commands.add_parser("decide", help="cores and cost per scheme for your workload")
    decide.add_argument("run", help="run folder or run id")
    decide.add_argument("--workload", required=True, help="workload TOML (workloads/example.toml)")
    args = parser.parse_args(argv)
    root = Path(args.results)
    try:
        if args.command == "history":
            from analysis.history import write_history

            flagged, paths = write_history(root)
            for change in flagged:
                print(
                    f"{change.kind}: {change.scheme} {change.before.run_id} → {change.after.run_id}"
                )
            for path in paths:
                print(f"history: {path}")
        elif args.command == "decide":
            from analysis.decide import decide

            print(decide(load_run(resolve_run(args.run, root)), Path(args.workload)))
        elif args.command == "until-decided":
            from analysis.until_decided import until_decided

            if args.budget_s <= 0:
                raise RunFolderError(f"--budget-s {args.budget_s:g}: must be above 0")
            if not until_decided(resolve_run(args.run, root).resolve(), args.budget_s):
                sys.exit(1)
        elif args.command == "selftest":
            from analysis.selftest import write_selftest

            before = load_run(resolve_run(args.a, root))
            after = load_run(resolve_run(args.b, root))
            out = Path(args.out or root / f"selftest-{before.run_id}-{after.run_id}")
            result, paths = write_selftest(before, after, out)
            print("\n".join(result.lines()))
            print(f"self-test: {paths[0]}")
            if not result.passed:
                sys.exit(1)
        elif args.command == "report":
            from analysis.report import write_report

            html_path, md_path = write_report(load_run(resolve_run(args.run, root)))
            print(f"report: {html_path}\nmarkdown: {md_path}")
        else:
            from analysis.compare import write_comparison

            before = load_run(resolve_run(args.a, root))
            after = load_run(resolve_run(args.b, root))
            default = root / f"compare-{before.run_id}-{after.run_id}"
            out = Path(args.out) if args.out else default
            for path in write_comparison(before, after, out):
                print(f"comparison: {path}")
    except (RunFolderError, WorkloadError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
