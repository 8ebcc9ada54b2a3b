"""No stale figure: every committed sweep summary (``benchmarks/sweeps/NAME.json``) holds
exactly the runs its grid (``benchmarks/grids/NAME.toml``) plans today, by run id, and no
page carries a "Stale" note.

A run's id hashes its resolved scenario, thread count and data files
(:mod:`czsl.sweep.identity`): a change to a shipped scenario, a default or a grid gives
its cells new ids, and the figures the page shows no longer come from what the grid runs.
The plan is made by the sweep driver itself (no run starts), on ``../shared/data``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SWEEPS = REPO / "benchmarks" / "sweeps"
#: committed summary -> the benchmark script that renders its page
PAGES = {"czsl_table": "czsl_table", "czsl_table_diagnostics": "czsl_table",
         "generators": "generators", "field_table": "field_table"}


def test_every_committed_summary_has_its_grid_and_page():
    names = sorted(p.stem for p in SWEEPS.glob("*.json"))
    assert names == sorted(PAGES), "a summary in benchmarks/sweeps/ without an entry in PAGES"
    for name in names:
        assert (REPO / "benchmarks" / "grids" / f"{name}.toml").is_file(), name


def _key(labels: dict, seed: int) -> tuple:
    return tuple(sorted(labels.items())), seed


def _describe(key: tuple) -> str:
    labels, seed = key
    return ", ".join(f"{axis}={label}" for axis, label in labels) + f", seed={seed}"


def differences(name: str, data_dir: Path) -> list[str]:
    """The cells of ``benchmarks/sweeps/NAME.json`` whose run ids differ from what
    ``benchmarks/grids/NAME.toml`` plans today with each record's own thread count,
    one line each; cells the grid plans that the summary lacks, and records of cells
    the grid no longer has."""
    from czsl.sweep.driver import Options, plan
    from czsl.sweep.grid import parse_grid
    from czsl.sweep.store import SweepDir

    runs = json.loads((SWEEPS / f"{name}.json").read_text())["runs"]
    recorded = {_key(r["labels"], r["seed"]): (r["threads"], r["id"]) for r in runs}
    grid = parse_grid(REPO / "benchmarks" / "grids" / f"{name}.toml")
    planned: dict[int, dict[tuple, str]] = {}
    for threads in sorted({t for t, _ in recorded.values()} or {1}):
        specs = plan(grid, SweepDir(REPO / "sweeps" / name),  # writes nothing
                     Options(data_dir=data_dir, threads=threads))
        planned[threads] = {_key(s["labels"], s["seed"]): s["id"] for s in specs}
    cells = next(iter(planned.values()))
    lines = []
    for key in cells:
        if key not in recorded:
            lines.append(f"{_describe(key)}: planned, but no record")
            continue
        threads, rid = recorded[key]
        if planned[threads][key] != rid:
            lines.append(f"{_describe(key)} ({threads} thread(s)): recorded run "
                         f"{rid}, the grid plans {planned[threads][key]}")
    lines += [f"{_describe(key)}: recorded, but no longer in the grid"
              for key in recorded if key not in cells]
    return lines


@pytest.mark.parametrize("name", sorted(PAGES))
def test_committed_summary_holds_the_runs_its_grid_plans(name, shared_data):
    lines = differences(name, shared_data)
    threads = sorted({r["threads"] for r in
                      json.loads((SWEEPS / f"{name}.json").read_text())["runs"]})
    rerun = " and ".join(f"czsl sweep run benchmarks/grids/{name}.toml --data-dir "
                         f"../shared/data --threads-per-run {t}" for t in threads)
    assert not lines, (
        f"benchmarks/sweeps/{name}.json is stale: {len(lines)} cell(s) of "
        f"benchmarks/grids/{name}.toml differ from its records:\n  " + "\n  ".join(lines)
        + f"\nRerun them ({rerun}: it runs every cell its sweep folder lacks), put their "
        f"records into benchmarks/sweeps/{name}.json (sweeps/{name}/summary.json) and "
        f"re-render the page: python -m benchmarks.{PAGES[name]}")


def test_no_page_carries_a_stale_note():
    stale = [f"{page.relative_to(REPO)}:{n}: {line[:80]}..."
             for page in sorted((REPO / "benchmarks").glob("*.md"))
             for n, line in enumerate(page.read_text().splitlines(), 1)
             if line.startswith("Stale")]
    assert not stale, ("pages still say their figures are stale; rerun those runs and "
                       "re-render the page (the note then goes):\n  " + "\n  ".join(stale))
