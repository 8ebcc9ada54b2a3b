"""DVGR-CZSL: one conditional VAE per task, each past class replayed by its own task's
generator, and a softmax classifier trained on features generated for every class.

Gautam et al., "Generative Replay-based Continual Zero-Shot Learning", CVPR-W 2021.
Checked against the authors' code (``DVGR-CZSL/DVGR-CZSL`` @ a0894d6d, ``CUB.ipynb``;
``cN:L`` below is code cell N, counting code cells from 1, line L of that cell).

At task t the replay builds a new generator (``make_generator()``, one per task, see
:func:`czsl.hookspecs.czsl_make_replay`), fits it on task t's real features plus
``replay_per_class`` features of every past class, each drawn from the generator of the
task that class belongs to (c6:60-86), and then trains the classifier (the scenario's
``[model]``, ``feature_classifier``) on ``classifier_per_class`` features that generator t
synthesises for every class, unseen ones included (semantic-transductive, c6:91-114),
with the classifier's standardizer fitted on them (sklearn's ``StandardScaler``,
c6:121-126). The classifier is re-initialised at every task (c6:155), as its code builds
a new one; it never sees a real feature (c6:134).

The generator ``dvgr_cvae`` (c2:1-66): encoder x -> 1000 -> 500 -> 2 * 50 (mu, log var;
ReLU between), decoder (z, one-hot label, attributes) -> 500 -> 1000 -> x, no output
activation; loss = MSE (mean over the batch and the features) + KL summed over the
batch and the latent dimensions (c6:36-39, 281-286); Adam lr 1e-4, a fresh optimizer per
task (c6:248), batches of 64 with the last partial one dropped (c6:249). The one-hot
label is a class's *label slot*: the generator sees no class ids, so a class is a distinct
attribute row and gets the next free slot the first time the generator sees it
(``label_slots``: how many; 0 conditions on the attributes alone).

Where czsl differs from the code, and why (each a choice a scenario can make):

* Per-task head dropped. ``NET.head`` (c2:75-83, 2048 -> 1000 -> 500 -> 200 with no
  activations) is trained by the only cross-entropy in the loss (c6:275, 286) but is
  never used: it reads the real x, not the decoder, so its gradient never reaches the
  generator, and the classifier is a separate network (c5). Dropping it changes nothing
  that is measured.
* Label and attribute reconstruction: the decoder also outputs 200 + 312 values
  (c2:24, 34-35) whose MSE losses are computed but never added (c6:276-278, 286).
  Without weights (``label_weight = attribute_weight = 0``, the default) czsl does not
  compute those outputs (they have no effect); weights > 0 add them to the loss.
* Epsilon. The code draws ``eps = randn(64, 50)`` once (c6:25) and reuses it for every
  forward pass of every task's VAE. ``fixed_epsilon = true`` (default) reproduces it,
  but each task's generator draws its own; ``false`` draws fresh noise each step.
* Shuffling happens once per task (c6:247); ``reshuffle = true`` reshuffles per epoch.
* Unseen one-hots. The classifier's features of unseen classes come from one-hot
  inputs whose decoder weights were never trained (random initial values).
  ``unseen_labels = "untrained"`` (default) reproduces it: an unseen class gets a fresh,
  untrained slot; ``"zero"`` gives it an all-zero one-hot (attributes only).
* Test-time dropout (c6:174: no ``eval()``) and the standardizer are the classifier's
  options (``feature_classifier``: ``dropout_when_testing``, ``standardize``).
* Fewer than ``batch_size`` samples: one batch of all (the code would take no step).
* The classifier's schedule is ``[train]`` (the code: 25 epochs, Adam 1e-4, batch 64,
  c6:157-159; its batches are also shuffled once, czsl's every epoch).
* Protocol: the code splits each task 80/20 without a seed; czsl's ``grw`` protocol pools
  every image and splits once with a seed. The code scores 20 CUB tasks (19 with unseen
  classes) and SUN with 708 classes; czsl's SUN has 717.
"""

from __future__ import annotations

import functools

from czsl import Component, hookimpl
from czsl.options import OptionError, boolean, choice, integer, number

NAME = "dvgr"
GENERATOR = "dvgr_cvae"
UNSEEN_LABELS = ("untrained", "zero")


@hookimpl
def czsl_components():
    """A replay (``dvgr``) and its generator (``dvgr_cvae``)."""
    return [Component("replay", NAME, "one generator per task, each past class replayed "
                      "by its own task's generator; classifier trained on features "
                      "generated for all classes (DVGR-CZSL, Gautam et al., CVPR-W 2021)"),
            Component("generator", GENERATOR, "DVGR-CZSL's conditional VAE: decoder on "
                      "(z, one-hot label, attributes), MSE + summed KL")]


@hookimpl
def czsl_make_replay(options, stream, make_generator):
    """The DVGR replay; it builds one generator per task with ``make_generator``."""
    return [make_replay(stream, make_generator, **options)]


@hookimpl
def czsl_make_generator(options, n_features, n_attributes, losses):
    """A :class:`DVGRCVAE`."""
    return DVGRCVAE(n_features, n_attributes, losses=losses, **options)


# ------------------------------------------------------------------ the math


def kl_sum(mu, logvar):
    """KL(N(mu, e^logvar) || N(0, I)) summed over the batch and the latent dimensions
    (c6:37), a scalar."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum()


def dvgr_loss(x, x_rec, mu, logvar, *, extras=()):
    """DVGR's generator loss: ``mse(x_rec, x) + kl_sum(mu, logvar)`` plus weighted extras.

    :param x: ``[B, D]`` real features; ``x_rec`` ``[B, D]`` their reconstruction.
    :param mu: ``[B, L]``, ``logvar`` ``[B, L]``: the posterior.
    :param extras: ``(weight, target, output)`` triples, each adding ``weight *
        mse(output, target)`` (the label and attribute reconstructions).
    :return: ``(total, reconstruction, kl)`` scalars.
    """
    import torch.nn.functional as F

    rec = F.mse_loss(x_rec, x)  # nn.MSELoss: mean over B * D (c6:281)
    kl = kl_sum(mu, logvar)
    total = rec + kl
    for weight, target, output in extras:
        total = total + weight * F.mse_loss(output, target)
    return total, rec, kl


def _mlp(dims):
    from torch import nn

    layers = []
    for n_in, n_out in zip(dims[:-1], dims[1:]):
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
    return nn.Sequential(*layers[:-1])  # no activation after the last layer


def _widths(key, value):
    if not isinstance(value, (list, tuple)) or not value or any(
            isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in value):
        raise OptionError(key, f"must be a non-empty list of positive layer widths, got "
                               f"{value!r}")
    return [int(h) for h in value]


class DVGRCVAE:
    """DVGR's conditional VAE (see the module docstring); a generator as
    :func:`czsl.hookspecs.czsl_make_generator` describes.

    :param n_features: feature dimension ``D``.
    :param n_attributes: attribute dimension ``A``.
    :param encoder_dims: hidden widths of the encoder (c2:5-7).
    :param decoder_dims: hidden widths of the decoder (c2:22-24).
    :param latent_dim: dimension of z (c2:48).
    :param label_slots: one-hot label inputs (CUB: 200); 0: no one-hot.
    :param unseen_labels: ``"untrained"`` or ``"zero"``: the one-hot of a class ``sample``
        is asked for before any ``fit`` saw it.
    :param lr: Adam learning rate.
    :param epochs: epochs of each ``fit``.
    :param batch_size: mini-batch size; the last partial batch is dropped.
    :param fixed_epsilon: one noise draw ``[batch_size, latent_dim]`` for every step.
    :param reshuffle: reshuffle every epoch (the code: once per ``fit``).
    :param label_weight: weight of the one-hot's reconstruction MSE (the code: 0).
    :param attribute_weight: weight of the attributes' reconstruction MSE (the code: 0).
    :param losses: add-on losses (:class:`czsl.generators.GeneratorLosses`); this
        generator only logs to it.
    """

    def __init__(self, n_features, n_attributes, *, encoder_dims=(1000, 500),
                 decoder_dims=(500, 1000), latent_dim=50, label_slots=0,
                 unseen_labels="untrained", lr=1e-4, epochs=101, batch_size=64,
                 fixed_epsilon=True, reshuffle=False, label_weight=0.0,
                 attribute_weight=0.0, losses=None):
        import torch

        from czsl.generators import GeneratorLosses

        encoder_dims = _widths("encoder_dims", encoder_dims)
        decoder_dims = _widths("decoder_dims", decoder_dims)
        self.latent_dim = integer("latent_dim", latent_dim)
        self.label_slots = integer("label_slots", label_slots, at_least=0)
        self.unseen_labels = choice("unseen_labels", unseen_labels, UNSEEN_LABELS)
        self.lr = number("lr", lr, above=0)
        self.epochs = integer("epochs", epochs, at_least=0)
        self.batch_size = integer("batch_size", batch_size)
        self.fixed_epsilon = boolean("fixed_epsilon", fixed_epsilon)
        self.reshuffle = boolean("reshuffle", reshuffle)
        self.label_weight = number("label_weight", label_weight, at_least=0)
        self.attribute_weight = number("attribute_weight", attribute_weight, at_least=0)
        if len(losses or ()):
            raise OptionError("losses", "dvgr_cvae takes no add-on losses")
        self.losses = losses if losses is not None else GeneratorLosses()
        self.n_features = n_features
        n_cond = self.label_slots + n_attributes
        extra_out = n_cond if self.label_weight or self.attribute_weight else 0
        self.encoder = _mlp([n_features, *encoder_dims, 2 * self.latent_dim])
        self.decoder = _mlp([self.latent_dim + n_cond, *decoder_dims, n_features + extra_out])
        self.slot_rows = torch.zeros(0, n_attributes)  # [S, A]: attributes of each slot
        self.epsilon = (torch.randn(self.batch_size, self.latent_dim) if self.fixed_epsilon
                        else None)

    def to(self, device):
        """Move to ``device``; returns itself."""
        self.encoder.to(device)
        self.decoder.to(device)
        self.slot_rows = self.slot_rows.to(device)
        if self.epsilon is not None:
            self.epsilon = self.epsilon.to(device)
        return self

    def slots_of(self, attributes, assign):
        """``[N]`` long: each row's label slot; a row without one gets the next free
        slot if ``assign``, else ``-1``.

        :raises ValueError: when more classes than ``label_slots`` need one.
        """
        import torch

        if not self.label_slots:
            return torch.full((len(attributes),), -1, dtype=torch.long,
                              device=attributes.device)
        rows, inverse = torch.unique(attributes, dim=0, return_inverse=True)  # [K, A], [N]
        match = (rows[:, None, :] == self.slot_rows.to(rows)[None]).all(-1)  # [K, S]
        slot = torch.full((len(rows),), -1, dtype=torch.long, device=rows.device)  # [K]
        if match.shape[1]:
            slot = torch.where(match.any(1), match.float().argmax(1), slot)
        new = slot < 0
        if assign and bool(new.any()):
            start, count = len(self.slot_rows), int(new.sum())
            if start + count > self.label_slots:
                raise ValueError(f"{start + count} classes need a one-hot label, "
                                 f"label_slots = {self.label_slots}: set it to the number "
                                 "of classes")
            slot[new] = torch.arange(start, start + count, device=slot.device)
            self.slot_rows = torch.cat([self.slot_rows, rows[new].to(self.slot_rows)])
        return slot[inverse]

    def _condition(self, attributes, slots):
        """``[N, S + A]``: one-hot slot (zero for ``-1``) then attributes."""
        import torch

        one_hot = torch.zeros(len(attributes), self.label_slots, device=attributes.device,
                              dtype=attributes.dtype)
        known = slots >= 0
        one_hot[known.nonzero()[:, 0], slots[known]] = 1
        return torch.cat([one_hot, attributes], dim=1)

    def fit(self, features, attributes):
        """``epochs`` epochs of Adam on ``features`` ``[N, D]`` / ``attributes`` ``[N, A]``."""
        import torch

        cond = self._condition(attributes, self.slots_of(attributes, assign=True))
        params = [*self.encoder.parameters(), *self.decoder.parameters()]
        optimizer = torch.optim.Adam(params, lr=self.lr)
        n, d = len(features), self.n_features
        size = min(self.batch_size, n)
        order = torch.randperm(n, device=features.device)
        self.encoder.train()
        self.decoder.train()
        for epoch in range(self.epochs):
            if self.reshuffle and epoch:
                order = torch.randperm(n, device=features.device)
            for b in range(n // size):
                idx = order[b * size:(b + 1) * size]
                x, c = features[idx], cond[idx]
                mu, logvar = self.encoder(x).chunk(2, dim=1)
                eps = (self.epsilon[:size] if self.fixed_epsilon
                       else torch.randn_like(mu))
                out = self.decoder(torch.cat([mu + eps * (0.5 * logvar).exp(), c], dim=1))
                extras = ()
                if out.shape[1] > d:  # the label and attribute reconstructions
                    s = self.label_slots
                    extras = ((self.label_weight, c[:, :s], out[:, d:d + s]),
                              (self.attribute_weight, c[:, s:], out[:, d + s:]))
                loss, rec, kl = dvgr_loss(x, out[:, :d], mu, logvar, extras=extras)
                self.losses.log("dvgr/reconstruction", rec)
                self.losses.log("dvgr/kl", kl)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        self.encoder.eval()
        self.decoder.eval()

    def sample(self, attributes, n):
        """``[K * n, D]``: ``n`` decodings of z ~ N(0, I) for each row of ``attributes``
        (c6:73-78)."""
        import torch

        with torch.no_grad():
            slots = self.slots_of(attributes, assign=self.unseen_labels == "untrained")
            cond = self._condition(attributes, slots).repeat_interleave(n, 0)
            z = torch.randn(len(cond), self.latent_dim, device=cond.device, dtype=cond.dtype)
            return self.decoder(torch.cat([z, cond], dim=1))[:, :self.n_features]


# ------------------------------------------------------------------ the replay


def make_replay(stream, make_generator, *, replay_per_class=50, classifier_per_class=150,
                transductive=True, real_to_classifier=False, reset_classifier=True):
    """DVGR's replay.

    :param stream: the task view (:class:`czsl.taskview.TaskView`).
    :param make_generator: builds a generator; called here for task 0, then once at the
        start of each later task.
    :param replay_per_class: features of each past class the task's generator fits on
        (c6:60).
    :param classifier_per_class: features of each class the classifier trains on (c6:99).
    :param transductive: the classifier trains on every class, unseen ones included
        (the code); ``false``: on the classes seen so far only (inductive).
    :param real_to_classifier: also train the classifier on the task's real features
        (the code: no).
    :param reset_classifier: re-initialise the classifier (its parameters and the
        optimizer's state) at every task (the code: yes).
    """
    replay_per_class = integer("replay_per_class", replay_per_class, at_least=0)
    classifier_per_class = integer("classifier_per_class", classifier_per_class)
    transductive = boolean("transductive", transductive)
    real_to_classifier = boolean("real_to_classifier", real_to_classifier)
    reset_classifier = boolean("reset_classifier", reset_classifier)
    if transductive:  # the view then reveals every class's attributes
        stream.declare_transductive()
    return _plugin_class()(stream, make_generator, replay_per_class, classifier_per_class,
                           transductive, real_to_classifier, reset_classifier)


@functools.cache
def _plugin_class():
    """Built on first use: Avalanche is imported only when a run needs it."""
    import torch
    from avalanche.benchmarks.utils import concat_datasets
    from avalanche.benchmarks.utils.classification_dataset import (
        _as_taskaware_supervised_classification_dataset,
    )
    from avalanche.core import SupervisedPlugin
    from torch.utils.data import TensorDataset

    from czsl_plugins.generative_replay import task_features

    class DVGRReplay(SupervisedPlugin):
        """Holds one generator per task (``generators[t]``: task t's)."""

        def __init__(self, stream, make_generator, replay_per_class, classifier_per_class,
                     transductive, real_to_classifier, reset_classifier):
            super().__init__()
            self.stream = stream
            self.make_generator = make_generator
            self.generators = [make_generator()]  # task 0's: a bad table fails now
            self.replay_per_class = replay_per_class
            self.classifier_per_class = classifier_per_class
            self.transductive = transductive
            self.real_to_classifier = real_to_classifier
            self.reset_classifier = reset_classifier

        def __getstate__(self):  # make_generator is the run's: the rebuilt plugin's is kept
            return {k: v for k, v in self.__dict__.items() if k != "make_generator"}

        def __setstate__(self, state):
            self.__dict__.update(state)

        def _sample(self, generator, classes, n, device):
            attrs = self.stream.attributes_of(classes).to(device)  # [K, A]
            return generator.sample(attrs, n), classes.repeat_interleave(n)

        def after_train_dataset_adaptation(self, strategy, *args, **kwargs):
            device, step = strategy.device, self.stream.step
            while len(self.generators) <= step:  # this task's generator
                self.generators.append(self.make_generator())
            generator = self.generators[step]
            x, y = task_features(strategy.adapted_dataset)  # real features of task t
            xs, ys = [x.to(device).float()], [y]
            for past in range(step):  # each past class from its own task's generator
                if self.replay_per_class:
                    x_old, y_old = self._sample(self.generators[past],
                                                self.stream.classes(past),
                                                self.replay_per_class, device)
                    xs.append(x_old.float())
                    ys.append(y_old)
            y_fit = torch.cat(ys)
            generator.fit(torch.cat(xs), self.stream.attributes_of(y_fit).to(device))
            classes = (torch.arange(self.stream.n_classes) if self.transductive
                       else torch.nonzero(self.stream.visible)[:, 0])
            x_cls, y_cls = self._sample(generator, classes, self.classifier_per_class,
                                        device)
            fit_standardizer = getattr(strategy.model, "fit_standardizer", None)
            if fit_standardizer is not None:  # on the generated features only (c6:122)
                fit_standardizer(x_cls)
            generated = _as_taskaware_supervised_classification_dataset(
                TensorDataset(x_cls.cpu().to(x.dtype), y_cls))
            strategy.adapted_dataset = (
                concat_datasets([strategy.adapted_dataset, generated])
                if self.real_to_classifier else generated)

        def before_training_exp(self, strategy, *args, **kwargs):
            if self.reset_classifier:  # a new classifier each task (c6:155-157)
                for module in strategy.model.modules():
                    if hasattr(module, "reset_parameters"):
                        module.reset_parameters()
                strategy.optimizer.state.clear()
            if self.transductive:  # it trains on generated unseen classes: show them
                strategy.model.set_visible_classes(torch.ones(
                    self.stream.n_classes, dtype=torch.bool, device=strategy.device))

    return DVGRReplay
