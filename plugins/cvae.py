"""CVAE: a class-conditioned VAE feature generator with an attribute-conditioned prior.

VZSL (Wang et al., "Zero-Shot Learning via Class-Conditioned Deep Generative Models",
AAAI 2018): an encoder q(z|x), a prior p(z|a) = N(mu(a), sigma(a)^2) computed from the
class attributes, and a decoder p(x|z). Training maximises the ELBO with the KL taken
to the sample's own class prior, plus a margin regulariser: q(z|x) must be closer (in
KL) to its own class's prior than to any other class's. Features are sampled by drawing
z from p(z|a) and decoding it. No reference code was found (see the project's
REFERENCES.md, section 4); the paper's margin term -lambda * min_{c != y} KL(q || p_c)
is unbounded, so czsl uses its hinge form (below), which is zero once the margin holds.

The decoder ends in a softplus: ResNet features are non-negative (post-ReLU).

Add-on losses (``losses`` in ``[generator]``) see features decoded from the prior,
``x~ = dec(mu(a) + sigma(a) * eps)`` with noise ``eps ~ N(0, I)``, at every step.
"""

from __future__ import annotations

from czsl import Component, hookimpl
from czsl.options import boolean, integer, number

NAME = "cvae"


@hookimpl
def czsl_components():
    """One generator: ``cvae``."""
    return [Component("generator", NAME, "class-conditioned VAE with an attribute prior and "
                      "a margin regulariser (VZSL, Wang et al., AAAI 2018)")]


@hookimpl
def czsl_make_generator(options, n_features, n_attributes, losses):
    """A :class:`CVAE` for ``n_features``-d features and ``n_attributes``-d attributes."""
    return CVAE(n_features, n_attributes, losses=losses, **options)


def gaussian_kl(mu_q, logvar_q, mu_p, logvar_p):
    """KL(N(mu_q, e^logvar_q) || N(mu_p, e^logvar_p)) of diagonal Gaussians, summed over
    the last dimension. Shapes broadcast: ``[B, 1, L]`` against ``[1, C, L]`` gives ``[B, C]``.
    """
    return 0.5 * (logvar_p - logvar_q
                  + (logvar_q.exp() + (mu_q - mu_p) ** 2) / logvar_p.exp() - 1).sum(-1)


def gaussian_kl_matrix(mu_q, logvar_q, mu_p, logvar_p):
    """``[B, C]``: KL(q_b || p_c) of every posterior ``[B, L]`` to every prior ``[C, L]``,
    as :func:`gaussian_kl` broadcast to ``[B, C, L]`` but from matrix products, without
    the ``[B, C, L]`` tensor (the square ``(mu_q - mu_p)^2`` expanded; equal up to float
    rounding, which the expansion amplifies where a posterior sits on a sharp prior).
    """
    inv_var_p = (-logvar_p).exp()  # [C, L]
    return 0.5 * ((logvar_q.exp() + mu_q * mu_q) @ inv_var_p.T
                  - 2 * mu_q @ (mu_p * inv_var_p).T
                  + (mu_p * mu_p * inv_var_p + logvar_p).sum(1)[None]
                  - (logvar_q + 1).sum(1)[:, None])


def margin_loss(kl_all, own, margin):
    """The VZSL margin regulariser in hinge form, averaged over the batch.

    ``max(0, margin + KL(q || p_own) - min_{c != own} KL(q || p_c))``: zero once every
    sample's posterior is ``margin`` nats closer to its own class prior than to the
    nearest other one.

    :param kl_all: ``[B, C]`` KL of each sample's posterior to each class prior.
    :param own: ``[B]`` long, the column of each sample's own class.
    :param margin: the margin, in nats.
    :return: a scalar (0 when there is a single class).
    """
    import torch

    if kl_all.shape[1] < 2:
        return kl_all.new_zeros(())
    own_kl = kl_all.gather(1, own[:, None])[:, 0]  # [B]
    others = kl_all.scatter(1, own[:, None], float("inf"))  # [B, C]
    return torch.relu(margin + own_kl - others.min(1).values).mean()


def cvae_loss(x, recon, mu_q, logvar_q, mu_p, logvar_p, own, *, margin, margin_weight,
              fast_math=False):
    """The negative ELBO plus the margin term, per sample, averaged over the batch.

    :param x: ``[B, D]`` real features; ``recon`` ``[B, D]`` their reconstruction.
    :param mu_q: ``[B, L]``, ``logvar_q`` ``[B, L]``: the posteriors q(z|x).
    :param mu_p: ``[C, L]``, ``logvar_p`` ``[C, L]``: the priors p(z|a_c) of the batch's classes.
    :param own: ``[B]`` long, each sample's row in ``mu_p``.
    :param fast_math: the margin's ``[B, C]`` KL matrix from :func:`gaussian_kl_matrix`
        and the ELBO's KL from each sample's own prior alone (same maths, other rounding).
    :return: ``(total, reconstruction, kl, margin)`` scalars.
    """
    rec = ((recon - x) ** 2).sum(1).mean()  # Gaussian likelihood, unit variance
    if fast_math:
        kl_all = gaussian_kl_matrix(mu_q, logvar_q, mu_p, logvar_p)  # [B, C]
        kl = gaussian_kl(mu_q, logvar_q, mu_p[own], logvar_p[own]).mean()
    else:
        kl_all = gaussian_kl(mu_q[:, None], logvar_q[:, None], mu_p[None], logvar_p[None])
        kl = kl_all.gather(1, own[:, None]).mean()
    reg = margin_loss(kl_all, own, margin)
    return rec + kl + margin_weight * reg, rec, kl, reg


def _mlp(n_in, hidden, n_out):
    from torch import nn

    return nn.Sequential(nn.Linear(n_in, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, n_out))


class CVAE:
    """The generator (see :func:`czsl.hookspecs.czsl_make_generator`): three small MLPs.

    A plain class holding torch modules, so it pickles by reference without importing
    torch when ``czsl plugins`` imports this module.

    :param n_features: feature dimension ``D``.
    :param n_attributes: attribute dimension ``A``.
    :param latent_dim: dimension of z.
    :param hidden: width of the hidden layer of the encoder, prior and decoder.
    :param lr: Adam learning rate.
    :param epochs: epochs over the data of each ``fit`` call.
    :param batch_size: mini-batch size.
    :param margin: margin of the margin regulariser, in nats.
    :param margin_weight: weight of the margin regulariser (0 turns it off).
    :param fast_math: about a fifth less CPU a step (more with many classes): torch's fused
        Adam, and the margin's KL of every sample to every class prior from matrix
        products (:func:`gaussian_kl_matrix`). The same maths with other float rounding:
        results are not bit-identical to ``fast_math = false`` (the default).
    :param losses: add-on losses (:class:`czsl.generators.GeneratorLosses`); none if ``None``.
    """

    def __init__(self, n_features, n_attributes, *, latent_dim=64, hidden=512, lr=1e-3,
                 epochs=10, batch_size=64, margin=1.0, margin_weight=0.1, fast_math=False,
                 losses=None):
        from czsl.generators import GeneratorLosses

        for key, value in (("latent_dim", latent_dim), ("hidden", hidden),
                           ("epochs", epochs), ("batch_size", batch_size)):
            integer(key, value)
        lr = number("lr", lr, above=0)
        margin = number("margin", margin, at_least=0)
        margin_weight = number("margin_weight", margin_weight, at_least=0)
        self.fast_math = boolean("fast_math", fast_math)
        self.latent_dim, self.lr, self.epochs, self.batch_size = latent_dim, lr, epochs, batch_size
        self.margin, self.margin_weight = margin, margin_weight
        self.losses = losses if losses is not None else GeneratorLosses()
        self.encoder = _mlp(n_features, hidden, 2 * latent_dim)  # x -> (mu, logvar) of q(z|x)
        self.prior = _mlp(n_attributes, hidden, 2 * latent_dim)  # a -> (mu, logvar) of p(z|a)
        self.decoder = _mlp(latent_dim, hidden, n_features)  # z -> mean of p(x|z)

    def modules(self):
        """The three networks."""
        return [self.encoder, self.prior, self.decoder]

    def to(self, device):
        """Move to ``device``; returns itself."""
        for module in self.modules():
            module.to(device)
        return self

    def _decode(self, z):
        import torch.nn.functional as F

        return F.softplus(self.decoder(z))  # non-negative, like post-ReLU features

    def generate(self, attributes, noise):
        """``[K, D]`` decoded from ``z = mu(a) + sigma(a) * noise``, differentiable."""
        mu_p, logvar_p = self.prior(attributes).chunk(2, dim=1)
        return self._decode(mu_p + noise * (0.5 * logvar_p).exp())

    def _noise(self, k, like):
        import torch

        return torch.randn(k, self.latent_dim, device=like.device, dtype=like.dtype)

    def fit(self, features, attributes):
        """``epochs`` epochs of Adam on ``features`` ``[N, D]`` / ``attributes`` ``[N, A]``."""
        import torch

        from czsl.generators import GeneratorBatch

        classes, own = torch.unique(attributes, dim=0, return_inverse=True)  # [C, A], [N]
        self.losses.start(features, attributes)
        params = [p for m in self.modules() for p in m.parameters()]
        # fused=None: torch's default (single-tensor on CPU), which the results were made with
        optimizer = torch.optim.Adam(params, lr=self.lr, fused=self.fast_math or None)
        for module in self.modules():
            module.train()
        for _ in range(self.epochs):
            for idx in torch.randperm(len(features), device=features.device).split(
                    self.batch_size):
                x = features[idx]
                mu_q, logvar_q = self.encoder(x).chunk(2, dim=1)
                mu_p, logvar_p = self.prior(classes).chunk(2, dim=1)
                z = mu_q + torch.randn_like(mu_q) * (0.5 * logvar_q).exp()  # reparameterise
                loss, rec, kl, reg = cvae_loss(x, self._decode(z), mu_q, logvar_q, mu_p,
                                               logvar_p, own[idx], margin=self.margin,
                                               margin_weight=self.margin_weight,
                                               fast_math=self.fast_math)
                for name, value in (("cvae/reconstruction", rec), ("cvae/kl", kl),
                                    ("cvae/margin", reg)):
                    self.losses.log(name, value)
                if len(self.losses):
                    a, noise = attributes[idx], self._noise(len(idx), x)
                    loss = loss + self.losses(GeneratorBatch(
                        real=x, attributes=a, labels=own[idx], class_attributes=classes,
                        noise=noise, generate=self.generate,
                        fake=lambda a=a, z=noise: self.generate(a, z),  # decoded if read
                        sample_noise=lambda k, x=x: self._noise(k, x)))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        for module in self.modules():
            module.eval()

    def sample(self, attributes, n):
        """``[K * n, D]``: ``n`` decoded draws of z ~ p(z|a_k) for each row of ``attributes``."""
        import torch

        with torch.no_grad():
            attributes = attributes.repeat_interleave(n, 0)
            return self.generate(attributes, self._noise(len(attributes), attributes))
