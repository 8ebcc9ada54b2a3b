"""The third-party example in examples/czsl-example-generator, installed for real by pip.

pip installs it into a temporary folder (``--target``); that folder on ``PYTHONPATH`` /
``sys.path`` is exactly what an installed package looks like to ``importlib.metadata``,
so czsl finds it through its entry point, never through a direct import.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from czsl.plugins import Plugins
from czsl.testing import check_generator

pytestmark = pytest.mark.slow  # pip installs the example

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "czsl-example-generator"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The example, pip-installed into a folder of its own."""
    root = tmp_path_factory.mktemp("example")
    source = root / "src"
    shutil.copytree(EXAMPLE, source)  # pip builds in the source folder: keep the checkout clean
    target = root / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                           "--no-build-isolation", "--no-index", "--target", str(target),
                           str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert not (target / "czsl").exists()  # --no-deps: czsl itself comes from the venv
    return target


def _czsl(site: Path, cwd: Path, *argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run([sys.executable, "-m", "czsl.cli", *argv], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300)


def test_installed_example_is_listed_and_runs_by_name(installed, tmp_path):
    listed = _czsl(installed, tmp_path, "plugins")
    assert listed.returncode == 0, listed.stderr
    [line] = [ln for ln in listed.stdout.splitlines() if "example_generator" in ln]
    assert line.split()[:4] == ["generator", "example_generator", "czsl-example-generator",
                                "0.1.0"]

    settings = ["replay=generative_replay", "generator=example_generator",
                "generator.ridge=0.5", "replay.replay_per_class=10",
                "train.loss_classes='seen'", "train.epochs=1", "model.hidden_dims=[16]",
                "data.synthesis.n_classes=8", "data.synthesis.samples_per_class=10",
                "data.synthesis.n_features=8", "data.synthesis.n_attributes=4",
                "data.synthesis.n_unseen=2", "protocol.task_sizes=[4, 4]"]
    run = _czsl(installed, tmp_path, "run", "--no-progress", "--runs-dir", "runs",
                *sum((["--set", s] for s in settings), []))
    assert run.returncode == 0, run.stderr
    results = json.loads((tmp_path / "runs" / "synthetic" / "results.json").read_text())
    assert results["generator"] == "example_generator" and results["n_tasks"] == 2


def test_example_generator_samples_move_to_the_class_means(installed, monkeypatch):
    monkeypatch.syspath_prepend(str(installed))
    gen = Plugins().make("generator", "example_generator", {}, n_features=8, n_attributes=4)
    g = torch.Generator().manual_seed(0)
    attrs = torch.rand(5, 4, generator=g)  # [C, A]
    means = attrs @ torch.randn(4, 8, generator=g) * 3 + 1  # [C, D], linear in a
    y = torch.arange(5).repeat_interleave(50)
    x = means[y] + 0.1 * torch.randn(len(y), 8, generator=g)

    def distance():
        return (gen.sample(attrs, 200).reshape(5, 200, 8).mean(1) - means).norm(dim=1).mean()

    try:
        before = distance()
        gen.fit(x, attrs[y])
        assert distance() < 0.1 * before
    finally:
        sys.modules.pop("czsl_example_generator", None)


def test_installed_example_keeps_the_generator_contract(installed, monkeypatch):
    # what a plugin's own tests run: every rule of the contract, built by name
    monkeypatch.syspath_prepend(str(installed))
    try:
        check_generator("example_generator", options={"ridge": 0.5})
    finally:
        sys.modules.pop("czsl_example_generator", None)
