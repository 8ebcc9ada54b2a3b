"""Testing a model, outside the learner: the test set never reaches a plugin.

:func:`predict` is the test pass the run makes after every task. It runs the model
over the whole test set, predicting among all classes, in mini-batches in a fixed order,
the way Avalanche's evaluation loop did (one ``DataLoader`` pass, which draws one number
from torch's random generator as every ``DataLoader`` iteration does; the next task's
batches depend on it, so the draw is kept).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


@torch.no_grad()
def predict(model: nn.Module, features: torch.Tensor, *, n_classes: int, batch_size: int,
            device: torch.device) -> torch.Tensor:
    """``[N, C]`` logits of ``features`` ``[N, D]`` over every class, on ``device``.

    The model is shown every class and put in eval mode for the pass; each submodule's
    train/eval mode is restored afterwards.

    :param model: a model as :func:`czsl.hookspecs.czsl_make_model` describes.
    :param features: test features.
    :param n_classes: number of classes ``C``.
    :param batch_size: rows per forward pass.
    :param device: where the model is.
    """
    modes = {name: module.training for name, module in model.named_modules()}
    model.set_visible_classes(torch.ones(n_classes, dtype=torch.bool, device=device))
    model.eval()
    try:
        outputs = [model(x.to(device)) for (x,) in DataLoader(TensorDataset(features),
                                                               batch_size=batch_size)]
    finally:
        for name, module in model.named_modules():
            module.training = modes[name]
    return torch.cat(outputs)

