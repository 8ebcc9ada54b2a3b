"""Anti-mode-collapse: an add-on generator loss that rewards diverse samples per class.

Ramazi & Shabani, "Averting Mode Collapse for Generative Zero-Shot Learning", ICCKE
2022. For the same attributes ``a`` and two noises ``z1``, ``z2`` the ratio

    r = mean_i (1 - cos(G(z1_i, a_i), G(z2_i, a_i))) / (1 - cos(z1_i, z2_i))

measures how far apart the generator puts two samples of a class relative to how far
apart their noises are; a collapsed generator has ``r`` near 0. The generator adds
``weight / r`` to its loss, as the authors' code does (their ``clswgan.py``: ``errG =
anti / anti_collapse``; a mode-seeking term in the spirit of MSGAN). Here ``z1`` is the
noise of the step's generated batch and ``z2`` fresh noise.

Works with any generator that fills a :class:`czsl.generators.GeneratorBatch`
(``fclswgan``, ``cvae`` and third-party ones). Options: ``weight`` (0.2, the value of
the authors' example command), ``eps`` (1e-5, keeps ``weight / r`` finite).
"""

from __future__ import annotations

from czsl import Component, hookimpl
from czsl.options import number

NAME = "anti_collapse"


@hookimpl
def czsl_components():
    """One generator loss: ``anti_collapse``."""
    return [Component("generator_loss", NAME, "anti-mode-collapse regulariser, weight / "
                      "E[(1 - cos(x1, x2)) / (1 - cos(z1, z2))] (Ramazi & Shabani, 2022)")]


@hookimpl
def czsl_make_generator_loss(options):
    """An :class:`AntiCollapse` loss."""
    return AntiCollapse(**options)


def diversity_ratio(x1, x2, z1, z2):
    """``mean((1 - cos(x1, x2)) / (1 - cos(z1, z2)))`` over the rows; ``[B, *]`` inputs."""
    import torch.nn.functional as F

    return ((1 - F.cosine_similarity(x1, x2, dim=1, eps=1e-6))
            / (1 - F.cosine_similarity(z1, z2, dim=1, eps=1e-6))).mean()


class AntiCollapse:
    """The loss (see :func:`czsl.hookspecs.czsl_make_generator_loss`).

    :param weight: multiplies ``1 / r``.
    :param eps: added to ``r`` before dividing.
    """

    def __init__(self, weight=0.2, eps=1e-5):
        self.weight = number("weight", weight, at_least=0)
        self.eps = number("eps", eps, above=0)

    def __call__(self, batch):
        z2 = batch.sample_noise(len(batch.noise))
        ratio = diversity_ratio(batch.fake, batch.generate(batch.attributes, z2),
                                batch.noise, z2)
        return self.weight / (ratio + self.eps)
