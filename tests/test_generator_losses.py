"""The add-on generator losses ``gradient_matching`` (GMN) and ``random_walk`` (GRW)."""

from __future__ import annotations

import copy
import math
import pickle

import pytest
import torch
import torch.nn.functional as F

from czsl.errors import PluginError
from czsl.generators import GeneratorBatch, GeneratorLosses
from czsl.plugins import Plugins
from czsl_plugins import gradient_matching as gm
from czsl_plugins import random_walk as rw
from czsl_plugins.fclswgan import FCLSWGAN

D, A, C = 16, 4, 4  # feature size, attribute size, classes

#: (name, options) of each loss in the configurations worth checking separately.
CONFIGS = [
    ("gradient_matching", {}),
    ("gradient_matching", {"classifier": "bilinear", "n_classes": 2, "per_class": 5}),
    ("gradient_matching", {"n_classes": 0, "fake_repeat": 1, "reset_every": 0, "epochs": 2}),
    ("random_walk", {}),
    ("random_walk", {"prototypes": "real", "similarity": "l2_distance", "n_hallucinated": 7}),
]


def make_data(per_class=10, seed=0):
    """``C`` classes with one-hot attributes and well-separated positive class means."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(C, D, generator=g).abs() * 2
    labels = torch.arange(C).repeat_interleave(per_class)
    features = means[labels] + 0.1 * torch.randn(len(labels), D, generator=g)
    return features, torch.eye(C, A)[labels], means


def make_batch(generate, features, attributes, noise_dim=A):
    """A :class:`GeneratorBatch` for the whole of ``features``, as ``fclswgan`` fills it."""
    classes, labels = torch.unique(attributes, dim=0, return_inverse=True)
    noise = torch.randn(len(features), noise_dim)
    return GeneratorBatch(real=features, attributes=attributes, labels=labels,
                          class_attributes=classes, fake=generate(attributes, noise),
                          noise=noise, generate=generate,
                          sample_noise=lambda k: torch.randn(k, noise_dim))


def build(name, **options):
    return Plugins().make("generator_loss", name, options, n_features=D, n_attributes=A)


# -- (a) building by name ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["gradient_matching", "random_walk"])
def test_built_by_name_and_misspelled_options_rejected(name):
    loss = build(name, weight=1.5)
    assert loss.weight == 1.5 and callable(loss) and callable(loss.start)
    with pytest.raises(PluginError, match="wieght"):
        build(name, wieght=1.0)


@pytest.mark.parametrize("name, options", [
    ("gradient_matching", {"classifier": "mlp"}), ("gradient_matching", {"per_class": 0}),
    ("gradient_matching", {"weight": -1}), ("gradient_matching", {"lr": 0}),
    ("random_walk", {"steps": -1}), ("random_walk", {"decay": 0}),
    ("random_walk", {"similarity": "cosine"}), ("random_walk", {"interpolation": [0.8, 0.2]}),
    ("random_walk", {"prototypes": "mean"}), ("random_walk", {"per_prototype": True}),
])
def test_bad_option_values_are_named(name, options):
    with pytest.raises(PluginError, match=next(iter(options))):
        build(name, **options)


# -- (b) a finite scalar whose gradient reaches the generator ----------------------------


@pytest.mark.parametrize("name, options", CONFIGS)
def test_finite_scalar_with_gradient_into_the_generator_and_pickles(name, options):
    torch.manual_seed(0)
    features, attributes, _ = make_data()
    gen = FCLSWGAN(D, A, hidden=32)
    loss = build(name, **options)
    loss.start(features, attributes)
    value = loss(make_batch(gen.generate, features, attributes))
    assert value.shape == () and value.is_floating_point() and torch.isfinite(value)
    value.backward()
    grad = gen.generator[0].weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    again = pickle.loads(pickle.dumps(loss))  # its state survives a checkpoint
    with torch.no_grad():
        assert torch.isfinite(again(make_batch(gen.generate, features, attributes)))


@pytest.mark.parametrize("name", ["gradient_matching", "random_walk"])
def test_a_single_class_fit_set_gives_zero(name):
    features, attributes, _ = make_data()
    one = attributes[:, 0] == 1
    gen = FCLSWGAN(D, A, hidden=32)
    loss = build(name)
    loss.start(features[one], attributes[one])
    assert float(loss(make_batch(gen.generate, features[one], attributes[one]))) == 0.0


# -- (c) behaviour ------------------------------------------------------------------------


@pytest.mark.parametrize("bilinear", [False, True])
def test_closed_form_cosines_equal_autograd_per_class_gradients(bilinear):
    torch.manual_seed(0)
    s = torch.randn(C, A, dtype=torch.float64) if bilinear else None
    rows = A if bilinear else C
    w = torch.randn(rows, D, dtype=torch.float64, requires_grad=True)
    b = torch.randn(rows, dtype=torch.float64, requires_grad=True)
    lr, lf = torch.tensor([0, 0, 1, 1, 1, 3, 3, 0]), torch.tensor([0, 1, 1, 3, 3, 3, 0, 1, 0])
    xr = torch.randn(len(lr), D, dtype=torch.float64)
    xf = torch.randn(len(lf), D, dtype=torch.float64)

    def grads(x, y):
        h = x @ w.T + b
        return torch.autograd.grad(F.cross_entropy(h if s is None else h @ s.T, y), [w, b])

    cos_w, cos_b = gm.per_class_gradient_cosines(
        xr, lr, gm.softmax_residuals(xr, lr, w, b, s), xf, lf,
        gm.softmax_residuals(xf, lf, w, b, s), C)
    for c in (0, 1, 3):  # the reference: row-wise cosine for weights, plain for biases
        (gwr, gbr), (gwf, gbf) = grads(xr[lr == c], lr[lr == c]), grads(xf[lf == c], lf[lf == c])
        assert cos_w[c].item() == pytest.approx(F.cosine_similarity(gwf, gwr, dim=1).mean().item())
        assert cos_b[c].item() == pytest.approx(F.cosine_similarity(gbf, gbr, dim=0).item())


def test_gradient_matching_prefers_the_right_class_and_is_zero_on_copies():
    features, attributes, means = make_data()
    loss = build("gradient_matching", n_classes=0, fake_repeat=1, reset_every=0, epochs=3)
    loss.start(features, attributes)
    batch = make_batch(lambda a, z: a, features, attributes)
    batch.fake = features.clone()  # generated == real: every gradient matches
    assert float(copy.deepcopy(loss)(batch)) == pytest.approx(0.0, abs=1e-3)
    # fake of class c: the real samples of class c + 1
    batch.fake = features[(torch.arange(len(features)) + 10) % len(features)]
    assert float(copy.deepcopy(loss)(batch)) > 10

    def sampled(shift):  # the default, fit-set-sampling mode, with a tiny fixed generator
        torch.manual_seed(1)
        fresh = build("gradient_matching")
        fresh.start(features, attributes)
        return float(fresh(make_batch(lambda a, z: a @ means.roll(shift, 0) + 0.1 * z[:, :1],
                                      features, attributes)))
    assert sampled(0) < 0.2 * sampled(1)


def test_a_few_generator_steps_on_gradient_matching_alone_reduce_it():
    torch.manual_seed(0)
    features, attributes, _ = make_data()
    net = torch.nn.Sequential(torch.nn.Linear(2 * A, 32), torch.nn.ReLU(), torch.nn.Linear(32, D))

    def generate(a, z):
        return net(torch.cat([z, a], 1))

    probe = build("gradient_matching")  # a fixed random classifier to measure with
    probe.start(features, attributes)

    def measured():
        torch.manual_seed(5)
        with torch.no_grad():
            return float(copy.deepcopy(probe)(make_batch(generate, features, attributes)))

    loss = build("gradient_matching", per_class=20)
    loss.start(features, attributes)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    before = measured()
    for _ in range(20):
        value = loss(make_batch(generate, features, attributes))
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
    assert measured() < 0.5 * before


def test_random_walk_is_log_c_per_step_and_log_n_when_every_move_is_equally_likely():
    points = torch.zeros(6, 8)
    points[:, 0] = 1.0  # all points alike, orthogonal to every prototype
    prototypes = torch.zeros(3, 8)
    prototypes[torch.arange(3), torch.arange(1, 4)] = 1.0
    walker, visit = rw.walk_losses(points, prototypes, steps=5, decay=0.7)
    assert walker.item() == pytest.approx(math.log(3) * sum(0.7 ** t for t in range(6)))
    assert visit.item() == pytest.approx(math.log(6))


@pytest.mark.parametrize("options", [{}, {"prototypes": "real"},
                                     {"similarity": "l2_distance", "prototypes": "real"},
                                     {"scale": 3.0}])
def test_random_walk_costs_more_when_novel_samples_collapse_onto_a_seen_class(options):
    features, attributes, means = make_data()
    seen = torch.eye(C, A)

    def spread(a, z):  # interpolated attributes land between the prototypes
        return a @ means + 0.01 * z

    def collapse(a, z):  # seen attributes as above, anything else onto class 0
        is_seen = (a.unsqueeze(1) == seen).all(2).any(1, keepdim=True)
        return torch.where(is_seen, a @ means, means[0].expand(len(a), D)) + 0.01 * z

    def value(generate):
        torch.manual_seed(3)
        loss = build("random_walk", **options)
        loss.start(features, attributes)
        return float(loss(make_batch(generate, features, attributes, noise_dim=D)))

    assert value(collapse) > value(spread)


# -- (d) end to end, inside f-CLSWGAN's fit ---------------------------------------------


@pytest.mark.parametrize("name, options", [CONFIGS[0], CONFIGS[3]])
def test_fclswgan_fits_with_the_loss_and_samples(name, options):
    torch.manual_seed(0)
    features, attributes, _ = make_data()
    losses = GeneratorLosses([("x", build(name, **options))])
    gen = FCLSWGAN(D, A, hidden=32, epochs=1, cls_epochs=1, max_iterations=3, losses=losses)
    gen.fit(features, attributes)
    assert math.isfinite(losses.last["x"])
    assert gen.sample(torch.eye(C, A), 5).shape == (C * 5, D)


# -- (e) a generator may hand over ``fake`` as a function, run at the first read ----------


def test_fake_passed_as_a_function_runs_only_when_a_loss_reads_it_and_once():
    features, attributes, _ = make_data(per_class=3)
    generator = torch.nn.Linear(2 * A, D)
    calls = []

    def make_fake():
        calls.append(1)
        return generator(torch.cat([attributes, noise], 1))

    noise = torch.randn(len(features), A)
    classes, labels = torch.unique(attributes, dim=0, return_inverse=True)
    batch = GeneratorBatch(real=features, attributes=attributes, labels=labels,
                           class_attributes=classes, fake=make_fake, noise=noise,
                           generate=lambda a, z: generator(torch.cat([a, z], 1)),
                           sample_noise=lambda k: torch.randn(k, A))
    walk = GeneratorLosses([("random_walk", build("random_walk"))])(batch)
    assert walk.requires_grad and calls == []  # the walk never reads batch.fake
    first, again = batch.fake, batch.fake
    assert calls == [1] and first is again and first.shape == (len(features), D)
    assert first.grad_fn is not None  # still in the generator's graph
