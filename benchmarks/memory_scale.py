"""Peak memory and checkpoint size against the number of tasks (issue 16, point 5).

A run keeps each step's figures (:func:`czsl.metrics.step_record`), not its test logits,
so its peak RSS and its checkpoint should be flat in the number of tasks, and a label
space of tens of thousands of classes should fit in memory. Each run goes in a fresh
child process (``ru_maxrss`` is per process); an observer after the checkpoint records
``state.pt``'s size after every task.

Runs: SUN (semi-synthetic, ``scenarios/sun_czsl.toml``) with 15, 47 and 141 tasks
(``protocol.task_sizes``), and a synthetic continual run with 20,000 classes in 5 tasks
of 4,000 and 60,000 test samples (one epoch per task, like every run here). Usage::

    python -m benchmarks.memory_scale --data-dir DIR [--threads 1] [--only sun15,...]

It prints a Markdown table and writes it to ``benchmarks/memory_scale.md``, keeping the
rows of the runs not run this time and the notes below the table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "memory_scale.md"
EPOCHS = "train.epochs=1"  # memory, not accuracy: one epoch per task

#: name -> (scenario file or None for the built-in one, overrides, needs data)
JOBS = {
    "sun15": ("scenarios/sun_czsl.toml", [EPOCHS], True),
    "sun47": ("scenarios/sun_czsl.toml", [EPOCHS, "protocol.task_sizes=[15]"], True),
    "sun141": ("scenarios/sun_czsl.toml", [EPOCHS, "protocol.task_sizes=[5]"], True),
    # 20,000 classes in 5 tasks of 4,000, 6 images each split 50/50: 60,000 test samples;
    # mini-batches of 512: every iteration embeds the attributes of all seen classes (up
    # to 20,000), which is what takes the time at 64
    "synthetic20k": (None, [EPOCHS, "data.synthesis.n_classes=20000",
                            "data.synthesis.samples_per_class=6",
                            "protocol.test_fraction=0.5", "protocol.task_sizes=[4000]",
                            "train.batch_size=512", "train.eval_batch_size=4096"],
                     False),
}


def _expand(sizes: list[int], total: int) -> list[int]:
    """``[k]`` -> as many tasks of ``k`` classes as ``total`` classes fill."""
    return sizes * (total // sizes[0]) if len(sizes) == 1 else sizes


def child(job: dict) -> dict:
    """One run in this process: peak RSS, the largest checkpoint, wall time."""
    import torch

    from czsl.config import load_scenario
    from czsl.observers import Observer
    from czsl.run import run_scenario

    torch.set_num_threads(job["threads"])
    scenario = load_scenario(job["scenario"] and ROOT / job["scenario"], job["overrides"])
    sizes: list[int] = []

    class CheckpointSize(Observer):
        name = "checkpoint size"

        def after_task(self, end):
            sizes.append((end.run_dir / "checkpoint" / "state.pt").stat().st_size)

    import tempfile
    with tempfile.TemporaryDirectory() as runs:
        start = time.perf_counter()
        result = run_scenario(scenario, data_dir=job["data_dir"], runs_dir=Path(runs),
                              progress=False, echo=lambda _: None,
                              observers=[CheckpointSize()])
        wall = time.perf_counter() - start
    return {"tasks": result.results["n_tasks"], "n_test": result.results["n_test"],
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "checkpoint_max_kib": max(sizes) / 1024, "checkpoint_first_kib": sizes[0] / 1024,
            "wall_s": wall, "mH": result.results["summary"]["mH"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, help="folder with SUN's files")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", help="comma-separated job names: " + ", ".join(JOBS))
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(JOBS)
    rows = []
    ctx = multiprocessing.get_context("spawn")
    for name in names:
        scenario, overrides, needs_data = JOBS[name]
        if needs_data and args.data_dir is None:
            print(f"{name}: skipped (needs --data-dir)", file=sys.stderr)
            continue
        overrides = list(overrides)
        for i, item in enumerate(overrides):  # [k] -> the task list SUN's 705 classes fill
            if item.startswith("protocol.task_sizes=["):
                k = json.loads(item.partition("=")[2])
                total = 705 if name.startswith("sun") else 20000
                overrides[i] = f"protocol.task_sizes={_expand(k, total)}"
        job = {"scenario": scenario, "overrides": overrides, "threads": args.threads,
               "data_dir": args.data_dir and args.data_dir.resolve()}
        with ctx.Pool(1) as pool:
            facts = pool.apply(child, (job,))
        rows.append((name, facts))
        print(name, facts, flush=True)
    table = {name: (f"| {name} | {f['tasks']} | {f['n_test']} | {f['peak_rss_mib']:.0f} | "
                    f"{f['checkpoint_first_kib']:.0f} / {f['checkpoint_max_kib']:.0f} | "
                    f"{f['wall_s']:.0f} |") for name, f in rows}
    text = page(table, args.threads, OUT.read_text(encoding="utf-8") if OUT.is_file() else "")
    print(text)
    OUT.write_text(text, encoding="utf-8")
    return 0


def page(new_rows: dict[str, str], threads: int, old: str) -> str:
    """The page with ``new_rows`` (run name -> table row), keeping the rows of the runs
    not run this time and the notes below the table from the ``old`` page."""
    kept: dict[str, str] = {}
    notes: list[str] = []
    table_seen = False
    for line in old.splitlines():
        if line.startswith("| ") and not line.startswith("| run |"):
            kept[line.split("|")[1].strip()] = line
            table_seen = True
        elif table_seen and not line.startswith("|"):
            notes.append(line)
    rows = {**kept, **new_rows}
    order = [name for name in JOBS if name in rows] + [n for n in rows if n not in JOBS]
    lines = ["# czsl memory against the number of tasks", "",
             f"Written by `benchmarks/memory_scale.py` (`--threads {threads}`); see its "
             "docstring. One epoch per task.", "",
             "| run | tasks | test samples | peak RSS (MiB) | checkpoint after task 0 / "
             "largest (KiB) | wall (s) |", "|---|---|---|---|---|---|",
             *(rows[name] for name in order), *notes]
    return "\n".join(lines).rstrip("\n") + "\n"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
