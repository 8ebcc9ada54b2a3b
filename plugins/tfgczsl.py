"""Tf-GCZSL (task-agnostic): a CADA-VAE trained with reservoir replay and DER, and a
linear classifier in its latent space.

Gautam et al., "Tf-GCZSL: Task-free generalized continual zero-shot learning with
vision and language", Neural Networks 2022; reference code ``Chandan-IITI/Tf-GCZSL``
@ 3aa1c928, folder ``tfgczsl_task_agnostic/`` (below ``TF/``). At each task a CADA-VAE
(Schonfeld et al., CVPR 2019: a feature VAE and an attribute VAE whose latents are tied
by cross-reconstruction and a Wasserstein distance) trains on the task's features joined
by a batch of a reservoir memory of past features; a DER term keeps the encoders'
outputs on the memory close to those stored with it. A linear classifier then trains on
latents: noisy encodings of seen-class features (current task from its data, past
classes from the memory) and, transductively, noisy encodings of every unseen class's
attributes. At test time features are encoded to the posterior mean.

Two components: the model ``tfgczsl`` (a :class:`czsl.models.LatentClassifier` whose
encoder is the CADA-VAE: the VAE is model state, checkpointed with it) and the replay
``tfgczsl`` (it trains the VAE it finds as ``strategy.model.encoder``, keeps the memory,
and replaces each task's mini-batches by the classifier's latents with
:func:`czsl.models.train_on_latents`; the learner's cross-entropy loop, with the
scenario's ``[train]`` optimizer, trains the head). Use them together, with
``[train] loss_classes = "seen"`` (the reference's NLL over every class the head
scores). The head is never reset between tasks, nor is its optimizer, as in
``TF/tfgczsl.py:85-91`` (created once, before the task loop).

Transductive by default (``transductive = true``, ``TF/tfgczsl.py:297-311``): the
classifier trains on latents of every class not seen yet, from its attributes; the view
then reveals them (``stream.declare_transductive()``) and ``results.json`` says
``"semantic_transductive": true``. With ``transductive = false`` the head trains on
seen classes only and its rows of unseen classes are never trained: a linear head in
latent space cannot score classes it has no latents of, so expect an unseen accuracy
near 0 (the variant exists to measure exactly that).

Math checked against ``TF/tfgczsl/tfgczsl_model.py`` (``trainstep``, ``train_vae``,
``encode_*``), ``TF/tfgczsl/models.py`` (the networks) and ``TF/tfgczsl/er_memory.py``
(``reservoir_*``); kept as the reference does it:

* reparameterisation ``z = mu + exp(logvar) * eps`` with one ``eps`` per row
  (``tfgczsl_model.py:80-86``), while the KL and the distance read ``logvar`` as a log
  variance (``:143-150``);
* losses summed over the batch (L1 ``size_average=False``, ``:75``); the KL weight
  0 -> 0.25 over epochs 0-93, cross-reconstruction 0 -> 2.37 over 21-75, distance
  0 -> 8.13 over 6-22 (``:28-30,171-188``), restarting at every task (``:226-227``);
* DER: the L1 sum between the encoders' (mu, logvar) of the memory batch and those stored
  with it (``:154-163``), weight 1; the memory joins every batch from the second task on
  (``:243-264``), also in the VAE's own losses;
* reservoir of 10 x 200 = 2000 rows updated with every batch of every epoch (duplicates
  accumulate), storing the encoders' outputs after the step (``er_memory.py:83-118``,
  ``tfgczsl_model.py:266-269``); memory batches of 100 drawn without replacement
  (``er_memory.py:59-60``);
* classifier data: 200 latents per seen class, from the memory for classes of past tasks
  that it still holds (others get none) and from the task's data for the current
  classes, each class's rows repeated row by row (``np.repeat``) and cut to 200
  (``tfgczsl.py:233-290``); 400 per unseen class from the attribute encoder
  (``:298-311``); networks 2048 -> 1560 -> 50 / 50 -> 1660 -> 2048 and 312 -> 1450 -> 50
  / 50 -> 665 -> 312, Xavier-uniform (gain 0.5) weights and zero biases
  (``models.py:6-74``, ``tfgczsl_model.py:26``); Adam (amsgrad) lr 1.5e-4 for the VAE,
  one optimizer for the whole run (``tfgczsl_model.py:68-69``).

Differences from the reference code:

* ``epochs`` VAE epochs per task (reference: 100, ``tfgczsl_model.py:39``); the warm-ups
  are rescaled to them and advance at every step: after a fraction ``p`` of the task's
  steps the weights are those of reference epoch ``100 p`` (the reference's change once
  per epoch, ``:171-188,227``; with 100 epochs the two differ within an epoch only);
* the classifier's latents are encoded once per distinct row and repeated, then
  sampled: the same distribution as encoding the repeated rows (``tfgczsl.py:290,311``)
  at a fraction of the cost (400 copies of each unseen class's attributes);
* DER is on by default (``der_weight = 1``) as the README presents the method ("for
  without DER set use_der to False"); the shipped ``tfgczsl.py:35`` sets
  ``use_der = False``: ``der_weight = 0`` is that;
* the knowledge-distillation option (``use_KD``, ``tfgczsl.py:34``, off there) and the
  ring-buffer and mean-of-features memories (``er_memory.py:125-333``, which crash with
  the reference's call signature) are left out;
* the classifier's epochs, batch size and optimizer are the scenario's ``[train]``
  (reference: 25 epochs of batch 32, Adam lr 1e-3, weight decay 1e-3,
  ``tfgczsl.py:41-44``); the head's cross-entropy is the log-softmax + NLL of
  ``tfgczsl.py:67-90``;
* randomness comes from torch's generator (the reference's shuffles use torch, its
  memory draws numpy), and the reservoir's replacement index is drawn from
  ``[0, n_seen]`` inclusive (standard reservoir sampling; the reference's
  ``np.random.randint(0, mem_counter)`` excludes the row's own position,
  ``er_memory.py:106``);
* protocol: czsl's (``[protocol]``), not the reference's unseeded per-task 80/20 split
  (``data_loader.py:141-163``); unseen classes are those of no task up to the current
  one, which on CUB's ``grw`` protocol are the reference's later tasks
  (``tfgczsl.py:187-196``).
"""

from __future__ import annotations

import functools
import math

from czsl import Component, hookimpl
from czsl.options import OptionError, boolean, integer, number

NAME = "tfgczsl"
#: the reference's warm-ups, per epoch of its 100-epoch schedule: (start, end, factor)
WARMUPS = {"beta": (0, 93, 0.25), "cross_reconstruction": (21, 75, 2.37),
           "distance": (6, 22, 8.13)}
#: the length of the reference's schedule, over which the warm-ups are defined
REFERENCE_EPOCHS = 100


@hookimpl
def czsl_components():
    """A model and a replay, both ``tfgczsl``, used together."""
    return [Component("model", NAME, "linear classifier in the latent space of a CADA-VAE "
                      "(Tf-GCZSL, Gautam et al., Neural Networks 2022); use with replay "
                      "'tfgczsl'"),
            Component("replay", NAME, "trains the CADA-VAE of model 'tfgczsl' with reservoir "
                      "replay + DER and its classifier on latents (Tf-GCZSL, "
                      "task-agnostic)")]


@hookimpl
def czsl_make_model(options, n_features, attributes):
    """The :func:`build_model` of the scenario's ``[model]``."""
    return build_model(n_features, attributes, **options)


@hookimpl
def czsl_make_replay(options, stream):
    """The :func:`make_plugin` of the scenario's ``[replay]``."""
    return [make_plugin(stream, **options)]


def _widths(key, value):
    if not isinstance(value, (list, tuple)) or len(value) != 2 or any(
            isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in value):
        raise OptionError(key, f"must be two positive layer widths [encoder, decoder], got "
                               f"{value!r}")
    return tuple(value)


def build_model(n_features, attributes, *, latent_dim=50, feature_hidden=(1560, 1660),
                attribute_hidden=(1450, 665)):
    """The model: a :class:`czsl.models.LatentClassifier` around a CADA-VAE.

    :param n_features: feature dimension ``D``.
    :param attributes: ``[C, A]`` class attributes (only their shape is used).
    :param latent_dim: ``Z`` (reference: 50).
    :param feature_hidden: hidden widths of the feature encoder and decoder.
    :param attribute_hidden: hidden widths of the attribute encoder and decoder.
    """
    latent_dim = integer("latent_dim", latent_dim)
    feature_hidden = _widths("feature_hidden", feature_hidden)
    attribute_hidden = _widths("attribute_hidden", attribute_hidden)
    from czsl.models import LatentClassifier

    n_classes, n_attributes = attributes.shape
    vae = _classes()["CadaVAE"](n_features, int(n_attributes), latent_dim, feature_hidden,
                                attribute_hidden)
    return LatentClassifier(vae, latent_dim, int(n_classes))


def make_plugin(stream, *, epochs=100, batch_size=50, lr=1.5e-4, mem_size=2000,
                mem_batch_size=100, der_weight=1.0, seen_samples=200, unseen_samples=400,
                transductive=True):
    """The replay plugin.

    :param stream: the task view.
    :param epochs: VAE epochs per task (reference: 100); the warm-ups are rescaled.
    :param batch_size: VAE mini-batch of the task's features (reference: 50).
    :param lr: the VAE's Adam (amsgrad) learning rate.
    :param mem_size: rows of the reservoir memory (reference: 10 per class x 200).
    :param mem_batch_size: memory rows joined to every VAE batch from the second task on.
    :param der_weight: weight of the DER term (0: off, the shipped code's default).
    :param seen_samples: classifier latents per seen class (from features).
    :param unseen_samples: classifier latents per unseen class (from attributes).
    :param transductive: train the classifier on latents of the classes not seen yet.
    """
    epochs = integer("epochs", epochs)
    batch_size = integer("batch_size", batch_size)
    lr = number("lr", lr, above=0)
    mem_size = integer("mem_size", mem_size, at_least=0)
    mem_batch_size = integer("mem_batch_size", mem_batch_size, at_least=0)
    der_weight = number("der_weight", der_weight, at_least=0)
    seen_samples = integer("seen_samples", seen_samples)
    unseen_samples = integer("unseen_samples", unseen_samples)
    transductive = boolean("transductive", transductive)
    if transductive:  # the view then reveals every class's attributes
        stream.declare_transductive()
    return _classes()["Replay"](stream, epochs=epochs, batch_size=batch_size, lr=lr,
                                mem_size=mem_size, mem_batch_size=mem_batch_size,
                                der_weight=der_weight, seen_samples=seen_samples,
                                unseen_samples=unseen_samples, transductive=transductive)


# ------------------------------------------------------------------ the math


def reparameterize(mu, logvar, eps=None):
    """``mu + exp(logvar) * eps``, one ``eps`` ``[B, 1]`` per row (the reference's rule,
    ``TF/tfgczsl/tfgczsl_model.py:80-86``); drawn from torch's generator if not given."""
    import torch

    if eps is None:
        eps = torch.randn(mu.shape[0], 1, device=mu.device, dtype=mu.dtype)
    return mu + logvar.exp() * eps


def warmup(epoch, start, end, factor):
    """The weight at (reference) epoch ``epoch`` of a term that ramps linearly from 0 at
    ``start`` to ``factor`` at ``end`` and stays there."""
    return min(max((epoch - start) / (end - start) * factor, 0.0), factor)


def warmup_weights(progress):
    """``{term: weight}`` once a fraction ``progress`` (in ``[0, 1)``) of the task's VAE
    steps is done: the weights of reference epoch ``100 * progress`` of :data:`WARMUPS`
    (the reference steps them once per epoch of 100; a few epochs stepped per epoch would
    all sit at the start of the ramps)."""
    reference_epoch = REFERENCE_EPOCHS * progress
    return {term: warmup(reference_epoch, *ramp) for term, ramp in WARMUPS.items()}


def vae_losses(vae, x, a, eps=None):
    """The CADA-VAE terms on features ``x`` ``[B, D]`` and their attributes ``a``
    ``[B, A]``, each summed over the batch (``tfgczsl_model.py:102-152``):

    * ``reconstruction``: ``|dec_x(z_x) - x|_1 + |dec_a(z_a) - a|_1``;
    * ``kl``: KL of both posteriors to N(0, I), ``-0.5 sum(1 + logvar - mu^2 - e^logvar)``;
    * ``cross_reconstruction``: ``|dec_x(z_a) - x|_1 + |dec_a(z_x) - a|_1``;
    * ``distance``: per row ``sqrt(|mu_x - mu_a|^2 + |e^(logvar_x/2) - e^(logvar_a/2)|^2)``.

    :param eps: optional ``(eps_x, eps_a)``, each ``[B, 1]``, for :func:`reparameterize`.
    :return: a dict of scalar tensors.
    """
    import torch

    eps_x, eps_a = eps if eps is not None else (None, None)
    mu_x, logvar_x = vae.feature_encoder(x)
    mu_a, logvar_a = vae.attribute_encoder(a)
    z_x, z_a = reparameterize(mu_x, logvar_x, eps_x), reparameterize(mu_a, logvar_a, eps_a)

    def l1(u, v):
        return (u - v).abs().sum()

    kl = -0.5 * (torch.sum(1 + logvar_a - mu_a.pow(2) - logvar_a.exp())
                 + torch.sum(1 + logvar_x - mu_x.pow(2) - logvar_x.exp()))
    distance = torch.sqrt(((mu_x - mu_a) ** 2).sum(1) + (
        (0.5 * logvar_x).exp() - (0.5 * logvar_a).exp()).pow(2).sum(1)).sum()
    return {"reconstruction": l1(vae.feature_decoder(z_x), x) + l1(vae.attribute_decoder(z_a), a),
            "kl": kl,
            "cross_reconstruction": l1(vae.feature_decoder(z_a), x)
            + l1(vae.attribute_decoder(z_x), a),
            "distance": distance}


def der_loss(vae, x, a, stored):
    """Dark experience replay on the latents: the L1 sum between the encoders'
    ``(mu_x, logvar_x, mu_a, logvar_a)`` of memory rows ``x`` ``[M, D]``, ``a`` ``[M, A]``
    and ``stored`` ``[M, 4Z]``, those outputs when the rows were stored
    (``tfgczsl_model.py:154-163``)."""
    import torch

    now = torch.cat([*vae.feature_encoder(x), *vae.attribute_encoder(a)], dim=1)  # [M, 4Z]
    return (now - stored).abs().sum()


def vae_loss(terms, weights, der=None, der_weight=0.0):
    """``reconstruction + beta kl + w_cr cross_reconstruction + w_d distance (+ der_weight
    der)`` (``tfgczsl_model.py:196-209``), ``weights`` from :func:`warmup_weights`."""
    loss = (terms["reconstruction"] + weights["beta"] * terms["kl"]
            + weights["cross_reconstruction"] * terms["cross_reconstruction"]
            + weights["distance"] * terms["distance"])
    if der is not None:
        loss = loss + der_weight * der
    return loss


def repeat_to(rows, n):
    """The first ``n`` rows of ``rows`` ``[K, D]`` each repeated ``ceil(n / K)`` times in
    place (numpy's ``repeat``, as ``TF/tfgczsl.py:249-253``): ``[n, D]``."""
    return rows.repeat_interleave(max(1, math.ceil(n / len(rows))), dim=0)[:n]


# ------------------------------------------------------------------ the torch classes


@functools.cache
def _classes():
    """The torch classes, built on first use: torch and Avalanche are imported only when
    a run needs them."""
    import torch
    from avalanche.core import SupervisedPlugin
    from torch import nn

    from czsl.models import LatentClassifier, stop_latents, train_on_latents

    def init(module):  # TF/tfgczsl/models.py:6-11
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight, gain=0.5)
            nn.init.zeros_(module.bias)

    class Encoder(nn.Module):
        """``x -> (mu, logvar)`` through one hidden ReLU layer."""

        def __init__(self, n_in, hidden, latent_dim):
            super().__init__()
            self.hidden = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU())
            self.mu = nn.Linear(hidden, latent_dim)
            self.logvar = nn.Linear(hidden, latent_dim)

        def forward(self, x):
            h = self.hidden(x)
            return self.mu(h), self.logvar(h)

    class CadaVAE(nn.Module):
        """Feature and attribute VAEs sharing a latent space; ``forward(x)`` is the
        feature posterior's mean, the latent the classifier reads at test time."""

        def __init__(self, n_features, n_attributes, latent_dim, feature_hidden,
                     attribute_hidden):
            super().__init__()
            self.feature_encoder = Encoder(n_features, feature_hidden[0], latent_dim)
            self.attribute_encoder = Encoder(n_attributes, attribute_hidden[0], latent_dim)
            self.feature_decoder = nn.Sequential(nn.Linear(latent_dim, feature_hidden[1]),
                                                 nn.ReLU(),
                                                 nn.Linear(feature_hidden[1], n_features))
            self.attribute_decoder = nn.Sequential(
                nn.Linear(latent_dim, attribute_hidden[1]), nn.ReLU(),
                nn.Linear(attribute_hidden[1], n_attributes))
            self.apply(init)

        def forward(self, x):
            return self.feature_encoder(x)[0]

    class Replay(SupervisedPlugin):
        """Trains the model's CADA-VAE on each task with the reservoir memory, then
        hands the learner the classifier's latents."""

        def __init__(self, stream, *, epochs, batch_size, lr, mem_size, mem_batch_size,
                     der_weight, seen_samples, unseen_samples, transductive):
            super().__init__()
            self.stream = stream
            self.epochs, self.batch_size, self.lr = epochs, batch_size, lr
            self.mem_size, self.mem_batch_size = mem_size, mem_batch_size
            self.der_weight = der_weight
            self.seen_samples, self.unseen_samples = seen_samples, unseen_samples
            self.transductive = transductive
            self.optimizer = None  # the VAE's, made at the first task, kept for the run
            # the reservoir: features, attributes, labels, encoder outputs [M, 4Z]
            self.memory = None
            self.n_stored = 0  # rows filled
            self.n_offered = 0  # rows offered so far (the reservoir's counter)

        @staticmethod
        def _vae(strategy):
            model = strategy.model
            if not (isinstance(model, LatentClassifier) and isinstance(model.encoder, CadaVAE)):
                raise TypeError(f"replay '{NAME}' trains the CADA-VAE of model '{NAME}', "
                                f"not this run's {type(model).__name__}: set [model] "
                                f"name = '{NAME}'")
            return model.encoder

        def _memory_batch(self):
            """Rows of the memory joined to a VAE batch (all if fewer than the batch)."""
            n = self.n_stored
            if n == 0 or self.mem_batch_size == 0:
                return None
            if n > self.mem_batch_size:
                idx = torch.randperm(n)[:self.mem_batch_size]
            else:
                idx = torch.arange(n)
            return {k: v[idx.to(v.device)] for k, v in self.memory.items()}

        @torch.no_grad()
        def _remember(self, vae, x, a, y):
            """Offer rows ``x``, ``a``, ``y`` to the reservoir, with the encoders' outputs
            after this step."""
            if self.mem_size == 0:
                return
            stats = torch.cat([*vae.feature_encoder(x), *vae.attribute_encoder(a)], dim=1)
            rows = {"x": x, "a": a, "y": y.to(x.device), "stats": stats}
            if self.memory is None:
                self.memory = {k: v.new_zeros((self.mem_size, *v.shape[1:]))
                               for k, v in rows.items()}
            for i in range(len(x)):
                if self.n_stored < self.mem_size:
                    slot = self.n_stored
                    self.n_stored += 1
                else:  # standard reservoir sampling: keep with probability M / (n + 1)
                    slot = int(torch.randint(0, self.n_offered + 1, ()))
                self.n_offered += 1
                if slot < self.mem_size:
                    for k, v in rows.items():
                        self.memory[k][slot] = v[i]

        def _fit(self, vae, x, a, y, first_task):
            if self.optimizer is None:
                self.optimizer = torch.optim.Adam(vae.parameters(), lr=self.lr,
                                                  amsgrad=True)
            vae.train()
            per_epoch = math.ceil(len(x) / self.batch_size)
            for epoch in range(self.epochs):
                for i, idx in enumerate(torch.randperm(len(x)).split(self.batch_size)):
                    weights = warmup_weights((epoch * per_epoch + i) / (self.epochs * per_epoch))
                    idx = idx.to(x.device)
                    xb, ab = x[idx], a[idx]
                    mem = None if first_task else self._memory_batch()
                    der = None
                    if mem is not None:
                        if self.der_weight:
                            der = der_loss(vae, mem["x"], mem["a"], mem["stats"])
                        xb, ab = torch.cat([xb, mem["x"]]), torch.cat([ab, mem["a"]])
                    loss = vae_loss(vae_losses(vae, xb, ab), weights, der, self.der_weight)
                    self.optimizer.zero_grad()
                    loss.backward()
                    self.optimizer.step()
                    self._remember(vae, x[idx], a[idx], y[idx])
            self.optimizer.zero_grad()
            vae.eval()

        @torch.no_grad()
        def _latents(self, vae, x, y, device):
            """The classifier's latents and labels (``TF/tfgczsl.py:233-325``)."""
            past = set(self.stream.past_classes().tolist())
            held = (set(self.memory["y"][:self.n_stored].tolist())
                    if self.memory is not None else set())
            current = set(self.stream.classes(self.stream.step).tolist())
            stats, labels = [], []
            for c in torch.nonzero(self.stream.visible)[:, 0].tolist():
                if c in past and c in held:
                    rows = self.memory["x"][:self.n_stored][self.memory["y"][:self.n_stored] == c]
                elif c in current:
                    rows = x[y.to(x.device) == c]
                else:
                    continue
                # encoded once per row, then repeated: as encoding the repeated rows
                mu, logvar = vae.feature_encoder(rows.to(device))
                stats.append(repeat_to(torch.cat([mu, logvar], 1), self.seen_samples))
                labels.append(torch.full((self.seen_samples,), c, dtype=torch.long))
            z = [reparameterize(*torch.cat(stats).chunk(2, dim=1))]
            unseen = self.stream.hidden_classes()
            if self.transductive and len(unseen):
                mu, logvar = vae.attribute_encoder(self.stream.attributes_of(unseen).to(device))
                n = self.unseen_samples
                z.append(reparameterize(mu.repeat_interleave(n, 0),
                                        logvar.repeat_interleave(n, 0)))
                labels.append(unseen.repeat_interleave(n))
            return torch.cat(z), torch.cat(labels)

        def before_training_exp(self, strategy, *args, **kwargs):
            vae = self._vae(strategy)
            device = strategy.device
            xs, ys = zip(*((item[0], item[1]) for item in strategy.adapted_dataset))
            x = torch.stack(xs).to(device).float()  # [N, D] the task's features
            y = torch.as_tensor(ys, dtype=torch.long)
            a = self.stream.attributes_of(y).to(device)  # [N, A]
            self._fit(vae, x, a, y, first_task=self.stream.step == 0)
            train_on_latents(strategy, *self._latents(vae, x, y, device))
            if self.transductive:  # the head trains on the unseen classes' latents too
                strategy.model.set_visible_classes(torch.ones(
                    self.stream.n_classes, dtype=torch.bool, device=strategy.device))

        def after_training_exp(self, strategy, *args, **kwargs):
            stop_latents(strategy)

    return {"CadaVAE": CadaVAE, "Replay": Replay}
