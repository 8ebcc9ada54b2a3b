"""Testing a model, outside the learner: the test set never reaches a plugin.

:func:`predict_batches` is the test pass the run makes after every task. It runs the model
over the whole test set, predicting among all classes, in mini-batches in a fixed order,
the way Avalanche's evaluation loop did (one ``DataLoader`` pass, which draws one number
from torch's random generator as every ``DataLoader`` iteration does; the next task's
batches depend on it, so the draw is kept), and hands each mini-batch's logits to a
consumer as soon as they are computed: a run scores them chunk by chunk
(:class:`czsl.metrics.StepScorer`) and never holds the ``[N, C]`` logits of the whole
test set. :func:`predict` collects them instead.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


@torch.no_grad()
def predict_batches(model: nn.Module, features: torch.Tensor, *, n_classes: int,
                    batch_size: int, device: torch.device,
                    each: Callable[[torch.Tensor], None]) -> None:
    """Call ``each`` with the ``[B, C]`` logits of every mini-batch of ``features``
    ``[N, D]`` over every class, on ``device``, in order.

    The model is shown every class and put in eval mode for the pass; each submodule's
    train/eval mode is restored afterwards.

    :param model: a model as :func:`czsl.hookspecs.czsl_make_model` describes.
    :param features: test features.
    :param n_classes: number of classes ``C``.
    :param batch_size: rows per forward pass (and per call of ``each``).
    :param device: where the model is.
    :param each: gets the logits of each mini-batch, which it must not keep if memory is
        to stay bounded.
    """
    modes = {name: module.training for name, module in model.named_modules()}
    model.set_visible_classes(torch.ones(n_classes, dtype=torch.bool, device=device))
    model.eval()
    try:
        for (x,) in DataLoader(TensorDataset(features), batch_size=batch_size):
            each(model(x.to(device)))
    finally:
        for name, module in model.named_modules():
            module.training = modes[name]


def predict(model: nn.Module, features: torch.Tensor, *, n_classes: int, batch_size: int,
            device: torch.device) -> torch.Tensor:
    """``[N, C]`` logits of ``features`` ``[N, D]`` over every class, on ``device``
    (:func:`predict_batches`, the batches concatenated).

    :param model: a model as :func:`czsl.hookspecs.czsl_make_model` describes.
    :param features: test features.
    :param n_classes: number of classes ``C``.
    :param batch_size: rows per forward pass.
    :param device: where the model is.
    """
    outputs: list[torch.Tensor] = []
    predict_batches(model, features, n_classes=n_classes, batch_size=batch_size, device=device,
              each=outputs.append)
    return torch.cat(outputs)
