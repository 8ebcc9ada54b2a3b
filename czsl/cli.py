"""``czsl run | plugins | report | sweep``: the command line.

Start-up stays light: ``czsl --help`` and ``czsl plugins`` import neither torch nor
Avalanche; only ``czsl run`` does, once its arguments are parsed. ``czsl report`` reads
results.json files and imports matplotlib, never torch or Avalanche. Problems a user can
fix (:class:`czsl.errors.CZSLError`) are printed as one message with exit status 2;
``--debug`` shows the traceback.

``czsl run`` checkpoints a run after every task; ``czsl run --resume runs/NAME``
continues one that was stopped (killed, pre-empted, or failed in a plugin) from its
last finished task (:func:`czsl.run.resume_run`).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from czsl.argtypes import positive_int
from czsl.errors import CZSLError
from czsl.sweep import cli as sweep_cli


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="czsl", description="Continual zero-shot learning: run scenarios, list plugins.")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of every error")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a scenario (default: continual synthetic)",
                         description="Run a continual or static zero-shot scenario.")
    run.add_argument("scenario", nargs="?", type=Path,
                     help="scenario .toml file (default: the built-in synthetic scenario)")
    run.add_argument("--data-dir", type=Path,
                     help="dataset folder: an xlsa17 folder (res101.mat + att_splits.mat, "
                          "or the unpacked xlsa17/ holding data/NAME/), "
                          "a folder with NAME.npz, or one with NAME_meta.npz "
                          "(semi-synthetic)")
    run.add_argument("--set", dest="overrides", action="append", default=[],
                     metavar="KEY=VALUE",
                     help="override a scenario key, e.g. --set train.epochs=2 "
                          "--set regularizer=none (repeatable)")
    run.add_argument("--device", choices=("cpu", "cuda"), help="override the scenario's device")
    run.add_argument("--runs-dir", type=Path,
                     help="where run folders go (default: runs/)")
    run.add_argument("--name", help="run name (default: the scenario's name)")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    run.add_argument("--threads", type=positive_int, metavar="N",
                     help="torch's CPU threads (default: torch's choice, one per core); "
                          "recorded in the run's scenario.toml (the numbers depend on it "
                          "slightly) and used again by --resume; on a machine whose cores "
                          "are busy with other work, 1 is often several times faster "
                          "(see benchmarks/speed.md)")
    run.add_argument("--resume", type=Path, metavar="RUN_DIR",
                     help="continue a stopped run (e.g. runs/synthetic) after its last "
                          "finished task, with the scenario it started with; only "
                          "--data-dir (if the data moved), --no-progress and --threads "
                          "go with it (give the same --threads as the first session: "
                          "another thread count changes results slightly)")

    plugins = sub.add_parser(
        "plugins", help="list installed plugins, their options and the packages they come "
                        "from; warn about plugins that cannot be used",
        description="List every installed component with its options and defaults, and "
                    "warn (one line each) about broken or clashing plugin packages, "
                    "near-misses of the 'czsl' entry-point group, hook functions without "
                    "@czsl.hookimpl and plugins slow to import.")
    plugins.add_argument("--check", action="store_true",
                         help="exit with status 1 if there is any warning (for a plugin's CI)")

    report = sub.add_parser(
        "report", help="compare finished runs: a table, and a PNG of forgetting and H",
        description="Print finished runs side by side (from their results.json) and "
                    "write a PNG with their forgetting and H after every step.")
    report.add_argument("runs", nargs="+", type=Path, metavar="RUN",
                        help="a run folder (one with results.json), e.g. runs/synthetic")
    report.add_argument("--out", type=Path, default=Path("report.png"),
                        help="the PNG to write (default: report.png)")
    sweep_cli.add_parser(sub)
    return parser


def _cmd_plugins(args: argparse.Namespace) -> int:
    from czsl.plugin_check import check
    from czsl.plugins import Plugins

    plugins = Plugins()
    rows = [(item.component.kind, item.component.name, f"{item.package} {item.version}",
             item.component.summary) for item in plugins.listed]
    widths = [max(len(r[i]) for r in rows + [("kind", "name", "package", "")])
              for i in range(3)]
    print(f"{'kind':<{widths[0]}}  {'name':<{widths[1]}}  {'package':<{widths[2]}}  summary")
    for kind, name, package, summary in rows:
        print(f"{kind:<{widths[0]}}  {name:<{widths[1]}}  {package:<{widths[2]}}  {summary}")
        print(f"{'':<{widths[0]}}  options: {plugins.options(kind, name).format()}")
    found = [*(p.message for p in plugins.problems), *plugins.notes, *check(plugins)]
    for line in found:
        print(f"czsl: warning: {line}", file=sys.stderr)
    return 1 if found and args.check else 0


def _cmd_run(args: argparse.Namespace) -> int:
    from czsl.config import load_scenario

    if args.resume is not None:
        return _resume(args)
    overrides = list(args.overrides)
    if args.device:
        overrides.append(f"device={args.device}")
    if args.name is not None:
        overrides.append(f"name={args.name!r}")
    if args.threads is not None:
        overrides.append(f"threads={args.threads}")
    scenario = load_scenario(args.scenario, overrides)

    # Avalanche warns at import that GEM's optional QP solver is missing; czsl has no GEM.
    warnings.filterwarnings("ignore", "no QP solver found")
    from czsl.results import format_results  # heavy: torch, Avalanche
    from czsl.run import run_scenario
    from czsl.signals import interruptible

    with interruptible():
        result = run_scenario(scenario, data_dir=args.data_dir,
                              runs_dir=args.runs_dir or Path("runs"),
                              progress=not args.no_progress)
    print(format_results(result))
    return 0


def _resume(args: argparse.Namespace) -> int:
    """``czsl run --resume RUN_DIR``."""
    given = [flag for flag, value in (("a scenario file", args.scenario),
                                      ("--set", args.overrides), ("--device", args.device),
                                      ("--name", args.name), ("--runs-dir", args.runs_dir))
             if value]
    if given:
        raise CZSLError(f"--resume {args.resume} continues the run with the scenario, name "
                        f"and folder it started with; drop {', '.join(given)} (to change "
                        "them, start a new run)")
    warnings.filterwarnings("ignore", "no QP solver found")
    from czsl.results import format_results  # heavy: torch, Avalanche
    from czsl.run import resume_run
    from czsl.signals import interruptible

    with interruptible():
        result = resume_run(args.resume, data_dir=args.data_dir,
                            progress=not args.no_progress, threads=args.threads)
    print(format_results(result))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from czsl.report import format_table, load_runs, plot_runs

    runs = load_runs(args.runs)
    figure = plot_runs(runs, args.out)
    print(format_table(runs))
    print(f"figure: {figure}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``czsl`` console script."""
    args = _parser().parse_args(argv)
    command = {"run": _cmd_run, "plugins": _cmd_plugins, "report": _cmd_report,
               "sweep": sweep_cli.main}[args.command]
    try:
        return command(args)
    except CZSLError as exc:
        if args.debug:
            raise
        print(f"czsl: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        # SIGINT, SIGTERM, SIGHUP: the same note (czsl.signals), exit 128 + the signal
        print("czsl: interrupted", file=sys.stderr)
        return 128 + getattr(exc, "signum", 2)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
