"""A-CZSL (plugins/aczsl.py): each loss term against hand-computed values, the gradient
reversal's sign, modules that grow per task, options, a two-task run and a resume."""

from __future__ import annotations

import math
import pickle

import pytest
import torch

from czsl.config import load_scenario
from czsl.errors import CZSLError
from czsl.learner import ZSLLearner
from czsl.run import run_scenario
from czsl_plugins import aczsl

QUIET = {"progress": False, "echo": lambda _: None}
#: three small tasks; classes 8 and 9 are never trained (unseen at every step)
TINY = ["data.synthesis.n_classes=10", "data.synthesis.samples_per_class=12",
        "data.synthesis.n_features=8", "data.synthesis.n_attributes=4",
        "data.synthesis.n_unseen=2", "protocol.task_sizes=[3, 3, 2]", "train.epochs=2",
        "train.batch_size=16", "train.loss_classes='seen'", "model=feature_classifier",
        "model.hidden_dims=[16]", "model.normalize_input=true", "replay=aczsl",
        "replay.epochs=2", "replay.hidden=16", "replay.latent_dim=4",
        "replay.replay_per_class=5", "replay.classifier_per_class=6"]


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _run(tmp_path, *overrides):
    return run_scenario(load_scenario(None, TINY + list(overrides)), runs_dir=tmp_path,
                        **QUIET)


def test_vae_loss_is_mean_squared_error_plus_summed_kl():
    x = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    recon = torch.tensor([[0.5, 0.5], [0.0, 1.0]])
    mu = torch.tensor([[1.0], [0.0]])
    logvar = torch.tensor([[0.0], [math.log(2.0)]])
    mse = (0.25 + 0.25 + 0 + 1) / 4  # over batch and dimensions
    kl = 0.5 * 1 + 0.5 * (2 - 1 - math.log(2.0))  # summed over the batch, not averaged
    assert aczsl.vae_loss(x, recon, mu, logvar).item() == pytest.approx(mse + kl)


def test_network_loss_terms_and_the_real_label_t_plus_1():
    x = torch.zeros(1, 2)
    vae = (torch.zeros(1, 2), torch.zeros(1, 1), torch.zeros(1, 1))  # loss 0 each
    private = (torch.ones(1, 2), torch.zeros(1, 1), torch.zeros(1, 1))  # MSE 1
    logits = torch.tensor([[0.0, math.log(3.0)]])
    d_logits = torch.tensor([[0.0, 0.0, math.log(2.0)]])  # task 1: real is class 2
    total, head, loss_s, loss_p, adv = aczsl.network_loss(
        logits, torch.tensor([1]), x, vae, private, d_logits, task=1, adv_weight=0.5)
    assert head.item() == pytest.approx(math.log(4 / 3))
    assert (loss_s.item(), loss_p.item()) == (0.0, pytest.approx(1.0))
    assert adv.item() == pytest.approx(math.log(2.0))  # label 0 or 1 would give log 4
    assert total.item() == pytest.approx(math.log(4 / 3) + 1 + 0.5 * math.log(2.0))


def test_discriminator_loss_real_is_t_plus_1_and_noise_is_0():
    d_real = torch.tensor([[0.0, 0.0, math.log(2.0)]])
    d_fake = torch.tensor([[math.log(3.0), 0.0, 0.0]])
    loss = aczsl.discriminator_loss(d_real, d_fake, task=1)
    assert loss.item() == pytest.approx(math.log(2.0) + math.log(5 / 3))


def test_gradient_reversal_is_identity_forward_and_minus_lambda_backward():
    x = torch.tensor([1.0, -2.0], requires_grad=True)
    y = aczsl.gradient_reversal(x, 0.5)
    assert torch.equal(y, x.detach())
    (3 * y).sum().backward()
    assert torch.equal(x.grad, torch.tensor([-1.5, -1.5]))
    # the discriminator: its parameters descend its loss, its input gets the reverse
    torch.manual_seed(0)
    disc = aczsl.build_discriminator(3, 2, task=0, hidden=4, grl_lambda=1.0)
    assert disc(torch.zeros(1, 5)).shape == (1, 2)  # t + 2 classes
    inp = torch.randn(2, 5, requires_grad=True)
    disc(inp).sum().backward()
    plain = inp.detach().clone().requires_grad_(True)
    disc.net(plain).sum().backward()
    assert torch.allclose(inp.grad, -plain.grad)


def test_relu_latent_makes_mu_and_logvar_non_negative():
    torch.manual_seed(0)
    x, a = torch.randn(20, 6), torch.randn(20, 3)
    for relu, non_negative in ((True, True), (False, False)):
        net = aczsl.build_net(6, 3, 4, latent_dim=5, hidden=8, relu_latent=relu)
        mu, logvar = net.shared.encoder(torch.cat([x, a], 1)).chunk(2, dim=1)
        assert mu.shape == (20, 5)
        assert bool((mu >= 0).all() and (logvar >= 0).all()) is non_negative


def test_modules_grow_per_task_and_old_ones_stay():
    torch.manual_seed(0)
    net = aczsl.build_net(6, 3, 5, latent_dim=2, hidden=8)
    x, a, y = torch.rand(12, 6), torch.rand(12, 3), torch.randint(0, 5, (12,))
    options = dict(epochs=2, batch_size=5, lr=1e-2, adv_weight=0.5, grl_lambda=1.0,
                   fixed_batches=True)
    assert len(net.private) == len(net.heads) == 0
    disc = aczsl.train_task(net, x, a, y, 0, **options)
    assert len(net.private) == len(net.heads) == 1 and disc.net[-1].out_features == 2
    before = pickle.loads(pickle.dumps(net))
    disc = aczsl.train_task(net, x, a, y, 1, **options)
    assert len(net.private) == len(net.heads) == 2 and disc.net[-1].out_features == 3
    for old, new in ((before.private[0], net.private[0]), (before.heads[0], net.heads[0])):
        assert all(torch.equal(p, q) for p, q in zip(old.parameters(), new.parameters()))
    shared = zip(before.shared.parameters(), net.shared.parameters())
    assert not all(torch.equal(p, q) for p, q in shared)  # the shared CVAE learns on
    assert aczsl.generate(net, a[:2], 3).shape == (6, 6)


def test_two_task_run_replays_and_trains_the_classifier_on_every_class(tmp_path,
                                                                        monkeypatch):
    seen = []
    train_task = aczsl.train_task

    def spy(net, x, attributes, labels, task, **options):
        seen.append((task, labels.tolist()))
        return train_task(net, x, attributes, labels, task, **options)

    monkeypatch.setattr(aczsl, "train_task", spy)
    sizes = []
    before = ZSLLearner._before_training_exp

    def spy_learner(self, **kwargs):
        before(self, **kwargs)
        sizes.append(sorted({int(y) for _, y, *_ in self.adapted_dataset}))
        sizes.append(len(self.adapted_dataset))

    monkeypatch.setattr(ZSLLearner, "_before_training_exp", spy_learner)
    run = _run(tmp_path, "protocol.task_sizes=[4, 4]")
    results = run.results
    assert results["replay"] == "aczsl" and results["semantic_transductive"] is True
    assert results["n_tasks"] == 2 and results["model"] == "feature_classifier"
    assert all(0 <= ua <= 100 for ua in results["metrics"]["steps"]["UA"])
    (t0, y0), (t1, y1) = seen
    assert (t0, t1) == (0, 1) and set(y0) == {0, 1, 2, 3}
    assert [y1.count(c) for c in range(4)] == [5] * 4  # 5 replayed per past class
    # the classifier: 6 generated features of every class, no real one
    assert sizes == [list(range(10)), 60, list(range(10)), 60]


@pytest.mark.parametrize("options, words", [
    ({"epochs": 0}, "epochs"),
    ({"lr": -1.0}, "lr"),
    ({"relu_latent": "yes"}, "relu_latent"),
    ({"adv_weight": -0.5}, "adv_weight"),
    ({"width": 3}, "width"),
])
def test_bad_options_are_one_line(tmp_path, options, words):
    overrides = [f"replay.{k}={v!r}".replace("'", '"') for k, v in options.items()]
    with pytest.raises(CZSLError) as err:
        _run(tmp_path, *overrides)
    assert words in str(err.value) and "\n" not in str(err.value)


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
