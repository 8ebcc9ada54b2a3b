"""Test kits for plugin writers: :func:`check_generator` runs every rule of the generator
contract (:func:`czsl.hookspecs.czsl_make_generator`) on a tiny problem.

In the spirit of scikit-learn's ``check_estimator``: a plugin's own tests call it once,
and it raises an ``AssertionError`` naming the rule a generator breaks. A run checks
what is cheap on every call (:class:`czsl.generators.CheckedGenerator`: the shape, dtype,
device and finiteness of ``sample``); the kit also checks what a run cannot see: the
row order of ``sample``, determinism under a seed, and resuming from pickled state.

The rules, in the order they are checked (each message starts with
``check_generator, rule '<name>'``):

``builds`` (a generator given by name)
    it builds with the options given, as a run builds it;
``methods``
    it has ``fit``, ``sample`` and ``to``;
``pickles``
    its state pickles as a checkpoint pickles it, when built and after a fit;
``fit``
    ``fit(features [N, D], attributes [N, A])`` runs;
``sample``
    ``sample(attributes [K, A], n)`` returns ``[K * n, D]`` finite float features of
    the attributes' dtype on their device (``K`` = 1 and ``n`` = 1 included);
``inputs``
    neither method changes its input tensors;
``notes``
    its optional ``notes`` are a list of strings;
``conditioning``
    after a fit on a few well-separated classes, the features sampled for different
    classes can be told apart: their means, measured on one draw along the line
    between them found on another, differ by at least :data:`SEPARATION` standard
    errors (the kit samples more, up to 20 times ``n`` per class, before it gives up).
    The row order can only be checked for a generator whose output depends on the
    attributes;
``row order``
    given the attributes of every ordered pair of classes, and of all classes in a
    shuffled order, block ``k`` of the sample (rows ``k*n .. k*n + n - 1``) is
    distributed as what ``sample`` gives ``attributes[k]`` alone: along the line from
    that class to each other class of the call, its mean lies less than a quarter of
    the way. A correct block lies within ``1 / SEPARATION`` of its class, give or take
    (a quarter is 5 standard errors: no decent generator fails by chance); with two
    classes, a block of interleaved rows lies half way, a swapped one all the way,
    wherever the classes lie. (A block whose features depend on the other rows of the
    call, e.g. through batch statistics, fails too: the replay samples different sets
    of classes together and labels each block by its own row alone.)
``determinism`` (CPU only)
    built, fitted and sampled twice from the same seed, it gives the same features;
``resume`` (CPU only)
    restored from its pickled state after a fit, it fits and samples exactly as the
    generator it was saved from (what ``czsl run --resume`` relies on).

Usage, in a plugin's tests::

    from czsl.testing import check_generator

    def test_my_generator_keeps_the_contract():
        check_generator("my_generator", options={"epochs": 5})  # installed: by name
        check_generator(functools.partial(MyGenerator, epochs=5))  # or a factory

The kit leaves the global random generators as it found them.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from czsl.checkpoint import (Unpicklable, dump_learner_state, find_unpicklable,
                             load_learner_state, rng_state, seed_everything, set_rng_state)
from czsl.errors import PluginError
from czsl.generators import METHODS, CheckedGenerator

#: How many standard errors apart two classes' sampled means must be for ``conditioning``.
SEPARATION = 20.0
#: The largest share of the way to another class a correct block's mean may lie.
ROW_ORDER_TOLERANCE = 0.25


def check_generator(generator: str | Callable[..., Any] | Any, *,
                    options: dict[str, Any] | None = None, n_features: int = 8,
                    n_attributes: int = 6, n_classes: int = 4, samples_per_class: int = 50,
                    n: int = 1000, seed: int = 0,
                    device: str | torch.device = "cpu") -> None:
    """Check that a generator keeps the contract of
    :func:`czsl.hookspecs.czsl_make_generator` (the rules: see :mod:`czsl.testing`).

    :param generator: the name of an installed ``generator`` component (built with
        ``options``, as a scenario's ``[generator]`` table builds it, ``losses``
        included); or a factory, called as ``factory(n_features=..., n_attributes=...)``
        (a class, a ``functools.partial``); or a generator built for ``n_features`` and
        ``n_attributes`` (it is fitted; its pickled copies stand in for fresh ones).
    :param options: the ``[generator]`` options of a generator given by name.
    :param n_features: feature dimension ``D`` of the problem.
    :param n_attributes: attribute dimension ``A``.
    :param n_classes: classes of the problem (at least 2).
    :param samples_per_class: real features per class in the fit set.
    :param n: features sampled per class for the ``row order`` check.
    :param seed: the seed of the problem and of every random draw.
    :param device: where the generator and the data are (``determinism`` and ``resume``
        are checked on the CPU only: GPU kernels need not be bit-reproducible).
    :raises AssertionError: naming the first rule the generator breaks.
    """
    if options is not None and not isinstance(generator, str):
        raise TypeError("options are for a generator given by name; give a factory its "
                        "options yourself (e.g. functools.partial(MyGenerator, epochs=5))")
    if not 2 <= n_classes <= n_features:
        raise ValueError(f"n_classes must be at least 2 and at most n_features "
                         f"({n_features}), got {n_classes}")
    saved = rng_state()
    try:
        _Check(generator, options or {}, n_features, n_attributes, seed,
               torch.device(device)).run(n_classes, samples_per_class, n)
    finally:
        set_rng_state(saved)


def _fail(rule: str, message: str) -> AssertionError:
    return AssertionError(f"check_generator, rule {rule!r}: {message}")


def _round_trip(generator: CheckedGenerator, when: str) -> CheckedGenerator:
    """``generator`` pickled and unpickled as a checkpoint does it."""
    try:
        blobs = dump_learner_state({"generator": generator}, {})
        return load_learner_state(blobs, {})["generator"]
    except Unpicklable as exc:
        deeper = find_unpicklable(generator.generator, {})
        what = f"its attribute {deeper[0]!r}" if deeper else "its state"
        raise _fail("pickles", f"{generator.where}: {what} cannot be pickled "
                               f"{when} ({type(exc.cause).__name__}: {exc.cause}); czsl "
                               "pickles it after every task (see 'Checkpoints' in "
                               "czsl.hookspecs): keep torch modules and tensors, or define "
                               "__getstate__/__setstate__") from exc.cause
    except Exception as exc:
        raise _fail("pickles", f"{generator.where}: its pickled state cannot be loaded "
                               f"{when}: {type(exc).__name__}: {exc}") from exc


def problem(n_classes: int, n_features: int, n_attributes: int, per_class: int, seed: int,
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A tiny, easy fit set: each class's features are high (5) on its own dimensions
    (every ``n_classes``-th one) and 1 elsewhere, plus noise of standard deviation 0.3,
    non-negative like ResNet features; its attributes are 0.8 on its own attribute
    dimensions (likewise) and 0 elsewhere, plus uniform noise in [0, 0.2]. Drawn from its
    own random generator.

    :return: ``features [C * per_class, D]``, ``attributes [C * per_class, A]`` (each
        feature's class's row) and the classes' ``attributes [C, A]``.
    """
    g = torch.Generator().manual_seed(seed)
    dtype = torch.get_default_dtype()

    def own(n: int) -> torch.Tensor:  # [C, n]: every n_classes-th of n dimensions
        return (torch.arange(n) % n_classes == torch.arange(n_classes)[:, None]).to(dtype)

    classes = 0.8 * own(n_attributes) + 0.2 * torch.rand(n_classes, n_attributes, generator=g,
                                                         dtype=dtype)
    means = 1.0 + 4.0 * own(n_features)
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    noise = 0.3 * torch.randn(len(labels), n_features, generator=g, dtype=dtype)
    return (means[labels] + noise).clamp_min(0), classes[labels], classes


class _Check:
    """One run of the kit: builds the generator (fresh, seeded) and checks each rule."""

    def __init__(self, generator: Any, options: dict[str, Any], n_features: int,
                 n_attributes: int, seed: int, device: torch.device) -> None:
        self.spec, self.options = generator, options
        self.n_features, self.n_attributes = n_features, n_attributes
        self.seed, self.device = seed, device
        self.blob: dict[str, Any] | None = None  # a given instance, pickled before use

    def build(self) -> CheckedGenerator:
        """A fresh generator, built under the kit's seed, on the kit's device."""
        seed_everything(self.seed)
        spec = self.spec
        if isinstance(spec, str):
            from czsl.build import build_generator  # imports Avalanche: only when needed
            from czsl.plugins import Plugins

            try:
                built = build_generator(Plugins(), spec, self.options, self.n_features,
                                        self.n_attributes)
            except PluginError as exc:  # an unknown name or option, a missing method...
                raise _fail("builds", str(exc)) from exc
        elif self.blob is not None:  # a copy of the instance as it was given
            built = load_learner_state(self.blob, {})["generator"]
        else:
            is_factory = isinstance(spec, type) or not all(
                callable(getattr(spec, m, None)) for m in METHODS)
            obj = (spec(n_features=self.n_features, n_attributes=self.n_attributes)
                   if is_factory and callable(spec) else spec)
            where = f"generator {type(obj).__name__}"
            try:
                built = CheckedGenerator(obj, where, self.n_features)
            except PluginError as exc:
                raise _fail("methods", str(exc)) from exc
            if not is_factory:  # later builds are copies of it as it is now
                _round_trip(built, "when built")  # names what does not pickle
                self.blob = dump_learner_state({"generator": built}, {})
        return built.to(self.device)

    def fit(self, gen: CheckedGenerator, features: torch.Tensor, attributes: torch.Tensor,
            seed: int) -> None:
        seed_everything(seed)
        before = features.clone(), attributes.clone()
        try:
            gen.fit(features, attributes)
        except PluginError as exc:
            raise _fail("fit", str(exc)) from exc
        if not (torch.equal(before[0], features) and torch.equal(before[1], attributes)):
            raise _fail("inputs", f"{gen.where}: fit() changed the features or attributes "
                                  "it was given; they are the replay's and the stream's: "
                                  "work on copies")

    def sample(self, gen: CheckedGenerator, attributes: torch.Tensor, n: int,
               seed: int | None = None) -> torch.Tensor:
        if seed is not None:
            seed_everything(seed)
        before = attributes.clone()
        try:
            out = gen.sample(attributes, n)
        except PluginError as exc:
            raise _fail("sample", str(exc)) from exc
        if not torch.equal(before, attributes):
            raise _fail("inputs", f"{gen.where}: sample() changed the attributes it was "
                                  "given; they are the stream's: work on a copy")
        return out

    def run(self, n_classes: int, per_class: int, n: int) -> None:
        x, a, classes = (t.to(self.device) for t in problem(
            n_classes, self.n_features, self.n_attributes, per_class, self.seed))
        gen = self.build()
        _round_trip(gen, "when built")  # a run pickles it once before training
        self.fit(gen, x, a, self.seed + 1)
        drawn = self.sample(gen, classes, 3, seed=self.seed + 2)  # for determinism, below
        self.sample(gen, classes[:1], 1)
        self.sample(gen, classes[1:2], 5)
        try:
            gen.notes()
        except PluginError as exc:
            raise _fail("notes", str(exc)) from exc
        check_row_order(gen, classes, n, sample=self.sample)
        if self.device.type != "cpu":
            return
        twin = self.build()
        self.fit(twin, x, a, self.seed + 1)
        if not torch.equal(self.sample(twin, classes, 3, seed=self.seed + 2), drawn):
            raise _fail("determinism", f"{gen.where}: built, fitted and sampled twice from "
                                       "the same seed, it gave different features; draw "
                                       "randomness only from torch's, numpy's and Python's "
                                       "global generators (czsl seeds and checkpoints "
                                       "those), and nothing else (time, id(), an unseeded "
                                       "torch.Generator)")
        restored = _round_trip(gen, "after a fit")
        # the next task: other features, other classes
        x, a, classes = problem(n_classes, self.n_features, self.n_attributes, per_class,
                                self.seed + 1)
        self.fit(gen, x, a, self.seed + 3)
        self.fit(restored, x, a, self.seed + 3)
        if not torch.equal(self.sample(restored, classes, 3, seed=self.seed + 4),
                           self.sample(gen, classes, 3, seed=self.seed + 4)):
            raise _fail("resume", f"{gen.where}: restored from its pickled state after a "
                                  "fit, it fitted and sampled differently from the "
                                  "generator it was saved from, so a resumed run would not "
                                  "give an uninterrupted run's results; keep everything a "
                                  "later fit or sample depends on (an optimizer's state "
                                  "included) in what pickles, with __getstate__/"
                                  "__setstate__ that restore it all")


def check_row_order(gen: CheckedGenerator, classes: torch.Tensor, n: int, *,
                    max_n: int | None = None,
                    sample: Callable[..., torch.Tensor] | None = None) -> None:
    """The ``conditioning`` and ``row order`` rules (see :mod:`czsl.testing`) for a fitted
    generator and the attributes ``classes`` ``[C, A]`` of the classes it was fitted on.

    ``sample`` is called for each class alone, then for every ordered pair of classes and
    for all classes in a shuffled order (each at another row than its own). With two
    classes the check needs no assumption on where the classes lie: a block of
    interleaved rows lies half way to the other class, a swapped one all the way.

    :param n: features sampled per class and call; where two classes are less than
        :data:`SEPARATION` standard errors apart, ``n`` grows (to at most ``max_n``) so
        that they would be.
    :param max_n: the most features sampled per class and call (default ``20 * n``).
    :param sample: ``sample(gen, attributes, n)``; default: ``gen.sample``.
    :raises AssertionError: naming the rule broken.
    """
    if sample is None:
        def sample(g: CheckedGenerator, attributes: torch.Tensor, k: int) -> torch.Tensor:
            return g.sample(attributes, k)
    max_n = 20 * n if max_n is None else max_n
    k = len(classes)
    pairs = [(c, j) for c in range(k) for j in range(k) if c != j]
    while True:
        # the line between two classes from one draw, where they lie on it from another:
        # an unbiased measure (the line through two noisy means favours their noise)
        axes = torch.stack([_mean_cov(sample(gen, classes[c:c + 1], n))[0]
                            for c in range(k)])  # [C, D]
        stats = [_mean_cov(sample(gen, classes[c:c + 1], n)) for c in range(k)]
        lines = {}
        for c, j in pairs:
            gap = axes[j] - axes[c]
            axis = gap / gap.norm() if bool(gap.norm() > 0) else gap
            (mean_c, cov_c), (mean_j, cov_j) = stats[c], stats[j]
            spread = math.sqrt(max(float(axis @ (cov_c + cov_j) @ axis) / 2, 0.0))
            lines[c, j] = (axis, float(mean_c @ axis), float(mean_j @ axis),
                           spread * math.sqrt(2 / n))  # the error of a difference of means
        ratio, c, j = min(((at_j - at_c) / error if error > 0 else
                           (math.inf if at_j > at_c else 0.0), c, j)
                          for (c, j), (_, at_c, at_j, error) in lines.items())
        if ratio > SEPARATION:
            break
        more = math.ceil(n * (1.2 * SEPARATION / ratio) ** 2) if ratio > 0 else max_n + 1
        if more > max_n:
            _, at_c, at_j, _ = lines[c, j]
            raise _fail("conditioning", (
                f"{gen.where}: after a fit on {k} well-separated classes, the features "
                f"sample() gives two of them (classes {c} and {j}) cannot be told apart "
                f"(their means are {abs(at_j - at_c):.3g} apart, {abs(ratio):.3g} standard "
                f"errors of {n} samples each; the row order check needs {SEPARATION:g}, "
                f"which would take more than max_n = {max_n} samples). A generator must "
                "generate features for the attributes it is given; if this one is just "
                "too little trained here, give it more epochs or a higher learning rate in "
                "the check"))
        n = more
    orders = [[c, j] for c, j in pairs]
    orders.append(torch.arange(k).roll(1).tolist())  # none at its own row
    for order in orders:
        out = sample(gen, classes[torch.tensor(order, device=classes.device)], n)
        blocks = out.reshape(len(order), n, -1).double().mean(1)  # [len(order), D]
        for row, c in enumerate(order):
            for j in order:
                if j == c:
                    continue
                axis, at_c, at_j, _ = lines[c, j]
                share = (float(blocks[row] @ axis) - at_c) / (at_j - at_c)
                if share > ROW_ORDER_TOLERANCE:
                    raise _fail("row order", (
                        f"{gen.where}: sample(attributes [{len(order)}, A], n={n}), given "
                        f"the attributes of classes {order}: block {row} (rows {row * n} .. "
                        f"{row * n + n - 1}) is not what it gives class {c} alone: its "
                        f"mean lies {share:.0%} of the way to class {j}'s. Rows k*n .. "
                        "k*n + n - 1 must be generated for attributes[k], in the order "
                        "given (the rows of attributes.repeat_interleave(n, 0)); see "
                        "czsl.hookspecs.czsl_make_generator"))


def _mean_cov(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``[D]`` and covariance ``[D, D]`` of ``features`` ``[n, D]``, in float64."""
    x = features.double()
    mean = x.mean(0)
    centred = x - mean
    return mean, centred.T @ centred / max(len(x) - 1, 1)
