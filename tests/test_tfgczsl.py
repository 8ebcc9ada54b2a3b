"""Tf-GCZSL (plugins/tfgczsl.py): each loss term against hand-computed values, the
reservoir, the latent classifier of czsl.models, two-task runs (transductive by
default, inductive on request), bad options, and a resume that gives the uninterrupted
results."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from czsl.config import load_scenario
from czsl.errors import PluginError
from czsl.learner import ZSLLearner
from czsl.models import LatentClassifier
from czsl.plugins import Plugins
from czsl.run import run_scenario
from czsl_plugins import tfgczsl as tf

QUIET = {"progress": False, "echo": lambda _: None}
#: two tiny tasks of 4 classes; classes 8 and 9 are never trained (unseen at every step)
TINY = ["data.synthesis.n_classes=10", "data.synthesis.samples_per_class=12",
        "data.synthesis.n_features=8", "data.synthesis.n_attributes=4",
        "data.synthesis.n_unseen=2", "protocol.task_sizes=[4, 4]", "train.epochs=2",
        "train.loss_classes='seen'", "model=tfgczsl", "replay=tfgczsl",
        "model.latent_dim=4", "model.feature_hidden=[16, 16]",
        "model.attribute_hidden=[16, 16]", "replay.epochs=3", "replay.batch_size=10",
        "replay.mem_size=20", "replay.mem_batch_size=8", "replay.seen_samples=10",
        "replay.unseen_samples=20"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _t(*rows):
    return torch.tensor(rows, dtype=torch.float64)


def _stub_vae():
    """Fixed encoder outputs and linear decoders, so each term is arithmetic:
    mu_x = 1, logvar_x = 0, mu_a = 0, logvar_a = log 4; dec_x(z) = [z, 2z], dec_a(z) = z."""
    return SimpleNamespace(
        feature_encoder=lambda x: (_t([1.0]), _t([0.0])),
        attribute_encoder=lambda a: (_t([0.0]), _t([math.log(4)])),
        feature_decoder=lambda z: torch.cat([z, 2 * z], 1),
        attribute_decoder=lambda z: z)


def test_each_loss_term_against_hand_computed_values():
    vae, x, a = _stub_vae(), _t([1.0, 1.0]), _t([3.0])
    # z_x = 1 + e^0 * 1 = 2, z_a = 0 + e^(log 4) * 0.25 = 1 (one eps per row)
    terms = tf.vae_losses(vae, x, a, eps=(_t([1.0]), _t([0.25])))
    # |[2, 4] - [1, 1]| + |1 - 3| = 4 + 2
    assert terms["reconstruction"].item() == pytest.approx(6.0)
    # -0.5 [(1 + log 4 - 0 - 4) + (1 + 0 - 1 - 1)] = 2 - log 2
    assert terms["kl"].item() == pytest.approx(2 - math.log(2))
    # |dec_x(z_a) - x| + |dec_a(z_x) - a| = |[1, 2] - [1, 1]| + |2 - 3|
    assert terms["cross_reconstruction"].item() == pytest.approx(2.0)
    # sqrt((1 - 0)^2 + (e^0 - e^(log 4 / 2))^2) = sqrt(2)
    assert terms["distance"].item() == pytest.approx(math.sqrt(2))
    # DER: |[1, 0, 0, log 4] - 0|_1
    der = tf.der_loss(vae, x, a, torch.zeros(1, 4, dtype=torch.float64))
    assert der.item() == pytest.approx(1 + math.log(4))
    weights = {"beta": 0.5, "cross_reconstruction": 2.0, "distance": 3.0}
    total = tf.vae_loss(terms, weights, der, der_weight=0.5)
    assert total.item() == pytest.approx(6 + 0.5 * (2 - math.log(2)) + 2 * 2
                                         + 3 * math.sqrt(2) + 0.5 * (1 + math.log(4)))
    assert tf.vae_loss(terms, weights).item() == pytest.approx(total.item() - 0.5 * der.item())


def test_reparameterisation_warm_ups_and_repeats():
    z = tf.reparameterize(_t([1.0, 2.0]), _t([0.0, math.log(2)]), eps=_t([3.0]))
    assert z.tolist() == [[4.0, 8.0]]  # mu + exp(logvar) * eps, one eps per row
    assert tf.warmup_weights(0.0) == {"beta": 0.0, "cross_reconstruction": 0.0,
                                      "distance": 0.0}
    half = tf.warmup_weights(0.5)  # reference epoch 50
    assert half["beta"] == pytest.approx(50 / 93 * 0.25)
    assert half["cross_reconstruction"] == pytest.approx((50 - 21) / 54 * 2.37)
    assert half["distance"] == pytest.approx(8.13)  # ramp ends at epoch 22
    assert tf.warmup_weights(0.99)["beta"] == pytest.approx(0.25)
    rows = torch.arange(3.0)[:, None]
    assert tf.repeat_to(rows, 5)[:, 0].tolist() == [0, 0, 1, 1, 2]  # numpy's repeat, cut
    assert tf.repeat_to(rows, 2)[:, 0].tolist() == [0, 1]


def test_the_reservoir_fills_in_order_then_keeps_offered_rows():
    replay = tf.make_plugin(None, mem_size=3, transductive=False)
    vae = _stub_vae()
    vae.feature_encoder = lambda x: (x[:, :1], x[:, 1:])
    vae.attribute_encoder = lambda a: (a, a)
    x = torch.arange(20.0).reshape(10, 2)
    replay._remember(vae, x[:3], x[:3, :1], torch.arange(3))
    assert replay.memory["y"].tolist() == [0, 1, 2] and replay.n_stored == 3
    assert replay.memory["stats"][1].tolist() == [2.0, 3.0, 2.0, 2.0]
    torch.manual_seed(0)
    replay._remember(vae, x[3:], x[3:, :1], torch.arange(3, 10))
    assert replay.n_stored == 3 and replay.n_offered == 10
    kept = replay.memory["y"].tolist()
    assert all(torch.equal(replay.memory["x"][i], x[y]) for i, y in enumerate(kept))


def test_the_latent_classifier_reads_latents_only_while_told():
    model = LatentClassifier(torch.nn.Linear(8, 3), latent_dim=3, n_classes=5)
    model.set_visible_classes(torch.tensor([True, True, False, True, False]))
    x = torch.randn(4, 8)
    logits = model(x)
    assert logits.shape == (4, 5) and torch.isinf(logits[:, [2, 4]]).all()
    assert torch.equal(logits[:, 0], model.head(model.encode(x))[:, 0])
    model.latent_inputs = True
    assert torch.equal(model(model.encode(x)), logits)
    model.eval()  # testing always encodes features
    assert model.latent_inputs is False


def _run(tmp_path, *overrides):
    return run_scenario(load_scenario(None, TINY + list(overrides)), runs_dir=tmp_path,
                        **QUIET)


def test_two_task_runs_transductive_by_default_and_inductive_on_request(tmp_path):
    tr = _run(tmp_path)
    assert tr.results["semantic_transductive"] is True and tr.results["n_tasks"] == 2
    assert tr.results["replay"] == "tfgczsl" and tr.results["model"] == "tfgczsl"
    ind = _run(tmp_path, "replay.transductive=false", "replay.der_weight=0")
    assert ind.results["semantic_transductive"] is False
    # the inductive head never trains the rows of unseen classes: they stay at init
    assert ind.results["metrics"]["steps"]["UA"] is not None


def test_the_replay_refuses_another_model_in_one_line(tmp_path):
    overrides = [o for o in TINY if not o.startswith("model")] + ["model.hidden_dims=[16]"]
    with pytest.raises(PluginError) as caught:
        run_scenario(load_scenario(None, overrides), runs_dir=tmp_path, **QUIET)
    message = str(caught.value)
    assert ("TypeError: replay 'tfgczsl' trains the CADA-VAE of model 'tfgczsl', not this "
            "run's AttributeModel: set [model] name = 'tfgczsl'") in message
    assert "\n" not in message


@pytest.mark.parametrize("kind, option, value, words", [
    ("replay", "epochs", 0, "option epochs must be a positive integer, got 0"),
    ("replay", "der_weight", -1, "option der_weight must be a finite number >= 0"),
    ("replay", "transductive", "yes", "option transductive must be true or false"),
    ("model", "feature_hidden", [16], "option feature_hidden must be two positive layer"),
])
def test_bad_options_are_refused_in_one_line(kind, option, value, words):
    args = ({"n_features": 8, "attributes": torch.zeros(5, 4)} if kind == "model"
            else {"stream": None})
    with pytest.raises(PluginError) as caught:
        Plugins().make(kind, "tfgczsl", {option: value}, **args)
    message = str(caught.value)
    assert words in message and "\n" not in message


def test_interrupted_run_resumes_to_the_uninterrupted_results(tmp_path, monkeypatch):
    from czsl.run import resume_run

    # lr 0.01: enough learning that a resume without the memory and the VAE's optimizer
    # state changes the results (mAUC), which a run at the default rate did not
    overrides = ["protocol.task_sizes=[3, 3, 2]", "data.synthesis.samples_per_class=20",
                 "replay.lr=0.01"]
    reference = _run(tmp_path / "ref", *overrides)
    train = ZSLLearner.train_task

    def stop(self, task):
        if task == 2:
            raise KeyboardInterrupt
        return train(self, task)

    monkeypatch.setattr(ZSLLearner, "train_task", stop)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "runs", *overrides)
    monkeypatch.undo()
    resumed = resume_run(tmp_path / "runs" / "synthetic", **QUIET)
    drop = {"wall_time_s", "timing", "timings"}
    assert {k: v for k, v in resumed.results.items() if k not in drop} == {
        k: v for k, v in reference.results.items() if k not in drop}


def test_the_authors_code_runner_fills_every_edit_and_summarises_like_czsl():
    from benchmarks.authors import tfgczsl as runner

    fields = dict(data="D", seed=0, tasks=3, epochs=2, cls_epochs=1, cls_batch=256, der=True)
    for _, what, old, new, count in runner.EDITS:
        assert old and count >= 1 and new.format(**fields) != old, what
    summary = runner.summarize([0.5, 0.25], [0.5, 0.0])
    assert summary["mSA"] == pytest.approx(37.5) and summary["mUA"] == pytest.approx(25.0)
    assert summary["mH"] == pytest.approx(25.0)  # the mean of per-task H: (50 + 0) / 2
