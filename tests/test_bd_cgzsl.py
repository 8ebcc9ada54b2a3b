"""BD-CGZSL (plugins/bd_cgzsl.py): its replay filter by hand, its options, two-task runs
of the transductive and inductive rows, and a resume."""

from __future__ import annotations

import math

import pytest
import torch

from czsl.config import load_scenario
from czsl.errors import OptionError
from czsl.learner import ZSLLearner
from czsl.run import run_scenario
from czsl_plugins import bd_cgzsl

QUIET = {"progress": False, "echo": lambda _: None}
TINY = ["data.synthesis.n_classes=10", "data.synthesis.samples_per_class=12",
        "data.synthesis.n_features=8", "data.synthesis.n_attributes=4",
        "data.synthesis.n_unseen=2", "protocol.task_sizes=[3, 3, 2]", "train.epochs=2",
        "train.loss_classes='seen'", "train.lr=0.005", "model=grw_discriminator",
        "model.hidden=16", "replay=bd_cgzsl", "replay.hidden=16",
        "replay.replay_per_class=10", "replay.unseen_batch_size=4"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _run(tmp_path, *overrides):
    return run_scenario(load_scenario(None, TINY + list(overrides)), runs_dir=tmp_path,
                        **QUIET)


def test_replay_filter_keeps_agreement_and_labels_by_class_mean():
    eye = torch.eye(3)
    means = eye  # class c's mean on axis c
    embeddings = eye[[0, 2, 1]]  # D agrees on class 0, swaps classes 1 and 2
    fakes = eye[[0, 1, 1, 0, 2]]
    own = torch.tensor([0, 1, 2, 1, 2])
    # by mean: 0 1 1 0 2; by D: 0 2 2 0 1
    # right?   mean: T T F F T; D: T F T F F -> keep where equal: T F F T F
    keep, label = bd_cgzsl.agreement_filter(fakes, own, means, embeddings)
    assert keep.tolist() == [True, False, False, True, False]
    assert label.tolist() == [0, 1, 1, 0, 2]  # the class-mean prediction


@pytest.mark.parametrize("option, value", [
    ("transductive", "yes"), ("replay_per_class", 0), ("unseen_batch_size", 1.5),
    ("correlation_margins", [0.1, 0.2, 0.3]), ("correlation_weight", -1.0),
    ("real_pairs", "every")])
def test_bad_options_are_refused_in_one_line(option, value):
    with pytest.raises(OptionError) as err:
        bd_cgzsl.check_options(**{option: value})
    assert option in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(TypeError, match="unexpected option"):
        bd_cgzsl.check_options(replay_per_clas=3)


@pytest.mark.parametrize("transductive", [True, False], ids=["tr", "in"])
def test_two_task_run(tmp_path, transductive):
    run = _run(tmp_path, "protocol.task_sizes=[4, 4]",
               f"replay.transductive={str(transductive).lower()}",
               "replay.correlation_weight=20.0")
    assert run.results["replay"] == "bd_cgzsl" and run.results["n_tasks"] == 2
    assert run.results["semantic_transductive"] is transductive
    assert all(math.isfinite(v) for v in run.results["summary"].values()
               if isinstance(v, float))


def test_interrupted_run_resumes_to_the_uninterrupted_results(tmp_path, monkeypatch):
    from czsl.run import resume_run

    reference = _run(tmp_path / "ref")
    train = ZSLLearner.train_task

    def stop(self, task):
        if task == 2:
            raise KeyboardInterrupt
        return train(self, task)

    monkeypatch.setattr(ZSLLearner, "train_task", stop)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "runs")
    monkeypatch.undo()
    resumed = resume_run(tmp_path / "runs" / "synthetic", **QUIET)
    drop = {"wall_time_s"}
    assert {k: v for k, v in resumed.results.items() if k not in drop} == {
        k: v for k, v in reference.results.items() if k not in drop}
