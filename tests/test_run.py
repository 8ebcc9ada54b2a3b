"""A whole continual run on synthetic data: learning, no leakage, results, TensorBoard."""

from __future__ import annotations

import json

import pytest
import torch
from avalanche.core import SupervisedPlugin
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from czsl.config import load_scenario
from czsl.run import run_scenario

FAST = ["train.epochs=2", "data.synthesis.samples_per_class=40"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One default synthetic run (fewer epochs), shared by the tests below."""
    runs = tmp_path_factory.mktemp("runs")
    scenario = load_scenario(None, FAST)
    return run_scenario(scenario, runs_dir=runs, progress=False, echo=lambda _: None)


def test_run_learns_and_unseen_accuracy_beats_chance(finished):
    res = finished.results
    n_classes = 50
    chance = 100.0 / n_classes  # generalized prediction among all classes
    assert res["n_tasks"] == 5 and res["dataset"] == "synthetic"
    assert res["summary"]["mUA"] > 4 * chance, res["summary"]
    assert res["summary"]["mSA"] > 10 * chance, res["summary"]
    # the last step has no unseen class, so UA and H are undefined there
    assert res["metrics"]["steps"]["UA"][-1] is None


def test_results_json_and_scenario_are_written(finished):
    on_disk = json.loads((finished.run_dir / "results.json").read_text())
    assert on_disk == finished.results
    assert on_disk["seed"] == 0 and on_disk["semi_synthetic"] is False
    scenario = (finished.run_dir / "scenario.toml").read_text()
    assert "task_sizes = [" in scenario and 'accuracy = "per_class"' in scenario


def test_tensorboard_has_per_step_and_per_task_scalars(finished):
    acc = EventAccumulator(str(finished.run_dir))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    h = acc.Scalars("step/H")
    assert [e.step for e in h] == [0, 1, 2, 3]  # H is undefined at the last step
    expected = finished.results["metrics"]["steps"]["H"][:4]
    assert [e.value for e in h] == pytest.approx(expected, rel=1e-5)
    assert "train/loss" in tags
    # one tag per task line in the run itself (a custom-scalars chart gathers them), and
    # no sub-run folders
    assert [t for t in tags if t.startswith("task_acc/")] == [
        f"task_acc/task_{k:02d}" for k in range(5)]
    assert not [p for p in finished.run_dir.iterdir() if p.is_dir()]


def test_run_folder_is_never_reused(finished):
    scenario = load_scenario(None, FAST + ["train.epochs=1"])
    again = run_scenario(scenario, runs_dir=finished.run_dir.parent, progress=False,
                         echo=lambda _: None)
    assert again.run_dir.name == "synthetic-2"
    assert json.loads((finished.run_dir / "results.json").read_text()) == finished.results


class _VisibleSpy(SupervisedPlugin):
    """Records which classes the model may use, and which the loss saw, per iteration."""

    def __init__(self):
        super().__init__()
        self.records = []

    def after_forward(self, strategy, *args, **kwargs):
        step = strategy.experience.current_experience
        finite = torch.isfinite(strategy.mb_output).any(0)
        self.records.append((step, strategy.model.visible.clone(), finite,
                             set(strategy.mb_y.tolist())))


def test_training_never_uses_attributes_of_classes_not_yet_seen(tmp_path):
    from czsl.config import ProtocolConfig
    from czsl.data.synthetic import make_synthetic
    from czsl.plugins import Plugins
    from czsl.predict import predict
    from czsl.streams import build_stream
    from tests.conftest import Tiny

    data = make_synthetic(n_classes=9, n_attributes=4, n_features=8, samples_per_class=20,
                          n_unseen=3, seed=0)
    stream = Tiny(build_stream(data, ProtocolConfig(name="grw", task_sizes=[3, 3, 3]), seed=0))
    model = Plugins().make("model", "attribute_embedder", {"hidden_dims": [16]},
                           n_features=8, attributes=stream.attributes)
    rows_embedded = []
    model.embedder.register_forward_hook(lambda m, inp, out: rows_embedded.append(inp[0]))
    spy = _VisibleSpy()
    learner = stream.learner([spy], model=model,
                             optimizer=torch.optim.Adam(model.parameters(), 1e-3),
                             train_mb_size=8, train_epochs=1)
    for step in range(3):
        rows_embedded.clear()
        stream.train(learner, step)
        seen = stream.seen_mask(step)
        allowed = stream.attributes[seen]
        for rows in rows_embedded:  # the embedder only ever saw seen classes' attributes
            assert rows.shape[0] == int(seen.sum())
            assert torch.equal(rows, model.attributes[seen])
        assert allowed.shape[0] == 3 * (step + 1)
        # the view a plugin sees: the visible classes' attributes, nothing of the others
        assert torch.equal(stream.view.visible, seen)
        assert torch.equal(stream.view.attributes_of(torch.nonzero(seen)[:, 0]),
                           stream.attributes[seen].float())
        if step < 2:
            with pytest.raises(PermissionError, match="not visible"):
                stream.view.attributes_of(torch.nonzero(~seen)[:, 0])
        logits = predict(model, stream.test_x, n_classes=9, batch_size=64, device="cpu")
        assert torch.isfinite(logits).all() and logits.shape == (stream.test_y.numel(), 9)
    for step, visible, finite, labels in spy.records:
        assert torch.equal(visible, stream.seen_mask(step))
        assert torch.equal(finite, stream.seen_mask(step))
        assert labels <= set(stream.tasks[step])


def test_same_seed_same_results(tmp_path):
    scenario = load_scenario(None, ["train.epochs=1", "data.synthesis.samples_per_class=20"])
    a = run_scenario(scenario, runs_dir=tmp_path, progress=False, echo=lambda _: None)
    b = run_scenario(scenario, runs_dir=tmp_path, progress=False, echo=lambda _: None)
    assert a.results["metrics"] == b.results["metrics"]
