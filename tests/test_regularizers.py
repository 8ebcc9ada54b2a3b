"""Regularizer and multi-task plugins: their math, and that they change training as they should."""

from __future__ import annotations

import copy

import pytest
import torch
from avalanche.core import SupervisedPlugin
from avalanche.training.plugins import AGEMPlugin, EWCPlugin, MASPlugin

from czsl.config import ProtocolConfig, load_scenario
from czsl.data.synthetic import make_synthetic
from tests.conftest import Tiny
from czsl.plugins import Plugins
from czsl.run import run_scenario
from czsl.streams import build_stream


@pytest.fixture
def stream():
    data = make_synthetic(n_classes=9, n_attributes=4, n_features=8, samples_per_class=30,
                          n_unseen=3, seed=0)
    return Tiny(build_stream(data, ProtocolConfig(name="grw", task_sizes=[3, 3, 3]), seed=0))


def _learner(stream, plugins, seed=0, lr=1e-2, epochs=2):
    torch.manual_seed(seed)
    model = Plugins().make("model", "attribute_embedder", {"hidden_dims": [16]},
                           n_features=8, attributes=stream.attributes)
    return stream.learner(plugins, model=model, train_mb_size=16, train_epochs=epochs,
                          optimizer=torch.optim.SGD(model.parameters(), lr=lr))


def _params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize("name, cls", [("ewc_online", EWCPlugin), ("mas", MASPlugin),
                                        ("agem", AGEMPlugin)])
def test_regularizers_are_avalanche_plugins_with_paper_defaults(stream, name, cls):
    [plugin] = Plugins().make("regularizer", name, {}, stream=stream.view)
    assert isinstance(plugin, cls)
    if name == "ewc_online":
        assert (plugin.ewc_lambda, plugin.mode, plugin.decay_factor) == (10.0, "online", 0.99)
    elif name == "mas":
        assert plugin._lambda == 1e-4
    else:  # 10 samples per class on a non-SUN dataset, tasks of 3 classes
        assert (plugin.patterns_per_experience, plugin.sample_size) == (30, 128)


def test_agem_memory_follows_classnorm_sizes_on_sun(stream):
    from czsl_plugins.agem import default_samples_per_class, make_plugin

    assert default_samples_per_class("SUN") == 5 and default_samples_per_class("CUB") == 10
    assert make_plugin(47, dataset="SUN").patterns_per_experience == 235


class _PenaltySpy(SupervisedPlugin):
    """Records the loss before and after the regularizers' before_backward."""

    def __init__(self):
        super().__init__()
        self.losses = []

    def before_backward(self, strategy, *args, **kwargs):
        self.losses.append((strategy.clock.train_exp_counter, float(strategy.loss.detach())))


@pytest.mark.parametrize("name", ["ewc_online", "mas"])
def test_penalty_is_zero_on_first_task_and_positive_after(stream, name):
    first, last = _PenaltySpy(), _PenaltySpy()
    reg = Plugins().make("regularizer", name, {"ewc_lambda" if name == "ewc_online"
                                               else "lambda_reg": 100.0}, stream=stream.view)
    learner = _learner(stream, [first, *reg, last])
    for step in range(2):
        stream.train(learner, step)
    # the spy before the regularizer sees the cross-entropy, the one after it the total
    penalties = [(t, total - ce) for (t, ce), (_, total) in zip(first.losses, last.losses)]
    assert all(p == 0.0 for t, p in penalties if t == 0)
    later = [p for t, p in penalties if t == 1]
    assert later and all(p >= 0 for p in later) and max(later) > 0


@pytest.mark.parametrize("name, key, strong, ratio", [("ewc_online", "ewc_lambda", 50.0, 0.5),
                                                       ("mas", "lambda_reg", 0.1, 0.7)])
def test_strong_penalty_pulls_important_parameters_back(stream, name, key, strong, ratio):
    """Importance-weighted drift from the task-0 weights while training task 1 (the
    strengths are the largest that SGD at lr 1e-2 survives on this model)."""
    drift = {}
    for strength in (0.0, strong):
        [reg] = Plugins().make("regularizer", name, {key: strength}, stream=stream.view)
        learner = _learner(stream, [reg], lr=1e-2, epochs=3)
        stream.train(learner, 0)
        anchor = {n: p.detach().clone() for n, p in learner.model.named_parameters()}
        importance = (reg.importances[max(reg.importances)] if name == "ewc_online"
                      else reg.importance)
        importance = {n: v.data.clone() for n, v in importance.items()}
        stream.train(learner, 1)
        drift[strength] = sum(float((importance[n] * (p.detach() - anchor[n]) ** 2).sum())
                              for n, p in learner.model.named_parameters())
    assert drift[strong] < ratio * drift[0.0], drift


def test_ewc_fisher_is_min_max_normalized_unless_asked_not_to(stream):
    for normalize in (True, False):
        [reg] = Plugins().make("regularizer", "ewc_online", {"normalize": normalize},
                               stream=stream.view)
        learner = _learner(stream, [reg], epochs=1)
        stream.train(learner, 0)
        values = torch.cat([v.data.flatten() for v in reg.importances[0].values()])
        if normalize:
            assert float(values.min()) == 0.0 and float(values.max()) == pytest.approx(1.0)
        else:  # Avalanche's raw Fisher: far above 1 on this model
            assert float(values.max()) > 2.0


def test_mas_importance_uses_visible_logits_in_eval_mode(stream):
    """Avalanche's own MAS gives NaN importances on a zero-shot model (its logits of not
    yet visible classes are -inf) and moves ClassNorm's running statistics; ours does
    neither."""
    from czsl_plugins.mas import mas_importance

    learner = _learner(stream, [])
    stream.train(learner, 0)
    model = learner.model
    bn = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)][0]
    dataset = stream.benchmark.train_stream[0].dataset

    stats = bn.running_mean.clone()
    ours = mas_importance(model, dataset, batch_size=16, device="cpu")
    assert torch.equal(bn.running_mean, stats)
    assert all(torch.isfinite(v).all() for v in ours.values())
    assert any(float(v.sum()) > 0 for v in ours.values())

    class _Strategy:  # what Avalanche's MASPlugin reads
        experience = stream.benchmark.train_stream[0]
        train_mb_size = 16
        device = "cpu"
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    _Strategy.model = copy.deepcopy(model)
    theirs = MASPlugin()._get_importance(_Strategy)
    assert any(not torch.isfinite(v.data).all() for v in theirs.values())
    assert not torch.equal(
        [m for m in _Strategy.model.modules() if isinstance(m, torch.nn.BatchNorm1d)][0]
        .running_mean, stats)


@pytest.mark.parametrize("gamma", [None, 0.95])
def test_mas_merges_importances_by_avalanches_rule_or_the_references(stream, monkeypatch,
                                                                     gamma):
    """Avalanche averages ``alpha * old + (1 - alpha) * new``; with ``gamma`` the sum
    ``gamma * old + new`` of the reference code (which lets importance build up)."""
    import czsl_plugins.mas as mas_module

    per_task = []
    real = mas_module.mas_importance

    def recorded(*args, **kwargs):
        per_task.append(real(*args, **kwargs))
        return {n: t.clone() for n, t in per_task[-1].items()}

    monkeypatch.setattr(mas_module, "mas_importance", recorded)
    [plugin] = Plugins().make("regularizer", "mas", {} if gamma is None else {"gamma": gamma},
                              stream=stream.view)
    learner = _learner(stream, [plugin])
    for step in range(2):
        stream.train(learner, step)
    assert len(per_task) == 2
    for name, got in plugin.importance.items():
        old, new = per_task[0][name], per_task[1][name]
        want = 0.5 * old + 0.5 * new if gamma is None else gamma * old + new
        assert torch.allclose(got.data, want), name
    with pytest.raises(Exception, match="gamma"):
        Plugins().make("regularizer", "mas", {"gamma": 1.5}, stream=stream.view)


def _without_drawing(fn):
    """``fn`` run inside ``torch.random.fork_rng``: its random draws leave no trace."""
    def wrapped(*args, **kwargs):
        with torch.random.fork_rng(devices=[]):
            return fn(*args, **kwargs)
    return wrapped


@pytest.mark.parametrize("name, options", [("mas", {"lambda_reg": 0.0}),
                                           ("ewc_online", {"ewc_lambda": 0.0})])
def test_zero_penalty_trains_exactly_like_sequential(stream, monkeypatch, name, options):
    """With no penalty and its importance pass kept off the random stream, a regularizer
    must leave training bit for bit as Sequential's: its bookkeeping (the eval-mode pass,
    the penalty hook) moves no weight and no ClassNorm statistic. The CZSL table's
    ``MAS λ=0`` placebo rests on this: its runs differ from Sequential only by the
    random draws of that pass."""
    import czsl_plugins.ewc_online as ewc_module
    import czsl_plugins.mas as mas_module

    monkeypatch.setattr(mas_module, "mas_importance",
                        _without_drawing(mas_module.mas_importance))
    cls = ewc_module._normalized_class()
    monkeypatch.setattr(cls, "compute_importances", _without_drawing(cls.compute_importances))

    def train(plugins):
        learner = _learner(stream, plugins, epochs=2)
        for step in range(3):
            stream.train(learner, step)
        return learner.model.state_dict()  # weights and ClassNorm's running statistics

    sequential = train([])
    [plugin] = Plugins().make("regularizer", name, options, stream=stream.view)
    placebo = train([plugin])
    assert plugin.importance if name == "mas" else plugin.importances  # it did its work
    assert sequential.keys() == placebo.keys()
    assert any("running_mean" in key for key in sequential)
    for key in sequential:
        assert torch.equal(sequential[key], placebo[key]), key


class _DotSpy(SupervisedPlugin):
    """After A-GEM's projection: dot product of the applied gradient with the reference."""

    def __init__(self, agem):
        super().__init__()
        self.agem = agem
        self.dots = []

    def after_backward(self, strategy, *args, **kwargs):
        if len(self.agem.buffers):
            grad = torch.cat([p.grad.flatten() for p in strategy.model.parameters()])
            self.dots.append(float(grad @ self.agem.reference_gradients))


def test_agem_projected_gradient_never_opposes_the_reference(stream):
    [agem] = Plugins().make("regularizer", "agem", {"samples_per_class": 5}, stream=stream.view)
    spy = _DotSpy(agem)
    learner = _learner(stream, [agem, spy], lr=0.05)
    for step in range(3):
        stream.train(learner, step)
    assert len(agem.buffers) == 3 and len(spy.dots) > 10
    assert min(spy.dots) >= -1e-6, min(spy.dots)


def test_multitask_trains_on_every_task_seen_so_far(stream, no_generator):
    seen_labels = []

    class _Labels(SupervisedPlugin):
        def before_training_epoch(self, strategy, *args, **kwargs):
            seen_labels.append({int(y) for _, y, _ in strategy.adapted_dataset})

    replay = Plugins().make("replay", "multitask", {}, stream=stream.view,
                            make_generator=no_generator)
    learner = _learner(stream, [*replay, _Labels()], epochs=1)
    for step in range(3):
        stream.train(learner, step)
    assert seen_labels == [set(range(3)), set(range(6)), set(range(9))]


def test_multitask_iteration_cap_stops_each_task(stream, no_generator):
    counts = []

    class _Count(SupervisedPlugin):
        def before_training_exp(self, strategy, *args, **kwargs):
            counts.append(0)

        def after_training_iteration(self, strategy, *args, **kwargs):
            counts[-1] += 1

    replay = Plugins().make("replay", "multitask", {"max_iterations": 7}, stream=stream.view,
                            make_generator=no_generator)
    learner = _learner(stream, [*replay, _Count()], epochs=5)
    for step in range(3):
        stream.train(learner, step)
    assert counts == [7, 7, 7]  # uncapped: 5 epochs x 2+ batches per task
    with pytest.raises(Exception, match="max_iterations must be a positive integer"):
        Plugins().make("replay", "multitask", {"max_iterations": 0}, stream=stream.view,
                       make_generator=no_generator)


@pytest.mark.parametrize("overrides", [
    ["regularizer=ewc_online"], ["regularizer=mas"], ["regularizer=agem"],
    ["replay=multitask", "train.loss_classes=seen"],
    ["regularizer=ewc_online", "model.class_norm=false", "model.proper_init=false"],
])
def test_two_task_smoke_run_through_the_scenario(tmp_path, overrides):
    scenario = load_scenario(None, ["train.epochs=1", "data.synthesis.samples_per_class=20",
                                    "protocol.task_sizes=[25, 25]", *overrides])
    result = run_scenario(scenario, runs_dir=tmp_path, progress=False, echo=lambda _: None)
    summary = result.results["summary"]
    assert result.results["regularizer"] == scenario.regularizer.name
    assert summary["mSA"] > 10 and summary["forgetting_final"] is not None
