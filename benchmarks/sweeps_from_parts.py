"""One-off: the runs saved by the former ``--raw`` parts as sweep summaries.

    python -m benchmarks.sweeps_from_parts [--data-dir ../shared/data]

Reads ``benchmarks/czsl_table_parts/`` and ``benchmarks/generators_parts/`` and writes
``benchmarks/sweeps/{czsl_table,czsl_table_diagnostics,generators}.json`` in the sweep
summary format (:mod:`czsl.sweep.summary`, format 1). Each part's run is matched to its
cell of the grid in ``benchmarks/grids/``; its id and overrides are what ``czsl sweep run``
computes for that cell today (:func:`czsl.sweep.driver.plan`), the id with the torch
thread count the run was made with. The parts hold no per-step figures: ``steps`` is
empty. Deleted with the parts once they are converted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks._common import ROOT
from czsl.config import scenario_to_dict
from czsl.streams import PRESET_TASK_SIZES
from czsl.sweep.grid import check_cells, parse_grid
from czsl.sweep.identity import data_fingerprint, run_id
from czsl.sweep.store import write_json
from czsl.sweep.summary import FORMAT

CONVERTED = (
    "These runs were made before `czsl sweep` existed, with the benchmark's "
    "former grid runner ({dates}), and converted into the sweep summary "
    "format on 2026-11-30. Kept from them: each run's labels, seed, torch thread "
    "count{threads}, "
    "summary metrics{gzsl} and wall time (measured by the runner around the whole run, "
    "data loading included). Each run's id and overrides are the ones `czsl sweep run` "
    "computes for its cell of the grid with today's code, the id with the run's own "
    "thread count. Their per-step figures were not kept: `steps` is empty.")
STALE_SUN = (
    "Stale: {what} measured over all 15 SUN tasks. Since commit 6de528e (2026-11-30) the "
    "`grw` protocol on SUN trains and scores the first 14 of its 15 tasks, as GRW's code "
    "does, so today's code gives other figures for {these}; {they} not been rerun "
    "({records} `n_tasks` 15).")


def _parts(folder: str) -> list[dict]:
    runs = []
    for path in sorted((ROOT / "benchmarks" / folder).glob("*.json")):
        runs += json.loads(path.read_text(encoding="utf-8"))["runs"]
    return runs


def _n_tasks(document: dict) -> int:
    """The tasks such a run trained and scored before 6de528e: every preset task."""
    protocol = document["protocol"]["name"]
    if protocol == "static":
        return 1
    return len(PRESET_TASK_SIZES[(protocol, document["data"]["dataset"].upper())])


def convert(grid_file: str, records: dict[tuple, dict], key_of, data_dir: Path,
            notes: list[str]) -> dict:
    """The summary of ``grid_file`` with the part records ``records`` (cell key -> record,
    ``key_of(cell)`` the key) as its done runs; the cells without a record pending."""
    grid = parse_grid(ROOT / "benchmarks" / "grids" / grid_file)
    cells = grid.cells()
    runs = []
    for cell, scenario in zip(cells, check_cells(grid, cells)):
        document = scenario_to_dict(scenario)
        data = data_fingerprint(scenario.data.dataset, data_dir)
        record = records.pop(key_of(cell), None)
        # the generators' parts do not record it: their commands ran with OMP_NUM_THREADS=1
        threads = record.get("threads", 1) if record else 1
        entry = {"id": run_id(document, threads=threads, data=data), "labels": cell.labels,
                 "seed": cell.seed, "threads": threads, "overrides": cell.overrides,
                 "status": "done" if record else "pending", "error": None,
                 "summary": {}, "steps": {}}
        if record:
            summary = record.get("summary") or {
                k: v for k, v in record.items() if k in ("mSA", "mUA", "mH", "mJA", "mAUC",
                                                         "forgetting_final",
                                                         "forgetting_mean")}
            entry.update(summary=summary, dataset=record["dataset"],
                         features="semi-synthetic",
                         semi_synthetic="semi-synthetic" in record["dataset"],
                         n_tasks=_n_tasks(document), wall_time_s=record["wall_s"],
                         gzsl=record.get("gzsl"))
        runs.append(entry)
    return {"format": FORMAT, "name": grid.name,
            "axes": {axis: list(labels) for axis, labels in grid.axes.items()},
            "seeds": grid.seeds, "table": grid.table, "runs": runs, "notes": notes}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args(argv)
    out = ROOT / "benchmarks" / "sweeps"
    out.mkdir(exist_ok=True)

    table = {}
    for r in _parts("czsl_table_parts"):
        dataset, _, rest = r["scenario"].partition("_czsl")
        key = (dataset, "classnorm" if rest == "_classnorm" else "grw", r["method"],
               r["class_norm"], r["seed"])
        assert key not in table, key
        table[key] = r
    key_of = (lambda cell: (cell.labels["dataset"], cell.labels["protocol"],
                            cell.labels["method"], cell.labels["class_norm"], cell.seed))
    converted = CONVERTED.format(dates="2026-11-23, commits 708c138 to 3600b6e", gzsl="",
                                 threads="")
    stale = STALE_SUN.format(
        what="the SUN runs of the `grw` protocol (the rows and ordering checks of SUN with "
             "protocol `grw`: 30 runs of the table's grid and the 6 placebo runs of its "
             "diagnostics grid) were", these="them", they="they have",
        records="their records say")
    main_notes = [converted, stale]
    write_json(out / "czsl_table.json",
               convert("czsl_table.toml", table, key_of, args.data_dir, main_notes))
    diag_notes = [converted, stale,
                  "The diagnostics grid's SUN `MAS γ=0.95` runs (6) were never made: their "
                  "status is pending, and they have no rows."]
    write_json(out / "czsl_table_diagnostics.json",
               convert("czsl_table_diagnostics.toml", table, key_of, args.data_dir,
                       diag_notes))
    if table:
        sys.exit(f"part runs left without a cell: {sorted(table)}")

    generators = {(r["key"], 0): r for r in _parts("generators_parts")}
    gen_notes = [CONVERTED.format(dates="2026-11-23, commits d85098b to fa1977c",
                                  gzsl=" (and the static runs' GZSL figures)",
                                  threads=" (not saved by that runner: 1, as each of its "
                                          "commands set OMP_NUM_THREADS=1)"),
                 STALE_SUN.format(what="the SUN continual run (`sun_czsl_cvae`) was",
                                  these="it", they="it has", records="its record says")]
    write_json(out / "generators.json",
               convert("generators.toml", generators,
                       lambda cell: (cell.labels["run"], cell.seed), args.data_dir,
                       gen_notes))
    if generators:
        sys.exit(f"part runs left without a cell: {sorted(generators)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
