"""GRW complete (plugins/grw.py): each loss term against a hand computation on tiny
tensors, the once-per-class discriminator against GRW's batch-repeated form, its
options, a two-task run per hallucination, and a resume."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from czsl.config import load_scenario
from czsl.errors import OptionError, PluginError
from czsl.learner import ZSLLearner
from czsl.run import run_scenario
from czsl_plugins import grw
from czsl_plugins.random_walk import walk_losses

QUIET = {"progress": False, "echo": lambda _: None}
#: three small tasks on the synthetic dataset, GRW's model and replay, small networks
TINY = ["data.synthesis.n_classes=10", "data.synthesis.samples_per_class=12",
        "data.synthesis.n_features=8", "data.synthesis.n_attributes=4",
        "data.synthesis.n_unseen=2", "protocol.task_sizes=[3, 3, 2]", "train.epochs=2",
        "train.loss_classes='seen'", "train.lr=0.005", "model=grw_discriminator",
        "model.hidden=16", "replay=grw", "replay.hidden=16", "replay.per_prototype=2",
        "replay.buffer_size=20"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _run(tmp_path, *overrides):
    return run_scenario(load_scenario(None, TINY + list(overrides)), runs_dir=tmp_path,
                        **QUIET)


def test_discriminator_once_per_class_equals_grws_batch_repeated_form():
    torch.manual_seed(0)
    attrs = torch.rand(5, 4)
    model = grw.build_discriminator(6, attrs, hidden=7)
    x = torch.rand(3, 6)
    # beta main.py: D on the seen attributes repeated over the batch, cosine per pair
    repeated = F.normalize(model.embedder(attrs.unsqueeze(0).repeat([3, 1, 1])), dim=-1)
    x_rep = F.normalize(x, dim=-1).unsqueeze(1).repeat([1, 5, 1])
    theirs = 10 * F.cosine_similarity(repeated, x_rep, dim=-1)
    ours = grw.seen_logits(x, model.embedder(attrs), 10.0)
    assert torch.allclose(ours, theirs, atol=1e-5)
    labels = torch.tensor([0, 4, 2])
    assert torch.allclose(F.cross_entropy(ours, labels), F.cross_entropy(theirs, labels),
                          atol=1e-6)
    # and the model's own logits are those: 10 cos
    assert torch.allclose(model(x), theirs, atol=1e-5)


def test_discriminator_terms_by_hand():
    emb = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    real = torch.tensor([[1.0, 1.0], [0.0, 2.0]])  # cosines 1/sqrt2 and 1
    fake = torch.tensor([[1.0, 0.0], [1.0, 1.0]])  # cosines 1 and 1/sqrt2
    means = torch.tensor([[1.0, 0.0], [0.0, 3.0]])  # MSE to emb: (0 + 0 + 0 + 4) / 4
    r = 1 / math.sqrt(2)
    expected = -math.log(10 * (r + 1) / 2) + math.log(10 * (1 + r) / 2) + 1.0
    got = grw.discriminator_terms(emb, real, fake, emb, means, real_pairs="own")
    assert got.item() == pytest.approx(expected, abs=1e-6)
    # GRW's code: D(a_y) [B, 1, D] against x [B, D] broadcasts to every pair:
    # cos(e0, x0) = r, cos(e0, x1) = 0, cos(e1, x0) = r, cos(e1, x1) = 1
    everywhere = -math.log(10 * (2 * r + 1) / 4) + math.log(10 * (1 + r) / 2) + 1.0
    got = grw.discriminator_terms(emb, real, fake, emb, means)
    assert got.item() == pytest.approx(everywhere, abs=1e-6)
    theirs = 10 * F.cosine_similarity(F.normalize(emb, dim=-1).unsqueeze(1),
                                      F.normalize(real, dim=-1), dim=-1).mean()
    assert (-got + math.log(10 * (1 + r) / 2) + 1.0).item() == pytest.approx(
        theirs.log().item(), abs=1e-6)
    got = grw.discriminator_terms(emb, real, fake, emb, means, adversarial_weight=0,
                                  mse_weight=2)
    assert got.item() == pytest.approx(2.0)


def test_class_mean_distance_and_correlation_by_hand():
    fake = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 1.0]])
    rows = torch.tensor([0, 0, 2])  # class 1 absent: it counts in C only
    means = torch.tensor([[2.0, 1.0], [5.0, 5.0], [0.0, 1.0]])
    # ||(2, 0) - (2, 1)|| + ||(0, 1) - (0, 1)|| over C = 3
    assert grw.mean_distance(fake, rows, means).item() == pytest.approx(1 / 3)
    # the loop of GRW's main.py
    loop = sum((fake[rows == c].mean(0) - means[c]).pow(2).sum().sqrt()
               for c in (0, 2)) / 3
    assert grw.mean_distance(fake, rows, means).item() == pytest.approx(loop.item())
    # class 0's mean (2, 0) against neighbour 2 (0, 1): cos 0, s = 0.5 -> (0.49 - 0)^2;
    # against itself-row 0 mean (2, 1): cos 2/sqrt5 = 0.894, s = 0.9 in [0.89, 0.95]: 0;
    # class 2's mean (0, 1) against row 0 (twice): cos 1/sqrt5 = 0.447 above s + 0.05
    neighbours = torch.tensor([[0, 2], [1, 0], [0, 0]])
    sims = torch.tensor([[0.9, 0.5], [1.0, 1.0], [0.1, 0.1]])
    c = 1 / math.sqrt(5)
    expected = 0.49 ** 2 + 2 * (c - 0.15) ** 2
    got = grw.neighbour_correlation(fake, rows, means, neighbours, sims, (0.01, 0.05))
    assert got.item() == pytest.approx(expected, abs=1e-6)


def test_attribute_neighbours_start_with_the_class_itself():
    attrs = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    index, sims = grw.attribute_neighbours(attrs, k=2)
    assert index[:, 0].tolist() == [0, 1, 2] and index[0, 1] == 1 and index[2, 1] == 1
    assert sims[:, 0].tolist() == pytest.approx([1.0, 1.0, 1.0])


def test_creativity_by_hand():
    logits = torch.tensor([[0.0, math.log(3.0)]])  # softmax (1/4, 3/4)
    emb_h = torch.tensor([[1.0, 0.0]])
    creative = torch.tensor([[1.0, 1.0]])
    entropy = (math.log(0.25) + math.log(0.75)) / 2 / 2  # mean of log p / C
    expected = -2.0 * entropy - 10 / math.sqrt(2)
    got = grw.creativity(logits, emb_h, creative, weight=2.0)
    assert got.item() == pytest.approx(expected, abs=1e-6)


def test_diagonal_walk_by_hand():
    # two points on the two prototypes' axes, dot product scale 1, no point -> point step
    points = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    e = math.e
    to_proto = torch.tensor([[e, 1.0], [1.0, e]]) / (e + 1)  # softmax of cos rows
    landing = to_proto.T @ to_proto  # P_pb = P_bp^T here (symmetric similarities)
    walker, visit = walk_losses(points, points, steps=0, target="diag")
    assert walker.item() == pytest.approx(-landing.diagonal().log().mean().item(), abs=1e-6)
    assert visit.item() == pytest.approx(math.log(2), abs=1e-6)
    uniform, _ = walk_losses(points, points, steps=0)
    assert uniform.item() == pytest.approx(-landing.log().mean().item(), abs=1e-6)


def test_interpolation_stays_between_two_rows():
    torch.manual_seed(0)
    attrs = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    h = grw.interpolate(attrs.repeat(50, 1), 0.2, 0.8)
    assert h.shape == (100, 2) and bool((h >= 0).all()) and bool((h <= 1).all())
    assert torch.equal(h[:, 0], h[:, 1])  # a convex combination of rows with equal columns


@pytest.mark.parametrize("option, value", [
    ("hallucination", "learned"), ("per_prototype", 0), ("correlation_margins", [0.1]),
    ("interpolation", [0.9, 0.1]), ("prototypes", "mean"), ("steps", -1),
    ("reset_optimizer", 1), ("lr", 0), ("real_pairs", "every")])
def test_bad_options_are_refused_in_one_line(option, value):
    with pytest.raises(OptionError) as err:
        grw.check_options(**{option: value})
    assert option in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(TypeError, match="unexpected option"):
        grw.check_options(hallucinaton="dictionary")


def test_bad_option_in_a_scenario_names_the_plugin(tmp_path):
    with pytest.raises(PluginError) as err:
        _run(tmp_path, "replay.hallucination='learned'")
    assert "grw" in str(err.value) and "hallucination" in str(err.value)


@pytest.mark.parametrize("overrides", [
    ["replay.hallucination='interpolation'"],
    ["replay.hallucination='dictionary'", "replay.prototype_draws='shared'"],
    ["replay.prototypes='real'", "replay.correlation_weight=0.0"],
], ids=["interpolation", "dictionary", "real-prototypes"])
def test_two_task_run(tmp_path, overrides):
    run = _run(tmp_path, "protocol.task_sizes=[4, 4]", *overrides)
    assert run.results["replay"] == "grw" and run.results["n_tasks"] == 2
    assert run.results["semantic_transductive"] is False
    assert all(math.isfinite(v) for v in run.results["summary"].values()
               if isinstance(v, float))


def test_interrupted_run_resumes_to_the_uninterrupted_results(tmp_path, monkeypatch):
    from czsl.run import resume_run

    overrides = ["replay.hallucination='dictionary'"]
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
    drop = {"wall_time_s"}
    assert {k: v for k, v in resumed.results.items() if k not in drop} == {
        k: v for k, v in reference.results.items() if k not in drop}
