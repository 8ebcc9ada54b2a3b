"""The third-party regularizer in examples/czsl-example-lwf, installed for real by pip.

As in ``tests/test_example_plugin.py``: pip installs it into a folder of its own, which on
``PYTHONPATH`` is what an installed package looks like to ``importlib.metadata``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

pytestmark = pytest.mark.slow  # pip installs the example

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "czsl-example-lwf"
SMALL = ["train.epochs=1", "model.hidden_dims=[16]", "data.synthesis.n_classes=8",
         "data.synthesis.samples_per_class=10", "data.synthesis.n_features=8",
         "data.synthesis.n_attributes=4", "data.synthesis.n_unseen=2",
         "protocol.task_sizes=[4, 4]", "regularizer=lwf", "regularizer.alpha=5"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The example, pip-installed into a folder of its own."""
    root = tmp_path_factory.mktemp("example_lwf")
    source = root / "src"
    shutil.copytree(EXAMPLE, source)  # pip builds in the source folder: keep the checkout clean
    target = root / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                           "--no-build-isolation", "--no-index", "--target", str(target),
                           str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return target


def _python(site: Path, cwd: Path, *argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *sys.path])}
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


def test_listed_with_its_options_without_importing_torch(installed, tmp_path):
    code = ("import sys; from czsl.cli import main; rc = main(['plugins']); "
            "assert 'torch' not in sys.modules and 'avalanche' not in sys.modules, "
            "'listing imported torch'; sys.exit(rc)")
    listed = _python(installed, tmp_path, "-c", code)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    [row] = [i for i, ln in enumerate(lines) if ln.split()[:2] == ["regularizer", "lwf"]]
    assert lines[row].split()[2:4] == ["czsl-example-lwf", "0.1.0"]
    assert lines[row + 1].split() == ["options:", "alpha=1.0,", "temperature=2.0"]


def test_runs_by_name_and_its_penalty_reaches_train_regularizer(installed, tmp_path):
    run = _python(installed, tmp_path, "-m", "czsl.cli", "run", "--no-progress",
                  "--threads", "1", "--runs-dir", "runs",
                  *sum((["--set", s] for s in SMALL), []))
    assert run.returncode == 0, run.stderr
    run_dir = tmp_path / "runs" / "synthetic"
    results = json.loads((run_dir / "results.json").read_text())
    assert results["regularizer"] == "lwf" and results["n_tasks"] == 2
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    penalty = [event.value for event in acc.Scalars("train/regularizer")]
    # no earlier task during task 0: nothing to distil; from task 1 on, a penalty
    assert penalty[0] == 0 and max(penalty) > 0
