"""benchmarks/czsl_table.py and benchmarks/generators.py: their pages are rendered from the
committed sweep summaries, their grids build the scenarios the pages describe, a real
(synthetic) sweep renders to its runs' figures, and the ordering checks say what the
numbers say."""

from __future__ import annotations

import importlib
import json
import os
import statistics
from pathlib import Path

import pytest

from tests.sweep_helpers import FAST

REPO = Path(__file__).resolve().parents[1]
GRIDS = REPO / "benchmarks" / "grids"


def _load(name):
    """The script ``benchmarks/NAME.py`` as the package module it runs as."""
    return importlib.import_module(f"benchmarks.{name}")


def _run(method, seed, forgetting, mh, cn="+ CN"):
    """A finished run as a sweep summary holds it."""
    return {"labels": {"dataset": "cub", "protocol": "grw", "method": method,
                       "class_norm": cn}, "seed": seed, "threads": 1, "status": "done",
            "dataset": "CUB (semi-synthetic)", "wall_time_s": 1.0,
            "summary": {"mAUC": 1.0, "mH": mh, "mJA": 1.0, "mSA": 1.0, "mUA": 1.0,
                        "forgetting_final": forgetting}}


def test_ordering_checks_tell_real_differences_from_noise():
    table = _load("czsl_table")
    runs = []
    for seed, noise in enumerate((-0.01, 0.0, 0.01)):
        runs += [_run("Sequential", seed, 0.10 + noise, 20.0),
                 _run("EWC-online", seed, 0.02 + noise, 22.0),  # clearly less
                 _run("MAS", seed, 0.105 + 3 * noise, 20.0),  # about the same, noisier
                 _run("A-GEM", seed, 0.20 + noise, 19.0),  # clearly more
                 _run("Multi-task", seed, -0.05, 30.0)]
    assert _ordering_cells(table, runs)[3:] == [
        "3", "yes (30.0)", "0.100 ± 0.010 (3 runs)", "-0.080 ± 0.010 (less)",
        "+0.005 ± 0.030 (noise)", "–", "+0.100 ± 0.010 (MORE)"]


def _ordering_cells(table, runs):
    groups = table.group_runs([{"runs": runs}])
    [row] = [line for line in table.ordering(groups) if line.startswith("| CUB")]
    return [c.strip() for c in row.strip("|").split("|")]


def test_placebo_runs_join_sequentials_reference():
    """Three Sequential seeds that happen to agree understate the noise; the placebo's
    runs (more draws of Sequential) widen the reference, and a difference within it is
    no longer called MORE (what SUN grw + CN showed)."""
    table = _load("czsl_table")
    runs = [_run("Multi-task", 0, -0.05, 30.0)]
    for seed in range(3):
        runs += [_run("Sequential", seed, 0.010 + seed / 1000, 20.0),
                 _run("MAS", seed, 0.031 + seed / 1000, 20.0)]
    cells = _ordering_cells(table, runs)
    assert (cells[5], cells[7]) == ("0.011 ± 0.001 (3 runs)", "+0.021 ± 0.001 (MORE)")
    runs += [_run("MAS λ=0", seed, 0.030 + seed / 200, 20.0) for seed in range(3)]
    cells = _ordering_cells(table, runs)
    assert (cells[5], cells[7]) == ("0.023 ± 0.014 (3 runs + 3 placebo)",
                                    "+0.009 ± 0.014 (noise)")


def _summaries(names):
    from czsl.sweep.summary import load_summary

    return [load_summary(REPO / "benchmarks" / "sweeps" / f"{n}.json") for n in names]


@pytest.mark.parametrize("script, names, out", [
    ("czsl_table", ["czsl_table", "czsl_table_diagnostics"], "czsl_table.md"),
    ("generators", ["generators"], "generators.md"),
    ("field_table", ["field_table"], "field_table.md"),
])
def test_committed_pages_are_rendered_from_the_committed_summaries(script, names, out):
    summaries = _summaries(names)
    assert all(s["runs"] for s in summaries)
    committed = (REPO / "benchmarks" / out).read_text(encoding="utf-8")
    module = _load(script)
    rendered = module.render(summaries if script == "czsl_table" else summaries[0])
    assert rendered == committed, (f"benchmarks/{out} is not what its summaries give: run "
                                   f"python -m benchmarks.{script}")
    assert "semi-synthetic" in committed and "_parts" not in committed


@pytest.mark.parametrize("name", ["czsl_table", "czsl_table_diagnostics", "generators",
                                  "field_table"])
def test_committed_summaries_hold_their_grids_cells(name):
    """Each committed summary lists the cells of its grid, in the grid's order, with the
    labels, seeds and overrides ``czsl sweep run`` gives them."""
    from czsl.sweep.grid import parse_grid

    [summary] = _summaries([name])
    grid = parse_grid(GRIDS / f"{name}.toml")
    cells = grid.cells()
    assert [(r["labels"], r["seed"], r["overrides"]) for r in summary["runs"]] == [
        (c.labels, c.seed, c.overrides) for c in cells]
    assert summary["axes"] == {a: list(labels) for a, labels in grid.axes.items()}
    assert summary["table"] == grid.table and summary["seeds"] == grid.seeds
    assert len({r["id"] for r in summary["runs"]}) == len(cells)


def test_the_field_table_is_czsl_sweep_tables_with_its_marks():
    """The page's table is what ``czsl sweep table`` prints for the committed summary:
    every published method with the paper's figures beside, transductive rows marked."""
    from czsl.sweep.table import render_markdown

    [summary] = _summaries(["field_table"])
    page = (REPO / "benchmarks" / "field_table.md").read_text(encoding="utf-8")
    assert render_markdown(summary).rstrip("\n") in page
    rows = {tuple(c.strip() for c in line.strip("|").split("|")[:2]): line
            for line in page.splitlines() if line.startswith("| cub |")
            or line.startswith("| sun |")}
    for dataset in ("cub", "sun"):
        for method in ("Tf-GCZSL", "DVGR", "A-CZSL", "BD-CGZSL"):
            assert (dataset, f"{method} (tr)") in rows, (dataset, method)
        for method in ("EWC", "A-GEM", "CN-CZSL", "BD-CGZSL-in", "GRW + interpolation",
                       "GRW + dictionary"):
            assert "mSA " in rows[dataset, method], (dataset, method)  # published figures
        assert (dataset, "Sequential") in rows and (dataset, "Multi-task") in rows


def _same(scenario, expected, what):
    assert scenario.document() == expected.document(), what


@pytest.mark.parametrize("name, methods", [
    ("czsl_table", ["Sequential", "EWC-online", "MAS", "A-GEM", "Multi-task"]),
    ("czsl_table_diagnostics", ["MAS λ=0", "MAS γ=0.95"]),
])
def test_the_table_grids_build_the_pages_scenarios(name, methods):
    """The grids' cells are the page's: the shipped scenario of each dataset and protocol,
    the method and ClassNorm overrides of ``benchmarks._common``, ClassNorm's cap on
    Multi-task."""
    from benchmarks._common import CLASS_NORM, METHODS, SCENARIO
    from czsl.config import load_scenario
    from czsl.sweep.grid import check_cells, parse_grid

    table = _load("czsl_table")
    grid = parse_grid(GRIDS / f"{name}.toml")
    cells = grid.cells()
    protocols = ["grw", "classnorm"] if name == "czsl_table" else ["grw"]
    assert len(cells) == 2 * len(protocols) * len(methods) * len(CLASS_NORM) * 3
    assert list(grid.axes["method"]) == methods
    for cell, scenario in zip(cells, check_cells(grid, cells)):
        d, p, m, cn = (cell.labels[k] for k in ("dataset", "protocol", "method", "class_norm"))
        expected = load_scenario(
            REPO / "scenarios" / f"{SCENARIO[p].format(d=d)}.toml",
            [*METHODS[m], *CLASS_NORM[cn], f"seed={cell.seed}",
             *([f"replay.max_iterations={table.MULTITASK_CAP[d]}"] if m == "Multi-task"
               else [])])
        _same(scenario, expected, cell.describe())


def test_the_generators_grid_builds_the_pages_runs():
    from czsl.config import load_scenario
    from czsl.sweep.grid import check_cells, parse_grid

    runs = _load("generators").RUNS
    grid = parse_grid(GRIDS / "generators.toml")
    cells = grid.cells()
    assert [c.labels["run"] for c in cells] == list(runs) and grid.seeds == [0]
    for cell, scenario in zip(cells, check_cells(grid, cells)):
        file, overrides, _ = runs[cell.labels["run"]]
        _same(scenario, load_scenario(REPO / "scenarios" / f"{file}.toml", overrides),
              cell.describe())


@pytest.fixture(scope="module")
def synthetic_sweep(tmp_path_factory):
    """A real sweep of two runs (synthetic data, one epoch): one method, two seeds.

    ``czsl sweep run`` plans, claims, runs and summarises as always; only its local
    backend runs the two specs in this process (``tests/test_sweep.py`` covers the
    process pool), which saves the start-up of two fresh interpreters."""
    import torch

    from czsl.cli import main
    from czsl.sweep import backends, worker

    def in_process(specs, *, jobs, on_done):
        for spec in specs:
            on_done(worker.execute(spec))

    root = tmp_path_factory.mktemp("bench_sweep")
    grid = root / "grid.toml"
    grid.write_text("\n".join([
        "[sweep]", "seeds = [0, 1]", f"set = {json.dumps(FAST)}", "",
        "[axes.run]", '"gr" = []', "[axes.method]", 'Sequential = ["regularizer=none"]',
        "[axes.class_norm]", '"+ CN" = ["model.class_norm=true"]', ""]))
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
    results = [json.loads(p.read_text()) for p in sorted(out.glob("runs/*/results.json"))]
    assert len(results) == 2
    return out, sorted(results, key=lambda r: r["seed"])


def test_a_sweep_renders_to_its_runs_figures_in_the_czsl_table(synthetic_sweep):
    from benchmarks._common import load_summaries

    out, results = synthetic_sweep
    table = _load("czsl_table")
    text = table.render(load_summaries([out]))
    [row] = [line for line in text.splitlines() if "| Sequential | + CN |" in line]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:5] == [results[0]["dataset"], "–", "Sequential", "+ CN", "0,1"]

    def cell(values, digits):
        return f"{statistics.fmean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"

    assert cells[5:-1] == [cell([r["summary"][m.name] for r in results], m.digits)
                           for m in table.METRICS]
    assert cells[-1] == cell([r["wall_time_s"] for r in results], 0)
    assert "2 runs with 1 torch thread" in text


def test_a_sweep_renders_to_its_runs_figures_in_the_generators_page(synthetic_sweep):
    from benchmarks._common import load_summaries

    out, results = synthetic_sweep
    [summary] = load_summaries([out])
    text = _load("generators").render(summary)
    rows = [line for line in text.splitlines() if line.startswith(f"| {results[0]['dataset']}")]
    assert len(rows) == 2  # continual runs, one per seed, in seed order
    for row, res, published in zip(rows, results, ["–", "(as above)"]):
        s = res["summary"]
        assert row == (f"| {res['dataset']} | gr | {s['mSA']:.1f} | {s['mUA']:.1f} | "
                       f"{s['mH']:.1f} | {s['mJA']:.1f} | {s['mAUC']:.1f} | "
                       f"{s['forgetting_final']:.3f} | {res['wall_time_s']:.0f} | {published} |")
    assert "All runs: seed 0, 1, one torch thread each" in text


def test_peak_parts_split_the_final_forgetting_of_the_metrics_module():
    from czsl.metrics import forgetting_measure
    import torch

    parts = _load("forgetting_peaks").peak_parts
    a = [[50.0, 10.0, 0.0],   # after task 0
         [40.0, 30.0, 5.0],   # after task 1: task 0 drops, task 1 peaks
         [45.0, 20.0, 60.0]]  # final
    got = parts(a)
    assert got == {"own": 40.0, "peak": 40.0, "final": 32.5, "forgetting": 0.075, "lag": 0.0}
    # a task that peaked zero-shot, before its own step, has a negative lag
    assert parts([[10.0, 20.0, 0.0], [5.0, 5.0, 0.0], [5.0, 5.0, 9.0]])["lag"] == -0.5
    torch.manual_seed(0)
    for _ in range(5):
        m = torch.rand(6, 6) * 100
        m[torch.rand(6, 6) < 0.1] = float("nan")
        m[:, 2] = float("nan")  # a task without test samples
        assert abs(parts(m.tolist())["forgetting"]
                   - float(forgetting_measure(m)[0][-1])) < 1e-9


def test_each_peaks_command_rewrites_only_its_own_section():
    fp = _load("forgetting_peaks")
    rows = [{"method": m, "seed": s, "own": 20.0 + s, "peak": 25.0, "final": 20.0,
             "forgetting": 0.05, "lag": 1.0} for m in ("Sequential", "EWC-online")
            for s in (0, 1)]
    a = fp.section("SUN, grw protocol, ClassNorm off", rows, "cmd a", True)
    b = fp.section("CUB, grw protocol, ClassNorm on", rows, "cmd b", False)
    assert "EWC-online − Sequential, means over seeds: own +0.0" in a
    assert "SEMI-SYNTHETIC" in a and "SEMI-SYNTHETIC" not in b
    text = fp.with_section(fp.with_section("", "SUN, grw protocol, ClassNorm off", a),
                           "CUB, grw protocol, ClassNorm on", b)
    assert text.index("## CUB") < text.index("## SUN") and text.count("## ") == 2
    a2 = a.replace("cmd a", "cmd a2")
    again = fp.with_section(text, "SUN, grw protocol, ClassNorm off", a2)
    assert "cmd a2" in again and "cmd a`" not in again and "cmd b" in again
    assert again == text.replace("cmd a`", "cmd a2`")
    committed = (REPO / "benchmarks" / "forgetting_peaks.md").read_text()
    assert committed.startswith(fp.HEADER) and "SEMI-SYNTHETIC" in committed


@pytest.mark.parametrize("regularizer, options", [
    ("ewc_online", []), ("mas", []), ("mas", ["regularizer.lambda_reg=0"]), ("agem", [])])
def test_regularizer_activity_measures_what_the_regularizer_adds(regularizer, options):
    from czsl.config import load_scenario

    activity = _load("regularizer_activity")
    scenario = load_scenario(None, ["train.epochs=1", "data.synthesis.samples_per_class=20",
                                    "protocol.task_sizes=[25, 25]",
                                    f"regularizer={regularizer}", *options])
    found = activity.measure(scenario, None)
    assert found["steps"] > 0 and found["semi"] is False
    if regularizer == "agem":
        assert 0.0 <= found["projected"] <= 1.0
        assert (found["change"] > 0) == (found["projected"] > 0)
    elif options:  # no penalty: nothing added
        assert found["ratio_mean"] == found["ratio_max"] == 0.0
    else:
        assert 0.0 < found["ratio_mean"] <= found["ratio_max"]
