"""MAS: penalise changes to weights the model's output is sensitive to.

After each task the importance of every weight is the mean absolute gradient of the
squared L2 norm of the model's output over that task's data; later tasks add
``lambda * sum_i Omega_i (theta_i - theta*_i)^2`` to the loss (Aljundi et al., "Memory
Aware Synapses", ECCV 2018). Built on Avalanche's ``MASPlugin``; defaults follow the
ClassNorm paper's config (``universome/class-norm``, ``configs/mas.yml``: lambda 1e-4).

Why not Avalanche's plugin unchanged: a zero-shot model gives the classes it may not
yet use the logit ``-inf``, so Avalanche's ``||f(x)||^2`` is infinite and every
importance NaN; here the norm runs over the finite (visible-class) logits only, as the
reference code's masked norm does. Avalanche also computes importances in train mode,
which would move ClassNorm's running statistics with an extra pass over the data; here
they are computed in eval mode. Both differences are tested.

Kept from Avalanche by default: importances are averaged over mini-batches and merged
as ``alpha * old + (1 - alpha) * new`` (``alpha`` 0.5). The reference code sums
``gamma * old + new`` (``configs/mas.yml``: gamma 0.95), which lets the importance grow
to about ``1 / (1 - gamma)`` times one task's over a long stream; ``gamma = 0.95``
selects that rule (``alpha`` is then unused). How much each rule makes MAS act is
measured in ``benchmarks/regularizer_activity.md``.
"""

from __future__ import annotations

import functools

from czsl import Component, hookimpl
from czsl.options import number

NAME = "mas"


@hookimpl
def czsl_components():
    """One regularizer: ``mas``."""
    return [Component("regularizer", NAME,
                      "MAS, Avalanche's MASPlugin on visible-class logits "
                      "(Aljundi et al., ECCV 2018)")]


@hookimpl
def czsl_make_regularizer(options):
    """The zero-shot MAS plugin."""
    return [make_plugin(**options)]


def make_plugin(*, lambda_reg=1e-4, alpha=0.5, gamma=None):
    """MAS for zero-shot models.

    :param lambda_reg: weight of the penalty (ClassNorm: 1e-4).
    :param alpha: weight of the old importance when merging (Avalanche's rule).
    :param gamma: if given, merge as ``gamma * old + new`` instead (the reference
        code's rule; ClassNorm: 0.95).
    """
    lambda_reg = number("lambda_reg", lambda_reg, at_least=0)
    alpha = number("alpha", alpha, at_least=0, at_most=1)
    if gamma is not None:  # no gamma: Avalanche's alpha rule
        gamma = number("gamma", gamma, at_least=0, at_most=1)
    return _plugin_class()(lambda_reg=lambda_reg, alpha=alpha, gamma=gamma)


def mas_importance(model, dataset, *, batch_size, device):
    """Mean over mini-batches of ``|d/dtheta mean_b ||finite logits_b||^2|``, in eval mode.

    :param model: the zero-shot model; its training mode is restored afterwards.
    :param dataset: an Avalanche dataset of ``(x, y, task)`` items.
    :return: parameter name -> importance tensor of the parameter's shape.
    """
    import torch
    from torch.utils.data import DataLoader

    was_training = model.training
    model.eval()  # ClassNorm's running statistics must not move
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    importance = {n: torch.zeros_like(p) for n, p in params.items()}
    loader = DataLoader(dataset, batch_size=batch_size,
                        collate_fn=getattr(dataset, "collate_fn", None))
    for batch in loader:
        logits = model(batch[0].to(device))  # [B, C], -inf for classes not visible
        finite = torch.where(torch.isfinite(logits), logits, torch.zeros_like(logits))
        loss = finite.pow(2).sum(dim=1).mean()
        grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
        for (name, _), grad in zip(params.items(), grads):
            if grad is not None:
                importance[name] += grad.abs()
    for value in importance.values():
        value /= max(len(loader), 1)
    model.train(was_training)
    return importance


@functools.cache
def _plugin_class():
    """Avalanche's MASPlugin with :func:`mas_importance` (built on first use: Avalanche is
    imported only when a run needs it)."""
    from avalanche.training.plugins import MASPlugin
    from avalanche.training.utils import ParamData, copy_params_dict

    class ZeroShotMAS(MASPlugin):
        """Avalanche's MAS with importances from :func:`mas_importance`, and the
        reference's merge rule when ``gamma`` is set."""

        def __init__(self, *, gamma=None, **kwargs):
            super().__init__(**kwargs)
            self.gamma = gamma

        def _get_importance(self, strategy):
            imp = mas_importance(strategy.model, strategy.experience.dataset,
                                 batch_size=strategy.train_mb_size, device=strategy.device)
            return {n: ParamData(n, t.shape, device=t.device, init_tensor=t)
                    for n, t in imp.items()}

        def after_training_exp(self, strategy, **kwargs):
            if self.gamma is None:
                return super().after_training_exp(strategy, **kwargs)
            self.params = dict(copy_params_dict(strategy.model))
            new = self._get_importance(strategy)
            for name, imp in (self.importance or {}).items():
                if name in new:  # a parameter that grew keeps zeros in its new part
                    new[name].data += self.gamma * imp.expand(new[name].data.shape)
            self.importance = new
            return None

    return ZeroShotMAS
