"""czsl.testing.check_generator: the built-in generators keep the generator contract, and
a generator that breaks one of its rules fails the kit with that rule named."""

from __future__ import annotations

import functools
import random
import time

import numpy as np
import pytest
import torch

from czsl.errors import brief
from czsl.generators import GeneratorBatch, GeneratorLosses
from czsl.testing import check_generator, problem
from czsl_plugins import cvae, fclswgan

#: options that condition on this kit's tiny problem in a second or two
FAST_CVAE = {"epochs": 10, "hidden": 32, "latent_dim": 4, "lr": 1e-2}
FAST_GAN = {"hidden": 32, "epochs": 10, "lr": 3e-3, "cls_epochs": 10, "batch_size": 32,
            "critic_steps": 2, "cls_weight": 1.0}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: torch's intra-op threads only spin against each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ------------------------------------------------------------- the built-in generators


def test_the_built_in_generators_keep_the_contract():
    check_generator(functools.partial(cvae.CVAE, **FAST_CVAE))
    check_generator(functools.partial(fclswgan.FCLSWGAN, **FAST_GAN))


@pytest.mark.parametrize("name, options", [
    ("cvae", {**FAST_CVAE, "fast_math": True,
              "losses": [{"name": "anti_collapse", "weight": 0.1}]}),
    ("fclswgan", {**FAST_GAN, "losses": [{"name": "gradient_matching", "n_classes": 2,
                                          "per_class": 8, "fake_repeat": 1, "weight": 1.0}]}),
], ids=["cvae+anti_collapse", "fclswgan+gradient_matching"])
def test_built_by_name_with_add_on_losses_as_a_run_builds_them(name, options):
    check_generator(name, options=options)


def test_the_kit_leaves_the_global_random_generators_as_it_found_them():
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    expected = random.random(), float(np.random.rand()), float(torch.rand(()))
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    check_generator(Gaussian)
    assert (random.random(), float(np.random.rand()), float(torch.rand(()))) == expected


def test_options_go_with_a_name_only():
    with pytest.raises(TypeError, match="options are for a generator given by name"):
        check_generator(Gaussian, options={"mode": "nan"})


# ------------------------------------------------------------- generators that break a rule


class Gaussian:
    """Each class a Gaussian around a mean fitted per attribute row (least squares on
    ``[a, 1]``), broken on purpose in the way ``mode`` says."""

    def __init__(self, n_features, n_attributes, mode="fine"):
        self.mode = mode
        self.weight = torch.zeros(n_attributes + 1, n_features)
        self.fits = 0
        self.keep = (lambda: None) if mode == "unpicklable" else None

    def to(self, device):
        self.weight = self.weight.to(device)
        return self

    def fit(self, features, attributes):
        if self.mode == "in_place":
            features.mul_(1.0)
            features[0, 0] += 1
        a = torch.cat([attributes, torch.ones_like(attributes[:, :1])], 1)
        weight = torch.linalg.lstsq(a, features).solution
        self.fits += 1  # a running mean of the fits
        self.weight = self.weight + (weight - self.weight) / self.fits

    def __getstate__(self):
        state = dict(self.__dict__)
        if self.mode == "forgets":
            state.pop("fits")  # the next fit then weighs differently
        return state

    def __setstate__(self, state):
        state.setdefault("fits", 0)
        self.__dict__.update(state)

    def sample(self, attributes, n):
        if self.mode == "sorted":  # torch.unique sorts the rows: the order is lost
            attributes = torch.unique(attributes, dim=0)
        a = torch.cat([attributes, torch.ones_like(attributes[:, :1])], 1)
        means = a @ self.weight  # [K, D]
        if self.mode == "ignores":
            means = self.weight[-1:].expand_as(means)
        if self.mode == "batch_mean":  # each row's features depend on the other rows
            means = means.mean(0, keepdim=True).expand_as(means)
        rows = means.repeat(n, 1) if self.mode == "interleaved" else \
            means.repeat_interleave(n, 0)
        generator = None
        if self.mode == "unseeded":
            generator = torch.Generator().manual_seed(time.perf_counter_ns() % 2 ** 31)
        out = rows + 0.3 * torch.randn(rows.shape, generator=generator, dtype=rows.dtype)
        if self.mode == "nan":
            out[1, 2] = float("nan")
        if self.mode == "shape":
            out = out[1:]
        if self.mode == "float64":
            out = out.double()
        return out

    @property
    def notes(self):
        return "a string, not a list" if self.mode == "notes" else []


@pytest.mark.parametrize("mode, rule, words", [
    ("nan", "sample", "returned 1 NaN or infinite values"),
    ("shape", "sample", "returned a torch.float32 tensor of shape (11, 8)"),
    ("float64", "sample", "returned a torch.float64 tensor"),
    ("interleaved", "row order", "block 0 (rows 0 .. 999) is not what it gives class 0"),
    ("sorted", "row order", "is not what it gives class"),
    ("batch_mean", "row order", "given the attributes of classes [0, 1]: block 0"),
    ("ignores", "conditioning", "cannot be told apart (their means are 0.0"),
    ("unseeded", "determinism", "it gave different features"),
    ("forgets", "resume", "fitted and sampled differently"),
    ("in_place", "inputs", "fit() changed the features"),
    ("unpicklable", "pickles", "its attribute 'keep' cannot be pickled when built"),
    ("notes", "notes", "they must be a list of strings"),
])
def test_a_generator_that_breaks_a_rule_fails_naming_it(mode, rule, words):
    with pytest.raises(AssertionError) as info:
        check_generator(functools.partial(Gaussian, mode=mode))
    message = str(info.value)
    assert message.startswith(f"check_generator, rule {rule!r}: generator Gaussian"), message
    assert words in message, message
    assert len(message) < 700  # one readable paragraph


def test_a_correct_generator_passes_given_as_a_class_or_an_instance():
    check_generator(Gaussian)
    check_generator(Gaussian(16, 5), n_features=16, n_attributes=5)


def test_a_generator_that_ignores_attributes_is_caught_in_many_dimensions_too():
    # the line between two noisy means favours their noise: in 256 dimensions a biased
    # measure would find the classes apart, and the row order check would then fail
    with pytest.raises(AssertionError, match="rule 'conditioning'"):
        check_generator(functools.partial(Gaussian, mode="ignores"), n_features=256)


def test_the_row_order_check_does_not_fail_a_correct_generator_by_chance():
    for seed in range(5):
        check_generator(Gaussian, seed=seed, n=200)


def test_the_problem_is_separable_and_drawn_from_its_own_generator():
    torch.manual_seed(0)
    before = torch.get_rng_state()
    x, a, classes = problem(4, 8, 6, 5, seed=3)
    assert torch.equal(torch.get_rng_state(), before)
    assert x.shape == (20, 8) and a.shape == (20, 6) and classes.shape == (4, 6)
    assert len(torch.unique(classes, dim=0)) == 4 and (x >= 0).all()
    means = x.reshape(4, 5, 8).mean(1)
    assert torch.cdist(means, means).add(torch.eye(4) * 100).min() > 5


# ------------------------------------------------------------- values in error messages


def test_a_non_scalar_generator_loss_is_shown_short():
    losses = GeneratorLosses([("generator loss 'wide' (plugin 'wide' from pkg 1.0)",
                               lambda batch: batch.real.sum(1))])  # [B], not a scalar
    real = torch.rand(64, 8)
    batch = GeneratorBatch(real=real, attributes=torch.rand(64, 4),
                           labels=torch.zeros(64, dtype=torch.long),
                           class_attributes=torch.rand(1, 4), fake=real, noise=real,
                           generate=lambda a, z: z, sample_noise=lambda k: torch.rand(k, 8))
    with pytest.raises(Exception) as info:
        losses(batch)
    message = str(info.value)
    assert "returned a torch.float32 tensor of shape [64] (first values " in message
    assert len(message) < 250, message


def test_brief_shortens_arrays_and_long_reprs_only():
    assert brief(torch.tensor([0.5, 0.25, 1.0, 2.0])) == (
        "a torch.float32 tensor of shape [4] (first values 0.5, 0.25, 1, ...)")
    assert brief(np.zeros((30, 30), dtype=np.int64)) == (
        "an int64 array of shape [30, 30] (first values 0, 0, 0, ...)")
    assert brief(torch.tensor(0.5)) == "tensor(0.5000)"  # a few elements: as they are
    assert brief([1, 2]) == "[1, 2]"
    assert brief("x" * 200) == "'" + "x" * 76 + "..."
    assert brief(torch.Tensor) == "<class 'torch.Tensor'>"
