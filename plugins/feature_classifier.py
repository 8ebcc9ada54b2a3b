"""A softmax classifier over image features: the test classifier of the generative CZSL
methods that do not score attributes at test time.

DVGR-CZSL (Gautam et al., CVPR-W 2021; code ``DVGR-CZSL/DVGR-CZSL``, ``CUB.ipynb`` cell 2:
2048 -> 2000 -> 500 -> 200 with dropout 0.2) and A-CZSL (Ghosh et al., IJCNN 2021; code
``CZSLwithCVAE/CZSL_CVAE``, ``main.py:212``: 2048 -> 500 -> 200) classify test features
with an MLP over *all* classes, trained on features their generators synthesise from
the classes' attributes (every class, unseen ones included: semantic-transductive).
Such a classifier never reads an attribute: unseen classes are scored only because a
replay plugin trained the model on features generated for them.

The model keeps the contract of :func:`czsl.hookspecs.czsl_make_model`: logits over all
``C`` classes, ``-inf`` for classes not visible (``set_visible_classes``). A replay that
trains it on unseen classes' features (a transductive one) makes every class visible
while training, as :mod:`plugins.generative_replay` does.

Two switches reproduce the reference code where it departs from a plain MLP:

* ``normalize_input``: L2-normalise each feature before the MLP (A-CZSL trains its
  classifier on L2-normalised generated features, ``main.py:223``);
* ``standardize``: the model holds a per-dimension mean and standard deviation
  (buffers, identity until set) applied to every input; a replay plugin fits them on
  the features it trains the model on, with :meth:`FeatureClassifier.fit_standardizer`
  (DVGR fits sklearn's ``StandardScaler`` on its generated features and applies it to
  the test features, ``CUB.ipynb`` cell 6);
* ``dropout_when_testing``: keep dropout active in ``eval()`` (DVGR predicts without
  ``model.eval()``, cell 6, so its test predictions are drawn with dropout on).

Options (``[model]`` table): ``hidden_dims`` (``[500]``), ``dropout`` (0.0),
``normalize_input`` (false), ``standardize`` (false), ``dropout_when_testing`` (false).
"""

from __future__ import annotations

from czsl import Component, hookimpl
from czsl.options import OptionError, boolean, number

NAME = "feature_classifier"


@hookimpl
def czsl_components():
    """One model: ``feature_classifier``."""
    return [Component("model", NAME, "MLP softmax classifier over image features, trained "
                      "on generated features (DVGR-CZSL, A-CZSL test classifiers)")]


@hookimpl
def czsl_make_model(options, n_features, attributes):
    """Build :func:`build_model` from the scenario's ``[model]`` options."""
    return build_model(n_features, attributes, **options)


def build_model(n_features, attributes, *, hidden_dims=(500,), dropout=0.0,
                normalize_input=False, standardize=False, dropout_when_testing=False):
    """The classifier.

    :param n_features: feature dimension ``D``.
    :param attributes: ``[C, A]`` attributes of every class (the classifier reads only
        their number ``C``), or the number ``C`` itself.
    :return: a :class:`FeatureClassifier`.
    """
    if not isinstance(hidden_dims, (list, tuple)) or any(
            isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden_dims):
        raise OptionError("hidden_dims", f"must be a list of positive layer widths (or [] "
                                         f"for a linear classifier), got {hidden_dims!r}")
    dropout = number("dropout", dropout, at_least=0, below=1)
    normalize_input = boolean("normalize_input", normalize_input)
    standardize = boolean("standardize", standardize)
    dropout_when_testing = boolean("dropout_when_testing", dropout_when_testing)
    n_classes = attributes if isinstance(attributes, int) else len(attributes)
    return _model_class()(n_features, n_classes, [int(h) for h in hidden_dims], dropout,
                          normalize_input, standardize, dropout_when_testing)


def __getattr__(name):
    """``FeatureClassifier`` and ``AlwaysDropout``, defined on first use (torch is imported
    only when a run needs it) and then module attributes, so they pickle by reference."""
    if name in ("FeatureClassifier", "AlwaysDropout"):
        _model_class()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _model_class():
    """The module class (see :func:`__getattr__`)."""
    if "FeatureClassifier" not in globals():
        _define()
    return globals()["FeatureClassifier"]


def _define():
    import torch
    import torch.nn.functional as F
    from torch import nn

    class AlwaysDropout(nn.Dropout):
        """Dropout that stays on in ``eval()`` (DVGR's test-time behaviour)."""

        def forward(self, x):
            return F.dropout(x, self.p, training=True)

    class FeatureClassifier(nn.Module):
        """MLP logits over all classes from features; ``-inf`` for classes not visible."""

        def __init__(self, n_features, n_classes, hidden_dims, dropout, normalize_input,
                     standardize, dropout_when_testing):
            super().__init__()
            layers, width = [], n_features
            drop = AlwaysDropout if dropout_when_testing else nn.Dropout
            for hidden in hidden_dims:
                layers += [nn.Linear(width, hidden), nn.ReLU()]
                if dropout:
                    layers.append(drop(dropout))
                width = hidden
            layers.append(nn.Linear(width, n_classes))
            self.net = nn.Sequential(*layers)
            self.normalize_input = normalize_input
            self.standardize = standardize
            self.register_buffer("input_mean", torch.zeros(n_features))
            self.register_buffer("input_std", torch.ones(n_features))
            self.register_buffer("visible", torch.ones(n_classes, dtype=torch.bool))

        @property
        def n_classes(self):
            """Number of classes ``C``."""
            return int(self.visible.shape[0])

        def set_visible_classes(self, mask):
            """Score only the classes where ``mask`` (bool ``[C]``) is true."""
            if mask.shape != self.visible.shape or mask.dtype != torch.bool:
                raise ValueError(f"visible-class mask must be bool of shape "
                                 f"{tuple(self.visible.shape)}, got {mask.dtype} "
                                 f"{tuple(mask.shape)}")
            if not bool(mask.any()):
                raise ValueError("at least one class must be visible")
            self.visible.copy_(mask)

        def fit_standardizer(self, features):
            """Fit the input standardization on ``features`` ``[N, D]`` (after the L2
            normalisation, if on): mean and population standard deviation per dimension,
            as sklearn's ``StandardScaler`` (a constant dimension is divided by 1). A no-op
            unless ``standardize`` is on."""
            if not self.standardize:
                return
            with torch.no_grad():
                x = self._normalized(features.to(self.input_mean))
                std = x.std(dim=0, unbiased=False)
                self.input_mean.copy_(x.mean(dim=0))
                self.input_std.copy_(torch.where(std > 0, std, torch.ones_like(std)))

        def _normalized(self, x):
            return F.normalize(x, dim=1) if self.normalize_input else x

        def forward(self, x):
            """Logits ``[B, C]``; ``-inf`` for classes not visible."""
            x = self._normalized(x)
            if self.standardize:
                x = (x - self.input_mean) / self.input_std
            return self.net(x).masked_fill(~self.visible, float("-inf"))

    for cls in (FeatureClassifier, AlwaysDropout):
        cls.__qualname__, cls.__module__ = cls.__name__, __name__
        globals()[cls.__name__] = cls
