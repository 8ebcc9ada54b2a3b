"""``czsl sweep run``: plan a grid's runs, skip what is done, run the rest on a backend.

The plan resolves every cell to its scenario and its run id (:mod:`czsl.sweep.identity`)
and is written to ``sweep.json``; a run whose folder has a ``results.json`` is never
started again, one with a checkpoint resumes, a failed one reruns only with
``--retry-failed`` (unless it failed on a storage fault: a full disk, no permission;
those rerun once the fault is fixed), a diverged one never (it would diverge again:
change the grid). A damaged ``results.json`` or failure record is removed first, with
a note (:meth:`czsl.sweep.store.SweepDir.repair`). A storage fault of the sweep folder
stops the sweep with one line (exit status 2); the finished runs are kept.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shlex
import time
from pathlib import Path
from typing import Any, Callable

from czsl.config import plugin_tables
from czsl.errors import ConfigError, CZSLError, StorageError
from czsl.runfolder import check_writable
from czsl.sweep.grid import Grid, check_cells, parse_grid
from czsl.sweep.identity import data_fingerprint, run_id
from czsl.sweep.store import THEN, SweepDir, storage_faults, write_json
from czsl.sweep.summary import build_summary, counts, write_summary


@dataclasses.dataclass
class Options:
    """How to run a sweep (the flags of ``czsl sweep run``)."""

    data_dir: Path | None = None
    out: Path | None = None
    backend: str = "local"
    jobs: int | None = None
    threads: int = 1
    address: str | None = None
    device: str | None = None
    dry_run: bool = False
    retry_failed: bool = False


def plan(grid: Grid, store: SweepDir, options: Options) -> list[dict[str, Any]]:
    """Every run of ``grid`` as a spec for :func:`czsl.sweep.worker.execute`.

    :raises ConfigError: for a bad cell, missing data, or two cells that are one run.
    """
    cells = grid.cells()
    if options.device is not None:
        cells = [dataclasses.replace(c, overrides=[*c.overrides, f"device={options.device}"])
                 for c in cells]
    specs: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    data_dir = None if options.data_dir is None else str(Path(options.data_dir).resolve())
    # every cell as its run will be built, before any starts; on a Ray cluster the
    # workers may have the GPUs this machine lacks, so "cuda" is not checked here then
    checked = check_cells(grid, cells, data_dir=options.data_dir, full=True,
                          check_device=not (options.backend == "ray" and options.address))
    for cell, scenario in zip(cells, checked):
        document = scenario.document()
        try:
            data = data_fingerprint(scenario.data.dataset, options.data_dir)
        except ConfigError as exc:
            raise ConfigError(f"grid {grid.path}, cell {cell.describe()}: {exc}") from None
        rid = run_id(document, threads=options.threads, data=data)
        if rid in seen:
            raise ConfigError(f"grid {grid.path}: the cells {seen[rid]} and {cell.describe()} "
                              "resolve to the same run; give them different overrides or "
                              "drop one label")
        seen[rid] = cell.describe()
        specs.append({"root": str(store.root.resolve()), "id": rid, "document": document,
                      "data_dir": data_dir, "threads": options.threads,
                      "labels": cell.labels, "seed": cell.seed, "overrides": cell.overrides,
                      "data": data, "describe": cell.describe()})
    return specs


def _write_plan(grid: Grid, store: SweepDir, specs: list[dict[str, Any]]) -> None:
    store.root.mkdir(parents=True, exist_ok=True)
    write_json(store.root / "sweep.json", {
        "format": 1, "name": grid.name, "grid": grid.document,
        "axes": {axis: list(labels) for axis, labels in grid.axes.items()},
        "seeds": grid.seeds, "table": grid.table,
        "runs": [{key: s[key] for key in ("id", "labels", "seed", "threads", "overrides")}
                 for s in specs]})


class Progress:
    """One line per finished run, with an overall bar and an ETA."""

    def __init__(self, total: int, echo: Callable[[str], None]) -> None:
        self.total, self.echo, self.finished = total, echo, 0
        self.started = time.perf_counter()
        self.outcomes: list[dict[str, Any]] = []

    def __call__(self, outcome: dict[str, Any], describe: str) -> None:
        self.finished += 1
        self.outcomes.append(outcome)
        elapsed = time.perf_counter() - self.started
        left = self.total - self.finished
        eta = f", ETA {_duration(elapsed / self.finished * left)}" if left else ""
        bar = "#" * round(20 * self.finished / self.total)
        what = outcome["status"] + (" (resumed)" if outcome.get("resumed") else "")
        if outcome["summary"] and outcome["summary"].get("mH") is not None:
            what += f", mH {outcome['summary']['mH']:.1f}"
        if outcome["error"]:
            what += f": {outcome['error']}"
        self.echo(f"[{bar:<20}] {self.finished}/{self.total}{eta}  {outcome['id']} "
                  f"{describe} ({outcome.get('seconds', 0.0):.0f} s): {what}")


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def run_sweep(grid_path: Path, options: Options,
              echo: Callable[[str], None] = print) -> int:
    """Run (or with ``dry_run`` list) the runs of the grid file ``grid_path``.

    :returns: 1 if a run failed, else 0.
    :raises CZSLError: for a bad grid or bad options, before any run starts.
    :raises StorageError: for a storage fault of the sweep folder, and after the sweep
        if a run stopped on one.
    """
    grid = parse_grid(grid_path)
    store = SweepDir(options.out or Path("sweeps") / grid.name)
    if store.root.exists() and not store.root.is_dir():
        raise StorageError(f"{store.root} is a file, not a sweep folder: give --out a "
                           "folder (a new one, or a sweep's)")
    if not options.dry_run:  # found before the data are read
        check_writable(store.root, THEN)
    specs = plan(grid, store, options)
    if not options.dry_run:
        with storage_faults(store.root):
            store.repair([s["id"] for s in specs], echo)
            _write_plan(grid, store, specs)
    status = {s["id"]: store.status(s["id"]) for s in specs}
    if options.dry_run:
        for s in specs:
            echo(f"{s['id']}  {status[s['id']]:<9}  {s['describe']}  "
                 f"{plugin_tables(s['document'])}  --set "
                 + " --set ".join(map(shlex.quote, s["overrides"])))
        echo(f"{len(specs)} runs, {sum(v == 'done' for v in status.values())} already done "
             f"(in {store.root}); nothing was started (--dry-run)")
        return 0
    if options.backend not in ("local", "ray"):
        raise CZSLError(f"--backend {options.backend!r}: use local or ray")
    storage = {s["id"] for s in specs if status[s["id"]] == "failed"
               and (store.failure(s["id"]) or {}).get("kind") == "storage"}
    todo = [s for s in specs if status[s["id"]] in ("pending", "resumable")
            or s["id"] in storage or (options.retry_failed and status[s["id"]] == "failed")]
    before = counts(build_summary(store, store.read_plan()))
    echo(f"sweep {grid.name} ({store.root}): {len(specs)} runs, "
         + ", ".join(f"{n} {k}" for k, n in before.items() if n)
         + f"; starting {len(todo)} on {options.backend}")
    if storage:
        echo(f"note: retrying {len(storage)} run(s) that failed on a storage fault (a full "
             "disk, no permission); those with a checkpoint resume")
    if before["failed"] > len(storage) and not options.retry_failed:
        echo(f"note: {before['failed'] - len(storage)} failed run(s) are not retried; add "
             "--retry-failed")
    describe = {s["id"]: s["describe"] for s in specs}
    progress = Progress(len(todo), echo)

    def on_done(outcome: dict[str, Any]) -> None:
        progress(outcome, describe[outcome["id"]])

    try:
        if todo:
            _dispatch(todo, store, options, on_done)
    except KeyboardInterrupt:
        with contextlib.suppress(CZSLError, OSError):  # the interruption is the news
            write_summary(store)
        echo("interrupted: finished runs are kept, a stopped run resumes from its last "
             "task; run the same command again to continue")
        raise
    with storage_faults(store.root):
        write_summary(store)
    after = counts(build_summary(store, store.read_plan()))
    echo(f"sweep {grid.name}: " + ", ".join(f"{n} {k}" for k, n in after.items() if n)
         + f"; table: czsl sweep table {store.root}")
    faults = [o for o in progress.outcomes
              if o["status"] == "failed" and o.get("kind") == "storage"]
    if faults:
        raise StorageError(f"{len(faults)} run(s) stopped on a storage fault, e.g. "
                           f"{faults[0]['id']}: {faults[0]['error']}; once it is fixed, run "
                           "the sweep again: they rerun (from their checkpoints) without "
                           "--retry-failed")
    return 1 if after["failed"] else 0


def _dispatch(todo: list[dict[str, Any]], store: SweepDir, options: Options,
              on_done: Callable[[dict[str, Any]], None]) -> None:
    import os

    from czsl.sweep import backends

    jobs = options.jobs or os.cpu_count() or 1
    if options.backend == "local":
        backends.run_local(todo, jobs=jobs, on_done=on_done)
    else:
        backends.run_ray(todo, root=store.root, threads=options.threads, jobs=jobs,
                         address=options.address,
                         gpus=1 if options.device == "cuda" else 0, on_done=on_done)


__all__ = ["Options", "plan", "run_sweep"]
