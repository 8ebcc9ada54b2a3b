"""BD-CGZSL: GRW's discriminator-as-classifier and generator, with generative replay
filtered by two classifiers (Kuchibhotla et al., "Unseen Classes at a Later Time? No
Problem", CVPR 2022; code ``sumitramalagi/Unseen-classes-at-a-later-time``,
``main.py``). The same networks as GRW (:mod:`czsl_plugins.grw`, whose blocks are
imported): use the model ``grw_discriminator``.

Per mini-batch (``main.py:222-330``):

* D: the learner's CE over the seen classes plus, in ``before_backward``,
  ``-log(t mean cos(D(a_y), x)) + log(t mean cos(D(a_y), G(z, a_y))) + MSE(D(a_c),
  mean_c)`` (:func:`czsl_plugins.grw.discriminator_terms`);
* G, in ``after_update``, with its own Adam (lr 0.005, wd 1e-5, re-created per task):
  a step on ``-log(t mean cos(D(a_y), G)) + CE(t cos(G, D(a_c))) + sum_c ||mean G_c -
  mean_c|| / C``, then (transductive row) a second step, without zeroing the gradients
  in between (as the code), that adds ``CE(t cos(G(z, a_u), D(a_all)))`` for
  ``unseen_batch_size`` (16) attributes of classes not seen yet, over all classes.

Replay (``main.py:386-418``): at the start of each task, ``replay_per_class`` (300)
fakes of every past class; a fake is kept when the class-mean classifier (cosine to the
stored real class means) and D are both right or both wrong, labelled with the
class-mean prediction; the kept fakes join the task's data.

Rows of GRW's Table 1: ``transductive = true`` (default; the generator reads the
attributes of classes not seen yet, so the run is semantic-transductive) is BD-CGZSL
(tr); ``false`` drops the unseen step (BD-CGZSL-in).

Differences from the code, on purpose:

* no best-epoch selection on the test set (``main.py:342-368`` keeps the epoch whose
  test H is best): czsl tests once after each task's last epoch;
* the protocol is the scenario's (GRW's static split for GRW's Table 1); BD's own
  ``main.py`` uses its dynamic loader;
* G's first step uses D after D's step (the code reuses D's outputs from before the
  step, which torch >= 1.5 refuses to back-propagate through);
* the LSR neighbour-correlation term is computed by sklearn on detached arrays in the
  code (``main.py:278,286``), so it has no gradient: ``correlation_weight`` defaults to
  0; a positive value adds GRW's differentiable version
  (:func:`czsl_plugins.grw.neighbour_correlation`, with ``correlation_margins``) for the
  seen step only;
* unseen attributes are drawn as classes, uniformly with replacement (the code draws 16
  rows of the unseen test samples' attributes, so classes in proportion to their test
  images);
* the replay is synthesised once at the start of each task (the code synthesises it
  after every epoch and keeps the last; the same networks), the learner's Adam state
  is cleared at each task (``reset_optimizer``), D on the seen attributes is computed
  once per step (not on the batch-repeated tensor), and the fake of D's loss is
  detached (the same update).

Options (``[replay]``): ``transductive`` (true), ``replay_per_class`` (300),
``unseen_batch_size`` (16), ``unseen_weight`` (1), ``lr`` (0.005), ``weight_decay``
(1e-5), ``temperature`` (10), ``adversarial_weight`` (1), ``mse_weight`` (1),
``classification_weight`` (1), ``mean_distance_weight`` (1), ``correlation_weight`` (0),
``neighbours`` (3), ``correlation_margins`` ([0.01, 0.04]: CUB's), ``hidden`` (1024),
``reset_optimizer`` (true), ``real_pairs`` (``"all"``: D's real log-cosine over every pair
of the batch, as the code broadcasts it; see :func:`czsl_plugins.grw.discriminator_terms`).
"""

from __future__ import annotations

import functools

from czsl import Component, hookimpl
from czsl.options import boolean, choice, integer, number

NAME = "bd_cgzsl"
OPTIONS = dict(transductive=True, replay_per_class=300, unseen_batch_size=16,
               unseen_weight=1.0, lr=0.005, weight_decay=1e-5, temperature=10.0,
               adversarial_weight=1.0, mse_weight=1.0, classification_weight=1.0,
               mean_distance_weight=1.0, correlation_weight=0.0, neighbours=3,
               correlation_margins=[0.01, 0.04], hidden=1024, reset_optimizer=True,
               real_pairs="all")


@hookimpl
def czsl_components():
    """One replay: ``bd_cgzsl`` (its model is ``grw_discriminator``)."""
    return [Component("replay", NAME, "BD-CGZSL: GRW's generator and discriminator, "
                      "replay filtered by class-mean and D agreement, tr or -in "
                      "(Kuchibhotla et al., CVPR 2022)", options=OPTIONS)]


@hookimpl
def czsl_make_replay(options, stream):
    """The BD-CGZSL plugin."""
    return [make_plugin(stream, **options)]


def check_options(**options):
    """The options, checked and completed with :data:`OPTIONS` (one-line errors)."""
    from czsl_plugins.grw import PAIRS, _pair

    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise TypeError(f"unexpected option(s) {', '.join(unknown)}")
    o = {**OPTIONS, **options}
    for key in ("transductive", "reset_optimizer"):
        o[key] = boolean(key, o[key])
    for key in ("replay_per_class", "unseen_batch_size", "neighbours", "hidden"):
        o[key] = integer(key, o[key])
    for key in ("lr", "temperature"):
        o[key] = number(key, o[key], above=0)
    for key in ("unseen_weight", "weight_decay", "adversarial_weight", "mse_weight",
                "classification_weight", "mean_distance_weight", "correlation_weight"):
        o[key] = number(key, o[key], at_least=0)
    o["correlation_margins"] = _pair("correlation_margins", o["correlation_margins"])
    o["real_pairs"] = choice("real_pairs", o["real_pairs"], PAIRS)
    return o


def make_plugin(stream, **options):
    """The BD-CGZSL replay plugin; options: see the module docstring."""
    o = check_options(**options)
    if o["transductive"]:  # the generator reads the attributes of unseen classes
        stream.declare_transductive()
    return _plugin_class()(stream, o)


def agreement_filter(fakes, own, means, embeddings):
    """BD's replay filter (``main.py:386-418``): ``(keep [N] bool, labels [N])``.

    :param fakes: ``[N, D]`` fakes; ``own`` ``[N]`` the row (in ``means``) of their class.
    :param means: ``[P, D]`` real class means; ``embeddings`` ``[P, D]`` D of the classes.
    :return: keep a fake where the class-mean prediction and D's prediction are both
        right or both wrong; its label is the class-mean prediction (a row).
    """
    from czsl_plugins.grw import cosines

    by_mean = cosines(fakes, means).argmax(1)
    by_d = cosines(fakes, embeddings).argmax(1)
    return (by_mean == own) == (by_d == own), by_mean


@functools.cache
def _plugin_class():
    """Built on first use: Avalanche is imported only when a run needs it."""
    import torch
    import torch.nn.functional as F
    from avalanche.benchmarks.utils import concat_datasets
    from avalanche.benchmarks.utils.classification_dataset import (
        _as_taskaware_supervised_classification_dataset,
    )
    from avalanche.core import SupervisedPlugin
    from torch.utils.data import TensorDataset

    from czsl_plugins.generative_replay import task_features
    from czsl_plugins.grw import (
        EmbeddingCapture, attribute_neighbours, build_generator, discriminator_terms, generate,
        local_labels, log_cosine, mean_distance, neighbour_correlation, seen_logits, seen_state,
    )

    class BDCGZSL(SupervisedPlugin):
        """G and the class means; D's extra terms, G's steps and the filtered replay."""

        def __init__(self, stream, options):
            super().__init__()
            self.stream = stream
            self.o = options
            self.generator = None  # built at the first task
            self.means = None  # [C_all, D] stored real class means
            self.g_optimizer = self.neighbours = self.similarities = self.capture = None

        def __getstate__(self):
            return {**self.__dict__, "g_optimizer": None, "neighbours": None,
                    "similarities": None, "capture": None}

        def after_train_dataset_adaptation(self, strategy, *args, **kwargs):
            x, y = task_features(strategy.adapted_dataset)
            if self.generator is None:
                self.generator = build_generator(self.stream.n_attributes, x.shape[1],
                                                 self.o["hidden"]).to(strategy.device)
                self.means = torch.zeros(self.stream.n_classes, x.shape[1])
            past = self.stream.past_classes()
            if len(past):
                x_old, y_old = self.replay(strategy.model, past)
                strategy.adapted_dataset = concat_datasets([
                    strategy.adapted_dataset, _as_taskaware_supervised_classification_dataset(
                        TensorDataset(x_old.cpu().to(x.dtype), y_old.cpu()))])
            for c in y.unique().tolist():  # the task's real class means
                self.means[c] = x[y == c].mean(0)

        def replay(self, model, past):
            """``replay_per_class`` fakes of each past class, filtered; ``(x, y)``."""
            n, device = self.o["replay_per_class"], model.attributes.device
            with torch.no_grad():
                attributes = self.stream.attributes_of(past).to(device)
                fakes = generate(self.generator, attributes.repeat_interleave(n, 0))
                own = torch.arange(len(past), device=device).repeat_interleave(n)
                keep, label = agreement_filter(fakes, own, self.means[past].to(device),
                                               model.embedder(attributes))
            return fakes[keep], past.to(device)[label[keep]]

        def before_training_exp(self, strategy, *args, **kwargs):
            if self.o["reset_optimizer"]:  # BD's code builds D's Adam anew per task
                strategy.optimizer.state.clear()
            self.capture = EmbeddingCapture()
            self.capture.attach(strategy.model)
            self.g_optimizer = torch.optim.Adam(self.generator.parameters(), lr=self.o["lr"],
                                                weight_decay=self.o["weight_decay"], foreach=True)
            if self.o["correlation_weight"]:
                seen = torch.nonzero(self.stream.visible)[:, 0]
                self.neighbours, self.similarities = attribute_neighbours(
                    self.stream.attributes_of(seen).to(strategy.device), self.o["neighbours"])

        def after_training_exp(self, strategy, *args, **kwargs):
            if self.capture is not None:
                self.capture.detach()
            self.g_optimizer = self.neighbours = self.similarities = self.capture = None

        def before_backward(self, strategy, *args, **kwargs):
            o = self.o
            seen, attributes, emb_seen, means = seen_state(
                strategy.model, self.stream, self.means, self.capture and self.capture.take())
            rows = local_labels(strategy.mb_y, seen, self.stream.n_classes)
            with torch.no_grad():
                fake = generate(self.generator, attributes[rows])
            strategy.loss = strategy.loss + discriminator_terms(
                emb_seen[rows], strategy.mb_x, fake, emb_seen, means,
                temperature=o["temperature"], adversarial_weight=o["adversarial_weight"],
                mse_weight=o["mse_weight"], real_pairs=o["real_pairs"])

        def _step(self, loss):
            params = list(self.generator.parameters())
            for p, g in zip(params, torch.autograd.grad(loss, params)):
                p.grad = g if p.grad is None else p.grad + g
            self.g_optimizer.step()

        def after_update(self, strategy, *args, **kwargs):
            o, t, model = self.o, self.o["temperature"], strategy.model
            for p in self.generator.parameters():
                p.grad = None
            with torch.no_grad():
                seen, attributes, emb_seen, means = seen_state(model, self.stream,
                                                               self.means)
            rows = local_labels(strategy.mb_y, seen, self.stream.n_classes)
            fake = generate(self.generator, attributes[rows])
            loss = (-log_cosine(emb_seen[rows], fake, t)
                    + o["classification_weight"] * F.cross_entropy(
                        seen_logits(fake, emb_seen, t), rows)
                    + o["mean_distance_weight"] * mean_distance(fake, rows, means))
            if o["correlation_weight"]:
                loss = loss + o["correlation_weight"] * neighbour_correlation(
                    fake, rows, means, self.neighbours, self.similarities,
                    o["correlation_margins"])
            self._step(loss)
            unseen = self.stream.hidden_classes()
            if not o["transductive"] or not len(unseen):
                return
            # the second step: the seen step's gradients stay (the code never zeroes them)
            pick = unseen[torch.randint(0, len(unseen), (o["unseen_batch_size"],))]
            everything = torch.arange(self.stream.n_classes)
            with torch.no_grad():
                emb_all = model.embedder(self.stream.attributes_of(everything).to(
                    strategy.device))
            fake_u = generate(self.generator, self.stream.attributes_of(pick).to(
                strategy.device))
            self._step(o["unseen_weight"] * F.cross_entropy(
                seen_logits(fake_u, emb_all, t), pick.to(strategy.device)))

    return BDCGZSL
