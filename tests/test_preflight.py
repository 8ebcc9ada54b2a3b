"""A study gets exactly the settings it names: swaps keep options, an option the chosen
component does not take is refused, and every run of ``czsl run`` and of a sweep is
checked (names, values, task split, device) before any starts."""

from __future__ import annotations

import json

import pytest
import torch

from czsl.cli import main
from czsl.plugins import Plugins
from czsl.sweep import driver
from czsl.sweep.grid import parse_grid
from czsl.sweep.store import SweepDir
from tests.sweep_helpers import FAST, grid_text

#: a tiny continual scenario with generative replay and a CVAE of its own options
SCENARIO = """
[data.synthesis]
n_classes = 12
n_unseen = 2
samples_per_class = 10
n_features = 8
n_attributes = 4

[protocol]
task_sizes = [4, 4]

[train]
epochs = 1

[replay]
name = "generative_replay"
replay_per_class = 2

[generator]
name = "cvae"
latent_dim = 4
hidden = 8
epochs = 1
fast_math = true
"""


def _run(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def _sweep_refused(tmp_path, capsys, methods, *flags, extra=""):
    """Run a sweep that must be refused: its one-line error, nothing written."""
    grid = tmp_path / "grid.toml"
    grid.write_text(grid_text(methods, extra=extra))
    code, err = _run(capsys, "sweep", "run", grid, "--out", tmp_path / "out", *flags)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()
    return err


# ------------------------------------------------------------------ czsl run


def test_an_option_the_swapped_in_plugin_does_not_take_is_one_line(tmp_path, capsys):
    path = tmp_path / "s.toml"
    path.write_text(SCENARIO)
    runs = tmp_path / "runs"
    code, err = _run(capsys, "run", path, "--runs-dir", runs, "--no-progress",
                     "--set", "generator=fclswgan")
    assert code == 2 and err.count("\n") == 1, err
    unknown, _, rest = err.partition("; it takes ")
    assert "generator 'fclswgan'" in unknown and "[generator] table" in rest
    # every option it does not take, at once, and none that it does
    assert unknown.endswith("does not take the options 'fast_math', 'latent_dim'")
    assert "generator={name=\"fclswgan\", ...}" in rest  # how to replace the table
    assert not runs.exists()
    # the explicit replacement drops the scenario file's options: it builds
    code, _ = _run(capsys, "run", path, "--runs-dir", runs, "--no-progress",
                   "--set", 'generator={name="fclswgan", hidden=8, epochs=1, '
                            'cls_epochs=1, max_iterations=1}')
    assert code == 0


def test_a_generator_loss_option_names_the_losses_of_the_generator_table(tmp_path, capsys):
    path = tmp_path / "s.toml"
    path.write_text(SCENARIO)
    code, err = _run(capsys, "run", path, "--runs-dir", tmp_path / "runs",
                     "--set", "generator.losses=[{name='anti_collapse', wieght=1, eps=1}]")
    assert code == 2 and err.count("\n") == 1
    assert "does not take the option 'wieght' (did you mean 'weight'" in err
    assert "[generator] losses" in err and "[generator_loss]" not in err
    assert "'eps'" not in err.partition("; it takes")[0]


def test_an_unused_generator_is_checked_too(tmp_path, capsys):
    code, err = _run(capsys, "run", "--runs-dir", tmp_path / "runs", "--no-progress",
                     *sum((["--set", s] for s in FAST), []), "--set", "generator.epochs=0")
    assert code == 2 and "epochs must be a positive integer" in err
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------ sweeps


@pytest.mark.parametrize("sets, words", [
    (["regularizer.ewc_lambda=1", "regularizer=mas"],
     ["cell method=bad, seed=0", "regularizer 'mas'", "does not take the option 'ewc_lambda'",
      "--set 'regularizer={name=\"mas\", ...}'"]),
    (["regularizer=ewc_online", "regularizer.ewc_lambda=-1"],
     ["cell method=bad, seed=0", "ewc_lambda must be a finite number >= 0"]),
    (["protocol.task_sizes=[15, 15]"], ["cell method=bad", "add up to 30 classes",
                                        "use fewer or smaller tasks"]),
    (["protocol.task_sizes=[1, 4]"], ["cell method=bad", "the first task has one class",
                                      "Give it two or more classes"]),
    (["generator.epochs=0"], ["cell method=bad", "epochs must be a positive integer"]),
])
def test_a_bad_cell_is_refused_before_any_run(tmp_path, capsys, sets, words):
    methods = {"good": ["regularizer=none"], "bad": sets}
    for flags in ((), ("--dry-run",)):
        err = _sweep_refused(tmp_path, capsys, methods, *flags)
        for word in words:
            assert word in err, err


def test_cuda_without_a_gpu_is_refused_unless_the_runs_go_to_a_cluster(tmp_path, capsys,
                                                                      monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    methods = {"Sequential": ["regularizer=none"]}
    err = _sweep_refused(tmp_path, capsys, methods, "--device", "cuda", "--dry-run")
    assert "cell method=Sequential, seed=0" in err and "use --device cpu" in err
    # a Ray cluster's workers may have the GPUs this machine lacks
    grid = tmp_path / "grid.toml"
    specs = driver.plan(parse_grid(grid), SweepDir(tmp_path / "out"), driver.Options(
        backend="ray", address="127.0.0.1:6379", device="cuda", dry_run=True))
    assert [s["document"]["device"] for s in specs] == ["cuda", "cuda"]


def test_each_distinct_plugin_table_is_built_once(tmp_path, monkeypatch):
    built = []
    make = Plugins.make

    def counted(self, kind, name, options, **args):
        built.append((kind, name, json.dumps(options, sort_keys=True)))
        return make(self, kind, name, options, **args)

    monkeypatch.setattr(Plugins, "make", counted)
    grid = tmp_path / "grid.toml"  # 3 x 2 cells that differ in no plugin table
    grid.write_text(grid_text({"a": ["train.lr=0.01"], "b": ["train.lr=0.02"],
                               "c": ["train.lr=0.03"]}))
    specs = driver.plan(parse_grid(grid), SweepDir(tmp_path / "out"), driver.Options())
    assert len(specs) == 6
    # the model, the regularizer and the replay once per seed (a synthetic dataset is
    # drawn from the seed); the (unused) generator, which sees only its sizes, once
    assert sorted(kind for kind, _, _ in built) == sorted(
        ["model", "regularizer", "replay"] * 2 + ["generator"])


def test_the_dry_run_shows_each_cells_plugin_tables(tmp_path, capsys):
    grid = tmp_path / "grid.toml"
    grid.write_text(grid_text({"EWC": ["regularizer=ewc_online", "regularizer.gamma=0.5"],
                               "GR": ['replay={name="generative_replay", replay_per_class=3}',
                                      "generator.epochs=2"]}))
    code = main(["sweep", "run", str(grid), "--out", str(tmp_path / "out"), "--dry-run"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0 and len(lines) == 5
    ewc = [ln for ln in lines if "method=EWC, seed=1" in ln]
    gr = [ln for ln in lines if "method=GR, seed=0" in ln]
    assert len(ewc) == len(gr) == 1
    assert ("model=attribute_embedder regularizer=ewc_online{gamma=0.5} replay=none "
            "generator=cvae  --set ") in ewc[0]
    assert ("regularizer=none replay=generative_replay{replay_per_class=3} "
            "generator=cvae{epochs=2}") in gr[0]
    assert "--set 'replay={name=\"generative_replay\", replay_per_class=3}'" in gr[0]
