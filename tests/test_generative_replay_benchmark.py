"""benchmarks/generative_replay.py: its grids build the page's runs, a (tiny, synthetic)
sweep renders to its runs' figures, and the committed page is what its pre-sweep record
renders to until the grids' summaries replace it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from benchmarks import generative_replay as gr
from tests.sweep_helpers import FAST

REPO = Path(__file__).resolve().parents[1]
GRIDS = REPO / "benchmarks" / "grids"
#: grid -> its labels of the ``run`` axis and its seeds
CELLS = {"generative_replay": (["sequential", "generative_replay"], [0, 1, 2, 3, 4]),
         "generative_replay_diagnostics": (
             [k for k in gr.RUNS if k not in ("sequential", "generative_replay")], [0])}


def test_the_page_re_renders_from_its_record():
    records = gr.load_record()
    assert records and {r["key"] for r in records} <= set(gr.RUNS) | set(gr.RECORD_LABELS)
    assert gr.render_record(records) == gr.OUT.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(CELLS))
def test_the_grids_build_the_pages_runs(name):
    """Each grid's cells are the runs of :data:`RUNS`: its scenario with its overrides, and
    the seed; together the two grids hold every run once."""
    from czsl.config import load_scenario
    from czsl.sweep.grid import check_cells, parse_grid

    labels, seeds = CELLS[name]
    grid = parse_grid(GRIDS / f"{name}.toml")
    cells = grid.cells()
    assert list(grid.axes["run"]) == labels and grid.seeds == seeds
    for cell, scenario in zip(cells, check_cells(grid, cells)):
        _, file, overrides = gr.RUNS[cell.labels["run"]]
        expected = load_scenario(REPO / "scenarios" / f"{file}.toml",
                                 [*overrides, f"seed={cell.seed}"])
        assert scenario.document() == expected.document(), cell.describe()
    assert sorted(k for ls, _ in CELLS.values() for k in ls) == sorted(gr.RUNS)


def _record(key, seed, mh, cpu, n_tasks=20):
    return {"key": key, "seed": seed, "n_tasks": n_tasks, "cpu_s": cpu, "wall_s": 1.0,
            "load": [1.0, 2.0], "overrides": [],
            "summary": {"mSA": 1.0, "mUA": 1.0, "mH": mh, "mAUC": 1.0,
                        "forgetting_final": 0.1}}


def test_record_ratios_are_to_sequential_of_the_same_tasks():
    page = gr.render_record([_record("sequential", 0, 1.0, 10.0, 5),
                             _record("grw", 0, 1.0, 25.0, 5), _record("grw", 0, 1.0, 7.0)])
    assert "| 25 | 2.5 |" in page.split("## 5 tasks")[1]
    assert "| 7 | – |" in page.split("## 20 tasks")[1].split("## 5 tasks")[0]


def test_record_seeds_are_averaged():
    page = gr.render_record([_record("sequential", 0, 10.0, 10.0),
                             _record("sequential", 1, 12.0, 30.0),
                             _record("grw", 0, 14.0, 40.0), _record("grw", 1, 16.0, 40.0)])
    assert "| 0, 1 | 1.0 ± 0.0 | 1.0 ± 0.0 | 11.0 ± 1.4 |" in page  # mean ± std of 2 seeds
    assert "| 40 ± 0 | 2.0 |" in page  # mean CPU over Sequential's mean CPU


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    """A real sweep of two runs (synthetic data, seed 0): ``sequential`` (one epoch) and
    ``grw`` (here a Sequential of two epochs), run in this process by ``czsl sweep run``'s
    local backend (``tests/test_sweep.py`` covers its pool)."""
    import torch

    from czsl.cli import main
    from czsl.sweep import backends, worker

    def in_process(specs, *, jobs, on_done):
        for spec in specs:
            on_done(worker.execute(spec))

    root = tmp_path_factory.mktemp("gr_sweep")
    grid = root / "grid.toml"
    grid.write_text("\n".join([
        "[sweep]", "seeds = [0]", f"set = {json.dumps(FAST)}", "", "[axes.run]",
        'sequential = ["regularizer=none"]', 'grw = ["regularizer=none"]', "",
        "[[when]]", 'match = { run = "grw" }', 'set = ["train.epochs=2"]', ""]))
    out = root / "out"
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # the worker sets them
            mp.setenv(var, os.environ.get(var, str(threads)))
        mp.setattr(backends, "run_local", in_process)
        try:
            assert main(["sweep", "run", str(grid), "--out", str(out)]) == 0
        finally:
            torch.set_num_threads(threads)
    return out


def test_a_sweep_renders_to_its_runs_figures(tiny_sweep, tmp_path):
    from benchmarks._common import load_summaries

    [summary] = load_summaries([tiny_sweep])
    page = tmp_path / "page.md"
    assert gr.main(["--summary", str(tiny_sweep), "--out", str(page)]) == 0
    text = page.read_text(encoding="utf-8")
    assert text == gr.render([summary])
    runs = {r["labels"]["run"]: r for r in summary["runs"]}
    assert [r["status"] for r in runs.values()] == ["done", "done"]
    rows = text.split(f"## {runs['sequential']['n_tasks']} tasks")[1].splitlines()
    [seq] = [r for r in rows if r.startswith(f"| {gr.RUNS['sequential'][0]} |")]
    [grw] = [r for r in rows if r.startswith(f"| {gr.RUNS['grw'][0]} |")]
    for row, key in ((seq, "sequential"), (grw, "grw")):
        s = runs[key]["summary"]
        assert row.split(" | ")[1:7] == ["0", *(f"{s[m]:.1f}" for m in
                                                ("mSA", "mUA", "mH", "mAUC")),
                                         f"{s['forgetting_final']:.3f}"]
    wall = {k: runs[k]["wall_time_s"] for k in runs}
    assert seq.endswith(f"| {wall['sequential']:.0f} | 1.0 |")
    assert grw.endswith(f"| {wall['grw']:.0f} | {wall['grw'] / wall['sequential']:.1f} |")
    assert rows.index(seq) < rows.index(grw)  # in the order of RUNS
    assert "* `grw`: " + ", ".join(f"`{o}`" for o in [*FAST, "regularizer=none",
                                                      "train.epochs=2"]) in text
    assert f"Torch threads per run: {runs['sequential']['threads']}. " in text
    assert "SEMI-SYNTHETIC" not in text  # synthetic data: not semi-synthetic


def test_without_a_committed_summary_the_page_is_not_rendered(tmp_path):
    out = tmp_path / "page.md"
    with pytest.raises(SystemExit, match="does not exist: run benchmarks/grids/"):
        gr.main(["--summary", str(tmp_path / "none.json"), "--out", str(out)])
    assert not out.exists()
