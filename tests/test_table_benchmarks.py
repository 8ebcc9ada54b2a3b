"""benchmarks/czsl_table.py and benchmarks/generators.py: their tables are rendered from
the committed parts, and the ordering checks say what the numbers say."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _load(name):
    """The script ``benchmarks/NAME.py`` as the package module it runs as."""
    return importlib.import_module(f"benchmarks.{name}")


def _records(folder):
    records, commands = [], []
    for path in sorted((REPO / "benchmarks" / folder).glob("*.json")):
        saved = json.loads(path.read_text())
        records += saved["runs"]
        commands.append(saved["command"])
    return records, commands


def _run(method, seed, forgetting, mh, cn="+ CN"):
    return {"scenario": "cub_czsl", "method": method, "class_norm": cn, "seed": seed,
            "dataset": "CUB (semi-synthetic)", "wall_s": 1.0, "threads": 1, "mAUC": 1.0,
            "mH": mh, "mJA": 1.0, "mSA": 1.0, "mUA": 1.0, "forgetting_final": forgetting}


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
    groups = {}
    for r in runs:
        groups.setdefault((r["dataset"], "grw", r["method"], r["class_norm"]), []).append(r)
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


@pytest.mark.parametrize("script, folder, out", [
    ("czsl_table", "czsl_table_parts", "czsl_table.md"),
    ("generators", "generators_parts", "generators.md"),
])
def test_committed_tables_are_rendered_from_the_committed_parts(script, folder, out):
    records, commands = _records(folder)
    assert records, f"benchmarks/{folder} holds no runs"
    committed = (REPO / "benchmarks" / out).read_text()
    rendered = _load(script).render(records, commands)
    assert rendered == committed, (f"benchmarks/{out} is not what its parts give: re-run "
                                   f"python benchmarks/{script}.py --merge "
                                   f"benchmarks/{folder}/*.json")
    assert "semi-synthetic" in committed


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
