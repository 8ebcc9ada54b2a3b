"""benchmarks/speed.py: its quick mode writes a complete report, and its timers add up.

No timing is asserted: only that every expected row is there with finite numbers, that
the breakdown of a run adds up to its wall time, and that the Avalanche and plain torch
loops did the same number of training steps.
"""

from __future__ import annotations

import importlib.util
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "speed.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("czsl_speed_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _number(cell: str) -> float:
    """The first number in a cell (``"1.23x"``, ``"0.07 s"``, ``"875 (+ 3 MiB GPU)"``)."""
    match = re.search(r"-?\d[\d,]*(\.\d+)?", cell)
    assert match, f"no number in {cell!r}"
    return float(match.group(0).replace(",", ""))


def _row(text: str, start: str) -> list[str]:
    rows = [line for line in text.splitlines() if line.startswith(start)]
    assert rows, f"no row starting with {start!r} in the report"
    return _cells(rows[0])


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("speed") / "speed.md"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--threads", "1",
                           "--out", str(out)], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out.read_text()


def test_quick_report_has_every_section_and_only_finite_numbers(report):
    for heading in ("## Targets", "## End-to-end runs", "### Where the time of a run goes",
                    "## Avalanche vs a plain torch loop", "## Regularizer overhead",
                    "## Start-up and data loading", "## Profile"):
        assert heading in report
    assert "QUICK" in report.splitlines()[0]
    assert "load average" in report
    for line in report.splitlines():
        if line.startswith("|"):
            assert not re.search(r"(?<![a-z])(nan|inf)(?![a-z])", line, re.IGNORECASE), line

    for start in ("| Avalanche overhead", "| `czsl --help` < 1 s", "| `czsl plugins` < 1 s",
                  "| read_npz of the"):
        cells = _row(report, start)
        assert _number(cells[1]) >= 0 and cells[2].split()[0] in ("met", "**missed**")
    ratio = _number(_row(report, "| Avalanche overhead")[1])
    assert math.isfinite(ratio) and ratio > 0
    for reg in ("none", "ewc_online", "mas", "agem"):
        cells = _row(report, f"| {reg} |")
        assert _number(cells[1]) > 0 and _number(cells[3]) > 0
    for command in ("`czsl --help`", "`czsl plugins`"):
        cells = _row(report, f"| {command} |")
        assert _number(cells[1]) > 0 and cells[2] == "none"  # start-up imports no torch


def test_quick_run_breakdown_adds_up_to_the_wall_time(report):
    run = _row(report, "| synthetic | `scenarios/synthetic.toml`")
    tasks, wall, peak = _number(run[2]), _number(run[3]), _number(run[4])
    assert tasks == 5 and wall > 0 and peak > _number(run[5]) * 0.5
    speed = _load_script()
    parts = [_row(report, f"| {part} |") for part in speed.PARTS]
    total = sum(_number(cells[1]) for cells in parts)
    assert total == pytest.approx(wall, abs=0.01 * len(parts) + 0.05)
    assert _number(_row(report, "| training |")[1]) > 0


def test_avalanche_and_plain_loops_do_the_same_steps(report):
    avalanche = _row(report, "| Avalanche `ZSLLearner.train_task` |")
    sliced = _row(report, "| plain torch, sliced batches |")
    loader = _row(report, "| plain torch, DataLoader |")
    assert _number(avalanche[2]) == _number(sliced[2]) == _number(loader[2]) > 0
    assert _number(sliced[3]) == pytest.approx(1.0)


def test_profile_lists_top_entries_with_their_meaning(report):
    section = report.split("## Profile", 1)[1]
    assert "run_backward" in section
    assert "**Where the time goes.**" in section and "**Avoidable costs**" in section
    groups = [line for line in section.splitlines()
              if line.startswith("| ") and line.count("|") == 4 and "group" not in line
              and "---" not in line]
    assert len(groups) == len(_load_script().PROFILE_GROUPS)


def test_timers_count_own_time_only():
    """A timed call nested in another is counted in its own part, not twice."""
    speed = _load_script()
    ticks = iter([0.0, 1.0, 4.0, 10.0])  # outer starts, inner starts, inner ends, outer ends
    timers = speed.Timers(clock=lambda: next(ticks))
    inner = timers.wrap("inner", lambda: "done")
    outer = timers.wrap("outer", lambda: inner())
    assert outer() == "done"
    assert timers.totals == {"inner": 3.0, "outer": 7.0}
    assert timers.calls == {"inner": 1, "outer": 1}
