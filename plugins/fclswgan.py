"""f-CLSWGAN: a conditional Wasserstein GAN with a classification loss, on features.

Xian, Lorenz, Schiele & Akata, "Feature Generating Networks for Zero-Shot Learning",
CVPR 2018. The generator maps noise and class attributes to an image feature, the
critic scores (feature, attributes) pairs, and training minimises the WGAN-GP
objective (eq. 2) plus ``cls_weight`` times the cross-entropy of a softmax classifier,
pre-trained on the real features and then frozen, on the generated ones (eq. 4).

Defaults as published, checked against the re-implementations of the paper's code
listed in the project's REFERENCES.md (section 4.1): generator ``[z; a] -> 4096 ->
LeakyReLU(0.2) -> D -> ReLU`` and critic ``[x; a] -> 4096 -> LeakyReLU(0.2) -> 1``,
weights ~ N(0, 0.02), noise size = attribute size, gradient penalty weight 10, 5
critic steps (each on a fresh random mini-batch) per generator step, classification
weight 0.01, Adam lr 1e-4 and beta1 0.5, batch 64; an epoch is ``N / batch_size``
generator steps. The classifier is linear, trained 50 epochs with Adam (lr 1e-3,
beta1 0.5, batch 100) at the start of every ``fit`` on that fit's classes (in a
continual run: the current task's plus the replayed ones). The paper trains 56 epochs
on CUB and 40 on SUN (with lr 2e-4 on SUN), synthesising 300 (CUB) / 400 (SUN)
features per class (that number is the replay plugin's ``replay_per_class``).

Differences from the reference code, on purpose: features are not min-max scaled to
[0, 1] (the generator ends in a ReLU and learns the scale); no epoch is picked on
test data (the reference scripts keep the best test epoch; here training runs a fixed
number of epochs). For CPU budgets, ``cpu_max_iterations`` caps the generator steps of
one ``fit`` on a CPU only, so the published schedule stays what runs on a GPU, and
``max_iterations`` caps them on every device. Whenever a cap cut a fit short, the
generator's :attr:`FCLSWGAN.notes` say what fraction of the schedule ran, and czsl prints
that with the results and keeps it in ``results.json``'s ``notes``.

Options (``[generator]`` table): ``hidden`` (4096), ``noise_dim`` (attribute size),
``lr`` (1e-4), ``beta1`` (0.5), ``batch_size`` (64), ``epochs`` (56), ``critic_steps`` (5),
``gp_weight`` (10), ``cls_weight`` (0.01), ``cls_epochs`` (50), ``cls_lr`` (1e-3),
``cls_batch_size`` (100), ``max_iterations`` (0: no cap), ``cpu_max_iterations`` (0: no
cap). Add-on losses (``losses``) see
the generator's output for the step's attributes and fresh noise.
"""

from __future__ import annotations

from czsl import Component, hookimpl
from czsl.options import integer, number

NAME = "fclswgan"


@hookimpl
def czsl_components():
    """One generator: ``fclswgan``."""
    return [Component("generator", NAME, "conditional WGAN-GP with a classification loss "
                      "(f-CLSWGAN, Xian et al., CVPR 2018)")]


@hookimpl
def czsl_make_generator(options, n_features, n_attributes, losses):
    """A :class:`FCLSWGAN` for ``n_features``-d features and ``n_attributes``-d attributes."""
    return FCLSWGAN(n_features, n_attributes, losses=losses, **options)


def _net(n_in, hidden, n_out, out_relu):
    from torch import nn

    layers = [nn.Linear(n_in, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, n_out)]
    if out_relu:
        layers.append(nn.ReLU())
    net = nn.Sequential(*layers)
    for layer in net:
        if isinstance(layer, nn.Linear):  # the reference code's weights_init
            nn.init.normal_(layer.weight, 0.0, 0.02)
            nn.init.zeros_(layer.bias)
    return net


def gradient_penalty(critic, real, fake, attributes):
    """WGAN-GP's penalty (Gulrajani et al., 2017): ``E[(||grad_x D(x^, a)|| - 1)^2]`` at
    random interpolates ``x^`` of ``real`` and ``fake`` ``[B, D]``.
    """
    import torch

    alpha = torch.rand(len(real), 1, device=real.device, dtype=real.dtype)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    scores = critic(torch.cat([mixed, attributes], 1))
    grads, = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    return ((grads.norm(2, dim=1) - 1) ** 2).mean()


def train_classifier(features, labels, n_classes, *, epochs, lr, batch_size, beta1=0.5):
    """A linear softmax classifier ``[D] -> [n_classes]`` trained on ``features``, frozen."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    clf = nn.Linear(features.shape[1], n_classes).to(features.device)
    optimizer = torch.optim.Adam(clf.parameters(), lr=lr, betas=(beta1, 0.999))
    for _ in range(epochs):
        for idx in torch.randperm(len(features), device=features.device).split(batch_size):
            loss = F.cross_entropy(clf(features[idx]), labels[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    clf.requires_grad_(False)
    return clf


class FCLSWGAN:
    """The generator (see :func:`czsl.hookspecs.czsl_make_generator`).

    A plain class holding torch modules, so it pickles by reference without importing
    torch when ``czsl plugins`` imports this module. Options: see the module docstring.
    """

    # class-level defaults: a generator pickled before these existed still resumes
    cpu_max_iterations = 0
    steps_run = steps_scheduled = fits_capped = 0  # summed over fits, for :attr:`notes`

    def __init__(self, n_features, n_attributes, *, hidden=4096, noise_dim=None, lr=1e-4,
                 beta1=0.5, batch_size=64, epochs=56, critic_steps=5, gp_weight=10.0,
                 cls_weight=0.01, cls_epochs=50, cls_lr=1e-3, cls_batch_size=100,
                 max_iterations=0, cpu_max_iterations=0, losses=None):
        from czsl.generators import GeneratorLosses

        noise_dim = n_attributes if noise_dim is None else noise_dim
        for key, value in (("hidden", hidden), ("noise_dim", noise_dim),
                           ("batch_size", batch_size), ("epochs", epochs),
                           ("critic_steps", critic_steps), ("cls_batch_size", cls_batch_size)):
            integer(key, value)
        integer("cls_epochs", cls_epochs, at_least=0)
        integer("max_iterations", max_iterations, at_least=0)
        integer("cpu_max_iterations", cpu_max_iterations, at_least=0)
        lr, cls_lr = number("lr", lr, above=0), number("cls_lr", cls_lr, above=0)
        beta1 = number("beta1", beta1, at_least=0, below=1)
        gp_weight = number("gp_weight", gp_weight, at_least=0)
        cls_weight = number("cls_weight", cls_weight, at_least=0)
        self.noise_dim, self.lr, self.beta1 = noise_dim, lr, beta1
        self.batch_size, self.epochs, self.critic_steps = batch_size, epochs, critic_steps
        self.gp_weight, self.cls_weight = gp_weight, cls_weight
        self.cls_epochs, self.cls_lr, self.cls_batch_size = cls_epochs, cls_lr, cls_batch_size
        self.max_iterations, self.cpu_max_iterations = max_iterations, cpu_max_iterations
        self.losses = losses if losses is not None else GeneratorLosses()
        self.generator = _net(noise_dim + n_attributes, hidden, n_features, out_relu=True)
        self.critic = _net(n_features + n_attributes, hidden, 1, out_relu=False)
        self.optimizers = None  # built on the first fit, on the generator's device

    def to(self, device):
        """Move to ``device``; returns itself."""
        self.generator.to(device)
        self.critic.to(device)
        self.optimizers = None
        return self

    def generate(self, attributes, noise):
        """``[K, D]`` generated from ``attributes`` ``[K, A]`` and ``noise`` ``[K, Z]``."""
        import torch

        return self.generator(torch.cat([noise, attributes], 1))

    def _noise(self, k, like):
        import torch

        return torch.randn(k, self.noise_dim, device=like.device, dtype=like.dtype)

    def _optimizers(self):
        import torch

        if self.optimizers is None:  # kept across fits: Adam's moments carry over
            betas = (self.beta1, 0.999)
            self.optimizers = (
                torch.optim.Adam(self.generator.parameters(), lr=self.lr, betas=betas),
                torch.optim.Adam(self.critic.parameters(), lr=self.lr, betas=betas))
        return self.optimizers

    def fit(self, features, attributes):
        """WGAN-GP training on ``features`` ``[N, D]`` / ``attributes`` ``[N, A]``."""
        import torch
        import torch.nn.functional as F

        from czsl.generators import GeneratorBatch

        classes, own = torch.unique(attributes, dim=0, return_inverse=True)  # [C, A], [N]
        n = len(features)
        clf = (train_classifier(features, own, len(classes), epochs=self.cls_epochs,
                                lr=self.cls_lr, batch_size=self.cls_batch_size)
               if self.cls_weight > 0 and self.cls_epochs > 0 and len(classes) > 1 else None)
        self.losses.start(features, attributes)
        opt_g, opt_d = self._optimizers()
        scheduled = self.epochs * max(1, n // self.batch_size)
        steps = self.capped(scheduled, features.device)
        self.steps_run += steps
        self.steps_scheduled += scheduled
        self.fits_capped += steps < scheduled
        self.generator.train()
        self.critic.train()
        for _ in range(steps):
            # (1) critic: WGAN-GP, each step on a fresh random mini-batch
            self.critic.requires_grad_(True)
            for _ in range(self.critic_steps):
                idx = torch.randint(n, (min(self.batch_size, n),), device=features.device)
                x, a = features[idx], attributes[idx]
                with torch.no_grad():
                    fake = self.generate(a, self._noise(len(idx), x))
                loss_d = (self.critic(torch.cat([fake, a], 1)).mean()
                          - self.critic(torch.cat([x, a], 1)).mean()
                          + self.gp_weight * gradient_penalty(self.critic, x, fake, a))
                opt_d.zero_grad()
                loss_d.backward()
                opt_d.step()
            self.losses.log("fclswgan/critic", loss_d)  # the last critic step's
            # (2) generator, on the last critic mini-batch's classes
            self.critic.requires_grad_(False)
            noise = self._noise(len(idx), x)
            fake = self.generate(a, noise)
            loss_g = -self.critic(torch.cat([fake, a], 1)).mean()
            self.losses.log("fclswgan/generator", loss_g)
            if clf is not None:
                cls = F.cross_entropy(clf(fake), own[idx])
                self.losses.log("fclswgan/classification", cls)
                loss_g = loss_g + self.cls_weight * cls
            if len(self.losses):
                loss_g = loss_g + self.losses(GeneratorBatch(
                    real=x, attributes=a, labels=own[idx], class_attributes=classes,
                    fake=fake, noise=noise, generate=self.generate,
                    sample_noise=lambda k, x=x: self._noise(k, x)))
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
        self.critic.requires_grad_(True)
        self.generator.eval()
        self.critic.eval()

    def capped(self, scheduled, device):
        """The generator steps a fit of ``scheduled`` steps runs on ``device``: at most
        ``max_iterations``, and on a CPU at most ``cpu_max_iterations`` (0: no cap)."""
        caps = [self.max_iterations, self.cpu_max_iterations if device.type == "cpu" else 0]
        return min([scheduled, *(cap for cap in caps if cap)])

    @property
    def notes(self):
        """What fraction of the schedule ran, once a cap has cut a fit short (else none)."""
        if not self.fits_capped:
            return []
        share = self.steps_run / self.steps_scheduled
        return [f"f-CLSWGAN ran {self.steps_run:,} of the {self.steps_scheduled:,} generator "
                f"steps of its schedule ({share:.1%}; {self.fits_capped} of its fits capped "
                f"by max_iterations = {self.max_iterations} / cpu_max_iterations = "
                f"{self.cpu_max_iterations}, where 0 is no cap): its features are those of "
                "a partly trained GAN"]

    def sample(self, attributes, n):
        """``[K * n, D]``: ``n`` generated features for each row of ``attributes``."""
        import torch

        with torch.no_grad():
            attributes = attributes.repeat_interleave(n, 0)
            return self.generate(attributes, self._noise(len(attributes), attributes))
