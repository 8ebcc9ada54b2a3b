"""A-CZSL: a shared CVAE, per-task private CVAEs and heads, and an adversary that keeps
the shared CVAE task-invariant; the shared decoder replays past classes and trains the
test classifier on generated features of every class.

Ghosh, "Adversarial Training of Variational Auto-encoders for Continual Zero-shot
Learning", IJCNN 2021 (arXiv 2102.03778). Checked against ``CZSLwithCVAE/CZSL_CVAE``
@ b77d40f7 (``main.py``, ``a_vae.py``, ``networks/network.py``, ``networks/dis.py``,
``networks/Classifier.py``, ``classi.py``, ``utils.py``).

One replay component, ``aczsl``. At task ``t`` (``after_train_dataset_adaptation``):

1. the shared decoder, as it was after task ``t-1``, generates ``replay_per_class``
   (50) features of every past class from ``z ~ N(0, I)`` and their attributes
   (``main.py:113-138``);
2. the network grows: a private CVAE and a head for task ``t`` are appended to
   :class:`ACZSLNet`'s ``private`` and ``heads`` (``nn.ModuleList``); the discriminator
   is built anew with ``t + 2`` outputs (``a_vae.py:45``, ``dis.py:20-24``);
3. ``epochs`` epochs over the task's real features plus the replayed ones: one Adam
   step (lr 1e-3, new each task, ``a_vae.py:37,46``) of the network on
   :func:`network_loss` = head cross-entropy over all classes on ``[x_s, x_p]`` + the
   shared and private VAE losses (:func:`vae_loss`: MSE mean + KL summed) +
   ``adv_weight`` (0.5) x the discriminator's cross-entropy to label ``t + 1`` through a
   gradient reversal layer (``lambda`` 1), then one Adam step of the discriminator on
   :func:`discriminator_loss`: decoded real features are ``t + 1``, Gaussian noise is 0
   (``a_vae.py:68-122``);
4. the shared decoder generates ``classifier_per_class`` (200) features of *every*
   class, which replace the task's training set (``main.py:177-216``: the classifier
   never sees a real feature). The run is semantic-transductive: the factory calls
   ``stream.declare_transductive()`` and every class is visible while the classifier
   trains. Before the classifier trains (``before_training_exp``), its parameters and
   its optimizer's state are reset (``reset_classifier``: a new ``CLASSIFIER`` and Adam
   each task, ``main.py:95-96``).

The test classifier is the scenario's model: ``feature_classifier`` with
``normalize_input = true``, ``hidden_dims = [500]``, ``dropout = 0.2``
(``Classifier.py:18-21``; L2-normalised features, ``main.py:212,223``), trained by the
learner with ``loss_classes = "seen"`` (one softmax over all classes once every class is
visible; ``"task"`` would lump the unseen classes into one task) and Adam lr 1e-4,
weight decay 1e-4, batch 59 (``classi.py:24``, ``main.py:27,47``).

**A model that grows per task.** The plugin keeps its own torch modules in its state:
czsl pickles a plugin's attributes after every task (:mod:`czsl.checkpoint`; only the
run's model, optimizer, learner and view are saved as references), so the shared CVAE
and the private CVAEs and heads added so far come back on ``czsl run --resume`` (the
rebuilt plugin has no network until the restored state gives it one; czsl restores the
random generators too). Any plugin can grow modules this way.

Options (``[replay]`` table): ``epochs`` (100), ``batch_size`` (59), ``lr`` (1e-3),
``latent_dim`` (50: ``args.n_z``, the encoder's last layer has ``2 * latent_dim``
units), ``hidden`` (500), ``adv_weight`` (0.5), ``grl_lambda`` (1.0),
``replay_per_class`` (50), ``classifier_per_class`` (200), ``relu_latent`` (true),
``fixed_batches`` (true), ``reset_classifier`` (true).

Differences from their code (file:line of ``CZSLwithCVAE/CZSL_CVAE``):

* ``relu_latent = true`` reproduces the ReLU their encoder applies to its whole output,
  ``mu`` and ``log sigma^2`` included (``network.py:22-28``), so ``sigma >= 1`` and
  ``mu >= 0``; ``false`` gives a plain linear ``(mu, log sigma^2)``.
* ``fixed_batches = true`` reproduces their batches, drawn once per task and repeated
  every epoch (``utils.py:13-42``, called once in ``a_vae.py:49``); czsl draws them with
  the seeded torch generator, they with Python's unseeded ``random``. Their last batch
  is empty when the set size divides by 59 (a crash); czsl's never is. The test
  classifier's batches are the learner's, reshuffled every epoch (theirs are fixed,
  ``classi.py:28``).
* Seeds: their code seeds nothing; czsl seeds every draw from ``seed``.
* One forward pass per step: their step runs the shared and private CVAEs twice, once
  for the head (``a_vae.py:75``, ``network.py:104-109``) and once for the VAE losses
  (``a_vae.py:77-78``), with independent noise; czsl feeds the head the same ``x_s``,
  ``x_p`` the VAE losses use. Their discriminator step also runs the whole network
  forward and discards it (``a_vae.py:108``); czsl recomputes only the decoded real
  features, without gradients (the model's gradients of that step are discarded by
  the next ``zero_grad`` in their code too).
* Modules are allocated as tasks come: their net allocates 20 private CVAEs and heads up
  front (``network.py:80-82,93-103``; ``args.num_tasks``). Their Adam covers the unused
  ones with zero gradients, which never move them; czsl's covers the modules built.
* The discriminator's labels 1..t are never used (real is ``t + 1``, fake 0,
  ``a_vae.py:88-89``); czsl keeps the ``t + 2`` outputs, as theirs. The orthogonality
  ("diff") loss is computed but left out of their total (``a_vae.py:94-99``); czsl does
  not compute it.
* Their overall accuracy and accuracy matrix feed *un-normalised* test features to a
  classifier trained on normalised ones (``main.py:287-352``); only their seen and
  unseen accuracies normalise (``main.py:223,260``). czsl's ``feature_classifier``
  normalises every input, and czsl computes its own metrics.
* Protocol: their data are TF's pickles (``data/CUB/README.MD``: CUB 20 x 10 classes in
  label order, an unseeded 80/20 split *per task*); the scenarios use czsl's ``grw``
  protocol (one seeded 80/20 split of all images, classes in dataset order).
* The private modules and heads never reach the test classifier (as theirs: they shape
  only the shared CVAE's training).
* Schedule: the shipped scenarios cut their epochs and feature counts to run in about
  two CPU minutes (their headers); there the run stays at chance on semi-synthetic CUB
  and SUN. Their summed KL collapses the posterior (``mu`` and ``log sigma^2`` about 0
  after a few epochs), so the decoder sees pure noise beside the attributes and needs
  tens of epochs per task to condition on them.
"""

from __future__ import annotations

from czsl import Component, hookimpl
from czsl.options import boolean, integer, number

NAME = "aczsl"


@hookimpl
def czsl_components():
    """One replay: ``aczsl``."""
    return [Component("replay", NAME, "A-CZSL: shared + per-task private CVAEs with an "
                      "adversary; shared-decoder replay and classifier features "
                      "(Ghosh, IJCNN 2021; transductive)")]


@hookimpl
def czsl_make_replay(options, stream):
    """The A-CZSL plugin for ``stream``."""
    return [make_plugin(stream, **options)]


def make_plugin(stream, *, epochs=100, batch_size=59, lr=1e-3, latent_dim=50, hidden=500,
                adv_weight=0.5, grl_lambda=1.0, replay_per_class=50,
                classifier_per_class=200, relu_latent=True, fixed_batches=True,
                reset_classifier=True):
    """A-CZSL (see the module docstring for every option).

    :param stream: the task view (:class:`czsl.taskview.TaskView`).
    :param epochs: epochs of the network over each task (their ``num_epochs``: 100).
    :param batch_size: the network's mini-batch size (59).
    :param lr: Adam learning rate of the network and of the discriminator.
    :param latent_dim: dimension of z (their ``n_z``: 50).
    :param hidden: width of every hidden layer (500).
    :param adv_weight: weight of the adversarial term (0.5).
    :param grl_lambda: factor of the gradient reversal (1.0).
    :param replay_per_class: features generated per past class for the network (50).
    :param classifier_per_class: features generated per class for the classifier (200).
    :param relu_latent: ReLU on the encoder's ``mu`` and ``log sigma^2`` (their code).
    :param fixed_batches: draw the network's batches once per task (their code).
    :param reset_classifier: re-initialise the classifier and its optimizer's state
        before it trains on each task (their code builds a new one).
    """
    for key, value in (("epochs", epochs), ("batch_size", batch_size),
                       ("latent_dim", latent_dim), ("hidden", hidden),
                       ("replay_per_class", replay_per_class),
                       ("classifier_per_class", classifier_per_class)):
        integer(key, value)
    settings = dict(
        epochs=epochs, batch_size=batch_size, lr=number("lr", lr, above=0),
        adv_weight=number("adv_weight", adv_weight, at_least=0),
        grl_lambda=number("grl_lambda", grl_lambda, at_least=0),
        replay_per_class=replay_per_class, classifier_per_class=classifier_per_class,
        fixed_batches=boolean("fixed_batches", fixed_batches),
        reset_classifier=boolean("reset_classifier", reset_classifier))
    relu_latent = boolean("relu_latent", relu_latent)
    stream.declare_transductive()  # the classifier trains on every class's features
    net_options = dict(latent_dim=latent_dim, hidden=hidden, relu_latent=relu_latent)
    return _plugin_class()(stream, net_options, **settings)


# ------------------------------------------------------------------ the losses


def vae_loss(x, recon, mu, logvar):
    """Their VAE loss (``a_vae.py:82-86,146-149``): the reconstruction's mean squared
    error (over batch and dimensions) plus the KL to ``N(0, I)`` *summed* over batch and
    latent dimensions.

    :param x: ``[B, D]`` real features; ``recon`` ``[B, D]`` their reconstruction.
    :param mu: ``[B, L]``; ``logvar`` ``[B, L]``: the posterior.
    :return: a scalar.
    """
    kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum()
    return ((recon - x) ** 2).mean() + kl


def network_loss(logits, labels, x, shared, private, d_logits, task, adv_weight):
    """The network's loss at one step (``a_vae.py:80-99``).

    :param logits: ``[B, C]`` the task's head on ``[x_s, x_p]``; ``labels`` ``[B]`` long.
    :param x: ``[B, D]`` real (or replayed) features.
    :param shared: ``(recon, mu, logvar)`` of the shared CVAE; ``private`` of task's.
    :param d_logits: ``[B, t + 2]`` the discriminator on the gradient-reversed
        ``[x_s, a]``.
    :param task: ``t``: the label the discriminator is trained to give real data.
    :param adv_weight: weight of the adversarial cross-entropy.
    :return: ``(total, head, shared_vae, private_vae, adversarial)`` scalars.
    """
    import torch.nn.functional as F

    head = F.cross_entropy(logits, labels)
    loss_s = vae_loss(x, *shared)
    loss_p = vae_loss(x, *private)
    real = logits.new_full((len(x),), task + 1, dtype=labels.dtype)
    adv = F.cross_entropy(d_logits, real)
    return head + loss_s + loss_p + adv_weight * adv, head, loss_s, loss_p, adv


def discriminator_loss(d_real, d_fake, task):
    """The discriminator's loss (``a_vae.py:104-122``): decoded real features are class
    ``t + 1``, Gaussian noise class 0 (each cross-entropy a batch mean; their two
    backward passes sum them).

    :param d_real: ``[B, t + 2]`` logits of ``[x_s, a]``; ``d_fake`` of ``[noise, a]``.
    """
    import torch
    import torch.nn.functional as F

    real = torch.full((len(d_real),), task + 1, dtype=torch.long, device=d_real.device)
    fake = torch.zeros(len(d_fake), dtype=torch.long, device=d_fake.device)
    return F.cross_entropy(d_real, real) + F.cross_entropy(d_fake, fake)


def gradient_reversal(x, lambda_):
    """Identity forward; the gradient times ``-lambda_`` backward (Ganin & Lempitsky
    2015; ``dis.py:35-56``)."""
    return _define()["GradientReversal"].apply(x, lambda_)


# ------------------------------------------------------------------ the networks


def build_net(n_features, n_attributes, n_classes, *, latent_dim=50, hidden=500,
              relu_latent=True):
    """An :class:`ACZSLNet` with no task modules yet."""
    return _define()["ACZSLNet"](n_features, n_attributes, n_classes, latent_dim, hidden,
                                 relu_latent)


def build_discriminator(n_features, n_attributes, task, hidden=500, grl_lambda=1.0):
    """GRL -> ``[x, a]`` -> hidden -> LeakyReLU -> ``t + 2`` logits (``dis.py:20-24``)."""
    return _define()["Discriminator"](n_features + n_attributes, hidden, task + 2, grl_lambda)


def __getattr__(name):
    """The torch classes, defined on first use (torch is imported only when a run needs
    it) and then module attributes, so they pickle by reference."""
    if name in _CLASSES:
        return _define()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_CLASSES = ("CVAE", "ACZSLNet", "Discriminator", "GradientReversal")


def _define():
    if "ACZSLNet" in globals():
        return globals()
    import torch
    from torch import nn

    class GradientReversal(torch.autograd.Function):
        """Identity forward, gradient times ``-lambda`` backward."""

        @staticmethod
        def forward(ctx, x, lambda_):
            ctx.lambda_ = lambda_
            return x.clone()

        @staticmethod
        def backward(ctx, grad):
            return -ctx.lambda_ * grad, None

    class CVAE(nn.Module):
        """Their ``vae``/``shared`` (``network.py:14-75``): ``[x, a]`` -> hidden ->
        ``(mu, log sigma^2)``; ``[z, a]`` -> hidden -> sigmoid features."""

        def __init__(self, n_features, n_attributes, latent_dim, hidden, relu_latent):
            super().__init__()
            layers = [nn.Linear(n_features + n_attributes, hidden), nn.ReLU(),
                      nn.Linear(hidden, 2 * latent_dim)]
            self.encoder = nn.Sequential(*layers, *([nn.ReLU()] if relu_latent else []))
            self.decoder = nn.Sequential(nn.Linear(latent_dim + n_attributes, hidden),
                                         nn.ReLU(), nn.Linear(hidden, n_features),
                                         nn.Sigmoid())

        def decode(self, z, attributes):
            """``[B, D]`` features of ``z`` ``[B, L]`` and ``attributes`` ``[B, A]``."""
            return self.decoder(torch.cat([z, attributes], 1))

        def forward(self, x, attributes):
            """``(recon [B, D], mu [B, L], logvar [B, L])``."""
            mu, logvar = self.encoder(torch.cat([x, attributes], 1)).chunk(2, dim=1)
            z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
            return self.decode(z, attributes), mu, logvar

    class ACZSLNet(nn.Module):
        """The shared CVAE, and per task a private CVAE and a head (``network.py:88-121``)
        that :meth:`grow` appends."""

        def __init__(self, n_features, n_attributes, n_classes, latent_dim, hidden,
                     relu_latent):
            super().__init__()
            self.dims = (n_features, n_attributes, n_classes, latent_dim, hidden, relu_latent)
            self.shared = CVAE(n_features, n_attributes, latent_dim, hidden, relu_latent)
            self.private = nn.ModuleList()
            self.heads = nn.ModuleList()

        @property
        def latent_dim(self):
            """Dimension of z."""
            return self.dims[3]

        def grow(self):
            """Append task ``len(self.private)``'s private CVAE and head (``[x_s, x_p]`` ->
            hidden -> ReLU -> dropout 0.2 -> ``C`` logits, ``network.py:95-102``)."""
            d, a, c, latent, hidden, relu = self.dims
            device = next(self.shared.parameters()).device
            self.private.append(CVAE(d, a, latent, hidden, relu).to(device))
            self.heads.append(nn.Sequential(nn.Linear(2 * d, hidden), nn.ReLU(),
                                            nn.Dropout(0.2), nn.Linear(hidden, c)).to(device))

        def forward(self, x, attributes, task):
            """``(logits [B, C], shared (recon, mu, logvar), private (...))`` of task."""
            shared = self.shared(x, attributes)
            private = self.private[task](x, attributes)
            return self.heads[task](torch.cat([shared[0], private[0]], 1)), shared, private

    class Discriminator(nn.Module):
        """Gradient reversal, then ``[x, a]`` -> hidden -> LeakyReLU -> ``K`` logits."""

        def __init__(self, n_in, hidden, n_out, grl_lambda):
            super().__init__()
            self.grl_lambda = grl_lambda
            self.net = nn.Sequential(nn.Linear(n_in, hidden), nn.LeakyReLU(),
                                     nn.Linear(hidden, n_out))

        def forward(self, x):
            """Logits ``[B, K]``; the gradient into ``x`` is reversed."""
            return self.net(GradientReversal.apply(x, self.grl_lambda))

    for cls in (GradientReversal, CVAE, ACZSLNet, Discriminator):
        cls.__qualname__, cls.__module__ = cls.__name__, __name__
        globals()[cls.__name__] = cls
    return globals()


# ------------------------------------------------------------------ training


def train_task(net, x, attributes, labels, task, *, epochs, batch_size, lr, adv_weight,
               grl_lambda, fixed_batches):
    """Grow ``net`` for ``task`` and train it ``epochs`` epochs (``a_vae.py:44-132``).

    :param x: ``[N, D]`` features (real and replayed); ``attributes`` ``[N, A]`` their
        classes' attributes; ``labels`` ``[N]`` long class ids.
    :return: the discriminator (rebuilt for this task).
    """
    import torch

    while len(net.private) <= task:
        net.grow()
    d, a = x.shape[1], attributes.shape[1]
    disc = build_discriminator(d, a, task, net.dims[4], grl_lambda).to(x.device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    opt_d = torch.optim.Adam(disc.parameters(), lr=lr)
    net.train()
    disc.train()
    order = torch.randperm(len(x), device=x.device)
    for _ in range(epochs):
        if not fixed_batches:
            order = torch.randperm(len(x), device=x.device)
        for idx in order.split(batch_size):
            xb, ab, yb = x[idx], attributes[idx], labels[idx]
            logits, shared, private = net(xb, ab, task)
            d_logits = disc(torch.cat([shared[0], ab], 1))
            loss = network_loss(logits, yb, xb, shared, private, d_logits, task,
                                adv_weight)[0]
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():  # the decoded real features after the step
                x_s = net.shared(xb, ab)[0]
            noise = torch.randn(len(xb), d, device=x.device, dtype=x.dtype)
            loss_d = discriminator_loss(disc(torch.cat([x_s, ab], 1)),
                                        disc(torch.cat([noise, ab], 1)), task)
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
    net.eval()
    return disc


def generate(net, attributes, n):
    """``[K * n, D]``: ``n`` shared-decoder features of each row of ``attributes`` ``[K, A]``
    from ``z ~ N(0, I)``, in blocks of ``n`` (``a_vae.py:134-139``)."""
    import torch

    with torch.no_grad():
        attributes = attributes.repeat_interleave(n, 0)
        z = torch.randn(len(attributes), net.latent_dim, device=attributes.device,
                        dtype=attributes.dtype)
        return net.shared.decode(z, attributes)


def _plugin_class():
    """Built on first use: Avalanche is imported only when a run needs it."""
    if "ACZSLReplay" in globals():
        return globals()["ACZSLReplay"]
    import torch
    from avalanche.benchmarks.utils.classification_dataset import (
        _as_taskaware_supervised_classification_dataset,
    )
    from avalanche.core import SupervisedPlugin
    from torch.utils.data import TensorDataset

    class ACZSLReplay(SupervisedPlugin):
        """Trains the A-CZSL network on each task; the classifier gets its features."""

        def __init__(self, stream, net_options, *, epochs, batch_size, lr, adv_weight, grl_lambda,
                     replay_per_class, classifier_per_class, fixed_batches,
                     reset_classifier):
            super().__init__()
            self.stream = stream
            self.net_options = net_options
            self.net = None  # built at the first task, when the feature size is known
            self.epochs, self.batch_size, self.lr = epochs, batch_size, lr
            self.adv_weight, self.grl_lambda = adv_weight, grl_lambda
            self.replay_per_class = replay_per_class
            self.classifier_per_class = classifier_per_class
            self.fixed_batches = fixed_batches
            self.reset_classifier = reset_classifier

        def _generate(self, classes, n, device):
            attrs = self.stream.attributes_of(classes).to(device)  # [K, A]
            return generate(self.net, attrs, n), classes.repeat_interleave(n)

        def after_train_dataset_adaptation(self, strategy, *args, **kwargs):
            device = strategy.device
            task = self.stream.step
            xs, ys = zip(*((item[0], item[1]) for item in strategy.adapted_dataset))
            x = torch.stack(xs).to(device).float()  # [N, D] the task's real features
            y = torch.as_tensor(ys, dtype=torch.long)
            if self.net is None:
                self.net = build_net(x.shape[1], self.stream.n_attributes,
                                     self.stream.n_classes, **self.net_options)
            self.net.to(device)
            past = self.stream.past_classes()
            if len(past):  # the shared decoder's replay, with its state after task t-1
                x_old, y_old = self._generate(past, self.replay_per_class, device)
                x, y = torch.cat([x, x_old]), torch.cat([y, y_old])
            train_task(self.net, x, self.stream.attributes_of(y).to(device), y.to(device),
                       task, epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                       adv_weight=self.adv_weight, grl_lambda=self.grl_lambda,
                       fixed_batches=self.fixed_batches)
            every = torch.arange(self.stream.n_classes)
            x_cls, y_cls = self._generate(every, self.classifier_per_class, device)
            strategy.adapted_dataset = _as_taskaware_supervised_classification_dataset(
                TensorDataset(x_cls.cpu(), y_cls))

        def before_training_exp(self, strategy, *args, **kwargs):
            if self.reset_classifier:  # a new classifier and optimizer each task
                for module in strategy.model.modules():
                    if hasattr(module, "reset_parameters"):
                        module.reset_parameters()
                strategy.optimizer.state.clear()
            # the classifier trains on every class's generated features: show them all
            strategy.model.set_visible_classes(torch.ones(
                self.stream.n_classes, dtype=torch.bool, device=strategy.device))

    ACZSLReplay.__qualname__, ACZSLReplay.__module__ = "ACZSLReplay", __name__
    globals()["ACZSLReplay"] = ACZSLReplay
    return ACZSLReplay
