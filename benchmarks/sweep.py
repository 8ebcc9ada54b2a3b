"""Sweeps: the same 8 CUB runs sequentially in one process, on the local backend and on Ray.

    OMP_NUM_THREADS=1 python -m benchmarks.sweep [--data-dir ../shared/data]
        [--grid benchmarks/grids/sweep_bench.toml] [--jobs 2] [--out benchmarks/sweep.md]

Times, in one sitting and side by side, the runs of ``benchmarks/grids/sweep_bench.toml``
(4 methods x 2 seeds on ``scenarios/cub_czsl.toml``, one epoch per task):

* **sequential**: one process that imports czsl once and calls ``run_scenario`` for each
  run in turn, one torch thread (what a hand-written loop over a grid does);
* **local**: ``czsl sweep run --jobs 2 --threads-per-run 1`` (a fresh process per run);
* **ray**: ``czsl sweep run --backend ray --jobs 2 --threads-per-run 1`` (a local Ray
  instance of 2 CPUs, one task per run), skipped where Ray is not installed;
* **rerun**: ``czsl sweep run`` again on the finished local sweep (nothing to do).

Each mode runs as its own process tree; its peak memory is the largest sum of the
tree's resident memory seen (sampled every 0.2 s with psutil). A run's own time is its
``results.json`` ``wall_time_s``; the overhead per run is what the mode's wall time
times its parallelism adds to the runs' own time, divided by the number of runs
(process start-up, imports, data loading, scheduling, idle slots). With
``../shared/data`` (metadata only) the runs are semi-synthetic and the page says so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from benchmarks._common import ROOT, cpu_model

#: what the issue asks of the local backend and of a rerun
TARGET_LOCAL = 0.6
TARGET_RERUN_S = 5.0


def _sequential(grid: Path, data_dir: Path, out: Path) -> None:
    """The sequential baseline (run in a child process): every run of ``grid``, in turn,
    in this one process, into ``out/<id>``."""
    import torch

    torch.set_num_threads(1)
    from czsl.config import scenario_from_document
    from czsl.run import run_scenario
    from czsl.sweep.driver import Options, plan
    from czsl.sweep.grid import parse_grid
    from czsl.sweep.store import SweepDir

    for spec in plan(parse_grid(grid), SweepDir(out), Options(data_dir=data_dir)):
        run_scenario(scenario_from_document(spec["document"]), data_dir=data_dir,
                     progress=False, echo=lambda _: None, run_dir=out / "runs" / spec["id"])


def _busy() -> float:
    """CPU seconds the whole machine has spent busy (every process, every core)."""
    times = psutil.cpu_times()
    return times.user + times.nice + times.system


def _measure(argv: list[str]) -> dict:
    """Run ``argv``; its wall time, exit status, peak tree memory (MiB) and how many
    cores other processes kept busy meanwhile on average (``others``: the machine's
    busy CPU time less the command's own, the CPU time of every process of its tree as
    last sampled: fork-server and Ray workers are in the tree but never waited for by
    the command, so the operating system's count of waited-for children misses them)."""
    busy = _busy()
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL)
    root = psutil.Process(proc.pid)
    peak = 0
    cpu: dict[int, float] = {}  # pid -> its user + system seconds when last seen
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            tree = []
        rss = 0
        for process in tree:
            try:
                times = process.cpu_times()
                cpu[process.pid] = times.user + times.system
                rss += process.memory_info().rss
            except psutil.Error:
                pass
        peak = max(peak, rss)
        time.sleep(0.2)
    wall = time.perf_counter() - started
    return {"wall": wall, "rc": proc.returncode, "peak_mib": peak / 2**20,
            "others": max(0.0, _busy() - busy - sum(cpu.values())) / wall}


def _runs(out: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text())
            for p in sorted((out / "runs").glob("*/results.json"))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--grid", type=Path,
                        default=ROOT / "benchmarks" / "grids" / "sweep_bench.toml")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "sweep.md")
    parser.add_argument("--sequential-into", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sequential_into:
        _sequential(args.grid, args.data_dir, args.sequential_into)
        return 0

    czsl = [sys.executable, "-m", "czsl.cli", "sweep", "run", str(args.grid),
            "--data-dir", str(args.data_dir), "--jobs", str(args.jobs),
            "--threads-per-run", "1"]
    try:
        import ray  # noqa: F401
        have_ray = True
    except ImportError:
        have_ray = False
    load = [os.getloadavg()[0]]
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import czsl.run"], check=True,
                       stderr=subprocess.DEVNULL)
        import_s = time.perf_counter() - started
        modes = {"sequential (1 process)": ([sys.executable, "-m", "benchmarks.sweep", "--grid",
                                             str(args.grid), "--data-dir", str(args.data_dir),
                                             "--sequential-into", str(tmp / "seq")],
                                            tmp / "seq", 1),
                 f"local, {args.jobs} jobs x 1 thread": ([*czsl, "--out", str(tmp / "local")],
                                                         tmp / "local", args.jobs)}
        if have_ray:
            modes[f"ray, {args.jobs} CPUs x 1 thread"] = (
                [*czsl, "--out", str(tmp / "ray"), "--backend", "ray"], tmp / "ray", args.jobs)
        for label, (command, out, slots) in modes.items():
            rows[label] = {**_measure(command), "runs": _runs(out), "slots": slots}
            print(label, {k: v for k, v in rows[label].items() if k != "runs"}, flush=True)
        rerun = _measure([*czsl, "--out", str(tmp / "local")])
    load.append(os.getloadavg()[0])

    base = rows["sequential (1 process)"]
    reference = {k: r["summary"] for k, r in base["runs"].items()}
    n = len(base["runs"])
    semi = any(r["semi_synthetic"] for r in base["runs"].values())
    lines = [
        "# Sweeps: sequential vs the local backend vs Ray",
        "",
        f"Generated by `OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} python "
        f"-m benchmarks.sweep --data-dir {os.path.relpath(args.data_dir, ROOT)} --jobs "
        f"{args.jobs}` on {cpu_model()} ({os.cpu_count()} cores), Python "
        f"{platform.python_version()}, {time.strftime('%Y-%m-%d', time.gmtime())}; load "
        f"average {load[0]:.1f} before, {load[1]:.1f} after. The column *other jobs* is "
        "how many cores other processes of the machine kept busy, on average, while "
        "the mode ran (0 on idle cores).",
        "",
        f"The {n} runs of `{os.path.relpath(args.grid, ROOT)}` (its header says which; the "
        "shipped grid trains **one epoch per task** to keep the benchmark short), measured "
        "side by side in one sitting, each mode's results compared with the sequential "
        "loop's.",
    ]
    if semi:
        lines.append("**Semi-synthetic features** (real CUB metadata, features synthesised "
                     "at the real size): times and memory are those of real CUB, the "
                     "accuracies are not.")
    lines += ["", "| mode | wall (s) | x sequential | peak memory (MiB, process tree) | "
                  "runs' own time (s) | overhead per run (s) | other jobs (cores) | "
                  "same results as sequential |",
              "|---|---|---|---|---|---|---|---|"]
    for label, row in rows.items():
        own = sum(r["wall_time_s"] for r in row["runs"].values())
        same = {k: r["summary"] for k, r in row["runs"].items()} == reference
        lines.append(f"| {label} | {row['wall']:.1f} | {row['wall'] / base['wall']:.2f} | "
                     f"{row['peak_mib']:.0f} | {own:.1f} | "
                     f"{(row['wall'] * row['slots'] - own) / n:.1f} | {row['others']:.2f} | "
                     f"{'yes' if same and row['rc'] == 0 else 'NO'} |")
    lines.append(f"| rerun of the finished local sweep | {rerun['wall']:.1f} | "
                 f"{rerun['wall'] / base['wall']:.2f} | {rerun['peak_mib']:.0f} | 0 | – | "
                 f"{rerun['others']:.2f} | "
                 f"{'yes (nothing started)' if rerun['rc'] == 0 else 'NO: it failed'} |")
    local = rows[f"local, {args.jobs} jobs x 1 thread"]
    ratio = local["wall"] / base["wall"]
    lines += ["", f"A fresh process importing czsl (`python -c 'import czsl.run'`): "
                  f"{import_s:.1f} s. The local backend pays it once, in the fork server its "
                  "runs' processes are forked from; each Ray worker pays it (a fresh "
                  "worker per run).", "",
              "| target | measured | |", "|---|---|---|",
              f"| local backend, {args.jobs} jobs: <= {TARGET_LOCAL} x the sequential wall "
              f"time on 2 idle cores | {ratio:.2f} x | "
              f"{'met' if ratio <= TARGET_LOCAL else 'not met'} (other jobs: "
              f"{max(r['others'] for r in rows.values()):.2f} cores at most) |",
              f"| rerun of a finished sweep < {TARGET_RERUN_S:.0f} s | {rerun['wall']:.1f} s | "
              f"{'met' if rerun['wall'] < TARGET_RERUN_S else 'not met'} |", ""]
    text = "\n".join(lines)
    print(text)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
