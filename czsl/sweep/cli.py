"""``czsl sweep run | status | table``: the command line of sweeps.

Parsing imports nothing heavy; ``status`` and ``table`` read JSON files only (no torch,
no Ray); ``run`` imports torch to check the grid's plugins, Ray only with
``--backend ray``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from czsl.argtypes import positive_int
from czsl.errors import CZSLError


def add_parser(sub) -> None:
    """Add ``sweep`` and its three commands to the ``czsl`` subparsers ``sub``."""
    sweep = sub.add_parser("sweep", help="run a grid of runs (a study) and tabulate it",
                           description="Run a grid file's runs on this machine or a Ray "
                                       "cluster, resumably; show its status; build its "
                                       "table from the runs.")
    commands = sweep.add_subparsers(dest="sweep_command", required=True)

    run = commands.add_parser("run", help="run every run of a grid that is not done")
    run.add_argument("grid", type=Path, help="the grid .toml file")
    run.add_argument("--data-dir", type=Path, help="dataset folder (as for czsl run)")
    run.add_argument("--out", type=Path, help="the sweep folder (default: sweeps/NAME)")
    run.add_argument("--backend", choices=("local", "ray"), default="local",
                     help="local: a process pool on this machine (default); ray: Ray "
                          "tasks (pip install 'czsl[ray]')")
    run.add_argument("--jobs", type=positive_int, metavar="N",
                     help="runs at once (default: the CPU count); with ray and no "
                          "--address, the local Ray instance gets N x K CPUs")
    run.add_argument("--threads-per-run", type=positive_int, default=1, metavar="K",
                     help="torch threads of each run (default 1; part of the run's id)")
    run.add_argument("--address", help="with --backend ray: the address of a running Ray "
                                       "cluster (ray start --head prints it)")
    run.add_argument("--device", choices=("cpu", "cuda"),
                     help="override every run's device (cuda: one GPU per run)")
    run.add_argument("--dry-run", action="store_true",
                     help="list every run, its labels and overrides, and which are done")
    run.add_argument("--retry-failed", action="store_true",
                     help="run the runs that failed again (diverged runs are never retried; "
                          "runs that failed on a storage fault rerun without it)")

    status = commands.add_parser("status", help="counts of done / running / failed / ... runs")
    status.add_argument("sweep", type=Path, help="the sweep folder, e.g. sweeps/NAME")

    table = commands.add_parser("table", help="mean ± std over seeds, from the runs")
    table.add_argument("sweep", type=Path,
                       help="the sweep folder, or a sweep's summary.json")
    table.add_argument("--out", type=Path, help="also write the Markdown table here")
    table.add_argument("--csv", type=Path, help="also write the cells as CSV here")


def main(args: argparse.Namespace) -> int:
    """Run the ``czsl sweep`` command in ``args``."""
    return {"run": _run, "status": _status, "table": _table}[args.sweep_command](args)


def _run(args: argparse.Namespace) -> int:
    from czsl.sweep.driver import Options, run_sweep

    if args.address and args.backend != "ray":
        raise CZSLError("--address is for --backend ray; add --backend ray or drop it")
    return run_sweep(args.grid, Options(
        data_dir=args.data_dir, out=args.out, backend=args.backend, jobs=args.jobs,
        threads=args.threads_per_run, address=args.address, device=args.device,
        dry_run=args.dry_run, retry_failed=args.retry_failed))


def _status(args: argparse.Namespace) -> int:
    from czsl.sweep.store import SweepDir
    from czsl.sweep.summary import counts, load_summary

    if not (args.sweep / "sweep.json").is_file():
        raise CZSLError(f"{args.sweep} is not a sweep folder (no sweep.json); give the "
                        "folder 'czsl sweep run' wrote (--out, default sweeps/NAME)")
    store = SweepDir(args.sweep)
    store.tidy()
    summary = load_summary(args.sweep)
    n = counts(summary)
    print(f"sweep {summary['name']}: {len(summary['runs'])} runs: "
          + ", ".join(f"{n[k]} {k}" for k in n))
    for damage in store.damaged_records(run["id"] for run in summary["runs"]):
        print(f"note: {damage}; ignored ('czsl sweep run' removes it)")
    for run in summary["runs"]:
        if run["status"] in ("failed", "diverged", "damaged"):
            labels = ", ".join([*(f"{k}={v}" for k, v in run["labels"].items()),
                                f"seed={run['seed']}"])
            print(f"{run['status']}: {run['id']} {labels}: {run['error']}")
    # a damaged file is a fault to repair ('czsl sweep run' does), not a state to keep
    return 2 if n.get("damaged") else 0


def _table(args: argparse.Namespace) -> int:
    from czsl.sweep.summary import load_summary
    from czsl.sweep.table import render_csv, render_markdown

    summary = load_summary(args.sweep)
    text = render_markdown(summary)
    print(text, end="")
    damaged = sum(run["status"] == "damaged" for run in summary["runs"])
    if damaged:
        # the table above counts them as missing; no file is written from it
        print(f"czsl: {damaged} run(s) have a damaged results.json (counted as missing "
              f"above, --out/--csv not written); 'czsl sweep status {args.sweep}' names "
              "them, 'czsl sweep run' runs them again", file=sys.stderr)
        return 2
    for path, content in ((args.out, text), (args.csv, render_csv(summary) if args.csv else "")):
        if path is not None:
            try:
                path.write_text(content, encoding="utf-8")
            except OSError as exc:
                raise CZSLError(f"cannot write {path} ({exc.strerror}): choose another "
                                "file, or a folder you can write to") from None
    return 0
