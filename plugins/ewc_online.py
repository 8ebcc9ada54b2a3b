"""EWC-online: a quadratic penalty that keeps important weights near their old values.

After each task the diagonal Fisher information of the loss is added to a running,
decayed importance ``F_t = gamma * F_{t-1} + F_cur``, and training on later tasks adds
``lambda * sum_i F_i (theta_i - theta*_i)^2`` to the loss (Kirkpatrick et al., PNAS
2017; online form of Schwarz et al., ICML 2018).

Defaults are the ClassNorm paper's (``universome/class-norm``, ``configs/ewc_online.yml``):
``gamma = 0.99`` (Avalanche's ``decay_factor``) and ``lambda = 10``.

Built on Avalanche's ``EWCPlugin(mode="online")`` with one change, ``normalize`` (on by
default): the reference code min-max normalises each task's Fisher to [0, 1] over all
parameters jointly (``src/utils/weights_importance.py``), and its ``lambda = 10`` assumes
that. Avalanche's raw Fisher reaches values in the hundreds on the attribute embedder,
where ``lambda = 10`` makes SGD diverge (measured in ``tests/test_regularizers.py``).
``normalize = false`` gives Avalanche's plugin exactly.

Other differences from the reference, documented rather than patched: it computes the
Fisher at the start of the *next* task on that task's data, Avalanche at the end of each
task on its own data (the textbook order). Both square mini-batch gradients of the
training loss in eval mode (czsl's loss restricts each sample's softmax to its own
task's classes, as the reference does).
"""

from __future__ import annotations

import functools

from czsl import Component, hookimpl
from czsl.options import boolean, number

NAME = "ewc_online"


@hookimpl
def czsl_components():
    """One regularizer: ``ewc_online``."""
    return [Component("regularizer", NAME,
                      "EWC-online, Avalanche's EWCPlugin (Kirkpatrick et al. 2017; "
                      "Schwarz et al. 2018)")]


@hookimpl
def czsl_make_regularizer(options):
    """Avalanche's ``EWCPlugin`` in online mode."""
    return [make_plugin(**options)]


def make_plugin(*, ewc_lambda=10.0, gamma=0.99, normalize=True):
    """Avalanche's online EWC, with ClassNorm's Fisher normalisation.

    :param ewc_lambda: weight of the penalty (ClassNorm: 10).
    :param gamma: decay of the accumulated importance (ClassNorm: 0.99).
    :param normalize: min-max normalise each task's Fisher to [0, 1] (ClassNorm: yes).
    """
    from avalanche.training.plugins import EWCPlugin

    ewc_lambda = number("ewc_lambda", ewc_lambda, at_least=0)
    gamma = number("gamma", gamma, at_least=0, at_most=1)
    cls = _normalized_class() if boolean("normalize", normalize) else EWCPlugin
    return cls(ewc_lambda=ewc_lambda, mode="online", decay_factor=gamma)


def min_max_normalize(importances):
    """Scale a task's importances to [0, 1] jointly over all parameters, in place.

    :param importances: parameter name -> importance tensor.
    :return: the same mapping.
    """
    low = min(float(t.min()) for t in importances.values())
    high = max(float(t.max()) for t in importances.values())
    for tensor in importances.values():
        tensor.sub_(low).div_(max(high - low, 1e-12))
    return importances


@functools.cache
def _normalized_class():
    """EWCPlugin with :func:`min_max_normalize` (built on first use, so that listing
    plugins does not import Avalanche)."""
    from avalanche.training.plugins import EWCPlugin

    class NormalizedEWC(EWCPlugin):
        """Avalanche's EWC whose per-task Fisher is min-max normalised (ClassNorm)."""

        def compute_importances(self, *args, **kwargs):
            importances = super().compute_importances(*args, **kwargs)
            min_max_normalize({name: p.data for name, p in importances.items()})
            return importances

    return NormalizedEWC
