"""benchmarks/czsl_table.py and benchmarks/generators.py: their tables are rendered from
the committed parts, and the ordering checks say what the numbers say."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(f"czsl_bench_{name}",
                                                  REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
    groups = {}
    for r in runs:
        groups.setdefault((r["dataset"], "grw", r["method"], r["class_norm"]), []).append(r)
    row = [line for line in table.ordering(groups) if line.startswith("| CUB")]
    assert len(row) == 1
    cells = [c.strip() for c in row[0].strip("|").split("|")]
    assert cells[3:] == ["3", "yes (30.0)", "-0.080 ± 0.010 (less)", "+0.005 ± 0.030 (noise)",
                         "+0.100 ± 0.010 (MORE)", "–"]


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
