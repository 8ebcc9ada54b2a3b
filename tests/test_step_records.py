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


def _chunked(logits: torch.Tensor, seen: torch.Tensor, size: int) -> metrics.StepScorer:
    scorer = metrics.StepScorer(seen)
    for chunk in logits.split(size):
        scorer(chunk)
    return scorer


@pytest.mark.parametrize("per_class", [True, False])
@pytest.mark.parametrize("size", [1, 7, 64, 300])
def test_scoring_in_chunks_gives_exactly_the_figures_of_the_whole_logits(per_class, size):
    """Record, static GZSL figures and seen-unseen curve, bit for bit, with ties in the
    argmax, across the sides and in the AUSUC sweep (integer logits)."""
    n, n_classes, n_tasks = 300, 40, 4
    gen = torch.Generator().manual_seed(size)
    logits = torch.randint(-3, 4, (n, n_classes), generator=gen).float()
    targets = torch.randint(0, n_classes, (n,), generator=gen)
    class_to_task = torch.randint(-1, n_tasks, (n_classes,), generator=gen)
    class_to_task[:n_tasks] = torch.arange(n_tasks)
    for step in range(n_tasks):
        own = (class_to_task >= 0) & (class_to_task <= step)
        fixed = class_to_task == 0
        scorer = _chunked(logits, torch.stack([own, fixed]), size)
        assert scorer.n_samples == n and scorer.finite
        whole = metrics.step_record(logits, targets, class_to_task, step, per_class=per_class)
        got = metrics.record_from_scores(scorer, targets, class_to_task, per_class=per_class)
        assert got.keys() == whole.keys()
        for key in whole:
            assert _equal(got[key], whole[key]), (step, key)
        gzsl = metrics.gzsl_metrics(logits, targets, fixed, per_class=per_class)
        got = metrics.gzsl_from_scores(scorer, targets, per_class=per_class, row=1)
        assert all(_equal(got[k], gzsl[k]) for k in gzsl)
        curve = metrics.seen_unseen_curve(logits, targets, own, per_class=per_class)
        got = metrics.curve_from_scores(scorer, targets, per_class=per_class)
        assert all(torch.equal(a, b) for a, b in zip(got, curve))


def test_a_scorer_notes_non_finite_logits_and_refuses_bad_input():
    seen = torch.tensor([True, False, True])
    logits = torch.zeros(10, 3)
    logits[7, 1] = float("nan")
    assert not _chunked(logits, seen, 4).finite
    assert _chunked(torch.zeros(10, 3), seen, 4).finite
    with pytest.raises(ValueError, match="4 classes but the seen mask has 3"):
        metrics.StepScorer(seen)(torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"targets must have shape \[N\] = \[10\]"):
        metrics.record_from_scores(_chunked(logits, seen, 4), torch.zeros(9, dtype=torch.long),
                                   torch.tensor([0, 1, 0]), per_class=False)
    with pytest.raises(ValueError, match="no test samples"):
        metrics.StepScorer(seen).evaluate(torch.zeros(0, dtype=torch.long), 0, False)


def test_a_run_scores_its_test_set_in_chunks_of_the_eval_batch(tmp_path, monkeypatch):
    """A step never holds more logits than one evaluation batch."""
    rows = []
    call = metrics.StepScorer.__call__

    def spy(self, logits):
        rows.append(logits.shape[0])
        return call(self, logits)

    monkeypatch.setattr(metrics.StepScorer, "__call__", spy)
    scenario = load_scenario(None, ["train.epochs=1", "data.synthesis.samples_per_class=10",
                                    "model.hidden_dims=[16]", "threads=1",
                                    "train.eval_batch_size=16"])
    result = run_scenario(scenario, runs_dir=tmp_path, progress=False, echo=lambda _: None)
    n_test, n_tasks = result.results["n_test"], result.results["n_tasks"]
    assert max(rows) == 16 and sum(rows) == n_test * n_tasks
