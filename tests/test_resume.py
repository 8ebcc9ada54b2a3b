"""Resuming a run (czsl run --resume), determinism, and one clear error per bad input.

Covered elsewhere (not repeated here): the readers' messages for every kind of corrupt
``.mat`` / ``.npz`` (tests/test_data.py, with hypothesis fuzzing of both readers), the
scenario parser's messages (tests/test_config.py), unknown plugin names with a
suggestion, a plugin that fails to import or breaks its hook contract
(tests/test_plugins.py), ``--device cuda`` without a GPU and an unknown regularizer
through the CLI (tests/test_cli.py). Here: the same failures through ``czsl run``
(exit 2, one line, no traceback, no run folder), checkpoints and ``--resume``
(including a run killed with SIGKILL in a subprocess), determinism, and plugins that
fail during training.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import czsl
from czsl import checkpoint
from czsl.checkpoint import (
    CHECKPOINT_DIR,
    STATE_FILE,
    Unpicklable,
    dump_learner_state,
    has_checkpoint,
    load_checkpoint,
    load_learner_state,
)
from czsl.cli import main
from czsl.config import load_scenario
from czsl.data import make_synthetic, write_npz
from czsl.errors import CZSLError, PluginError
from czsl.learner import ZSLLearner
from czsl.observers import Checkpointer
from czsl.board import LossLogger, RunLogger
from czsl.run import resume_run, run_scenario
from czsl.runfolder import run_lock
from tests.conftest import write_plugin_package
from tests.test_data import write_xlsa17, xlsa17_vars

REPO = Path(__file__).resolve().parents[1]
QUIET = {"progress": False, "echo": lambda _: None}
#: A small, fast continual run (5 tasks of 10 classes).
FAST = ["train.epochs=2", "data.synthesis.samples_per_class=20", "model.hidden_dims=[32]"]


def _same(a: dict, b: dict) -> None:
    """Two results.json documents agree on everything but the wall time."""
    assert set(a) == set(b)
    assert {k: v for k, v in a.items() if k != "wall_time_s"} == {
        k: v for k, v in b.items() if k != "wall_time_s"}


def _interrupt_at(monkeypatch, step: int) -> None:
    """Make the next run stop (like Ctrl-C) when it starts task ``step``."""
    train = ZSLLearner.train_task

    def stop(self, task):
        if task == step:
            raise KeyboardInterrupt
        return train(self, task)

    monkeypatch.setattr(ZSLLearner, "train_task", stop)


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


# --------------------------------------------------------------------------- resume


@pytest.mark.parametrize("overrides", [
    # EWC's state: importances, anchors, and Avalanche's task counter (the clock); a
    # large lambda so that losing any of them changes the results
    ["regularizer=ewc_online", "regularizer.ewc_lambda=10000.0"],
    # replay of all past data: the plugin's state is a list of Avalanche datasets, and
    # its class is made inside a factory (not picklable by reference)
    ["replay=multitask", "train.loss_classes='seen'"],
    # a learning-rate schedule: Avalanche's LRSchedulerPlugin holds a StepLR
    ["train.lr_step=1", "train.lr_gamma=0.5"],
], ids=["ewc_online", "multitask", "lr_schedule"])
def test_interrupted_run_resumes_to_the_uninterrupted_results(tmp_path, monkeypatch,
                                                               overrides):
    scenario = load_scenario(None, FAST + overrides)
    reference = run_scenario(scenario, runs_dir=tmp_path / "ref", **QUIET)
    assert not (reference.run_dir / CHECKPOINT_DIR).exists()  # finished: no checkpoint

    _interrupt_at(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        run_scenario(scenario, runs_dir=tmp_path / "runs", **QUIET)
    monkeypatch.undo()
    run_dir = tmp_path / "runs" / "synthetic"
    assert not (run_dir / "results.json").exists()
    assert load_checkpoint(run_dir).step == 2
    # what a kill while writing task 3's checkpoint leaves: a half-written temp file
    (run_dir / CHECKPOINT_DIR / ".state.pt.x.tmp").write_bytes(b"half")

    notes = []
    resumed = resume_run(run_dir, progress=False, echo=notes.append)
    assert any(f"resuming {run_dir} after task 2" in n for n in notes), notes
    _same(resumed.results, reference.results)
    assert json.loads((run_dir / "results.json").read_text()) == resumed.results
    assert not (run_dir / CHECKPOINT_DIR).exists()


def test_a_resumed_run_shows_each_training_iteration_once_in_tensorboard(tmp_path,
                                                                        monkeypatch):
    """The loss points a session logged for the task it did not finish are purged."""
    scenario = load_scenario(None, FAST + ["train.epochs=3"])
    reference = run_scenario(scenario, runs_dir=tmp_path / "ref", **QUIET)
    after_epoch = LossLogger.after_training_epoch

    def stop(self, strategy, *args, **kwargs):
        after_epoch(self, strategy, *args, **kwargs)
        if strategy.experience.current_experience == 3 and strategy.clock.train_exp_epochs == 1:
            self.logger.writer.flush()  # on disk, as after TensorBoard's 120 s flush
            raise KeyboardInterrupt

    monkeypatch.setattr(LossLogger, "after_training_epoch", stop)
    with pytest.raises(KeyboardInterrupt):
        run_scenario(scenario, runs_dir=tmp_path / "runs", **QUIET)
    monkeypatch.undo()
    resume_run(tmp_path / "runs" / "synthetic", **QUIET)

    steps = {}
    for name, folder in (("resumed", tmp_path / "runs" / "synthetic"),
                         ("reference", reference.run_dir)):
        acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
        acc.Reload()
        steps[name] = [e.step for e in acc.Scalars("train/loss")]
    assert steps["resumed"] == steps["reference"]


def _board(run_dir) -> tuple[dict[str, list[tuple[int, object]]], list[int]]:
    """What TensorBoard shows of a run folder: ``tag -> [(step, value)]`` of every
    scalar and image, and the number of summary values in each event file."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0,
                                                         "tensors": 0})
    acc.Reload()
    shown = {tag: [(e.step, e.value) for e in acc.Scalars(tag)]
             for tag in acc.Tags()["scalars"]}
    shown.update({tag: [(e.step, e.encoded_image_string) for e in acc.Images(tag)]
                  for tag in acc.Tags()["images"]})
    per_file = [sum(len(event.summary.value) for event in EventFileLoader(str(f)).Load())
                for f in sorted(run_dir.glob("events.out.tfevents.*"))]
    return shown, per_file


def _stop_between_board_and_checkpoint(monkeypatch, step):
    save = Checkpointer.after_task

    def killed(self, end):
        if end.step == step:  # TensorBoard has the step (log_step flushes), no checkpoint
            raise KeyboardInterrupt
        return save(self, end)

    monkeypatch.setattr(Checkpointer, "after_task", killed)


def _stop_halfway_through_logging(monkeypatch, step):
    image = RunLogger._image

    def killed(self, tag, pixels, at):
        if at == step and tag == "figures/forgetting_matrix":
            self.writer.flush()  # the scalars and the first figure are on disk
            raise KeyboardInterrupt
        return image(self, tag, pixels, at)

    monkeypatch.setattr(RunLogger, "_image", killed)


@pytest.mark.parametrize("stop", [_stop_between_board_and_checkpoint,
                                  _stop_halfway_through_logging],
                         ids=["between_board_and_checkpoint", "halfway_through_logging"])
def test_each_step_shows_once_in_tensorboard_after_a_resume(tmp_path, monkeypatch, stop):
    """A step logged (wholly or in part) before the stop and logged again by the resumed
    session shows once, with the values of an uninterrupted run, and no session leaves
    an empty event file."""
    scenario = load_scenario(None, FAST + ["threads=1"])
    reference = run_scenario(scenario, runs_dir=tmp_path / "ref", **QUIET)
    run_dir = tmp_path / "runs" / "synthetic"
    stop(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        run_scenario(scenario, runs_dir=tmp_path / "runs", **QUIET)
    monkeypatch.undo()
    assert load_checkpoint(run_dir).step == 1
    saved_time = load_checkpoint(run_dir).elapsed_s
    before, _ = _board(run_dir)
    assert [s for s, _ in before["step/SA"]] == [0, 1, 2]  # step 2 reached TensorBoard
    # a second stop (at task 3) and a second resume: no point doubles across sessions
    _interrupt_at(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        resume_run(run_dir, **QUIET)
    monkeypatch.undo()
    resumed = resume_run(run_dir, **QUIET).results
    _same(resumed, reference.results)
    assert resumed["wall_time_s"] > saved_time > 0  # the sessions' times add up

    shown, per_file = _board(run_dir)
    expected, _ = _board(reference.run_dir)
    assert len(per_file) == 3 and min(per_file) > 0  # one event file per session, none empty
    assert shown.keys() == expected.keys()
    for tag, points in shown.items():
        steps = [s for s, _ in points]
        assert len(steps) == len(set(steps)), (tag, steps)
        assert steps == [s for s, _ in expected[tag]], tag
        if not isinstance(points[0][1], bytes):  # scalars: the uninterrupted run's values
            assert points == expected[tag], tag


def test_killed_run_resumes_through_the_cli_to_the_same_results(tmp_path):
    """SIGKILL in the middle of a task, then ``czsl run --resume`` in a new process."""
    # one thread in both processes: the run records its thread count, and this pytest
    # process may have another than a fresh interpreter's default
    sets = ["--set", "data.synthesis.samples_per_class=20", "--set", "model.hidden_dims=[64]",
            "--set", "regularizer=agem", "--set", "train.epochs=30", "--threads", "1"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    run_dir = tmp_path / "killed" / "k"
    proc = subprocess.Popen([sys.executable, "-m", "czsl.cli", "run", "--no-progress",
                             "--runs-dir", str(run_dir.parent), "--name", "k", *sets],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        # wait for task 1's checkpoint (no time limit: a loaded machine is slow, not
        # wrong); the run then has 3 tasks of 30 epochs to go
        while True:
            assert proc.poll() is None, f"the run ended before it was killed: {proc.stderr.read()}"
            if (run_dir / CHECKPOINT_DIR / STATE_FILE).is_file() and load_checkpoint(
                    run_dir).step >= 1:
                break
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert not (run_dir / "results.json").exists()
    killed_at = load_checkpoint(run_dir).step
    assert 1 <= killed_at < 4

    resumed = subprocess.run([sys.executable, "-m", "czsl.cli", "run", "--resume",
                              str(run_dir), "--no-progress"],
                             capture_output=True, text=True, env=env, check=False)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {run_dir} after task {killed_at}" in resumed.stdout

    # the uninterrupted run, same scenario and seed, in this process
    code = main(["run", "--no-progress", "--runs-dir", str(tmp_path / "ref"), "--name", "k",
                 *sets])
    assert code == 0
    reference = json.loads((tmp_path / "ref" / "k" / "results.json").read_text())
    _same(json.loads((run_dir / "results.json").read_text()), reference)
    assert reference["seed"] == 0 and reference["regularizer"] == "agem"


def test_same_scenario_and_seed_give_identical_results(tmp_path):
    # A-GEM draws its memory with Python's random, batches with torch's generator
    scenario = load_scenario(None, FAST + ["regularizer=agem", "seed=3"])
    a = run_scenario(scenario, runs_dir=tmp_path, **QUIET)
    b = run_scenario(scenario, runs_dir=tmp_path, **QUIET)
    assert a.results["seed"] == 3
    _same(a.results, b.results)
    assert a.results["wall_time_s"] > 0


def test_resume_refuses_what_cannot_be_resumed(tmp_path, monkeypatch, capsys):
    scenario = load_scenario(None, FAST)
    done = run_scenario(scenario, runs_dir=tmp_path, **QUIET).run_dir
    with pytest.raises(CZSLError, match="has finished .results.json exists.; there is nothing "
                                        "to resume"):
        resume_run(done, **QUIET)
    with pytest.raises(CZSLError, match="no such run folder"):
        resume_run(tmp_path / "nowhere", **QUIET)
    with pytest.raises(CZSLError, match="not a czsl run folder"):
        resume_run(tmp_path, **QUIET)

    _interrupt_at(monkeypatch, 0)  # stopped before a task finished: no folder
    with pytest.raises(KeyboardInterrupt):
        run_scenario(scenario, runs_dir=tmp_path, **QUIET)
    monkeypatch.undo()
    assert not (tmp_path / "synthetic-2").exists()
    (tmp_path / "synthetic-2").mkdir()  # a folder left by an older czsl
    (tmp_path / "synthetic-2" / "scenario.toml").write_text(
        (done / "scenario.toml").read_text())
    with pytest.raises(CZSLError, match="stopped before its first task finished"):
        resume_run(tmp_path / "synthetic-2", **QUIET)

    _interrupt_at(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        run_scenario(scenario, runs_dir=tmp_path, **QUIET)
    monkeypatch.undo()
    run_dir = tmp_path / "synthetic-3"
    with run_lock(run_dir):  # as if another process were running it
        with pytest.raises(CZSLError, match="in use by another czsl process"):
            resume_run(run_dir, **QUIET)

    toml = run_dir / "scenario.toml"
    original = toml.read_text()
    toml.write_text(original.replace("epochs = 2", "epochs = 3"))
    with pytest.raises(CZSLError, match="was edited after the run started"):
        resume_run(run_dir, **QUIET)
    toml.write_text(original)

    code, _, err = _cli(capsys, "run", "--resume", str(run_dir), "--set", "train.epochs=3")
    assert code == 2 and "drop --set" in err and "Traceback" not in err
    state = run_dir / CHECKPOINT_DIR / STATE_FILE
    good = state.read_bytes()
    state.write_bytes(good[: len(good) // 2])
    code, _, err = _cli(capsys, "run", "--resume", str(run_dir))
    assert code == 2 and "is unreadable" in err and "Traceback" not in err
    for change, words in ((lambda d: d.update(format=99), "has checkpoint format 99, "
                           f"written by czsl {czsl.__version__}; this czsl"),
                          # formats before 4 record no version: czsl 0.1.0 wrote them
                          (lambda d: d.update(format=3) or d.pop("czsl"),
                           "has checkpoint format 3, written by czsl 0.1.0 from before "
                           "checkpoint format 4; this czsl (0.1.0) reads format 4: finish "
                           "the run with the czsl that wrote it, or start it again with: "
                           "czsl run"),
                          (lambda d: d.update(plugin_classes=["x.Other"]),
                           "the run started with the plugin classes ['x.Other']")):
        document = pickle.loads(good)
        change(document)
        state.write_bytes(pickle.dumps(document))
        with pytest.raises(CZSLError, match=re.escape(words)):
            resume_run(run_dir, **QUIET)
        code, _, err = _cli(capsys, "run", "--resume", str(run_dir))
        assert code == 2 and len(err.strip().splitlines()) == 1, err
    state.write_bytes(good)
    code, out, err = _cli(capsys, "run", "--resume", str(run_dir), "--no-progress")
    assert code == 0, err
    assert (run_dir / "results.json").is_file()


def test_resume_reads_the_data_where_they_are_now_and_checks_they_are_the_same(
        tmp_path, monkeypatch):
    data = make_synthetic(n_classes=6, n_attributes=4, n_features=8, samples_per_class=12,
                          n_unseen=2, seed=0)
    (tmp_path / "a").mkdir()
    write_npz(data, tmp_path / "a" / "TOY.npz")
    scenario = load_scenario(None, ["data.dataset='TOY'", "protocol.task_sizes=[2, 2, 2]",
                                    "train.epochs=1", "model.hidden_dims=[8]"])
    reference = run_scenario(scenario, data_dir=tmp_path / "a", runs_dir=tmp_path / "ref",
                             **QUIET)
    _interrupt_at(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        run_scenario(scenario, data_dir=tmp_path / "a", runs_dir=tmp_path, **QUIET)
    monkeypatch.undo()
    run_dir = tmp_path / "synthetic"

    (tmp_path / "a").rename(tmp_path / "b")  # the data moved
    with pytest.raises(CZSLError, match=r"data_dir .*a is not an existing folder"):
        resume_run(run_dir, **QUIET)
    other = make_synthetic(n_classes=6, n_attributes=4, n_features=8, samples_per_class=12,
                           n_unseen=2, seed=1)
    (tmp_path / "c").mkdir()
    write_npz(other, tmp_path / "c" / "TOY.npz")
    with pytest.raises(CZSLError, match="differ from the data the run started with"):
        resume_run(run_dir, data_dir=tmp_path / "c", **QUIET)
    resumed = resume_run(run_dir, data_dir=tmp_path / "b", **QUIET)
    _same(resumed.results, reference.results)


# --------------------------------------------------------------------------- plugins

FLAKY = """
    from czsl import Component, hookimpl

    #: the test sets this to False to "fix" the plugin before resuming
    BROKEN = True

    @hookimpl
    def czsl_components():
        return [Component("regularizer", "flaky", "raises during training at task fail_at")]

    @hookimpl
    def czsl_make_regularizer(name, options):
        if name != "flaky":
            return None
        from avalanche.core import SupervisedPlugin

        class Flaky(SupervisedPlugin):
            def __init__(self, fail_at, keep_lambda=False):
                super().__init__()
                self.fail_at = fail_at
                self.steps = 0
                if keep_lambda:
                    self.hook = lambda: None  # pickle cannot save this

            def before_backward(self, strategy, **kwargs):
                self.steps += 1
                if BROKEN and strategy.clock.train_exp_counter == self.fail_at:
                    raise RuntimeError("flaky exploded")

        return [Flaky(**options)]
"""


@pytest.fixture
def flaky(plugin_dir):
    """A third-party regularizer (package czsl-flaky) that raises during training."""
    write_plugin_package(plugin_dir, "czsl-flaky", "czsl_test_flaky",
                         {"flaky": "czsl_test_flaky"}, FLAKY)
    yield
    sys.modules.pop("czsl_test_flaky", None)


def test_plugin_raising_during_training_is_named_and_the_run_can_resume(tmp_path, capsys,
                                                                        flaky):
    argv = ["run", "--runs-dir", str(tmp_path), "--no-progress", *sum(
        (["--set", s] for s in FAST + ["regularizer=flaky", "regularizer.fail_at=2"]), [])]
    code, out, err = _cli(capsys, *argv)
    assert code == 2
    assert "Traceback" not in err and err.count("\n") == 1
    assert err.startswith("czsl: error: regularizer 'flaky' (plugin 'flaky' from czsl-flaky "
                          "0.1) failed during task 2, in Flaky.before_backward: RuntimeError: "
                          "flaky exploded.")
    run_dir = tmp_path / "synthetic"
    assert f"tasks 0-1 are saved: once the plugin is fixed, continue with: czsl run --resume " \
           f"{run_dir}" in err
    assert not (run_dir / "results.json").exists()
    assert load_checkpoint(run_dir).step == 1

    sys.modules["czsl_test_flaky"].BROKEN = False  # the plugin is fixed
    code, out, err = _cli(capsys, "run", "--resume", str(run_dir), "--no-progress")
    assert code == 0, err
    results = json.loads((run_dir / "results.json").read_text())
    assert results["regularizer"] == "flaky" and len(results["metrics"]["steps"]["H"]) == 5


def test_plugin_failing_in_the_first_task_leaves_no_run_folder(tmp_path, capsys, flaky):
    code, _, err = _cli(capsys, "run", "--runs-dir", str(tmp_path), "--no-progress",
                        "--set", "regularizer=flaky", "--set", "regularizer.fail_at=0",
                        *sum((["--set", s] for s in FAST), []))
    assert code == 2 and "Traceback" not in err
    assert "failed during task 0" in err and "No task had finished" in err
    assert list(tmp_path.iterdir()) == [tmp_path / "site"]  # the plugin only

    with pytest.raises(PluginError) as info:  # --debug: the traceback of the cause
        main(["--debug", "run", "--runs-dir", str(tmp_path), "--no-progress",
              "--set", "regularizer=flaky", "--set", "regularizer.fail_at=0",
              *sum((["--set", s] for s in FAST), [])])
    assert isinstance(info.value.__cause__, RuntimeError)


def test_plugin_whose_state_cannot_be_pickled_is_named(tmp_path, flaky):
    scenario = load_scenario(None, FAST + ["regularizer=flaky", "regularizer.fail_at=-1",
                                           "regularizer.keep_lambda=true"])
    with pytest.raises(PluginError) as err:
        run_scenario(scenario, runs_dir=tmp_path, **QUIET)
    message = str(err.value)
    assert "regularizer 'flaky' (plugin 'flaky' from czsl-flaky 0.1) cannot be " \
           "checkpointed (found when the run was built): its attribute 'hook' cannot be " \
           "pickled" in message
    assert "__getstate__/__setstate__" in message
    assert list(tmp_path.iterdir()) == [tmp_path / "site"]  # the plugin only


@pytest.mark.parametrize("overrides, step", [
    (["train.lr=1e30"], 0),
    # EWC's penalty is 0 during task 0; from task 1 on its weight blows plain SGD up
    (["regularizer=ewc_online", "regularizer.ewc_lambda=1e30", "train.optimizer='sgd'"], 1),
])
def test_a_diverging_run_stops_at_once_and_leaves_nothing(tmp_path, capsys, overrides, step):
    code, _, err = _cli(capsys, "run", "--runs-dir", str(tmp_path), "--no-progress",
                        *sum((["--set", s] for s in FAST + overrides), []))
    assert code == 2 and "Traceback" not in err, err
    assert f"training diverged during task {step}: the model's " in err
    assert "hold NaN or infinity" in err and "Lower the learning rate" in err
    assert not any(tmp_path.iterdir())  # neither results nor a checkpoint to resume


def test_a_resumed_run_that_diverges_is_removed_like_a_fresh_one(tmp_path, monkeypatch,
                                                                   capsys):
    # EWC's huge weight blows plain SGD up from task 1 on: stop before it, then resume
    overrides = ["regularizer=ewc_online", "regularizer.ewc_lambda=1e30",
                 "train.optimizer='sgd'"]
    scenario = load_scenario(None, FAST + overrides)
    _interrupt_at(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        run_scenario(scenario, runs_dir=tmp_path, **QUIET)
    monkeypatch.undo()
    run_dir = tmp_path / scenario.name
    assert has_checkpoint(run_dir)  # task 0 saved: resumable
    code, _, err = _cli(capsys, "run", "--resume", str(run_dir), "--no-progress")
    assert code == 2 and "Traceback" not in err, err
    assert "training diverged during task 1: the model's " in err
    assert f"({run_dir} was removed)" in err  # the message a fresh run gives
    assert not any(tmp_path.iterdir())  # resuming it again would diverge again


def test_errors_of_czsl_itself_are_not_blamed_on_a_plugin(tmp_path, monkeypatch):
    from czsl.learner import MaskedCrossEntropy

    def broken(self, logits, targets):
        raise ZeroDivisionError("a czsl bug")

    monkeypatch.setattr(MaskedCrossEntropy, "forward", broken)
    # A-GEM calls czsl's loss itself: still czsl's error, unchanged, with its traceback
    scenario = load_scenario(None, FAST + ["regularizer=agem"])
    with pytest.raises(ZeroDivisionError, match="a czsl bug"):
        run_scenario(scenario, runs_dir=tmp_path, **QUIET)
    assert not any(tmp_path.glob("*/results.json"))


# --------------------------------------------------------------------------- checkpoint


class _Loader:
    """Stands for a data loader: ``iter()`` gives a fresh generator."""

    def __init__(self, items):
        self.items = items

    def __iter__(self):
        yield from self.items


class _Custom:
    """A plugin-like object with its own pickling state."""

    def __init__(self):
        self.kept, self.dropped = 1, (lambda: 0)

    def __getstate__(self):
        return {"kept": self.kept}

    def __setstate__(self, state):
        self.kept = state["kept"] * 10


def test_plugin_state_keeps_references_and_unstarted_iterators():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = _Loader([1, 2, 3])
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "clock": None,
             "plugins": [{"model": model, "weight": model[0].weight, "head": model[0],
                          "optimizer": optimizer,
                          "loader": loader, "it": iter(loader), "copy": torch.ones(2)},
                         checkpoint.object_state(_Custom())]}
    blobs = dump_learner_state(state, {"model": model, "optimizer": optimizer})

    rebuilt = torch.nn.Sequential(torch.nn.Linear(2, 2))
    new_optimizer = torch.optim.SGD(rebuilt.parameters(), lr=0.1)
    back = load_learner_state(blobs, {"model": rebuilt, "optimizer": new_optimizer})
    first = back["plugins"][0]
    assert first["model"] is rebuilt and first["head"] is rebuilt[0]
    assert first["optimizer"] is new_optimizer
    assert first["weight"] is rebuilt[0].weight
    assert list(first["it"]) == [1, 2, 3] and first["loader"] is not loader
    assert torch.equal(first["copy"], torch.ones(2))
    custom = _Custom()
    checkpoint.restore_object_state(custom, back["plugins"][1])
    assert custom.kept == 10  # __setstate__ was used

    started = iter(loader)
    next(started)
    with pytest.raises(Unpicklable) as err:
        dump_learner_state({"plugins": [{"ok": 1, "it": started}]}, {})
    assert err.value.path == ("plugins", 0, "it") and "has started" in str(err.value.cause)
    with pytest.raises(pickle.UnpicklingError, match="'model'"):
        load_learner_state(blobs, {})


# --------------------------------------------------------------------------- bad input


def _toy(folder: Path, change=None) -> Path:
    """``folder/TOY.npz``: a 6-class dataset, its arrays edited by ``change(arrays)``."""
    data = make_synthetic(n_classes=6, n_attributes=4, n_features=8, samples_per_class=10,
                          n_unseen=2, seed=0)
    write_npz(data, folder / "TOY.npz")
    if change is not None:
        arrays = dict(np.load(folder / "TOY.npz"))
        change(arrays)
        np.savez(folder / "TOY.npz", **arrays)
    return folder


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _setitem(key, make):
    return lambda arrays: arrays.__setitem__(key, make(arrays[key]))


def _with_inf(features):
    features = features.copy()
    features[3, 1] = np.inf
    return features


def _fewer_classes(arrays):
    # attributes (and names) for 4 classes, labels of 6
    arrays["attributes"] = arrays["attributes"][:4]
    arrays["class_names"] = arrays["class_names"][:4]


def _xlsa17_0_based(folder: Path) -> None:
    res, splits = xlsa17_vars()
    res["labels"] = res["labels"] - 1
    write_xlsa17(folder / "TOY", res, splits)


def _xlsa17_truncated(folder: Path) -> None:
    write_xlsa17(folder / "TOY", *xlsa17_vars())
    _truncate(folder / "TOY" / "res101.mat")


#: (id, how to make the data folder (None: no folder), scenario text (None: no file),
#:  extra argv, words the one-line message must contain)
TOY = ["--set", "data.dataset='TOY'", "--set", "protocol.task_sizes=[2, 2]"]
BAD_INPUTS = [
    ("data folder missing", None, None, TOY, ["data_dir", "nowhere", "not an existing folder"]),
    ("npz truncated", lambda d: _truncate(_toy(d) / "TOY.npz"), None, TOY,
     ["TOY.npz", "corrupt"]),
    ("npz missing key", lambda d: _toy(d, lambda a: a.pop("labels")), None, TOY,
     ["TOY.npz", "missing", "'labels'"]),
    ("npz wrong shape", lambda d: _toy(d, _setitem("features", lambda f: f[:, :, None])),
     None, TOY, ["TOY.npz", "'features'", "2-d"]),
    ("npz 1-based", lambda d: _toy(d, _setitem("trainval_loc", lambda i: i + 1)), None, TOY,
     ["TOY.npz", "'trainval_loc'", "1-based"]),
    ("npz NaN features", lambda d: _toy(d, _setitem("features", lambda f: f * np.nan)), None,
     TOY, ["TOY.npz", "NaN"]),
    ("npz inf features", lambda d: _toy(d, _setitem("features", _with_inf)), None, TOY,
     ["TOY.npz", "inf"]),
    ("attributes for fewer classes than labels", lambda d: _toy(d, _fewer_classes), None, TOY,
     ["TOY.npz", "'labels'", "4 classes"]),
    ("mat 0-based labels", _xlsa17_0_based, None, TOY, ["res101.mat", "0-based", "labels"]),
    ("mat truncated", _xlsa17_truncated, None, TOY, ["res101.mat", "truncated"]),
    ("scenario syntax error", None, "[train]\nepochs = = 2\n", [], ["bad.toml", "not valid TOML"]),
    ("scenario unknown key", None, "[train]\nepoch = 2\n", [],
     ["bad.toml", "unknown key 'train.epoch'", "did you mean 'epochs'"]),
    ("scenario wrong type", None, "[train]\nlr = 'fast'\n", [], ["bad.toml", "train.lr",
                                                               "expected float"]),
    ("more tasks than classes", None, "[protocol]\ntask_sizes = " + str([1] * 51) + "\n", [],
     ["task_sizes add up to 51 classes", "has 50"]),
    ("seed out of range", None, "seed = -1\n", [], ["bad.toml", "'seed'", "2**32"]),
    ("run name with a slash", None, None, ["--name", "a/b"], ["'name'", "'a/b'"]),
    ("resume with other options", None, None, ["--resume", "runs/x", "--name", "y"],
     ["--resume", "drop --name"]),
]


@pytest.mark.parametrize("make_data,text,argv,words", [c[1:] for c in BAD_INPUTS],
                         ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_one_clear_error_and_leaves_nothing(tmp_path, capsys, make_data, text,
                                                         argv, words):
    data = tmp_path / "nowhere"
    if make_data is not None:
        data = tmp_path / "data"
        data.mkdir()
        make_data(data)
    scenario = []
    if text is not None:
        (tmp_path / "bad.toml").write_text(text)
        scenario = [str(tmp_path / "bad.toml")]
    runs = tmp_path / "runs"
    code, out, err = _cli(capsys, "run", *scenario, "--runs-dir", str(runs), "--data-dir",
                          str(data), "--no-progress", *argv)
    assert code == 2, err
    assert err.startswith("czsl: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for word in words:
        assert word in err
    assert not runs.exists() or not any(runs.iterdir())


def test_third_party_plugin_that_fails_to_import_stops_only_runs_that_ask_for_it(
        tmp_path, capsys, plugin_dir):
    write_plugin_package(plugin_dir, "czsl-broken", "czsl_test_broken",
                         {"broken": "czsl_test_broken"}, "raise ImportError('no numpy 3')\n")
    code, _, err = _cli(capsys, "run", "--runs-dir", str(tmp_path / "runs"), "--no-progress",
                        "--set", "regularizer=broken")
    assert code == 2 and "Traceback" not in err
    assert "plugin 'broken' from package czsl-broken 0.1 failed to import" in err
    assert "pip uninstall czsl-broken" in err
    assert not (tmp_path / "runs").exists()
    # a run that does not ask for it is not stopped (tests/test_plugin_mistakes.py)


def test_a_resumed_generative_replay_logs_its_generator_losses_on(tmp_path, monkeypatch):
    """The generator comes back from the checkpoint as a new object: the resumed tasks'
    generator points are logged (from it), numbered on from the checkpoint's count."""
    scenario = load_scenario(None, FAST + ["replay=generative_replay", "generator=cvae",
                                           "generator.epochs=1", "replay.replay_per_class=5"])
    reference = run_scenario(scenario, runs_dir=tmp_path / "ref", **QUIET)
    _interrupt_at(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        run_scenario(scenario, runs_dir=tmp_path / "runs", **QUIET)
    monkeypatch.undo()
    resumed = resume_run(tmp_path / "runs" / "synthetic", **QUIET)

    shown = {}
    for name, folder in (("resumed", resumed.run_dir), ("reference", reference.run_dir)):
        acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
        acc.Reload()
        shown[name] = {tag: {e.step: e.value for e in acc.Scalars(tag)}
                       for tag in acc.Tags()["scalars"] if tag.startswith("generator/")}
    assert shown["resumed"] and set(shown["resumed"]) == set(shown["reference"])
    for tag, points in shown["resumed"].items():
        reference_points = shown["reference"][tag]
        # the last tasks' points are there, at the reference's indices and values
        assert max(points) == max(reference_points), tag
        assert all(reference_points[step] == pytest.approx(value)
                   for step, value in points.items()), tag
