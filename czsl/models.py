"""Building blocks for zero-shot models: score features against class attributes.

:class:`AttributeModel` is the shape every attribute-based ZSL model shares: an
*attribute embedder* maps the attributes of the classes the model may use to
prototypes in feature space, and the logits are scaled cosine similarities between the
(optionally embedded) image features and those prototypes (Skorokhodov & Elhoseiny,
ICLR 2021, eq. 1). Classes the model may not use get the logit ``-inf``, so the
attributes of classes not yet allowed never enter the computation. Plugins supply the
embedders; this module supplies the masking and scoring once.

:class:`LatentClassifier` is the other shape: a linear classifier in the latent space of
an encoder that a method's generative part trains (Tf-GCZSL's CADA-VAE); a replay plugin
trains its head on latents with :func:`train_on_latents` and :func:`stop_latents`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class AttributeModel(nn.Module):
    """Scaled-cosine logits of features against embedded class attributes.

    ``logits[b, c] = scale**2 * cos(f(x_b), g(a_c))`` for visible classes ``c`` and
    ``-inf`` for the others, with ``g`` the attribute embedder and ``f`` the image
    embedder (identity by default).

    :param embedder: maps attributes ``[C_visible, A]`` to prototypes ``[C_visible, D']``.
        Layers in it that normalise over the first dimension (ClassNorm) therefore
        normalise over classes.
    :param attributes: ``[C, A]`` attributes of every class.
    :param scale: multiplies both unit vectors; the softmax temperature is ``scale**2``.
    :param image_embedder: maps features ``[B, D]`` to ``[B, D']``; identity if ``None``.
    """

    def __init__(self, embedder: nn.Module, attributes: torch.Tensor, *, scale: float,
                 image_embedder: nn.Module | None = None) -> None:
        super().__init__()
        self.embedder = embedder
        self.image_embedder = image_embedder if image_embedder is not None else nn.Identity()
        self.scale = float(scale)
        self.register_buffer("attributes", attributes.detach().clone().float())
        self.register_buffer("visible", torch.ones(attributes.shape[0], dtype=torch.bool))

    @property
    def n_classes(self) -> int:
        """Number of classes ``C``."""
        return int(self.attributes.shape[0])

    def set_visible_classes(self, mask: torch.Tensor) -> None:
        """Allow the model to use only the classes where ``mask`` (bool ``[C]``) is true."""
        if mask.shape != self.visible.shape or mask.dtype != torch.bool:
            raise ValueError(f"visible-class mask must be bool of shape {tuple(self.visible.shape)}, "
                             f"got {mask.dtype} {tuple(mask.shape)}")
        if not bool(mask.any()):
            raise ValueError("at least one class must be visible")
        self.visible.copy_(mask)

    def prototypes(self) -> torch.Tensor:
        """``[C_visible, D']`` unit-norm prototypes of the visible classes."""
        return F.normalize(self.embedder(self.attributes[self.visible]), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, C]``: scaled cosine for visible classes, ``-inf`` for the rest."""
        feats = F.normalize(self.image_embedder(x), dim=1)  # [B, D']
        scores = (self.scale ** 2) * feats @ self.prototypes().T  # [B, C_visible]
        logits = scores.new_full((x.shape[0], self.n_classes), float("-inf"))
        logits[:, self.visible] = scores
        return logits


class VarianceNorm(nn.Module):
    """``(x - mean) / (var + eps)`` per unit over the batch: the class standardization
    of ClassNorm's static ZSL notebook (``universome/class-norm``,
    ``class-norm-for-czsl.ipynb``), whose batch is the set of class prototypes.

    Like ``BatchNorm1d(affine=False)`` (running statistics with momentum 0.1 used when
    testing, ``eps`` 1e-5), except that it divides by the unbiased variance rather than
    the standard deviation: every unit is rescaled by one more ``1 / std``.

    :param width: number of units.
    :param momentum: weight of the newest batch in the running statistics.
    :param eps: added to the variance.
    """

    def __init__(self, width: int, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.register_buffer("running_mean", torch.zeros(width))
        self.register_buffer("running_var", torch.ones(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, width]`` standardized per unit."""
        if self.training:
            mean, var = x.mean(dim=0), x.var(dim=0)
            with torch.no_grad():
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(var, self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        return (x - mean) / (var + self.eps)


class LatentClassifier(nn.Module):
    """A linear classifier in the latent space of an encoder: ``logits = W z + b``.

    For methods whose classifier lives in a generator's latent space (Tf-GCZSL, CADA-VAE):
    ``encoder`` maps features ``[B, D]`` to latents ``[B, Z]`` (deterministically, e.g.
    a VAE's posterior mean) and is trained by whoever owns the method's generative part,
    typically a replay plugin reaching it as ``strategy.model.encoder``; the learner's
    cross-entropy loop trains :attr:`head`.

    The head trains on latents, not features: a plugin calls :func:`train_on_latents`
    (in ``before_training_exp``) to replace the task's mini-batches by latents and
    labels, and the model then reads its inputs as latents (:attr:`latent_inputs`)
    until the plugin clears it (:func:`stop_latents`) or the model is put in eval mode,
    so test features (:func:`czsl.predict.predict_batches` calls ``eval()``) are always
    encoded first.

    Classes the model may not use get the logit ``-inf``, as in :class:`AttributeModel`.

    :param encoder: a module mapping ``[B, D]`` to ``[B, latent_dim]``.
    :param latent_dim: ``Z``.
    :param n_classes: ``C``, every class of the stream.
    """

    def __init__(self, encoder: nn.Module, latent_dim: int, n_classes: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(latent_dim, n_classes)
        self.register_buffer("visible", torch.ones(n_classes, dtype=torch.bool))
        #: while true, ``forward`` takes latents ``[B, Z]`` (not checkpointed: it is
        #: false between tasks)
        self.latent_inputs = False

    @property
    def n_classes(self) -> int:
        """Number of classes ``C``."""
        return int(self.visible.shape[0])

    def set_visible_classes(self, mask: torch.Tensor) -> None:
        """Allow the model to use only the classes where ``mask`` (bool ``[C]``) is true."""
        if mask.shape != self.visible.shape or mask.dtype != torch.bool:
            raise ValueError(f"visible-class mask must be bool of shape {tuple(self.visible.shape)}, "
                             f"got {mask.dtype} {tuple(mask.shape)}")
        if not bool(mask.any()):
            raise ValueError("at least one class must be visible")
        self.visible.copy_(mask)

    def train(self, mode: bool = True) -> LatentClassifier:
        """As ``nn.Module.train``; eval mode also ends latent inputs."""
        if not mode:
            self.latent_inputs = False
        return super().train(mode)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latents ``[B, Z]`` of features ``x`` ``[B, D]``."""
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, C]`` of features (or, with :attr:`latent_inputs`, latents) ``x``;
        ``-inf`` for classes not visible."""
        z = x if self.latent_inputs else self.encoder(x)  # [B, Z]
        return self.head(z).masked_fill(~self.visible, float("-inf"))


def train_on_latents(strategy, latents: torch.Tensor, labels: torch.Tensor) -> None:
    """Make the learner's current task train the :class:`LatentClassifier` head on
    ``latents`` ``[N, Z]`` labelled ``labels`` ``[N]`` instead of the task's features.

    Call it from an Avalanche plugin's ``before_training_exp`` (after the learner has made
    its data loader, which this replaces); call :func:`stop_latents` in its
    ``after_training_exp``. The loader shuffles with torch's generator and hands out
    mini-batches of ``strategy.train_mb_size`` rows by slicing the tensors, not row by
    row as an Avalanche dataset would (a hundredfold faster for hundreds of thousands of
    latents). ``strategy.adapted_dataset`` keeps the task's features.

    :raises TypeError: if ``strategy.model`` is not a :class:`LatentClassifier`.
    """
    from torch.utils.data import BatchSampler, DataLoader, RandomSampler, TensorDataset

    if not isinstance(strategy.model, LatentClassifier):
        raise TypeError(f"the model is a {type(strategy.model).__name__}, not a "
                        "czsl.models.LatentClassifier: its classifier cannot train on latents")
    labels = labels.detach().cpu().long()
    data = TensorDataset(latents.detach().cpu(), labels, torch.zeros_like(labels))
    # batch_size=None: each index the sampler yields is a whole mini-batch's list of rows
    strategy.dataloader = DataLoader(data, batch_size=None, sampler=BatchSampler(
        RandomSampler(data), strategy.train_mb_size, drop_last=False))
    strategy.model.latent_inputs = True


def stop_latents(strategy) -> None:
    """The model reads features again (see :func:`train_on_latents`)."""
    strategy.model.latent_inputs = False
