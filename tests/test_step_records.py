"""A run keeps each step's figures, not its logits: the metrics are identical to the
reference computed from the whole logits history, and the checkpoint holds O(T) numbers
per step."""

from __future__ import annotations

import pytest
import torch

from czsl import metrics
from czsl.checkpoint import CHECKPOINT_DIR, load_checkpoint
from czsl.config import load_scenario
from czsl.learner import ZSLLearner
from czsl.run import run_scenario


def _equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.equal(a.nan_to_num(-1.0), b.nan_to_num(-1.0)) and torch.equal(
        a.isnan(), b.isnan())


@pytest.mark.parametrize("per_class", [True, False])
@pytest.mark.parametrize("shape", [(5, 400, 50, 5), (4, 300, 40, 3)])
def test_step_records_give_exactly_the_metrics_of_the_whole_history(per_class, shape):
    n_steps, n, n_classes, n_tasks = shape
    gen = torch.Generator().manual_seed(n)
    history = torch.randn(n_steps, n, n_classes, generator=gen)
    history[1, :10] = 0.0  # ties inside the AUSUC sweep and the argmax
    targets = torch.randint(0, n_classes, (n,), generator=gen)
    class_to_task = torch.randint(-1, n_tasks, (n_classes,), generator=gen)
    class_to_task[:n_tasks] = torch.arange(n_tasks)
    reference = metrics.run_metrics(history, targets, class_to_task, per_class=per_class)
    records = [metrics.step_record(history[s], targets, class_to_task, s, per_class=per_class)
               for s in range(n_steps)]
    got = metrics.metrics_from_steps(records, per_class=per_class)
    assert set(got.steps) == set(reference.steps)
    for key in reference.steps:
        assert _equal(got.steps[key], reference.steps[key]), key
    assert _equal(got.acc_matrix, reference.acc_matrix)
    assert _equal(got.task_forgetting, reference.task_forgetting)
    assert got.summary().keys() == reference.summary().keys()
    with pytest.raises(ValueError, match="at least one step"):
        metrics.metrics_from_steps([], per_class=per_class)


def test_the_checkpoint_holds_no_logits(tmp_path, monkeypatch):
    train = ZSLLearner.train_task

    def stop(self, task):
        if task == 3:
            raise KeyboardInterrupt
        return train(self, task)

    monkeypatch.setattr(ZSLLearner, "train_task", stop)
    scenario = load_scenario(None, ["train.epochs=1", "data.synthesis.samples_per_class=10",
                                    "model.hidden_dims=[16]", "threads=1"])
    with pytest.raises(KeyboardInterrupt):
        run_scenario(scenario, runs_dir=tmp_path, progress=False, echo=lambda _: None)
    run_dir = tmp_path / "synthetic"
    assert [p.name for p in (run_dir / CHECKPOINT_DIR).iterdir()] == ["state.pt"]
    records = load_checkpoint(run_dir).records
    assert len(records) == 3
    n_tasks = 5
    for record in records:
        assert record["acc_row"].shape == (1, n_tasks)
        assert all(v.numel() <= n_tasks for v in record.values())
