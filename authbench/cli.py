"""``authbench``: the one command line of the suite; every make target calls it.

Exit codes (the same for every subcommand):

- 0: done, and every threshold held;
- 1: done, but the answer is incomplete: cells failed (``--resume`` retries them), a self-test
  failed, or an adaptive run ended with comparisons still undecided;
- 2: bad input (a one-line error naming the file, key or variable; nothing written);
- 3: a threshold was violated, or a figure regressed against the baseline;
- 130: interrupted (finished cells kept; ``--resume`` finishes the run).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from common.command_line import OneLineParser
from common.outcomes import BadInput, RunInterrupted

if TYPE_CHECKING:  # analysis loads pandas and matplotlib: only the commands that need it do
    from analysis.tidy import RunData

PROG = "authbench"
OK, INCOMPLETE, BAD_INPUT, THRESHOLD, INTERRUPTED = 0, 1, 2, 3, 130
SUBCOMMANDS = (
    "run",
    "report",
    "compare",
    "decide",
    "history",
    "selftest",
    "until-decided",
    "micro",
    "serve",
    "matrices",
)


class UsageError(BadInput):
    """Bad input found by the command line itself; the message is one line."""


class _CommandParser(OneLineParser):
    error_class = UsageError


def _rules(texts: list[str] | None) -> list[str]:
    """``--fail-on`` rules, each parsed now so a typo stops before anything runs."""
    from loadtests.run.thresholds import ThresholdError, parse_threshold

    for text in texts or []:
        try:
            parse_threshold(text)
        except ThresholdError as exc:
            raise UsageError(f"--fail-on {exc}") from None
    return list(texts or [])


def _run_folder(name: str, root: Path) -> Path:
    """A run folder from a path or a run id under the results root (``latest`` works)."""
    path = Path(name)
    return path if path.is_dir() else root / name


def _load(name: str, root: Path) -> RunData:
    from analysis.tidy import load_run

    return load_run(_run_folder(name, root))


def _report(run: RunData, rules: list[str], baseline: Path | None) -> int:
    """Rebuild the report and summary; THRESHOLD when a rule failed, else OK."""
    from analysis.report import write_report
    from analysis.tidy import load_run

    report = write_report(run, rules, load_run(baseline) if baseline else None)
    print(f"report: {run.run_dir / 'report.html'}\nsummary: {run.run_dir / 'summary.json'}")
    for check in report.thresholds:
        print(check.line())
    return OK if all(check.passed for check in report.thresholds) else THRESHOLD


def command_run(args: argparse.Namespace) -> int:
    """Run a matrix (or finish one), repeat what is undecided when asked, report, judge.

    The options that need no file are checked before the runner loads (a second of imports)."""
    if args.target_url and args.resume:
        raise UsageError("--resume reads its target from the run folder: drop --target-url")
    if args.target_pid and not args.target_url:
        raise UsageError("--target-pid goes with --target-url")
    matrix = args.matrix or ("target" if args.target_url else None)
    if bool(args.resume) == bool(matrix):
        raise UsageError("run needs --matrix NAME|FILE (see authbench matrices) or --resume RUN")
    rules = _rules(args.fail_on)
    from authbench.until_decided import until_decided
    from loadtests.run.matrix import parse_plant
    from loadtests.run.runner import execute, new_run, print_summary, resumed_run
    from loadtests.services.processes import stop_on_sigterm_like_ctrl_c
    from loadtests.services.target import inspect_target

    baseline = _baseline(args.baseline, args.results)
    plant = parse_plant(args.plant) if args.plant else None
    target = inspect_target(args.target_url, args.target_pid) if args.target_url else None
    run = (
        resumed_run(args.resume, args.results)
        if args.resume
        else new_run(matrix, args.results, plant, target)
    )
    print(
        f"run {run.run_dir.name}: {len(run.matrix.cells)} cells, up to "
        f"{run.matrix.repetitions} repetition(s) from {run.matrix.source}"
    )
    stop_on_sigterm_like_ctrl_c()  # finished cells kept, no stray process
    micro = not args.no_micro and run.target is None  # the micro benchmark times our code
    status = INCOMPLETE if print_summary(execute(run, with_micro=micro), run) else OK
    if status == OK and args.until == "decided":
        status = OK if until_decided(run.run_dir.resolve(), args.budget_s) else INCOMPLETE
    if args.no_report:
        return status
    judged = _report(_load(str(run.run_dir), args.results), rules, baseline)
    return status or judged


def _baseline(name: str | None, root: Path) -> Path | None:
    if name is None:
        return None
    path = _run_folder(name, root)
    if not (path / "manifest.json").is_file():
        raise UsageError(f"--baseline {name}: no run folder at {path}")
    return path


def command_report(args: argparse.Namespace) -> int:
    """Rebuild a run's figures, report and summary from its raw files."""
    rules = _rules(args.fail_on)
    baseline = _baseline(args.baseline, args.results)
    return _report(_load(args.run, args.results), rules, baseline)


def command_compare(args: argparse.Namespace) -> int:
    """Two runs side by side; THRESHOLD with --fail-on-regression when a figure got worse."""
    from analysis.compare import compare_runs, write_comparison
    from analysis.thresholds import regressions

    before, after = _load(args.a, args.results), _load(args.b, args.results)
    out = Path(args.out or args.results / f"compare-{before.run_id}-{after.run_id}")
    comparison = compare_runs(before, after)
    for path in write_comparison(before, after, out, comparison):
        print(f"comparison: {path}")
    check = regressions(comparison, before.run_id)
    print(check.line())
    return THRESHOLD if args.fail_on_regression and not check.passed else OK


def command_decide(args: argparse.Namespace) -> int:
    """Size a workload on a run and put the answer into its report."""
    from analysis.workload import load_workload, resolve_workload

    workload = resolve_workload(args.workload)
    load_workload(workload)  # a bad file is refused in a second, before pandas and the run load
    from analysis.decide import decide

    print(decide(_load(args.run, args.results), workload))
    return OK


def command_history(args: argparse.Namespace) -> int:
    """Index the runs and chart headline figures across them."""
    from analysis.history import write_history

    if not args.results.is_dir():
        raise UsageError(f"--results {args.results}: no such folder (no run has been made there)")
    flagged, paths = write_history(args.results)
    for change in flagged:
        print(f"{change.kind}: {change.scheme} {change.before.run_id} → {change.after.run_id}")
    for path in paths:
        print(f"history: {path}")
    regressed = any(change.kind == "regression" for change in flagged)
    return THRESHOLD if args.fail_on_regression and regressed else OK


def command_selftest(args: argparse.Namespace) -> int:
    """The statistics on known truths: an A/A pair of runs, one with a planted cost."""
    from analysis.selftest import write_selftest
    from analysis.tidy import load_run
    from loadtests.run.matrix import parse_plant
    from loadtests.run.runner import execute, new_run
    from loadtests.services.processes import stop_on_sigterm_like_ctrl_c

    if args.judge:
        first, second = (_run_folder(name, args.results) for name in args.judge)
    else:
        plant = parse_plant(args.plant)
        stop_on_sigterm_like_ctrl_c()
        folders = []
        for planted in (None, plant):
            run = new_run("selftest", args.results, planted)
            execute(run, with_micro=False)
            folders.append(run.run_dir)
        first, second = folders
    before, after = load_run(first), load_run(second)
    out = args.results / f"selftest-{before.run_id}-{after.run_id}"
    result, paths = write_selftest(before, after, out)
    print("\n".join(result.lines()))
    print(f"self-test: {paths[0]}")
    return OK if result.passed else INCOMPLETE


def command_until_decided(args: argparse.Namespace) -> int:
    """Repeat a finished run's undecided primary comparisons, within a time budget."""
    from authbench.until_decided import until_decided

    if args.budget_s <= 0:
        raise UsageError(f"--budget-s {args.budget_s:g}: must be above 0")
    run_dir = _run_folder(args.run, args.results).resolve()
    return OK if until_decided(run_dir, args.budget_s) else INCOMPLETE


def command_micro(args: argparse.Namespace) -> int:
    """Print the in-process cost of each primitive; save it with --out."""
    from loadtests.measure.micro import format_table, run_micro_on_any_redis, write_micro_csv

    if args.kdf_iterations < 1:
        raise UsageError(f"--kdf-iterations {args.kdf_iterations}: must be 1 or more")
    results = run_micro_on_any_redis(args.kdf_iterations)
    print(format_table(results))
    if args.out:
        write_micro_csv(results, Path(args.out))
        print(f"\nmicro benchmark written to {args.out}")
    return OK


def command_matrices(args: argparse.Namespace) -> int:
    """The shipped matrices, each with the first sentence of its description (read, not
    validated: a matrix that needs nginx is still listed on a machine without it)."""
    import tomllib

    from loadtests.run.matrix import MATRICES_DIR

    for path in sorted(MATRICES_DIR.glob("*.toml")):
        description = " ".join(str(tomllib.loads(path.read_text()).get("description", "")).split())
        print(f"{path.stem:10} {description.split('. ')[0]}")
    return OK


def serve(argv: list[str]) -> int:
    """One reference server in the foreground (the server's own options follow)."""
    from targets.__main__ import main as serve_main

    serve_main(argv)
    return OK


def _add_measuring(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """run (and report, which judges the same thresholds), selftest, until-decided, micro."""
    run = commands.add_parser("run", help="run a matrix into results/<run-id>/ and report it")
    run.add_argument("--matrix", help="a shipped matrix (authbench matrices) or a TOML file")
    run.add_argument("--resume", metavar="RUN", help="finish an incomplete run (id or folder)")
    run.add_argument(
        "--until",
        choices=["decided"],
        help="then repeat the undecided primary comparisons (see --budget-s)",
    )
    run.add_argument(
        "--budget-s",
        type=float,
        default=900.0,
        help="time budget of --until decided, s (default: 900)",
    )
    run.add_argument(
        "--target-url",
        action="append",
        metavar="URL",
        help="measure your own server (docs/target-contract.md) instead of starting ours; "
        "repeat for several nodes (matrix: target unless --matrix)",
    )
    run.add_argument(
        "--target-pid",
        action="append",
        type=int,
        metavar="PID",
        help="with --target-url on this machine: the process to sample CPU of (one per URL)",
    )
    run.add_argument("--no-micro", action="store_true", help="skip the micro benchmark")
    run.add_argument("--no-report", action="store_true", help="measure only; report later")
    run.add_argument(
        "--plant",
        metavar="SCHEME=US",
        help="self-test matrices only: a known extra CPU cost in one scheme",
    )
    report = commands.add_parser("report", help="rebuild a run's report and summary")
    report.add_argument("run", help="run folder or run id (latest works)")
    for sub in (run, report):
        sub.add_argument(
            "--fail-on",
            action="append",
            metavar="RULE",
            help="a threshold, e.g. 'p99_ms@equal_load<10' (repeatable; exit 3)",
        )
        sub.add_argument(
            "--baseline", metavar="RUN", help="exit 3 when a figure is worse than in this run"
        )
    selftest = commands.add_parser(
        "selftest", help="the statistics on known truths: A/A runs and a planted cost"
    )
    selftest.add_argument(
        "--plant",
        default="jwt-HS256=60",
        metavar="SCHEME=US",
        help="the planted cost of the second run (default: jwt-HS256=60)",
    )
    selftest.add_argument(
        "--judge",
        nargs=2,
        metavar=("A", "B"),
        help="judge two finished self-test runs instead of running them",
    )
    until = commands.add_parser(
        "until-decided", help="repeat a finished run's undecided primary comparisons"
    )
    until.add_argument("run", help="run folder or run id")
    until.add_argument(
        "--budget-s", type=float, default=900.0, help="time budget, s (default: 900)"
    )
    micro = commands.add_parser("micro", help="in-process cost of each primitive")
    micro.add_argument("--out", help="also write the results to this CSV file")
    micro.add_argument("--kdf-iterations", type=int, default=10_000, help="KDF cost to time")


def _add_reading(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """compare, decide, history: commands that read finished runs."""
    compare = commands.add_parser("compare", help="two runs side by side")
    compare.add_argument("a", help="run folder or id (before)")
    compare.add_argument("b", help="run folder or id (after)")
    compare.add_argument("--out", help="folder for the comparison (default: results/compare-A-B)")
    compare.add_argument(
        "--fail-on-regression",
        action="store_true",
        help="exit 3 when a figure of B is worse than A's",
    )
    decide = commands.add_parser("decide", help="cores and cost per scheme for your workload")
    decide.add_argument("run", help="run folder or run id")
    decide.add_argument(
        "--workload", required=True, help="a workload TOML file or a shipped one by name (example)"
    )
    history = commands.add_parser("history", help="headline figures across every run")
    history.add_argument(
        "--fail-on-regression",
        action="store_true",
        help="exit 3 when the latest change of a scheme is a regression",
    )


def build_parser() -> argparse.ArgumentParser:
    """The command line: subcommands in the order ``--help`` lists them."""
    parser = _CommandParser(
        prog=PROG,
        description="Sessions or JWTs, and which signing algorithm, settled with measurements.",
        epilog=__doc__.split("\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=Path("results"),
        help="results root folder (default: results)",
    )
    commands = parser.add_subparsers(
        dest="command", required=True, parser_class=_CommandParser, metavar="COMMAND"
    )
    _add_measuring(commands)
    _add_reading(commands)
    commands.add_parser(
        "serve", help="one reference server (authbench serve --help)", add_help=False
    )
    commands.add_parser("matrices", help="list the shipped matrices")
    return parser


HANDLERS = {
    "run": command_run, "report": command_report, "compare": command_compare,
    "decide": command_decide, "history": command_history, "selftest": command_selftest,
    "until-decided": command_until_decided, "micro": command_micro,
    "matrices": command_matrices,
}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    """Entry point: one line on stderr for bad input, the exit codes above."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:
        sys.exit(serve(argv[1:]))
    try:
        args = build_parser().parse_args(argv)
        sys.exit(HANDLERS[args.command](args))
    except (BadInput, FileNotFoundError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        sys.exit(BAD_INPUT)
    except RunInterrupted as exc:
        print(
            f"\n{PROG}: {exc}; finish it with --resume (authbench run --resume RUN)",
            file=sys.stderr,
        )
        sys.exit(INTERRUPTED)
