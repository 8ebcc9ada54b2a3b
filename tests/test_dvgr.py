"""DVGR-CZSL (plugins/dvgr.py): its loss terms, its generator's label slots, one
generator per task with each past class replayed by its own task's, bad options, a
two-task run and a resumed run."""

from __future__ import annotations

import functools
import math

import pytest
import torch

from czsl.build import build_run
from czsl.config import load_scenario
from czsl.errors import CZSLError
from czsl.learner import ZSLLearner
from czsl.run import run_scenario
from czsl.testing import check_generator
from czsl_plugins import dvgr

QUIET = {"progress": False, "echo": lambda _: None}
#: a tiny synthetic stream; classes 8 and 9 are never trained (unseen at every step)
TINY = ["data.synthesis.n_classes=10", "data.synthesis.samples_per_class=12",
        "data.synthesis.n_features=8", "data.synthesis.n_attributes=4",
        "data.synthesis.n_unseen=2", "protocol.task_sizes=[4, 4]", "train.epochs=2",
        "train.loss_classes='seen'", "model=feature_classifier", "model.hidden_dims=[16]",
        "model.standardize=true", "model.dropout=0.2", "model.dropout_when_testing=true",
        "replay=dvgr", "replay.replay_per_class=7", "replay.classifier_per_class=5",
        "generator=dvgr_cvae", "generator.encoder_dims=[16]", "generator.decoder_dims=[16]",
        "generator.latent_dim=4", "generator.epochs=3", "generator.batch_size=16",
        "generator.label_slots=10"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_kl_is_summed_over_the_batch_and_the_latent_dimensions():
    mu = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    logvar = torch.tensor([[0.0, math.log(2.0)], [0.0, 0.0]])
    # -1/2 (1 + lv - mu^2 - e^lv) per entry: 1/2, (1 - log 2)/2, 0, 2
    expected = 0.5 + (1 - math.log(2.0)) / 2 + 0.0 + 2.0
    assert dvgr.kl_sum(mu, logvar).item() == pytest.approx(expected)


def test_loss_is_mean_squared_error_plus_summed_kl_plus_weighted_extras():
    x, x_rec = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 0.0]])
    mu, logvar = torch.tensor([[1.0]]), torch.tensor([[0.0]])
    total, rec, kl = dvgr.dvgr_loss(x, x_rec, mu, logvar)
    assert rec.item() == pytest.approx(2.5)  # (1 + 4) / 2: the mean over B * D
    assert kl.item() == pytest.approx(0.5)
    assert total.item() == pytest.approx(3.0)
    label = (0.5, torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 0.0]]))  # mse 0.5
    attrs = (0.0, torch.tensor([[3.0]]), torch.tensor([[0.0]]))  # weight 0: computed, not added
    total, _, _ = dvgr.dvgr_loss(x, x_rec, mu, logvar, extras=(label, attrs))
    assert total.item() == pytest.approx(3.0 + 0.25)


def test_decoder_outputs_label_and_attributes_only_when_weighted():
    plain = dvgr.DVGRCVAE(8, 4, encoder_dims=[6], decoder_dims=[6], latent_dim=3,
                          label_slots=5)
    weighted = dvgr.DVGRCVAE(8, 4, encoder_dims=[6], decoder_dims=[6], latent_dim=3,
                             label_slots=5, label_weight=1.0)
    assert plain.decoder[0].in_features == 3 + 5 + 4
    assert plain.decoder[-1].out_features == 8
    assert weighted.decoder[-1].out_features == 8 + 5 + 4


def test_label_slots_follow_first_appearance_and_unseen_rows_get_untrained_ones():
    torch.manual_seed(0)
    gen = dvgr.DVGRCVAE(8, 2, encoder_dims=[6], decoder_dims=[6], latent_dim=3,
                        label_slots=3, epochs=1, batch_size=4, fixed_epsilon=True)
    eps = gen.epsilon.clone()
    a, b, c = torch.tensor([0.0, 1.0]), torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0])
    gen.fit(torch.randn(4, 8), torch.stack([a, b, a, b]))
    assert torch.equal(gen.epsilon, eps)  # drawn once, reused (the code's quirk)
    assert gen.slots_of(torch.stack([b, a, c]), assign=False).tolist() == [1, 0, -1]
    # sampling an unseen class gives it the next slot, untrained (the code's quirk) ...
    assert gen.sample(torch.stack([c]), 2).shape == (2, 8)
    assert gen.slots_of(torch.stack([c]), assign=False).tolist() == [2]
    # ... and a fourth class does not fit in three slots
    with pytest.raises(ValueError, match="label_slots = 3"):
        gen.sample(torch.tensor([[2.0, 2.0]]), 1)
    zero = dvgr.DVGRCVAE(8, 2, encoder_dims=[6], decoder_dims=[6], latent_dim=3,
                         label_slots=3, unseen_labels="zero")
    zero.sample(torch.stack([c]), 1)
    assert len(zero.slot_rows) == 0  # an all-zero one-hot, no slot taken


def test_generator_keeps_the_contract():
    check_generator(functools.partial(dvgr.DVGRCVAE, encoder_dims=[16], decoder_dims=[16],
                                      latent_dim=4, label_slots=16, epochs=3, lr=1e-3,
                                      reshuffle=True, fixed_epsilon=False),
                    samples_per_class=20, n=50)


def test_each_past_class_is_replayed_by_its_own_tasks_generator(monkeypatch):
    calls = []  # (generator, attribute rows, n) of every sample() call
    sample = dvgr.DVGRCVAE.sample

    def spy(self, attributes, n):
        calls.append((self, attributes.clone(), n))
        return sample(self, attributes, n)

    monkeypatch.setattr(dvgr.DVGRCVAE, "sample", spy)
    built = build_run(load_scenario(None, TINY + ["protocol.task_sizes=[3, 3, 2]"]),
                      echo=lambda _: None)
    replay = built.extra[0]
    view, attributes = built.view, built.stream.attributes.float()
    for step in range(3):
        built.start_task(step)
        built.learner.train_task(step)
    own = [g.generator for g in replay.generators]
    assert len(own) == 3 and len({id(g) for g in own}) == 3
    # the run's list of generators holds each task's (they are logged and reported)
    assert [g.generator for g in built.generators] == own
    replayed = [(own.index(g), a) for g, a, n in calls if n == 7]
    assert [t for t, _ in replayed] == [0, 0, 1]  # task 1: task 0's; task 2: 0's then 1's
    for task, rows in replayed:
        assert torch.equal(rows, attributes[view.classes(task)])
    classifier = [(own.index(g), a) for g, a, n in calls if n == 5]
    assert [t for t, _ in classifier] == [0, 1, 2]  # every class, by the task's generator
    assert all(torch.equal(rows, attributes) for _, rows in classifier)


def test_two_task_run(tmp_path):
    run = run_scenario(load_scenario(None, TINY), runs_dir=tmp_path, **QUIET)
    results = run.results
    assert results["replay"] == "dvgr" and results["generator"] == "dvgr_cvae"
    assert results["semantic_transductive"] is True and results["n_tasks"] == 2
    inductive = run_scenario(load_scenario(None, TINY + ["replay.transductive=false"]),
                             runs_dir=tmp_path / "inductive", **QUIET)
    assert inductive.results["semantic_transductive"] is False


@pytest.mark.parametrize("override, words", [
    ("replay.replay_per_class=-1", "replay_per_class"),
    ("replay.classifier_per_class=0", "classifier_per_class"),
    ("replay.transductive='yes'", "transductive"),
    ("generator.unseen_labels='random'", "unseen_labels"),
    ("generator.encoder_dims=[]", "encoder_dims"),
    ("generator.lr=0", "lr"),
    ("generator.losses=[{name='anti_collapse'}]", "losses"),
])
def test_bad_options_are_one_line(tmp_path, override, words):
    with pytest.raises(CZSLError) as err:
        run_scenario(load_scenario(None, TINY + [override]), runs_dir=tmp_path, **QUIET)
    assert words in str(err.value) and "\n" not in str(err.value)
    assert not any(tmp_path.iterdir())


def test_interrupted_run_resumes_to_the_uninterrupted_results(tmp_path, monkeypatch):
    from czsl.run import resume_run

    overrides = TINY + ["protocol.task_sizes=[3, 3, 2]", "data.synthesis.samples_per_class=30"]
    reference = run_scenario(load_scenario(None, overrides), runs_dir=tmp_path / "ref",
                             **QUIET)
    train = ZSLLearner.train_task

    def stop(self, task):
        if task == 2:
            raise KeyboardInterrupt
        return train(self, task)

    monkeypatch.setattr(ZSLLearner, "train_task", stop)
    with pytest.raises(KeyboardInterrupt):
        run_scenario(load_scenario(None, overrides), runs_dir=tmp_path / "runs", **QUIET)
    monkeypatch.undo()
    resumed = resume_run(tmp_path / "runs" / "synthetic", **QUIET)
    drop = {"wall_time_s"}
    assert {k: v for k, v in resumed.results.items() if k not in drop} == {
        k: v for k, v in reference.results.items() if k not in drop}
