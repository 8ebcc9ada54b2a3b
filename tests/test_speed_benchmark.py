"""benchmarks/speed.py: its quick mode writes a complete report, and its breakdown adds up.

The report's checks run ``main(["--quick"])`` in this process on a tiny synthetic scenario
(its children's measurements called directly: the ``report`` fixture); one ``slow`` test
runs the quick benchmark whole, as a script with its fresh child processes.

No timing is asserted, nor which function a profiler ranks first: only that every
expected row is there with finite numbers, that the breakdown of a run adds up to its
wall time, that the Avalanche and plain torch loops did the same number of training
steps, and that the profile section is complete.
"""

from __future__ import annotations

import importlib
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _load_script():
    """``benchmarks/speed.py`` as the package module it runs as."""
    return importlib.import_module("benchmarks.speed")


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


#: the quick mode's scenario made tiny: 3 tasks of 5 classes, 20 images each, 1 epoch
TINY = ["train.epochs=1", "data.synthesis.n_classes=20", "data.synthesis.n_unseen=5",
        "data.synthesis.samples_per_class=20", "protocol.task_sizes=[5,5,5]"]
HEADINGS = ("## Targets", "## End-to-end runs", "### Where the time of a run goes",
            "## Avalanche vs a plain torch loop", "## Regularizer overhead",
            "## Start-up and data loading", "## Profile")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> str:
    """``benchmarks.speed --quick``'s report, its children's measurements (``child_run``,
    ``child_training``) made in this process on :data:`TINY`."""
    speed = _load_script()

    def in_process(kind, job, what):
        job = {**job, "overrides": [*job["overrides"], *TINY]}
        return {"run": speed.child_run, "training": speed.child_training}[kind](job)

    out = tmp_path_factory.mktemp("speed") / "speed.md"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(speed, "run_child", in_process)
        assert speed.main(["--quick", "--out", str(out)]) == 0
    return out.read_text()


@pytest.mark.slow
def test_the_quick_benchmark_runs_whole_as_a_script(tmp_path):
    """The script as a contributor runs it: each measurement in a fresh child process."""
    out = tmp_path / "speed.md"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.speed", "--quick", "--threads",
                           "1", "--out", str(out)], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    assert "QUICK" in text.splitlines()[0] and all(h in text for h in HEADINGS)
    assert _number(_row(text, "| synthetic | `scenarios/synthetic.toml`")[2]) == 5


def test_quick_report_has_every_section_and_only_finite_numbers(report):
    for heading in HEADINGS:
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
    assert tasks == 3 and wall > 0  # TINY's 3 tasks and peak > _number(run[5]) * 0.5
    speed = _load_script()
    section = report.split("### Where the time of a run goes", 1)[1].split("\n## ", 1)[0]
    rows = [_cells(line) for line in section.splitlines()
            if line.startswith("| ") and not line.startswith("| part |")]
    labels = [cells[0] for cells in rows]
    assert labels[:len(speed.PARTS)] == list(speed.PARTS.values()) and labels[-1] == speed.OTHER
    total = sum(_number(cells[1]) for cells in rows)
    assert total == pytest.approx(wall, abs=0.01 * len(rows) + 0.05)
    # every part is measured; on this tiny run a part (testing, writing results.json)
    # can take under the table's 0.01 s, so only their sum must be positive
    parts = [_number(_row(report, f"| {speed.PARTS[key]} |")[1])
             for key in ("data", "setup", "training", "testing", "checkpoint", "results")]
    assert min(parts) >= 0 and sum(parts) > 0, parts


def test_avalanche_and_plain_loops_do_the_same_steps(report):
    avalanche = _row(report, "| Avalanche `ZSLLearner.train_task` |")
    sliced = _row(report, "| plain torch, sliced batches |")
    loader = _row(report, "| plain torch, DataLoader |")
    assert _number(avalanche[2]) == _number(sliced[2]) == _number(loader[2]) > 0
    assert _number(sliced[3]) == pytest.approx(1.0)


def test_profile_section_is_complete(report):
    """Structure only: which functions rank first depends on the machine's load."""
    speed = _load_script()
    section = report.split("## Profile", 1)[1]
    assert "**Where the time goes.**" in section and "**Avoidable costs**" in section
    top = [_cells(line) for line in section.split("Top entries by own time:", 1)[1]
           .split("Groups", 1)[0].splitlines() if line.startswith("| `")]
    assert len(top) == 12  # --quick lists 12
    own = [_number(cells[2]) for cells in top]
    assert own == sorted(own, reverse=True)
    for cells in top:
        assert len(cells) == 6 and _number(cells[1]) >= 1
        assert _number(cells[4]) >= _number(cells[2]) - 0.01  # cumulative includes own
        # a meaning, where MEANINGS has one, is the one MEANINGS gives
        assert cells[5] == speed.meaning(cells[0].strip("`"))
    groups = [line for line in section.splitlines()
              if line.startswith("| ") and line.count("|") == 4 and "group" not in line
              and "---" not in line]
    assert len(groups) == len(speed.PROFILE_GROUPS)


@pytest.mark.parametrize("label, expected", [
    ("~:0(<method 'run_backward' of 'torch._C._EngineBase' objects>)", "autograd backward"),
    ("czsl/models.py:80(prototypes)", "embeds the visible classes"),
    ("torch/optim/adam.py:200(_single_tensor_adam)", "Adam update"),
    ("some/unknown.py:1(nothing)", ""),
])
def test_profile_entries_are_explained_by_their_name(label, expected):
    meaning = _load_script().meaning(label)
    assert meaning.startswith(expected) and bool(meaning) == bool(expected)


def test_profile_groups_match_a_package_or_a_file():
    in_group = _load_script().in_group
    assert in_group("/x/czsl/tensorboard.py", "log_step", [("czsl/", "log_step")])
    assert not in_group("/x/czsl_plugins/a.py", "log_step", [("czsl/", "log_step")])
    assert in_group("/x/czsl/models.py", "forward", [("czsl/models.py", "forward")])
    assert not in_group("/x/czsl/learner.py", "forward", [("czsl/models.py", "forward")])


def test_breakdown_adds_up_to_the_wall_time_and_keeps_new_parts():
    speed = _load_script()
    parts = speed.breakdown({"data": 1.0, "training": 5.0, "checkpoint": 0.5,
                             "my observer": 0.25}, wall=10.0)
    assert list(parts)[:len(speed.PARTS)] == list(speed.PARTS)
    assert parts["setup"] == 0.0 and parts["my observer"] == 0.25
    assert parts["other"] == pytest.approx(3.25)
    assert sum(parts.values()) == pytest.approx(10.0)
    assert speed.part_label("my observer") == "my observer (observer)"
    assert speed.part_label("other") == speed.OTHER


def test_the_memory_figures_live_on_the_memory_page_only(report):
    """speed.md points to memory_scale.md (memory_scale.py's own page) and copies none of
    its rows, so rerunning either script leaves the other's page true."""
    speed = _load_script()
    section = "\n".join(speed.memory_section())
    assert "## Memory against the number of tasks" in section
    assert "`benchmarks/memory_scale.md`" in section and "|" not in section
    assert section in report
    shown = (REPO / "benchmarks" / "speed.md").read_text()
    assert section in shown
    rows = [line for line in (REPO / "benchmarks" / "memory_scale.md").read_text()
            .splitlines() if line.startswith("| ") and not line.startswith("| run |")]
    assert rows and not any(row in shown for row in rows)


def test_the_memory_page_keeps_the_rows_and_notes_of_runs_not_run_again():
    memory = importlib.import_module("benchmarks.memory_scale")
    old = memory.page({"sun15": "| sun15 | 15 | 1 | 2 | 3 / 4 | 5 |",
                       "sun47": "| sun47 | 47 | 1 | 2 | 3 / 4 | 5 |"}, 1, "")
    old += "\nA note below the table.\n"
    new = memory.page({"synthetic20k": "| synthetic20k | 5 | 6 | 7 | 8 / 9 | 10 |",
                       "sun15": "| sun15 | 15 | 9 | 9 | 9 / 9 | 9 |"}, 1, old)
    rows = [line for line in new.splitlines() if line.startswith("| s")]
    assert rows == ["| sun15 | 15 | 9 | 9 | 9 / 9 | 9 |", "| sun47 | 47 | 1 | 2 | 3 / 4 | 5 |",
                    "| synthetic20k | 5 | 6 | 7 | 8 / 9 | 10 |"]
    assert new.endswith("A note below the table.\n") and new.count("| run |") == 1


def test_logging_only_replaces_its_section_and_keeps_the_rest():
    speed = _load_script()
    heading = speed.LOGGING_HEADING
    page = "# czsl speed\n\nintro\n\n## Targets\n\nold targets\n"
    once = speed.replace_section(page, heading, f"{heading}\n\nfirst\n")
    assert once == page + f"\n{heading}\n\nfirst\n"
    again = speed.replace_section(once + "\n## Profile\n\nkept\n", heading,
                                  f"{heading}\n\nsecond\n")
    assert again == page + f"\n{heading}\n\nsecond\n\n## Profile\n\nkept\n"
    assert again.count(heading) == 1 and "first" not in again
