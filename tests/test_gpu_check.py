"""benchmarks/gpu_check.py: every part runs on the CPU against the CPU (so the script
cannot rot where there is no GPU), a disagreement fails it, it knows every test that
only runs with CUDA, and without CUDA it stops with one line and writes nothing."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gpu_check():
    return importlib.import_module("benchmarks.gpu_check")


def test_it_runs_every_test_that_is_skipped_without_cuda(gpu_check):
    found = []
    for path in sorted((REPO / "tests").glob("test_*.py")):
        text = path.read_text()
        found += [f"tests/{path.name}::{name}" for name in re.findall(
            r"skipif\(not torch\.cuda\.is_available\(\)[^\n]*\n(?:@[^\n]*\n)*def (\w+)", text)]
        assert not re.search(r"^pytestmark[^\n]*cuda", text, re.M), path  # a module skip
    assert found and sorted(found) == sorted(gpu_check.CUDA_TESTS)


#: a stand-in for the CUDA tests: one passes, one skips (no torch to import: quick)
STAND_IN = """
import pytest

def test_passes():
    pass

@pytest.mark.skip(reason="stands for a CUDA test on a machine without CUDA")
def test_skips():
    pass
"""


def test_every_part_runs_on_the_cpu_against_the_cpu(gpu_check, tmp_path, capsys,
                                                     monkeypatch):
    """``--quick`` on the CPU, every part tiny; the CUDA tests part runs pytest on
    :data:`STAND_IN` (the real CUDA tests: the slow test below)."""
    stand_in = tmp_path / "test_stand_in.py"
    stand_in.write_text(STAND_IN)
    real = gpu_check.cuda_tests
    monkeypatch.setattr(gpu_check, "cuda_tests", lambda device: real(device, (str(stand_in),)))
    out = tmp_path / "gpu_check.md"
    assert gpu_check.main(["--device-under-test", "cpu", "--quick", "--out", str(out)]) == 0
    page = out.read_text()
    assert "Overall: pass" in page and "**FAIL**" not in page
    for heading in ("## CUDA tests: pass", "## A short CUB run, cpu against cpu: pass",
                    "## Metrics speed, cpu against cpu: pass",
                    "## f-CLSWGAN, full schedule on cpu: pass"):
        assert heading in page
    assert "2 run, 0 failed, 0 errors, 1 skipped" in page
    assert "| mH | " in page and "| forgetting_final | " in page
    assert page in capsys.readouterr().out


@pytest.mark.slow
def test_the_cuda_tests_run_and_skip_without_cuda(gpu_check):
    """The CUDA tests part, for real: pytest on :data:`CUDA_TESTS` in a subprocess."""
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    got = gpu_check.cuda_tests(torch.device("cpu"))
    assert (got["tests"], got["failures"], got["errors"], got["skipped"]) == (2, 0, 0, 2)
    assert got["ok"]


def _results(mh, forgetting):
    from czsl.metric_registry import SUMMARY, of_scope

    summary = {m.name: 10.0 for m in of_scope(SUMMARY)}
    return {"summary": {**summary, "mH": mh, "forgetting_final": forgetting}, "wall_s": 1.0}


@pytest.mark.parametrize("mh, forgetting, bad", [
    (10.9, 0.105, []), (11.5, 0.1, ["mH"]), (10.0, 0.12, ["forgetting_final"]),
    (float("nan"), 0.1, ["mH"])])
def test_summaries_that_differ_beyond_the_tolerance_fail(gpu_check, monkeypatch, mh,
                                                         forgetting, bad):
    runs = iter([_results(mh, forgetting), _results(10.0, 0.1)])
    monkeypatch.setattr(gpu_check, "_run", lambda *args: next(runs))
    part = gpu_check.cub_agreement(torch.device("cpu"), None)
    assert [r["metric"] for r in part["rows"] if not r["ok"]] == bad
    assert part["ok"] == (not bad)


def test_without_cuda_one_line_and_nothing_written(gpu_check, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    out = tmp_path / "gpu_check.md"
    assert gpu_check.main(["--data-dir", str(tmp_path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no CUDA device" in err
    assert not out.exists()
    # and a data folder without CUB: one line, nothing written
    assert gpu_check.main(["--device-under-test", "cpu", "--data-dir", str(tmp_path),
                           "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds no CUB files" in err
    assert not out.exists()
