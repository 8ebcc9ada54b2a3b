"""The attribute-embedder ZSL model of ClassNorm, with class standardization on or off.

An MLP maps class attributes to prototypes in feature space; logits are scaled cosine
similarities between image features and prototypes. *Class standardization*
(ClassNorm) standardizes each hidden unit over the classes (a BatchNorm without affine
parameters whose batch is the set of class prototypes), which keeps the prototypes'
variance stable as classes are added (Skorokhodov & Elhoseiny, "Class Normalization
for (Continual) Zero-Shot Learning", ICLR 2021, eq. 9); the last layer gets their
"proper" initialisation (eq. 10). Checked against ``universome/class-norm``
(``src/models/attrs_head.py``, ``configs/base.yml``): the CZSL head there is
``Linear(A, 256) -> ReLU -> ClassNorm -> Linear(256, 512) -> ReLU`` with scale 10;
the static ZSL notebook (``class-norm-for-czsl.ipynb``) uses two 1024-unit layers,
scale 5 and ``Linear(A, 1024) -> ReLU -> Linear(1024, 1024) -> CS -> ReLU -> CS ->
Linear(1024, 2048) -> ReLU``, where its ``ClassStandardization`` (CS) divides the centred
units by their variance (plus 1e-5), not by the standard deviation. The options
``class_norm_layout = "around_relu"`` and ``class_norm_divisor = "variance"`` reproduce
that. On identical semi-synthetic CUB (``benchmarks/parity.md``) the layout matters
most (about 10 points of H), the learning-rate step at epoch 25 about 3 points of s, and
the divisor not measurably.

Options (``[model]`` table):

* ``hidden_dims`` (``[1024]``): widths of the hidden layers; ``[]`` is a linear model.
* ``class_norm`` (``true``): class standardization in the hidden layers.
* ``class_norm_layout`` (``"after_relu"``): where: ``"after_relu"``, once per hidden
  layer, after its ReLU; ``"around_relu"``, as the authors' ZSL notebook: none in the
  first hidden layer, before and after the ReLU of every later one.
* ``class_norm_divisor`` (``"std"``): divide the centred units by their standard
  deviation (a ``BatchNorm1d`` without affine parameters) or, as the notebook, by their
  ``"variance"``.
* ``proper_init`` (``true``): uniform init of the last layer with variance
  ``1 / (fan_in * fan_out)`` (eq. 10); otherwise torch's default.
* ``scale`` (``5.0``): cosine scale on each side; temperature ``scale**2``.
* ``normalize_attributes`` (``true``): rescale each attribute vector to norm
  ``sqrt(A)``, as the reference code does.
"""

from __future__ import annotations

import math

from czsl import Component, hookimpl
from czsl.options import OptionError, boolean, choice, number

NAME = "attribute_embedder"


@hookimpl
def czsl_components():
    """One model: ``attribute_embedder``."""
    return [Component("model", NAME,
                      "MLP attribute embedder, scaled cosine, ClassNorm on/off "
                      "(Skorokhodov & Elhoseiny, ICLR 2021)")]


@hookimpl
def czsl_make_model(options, n_features, attributes):
    """Build :func:`build_model` from the scenario's ``[model]`` options."""
    return build_model(n_features, attributes, **options)


LAYOUTS = ("after_relu", "around_relu")
DIVISORS = ("std", "variance")


def build_model(n_features, attributes, *, hidden_dims=(1024,), class_norm=True,
                class_norm_layout="after_relu", class_norm_divisor="std",
                proper_init=True, scale=5.0, normalize_attributes=True):
    """The attribute-embedder model.

    :param n_features: feature dimension ``D``; prototypes live in that space.
    :param attributes: ``[C, A]`` class attributes.
    :return: a :class:`czsl.models.AttributeModel`.
    """
    if not isinstance(hidden_dims, (list, tuple)) or any(
            isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden_dims):
        raise OptionError("hidden_dims", f"must be a list of positive layer widths (or [] "
                                         f"for a linear model), got {hidden_dims!r}")
    class_norm = boolean("class_norm", class_norm)
    layout = choice("class_norm_layout", class_norm_layout, LAYOUTS)
    divisor = choice("class_norm_divisor", class_norm_divisor, DIVISORS)
    proper_init = boolean("proper_init", proper_init)
    normalize_attributes = boolean("normalize_attributes", normalize_attributes)
    scale = number("scale", scale, above=0)

    import torch  # heavy imports stay here: `czsl plugins` imports this module
    from torch import nn

    from czsl.models import AttributeModel

    attributes = torch.as_tensor(attributes, dtype=torch.float32)
    if normalize_attributes:
        norms = attributes.norm(dim=1, keepdim=True).clamp_min(1e-12)
        attributes = attributes / norms * math.sqrt(attributes.shape[1])
    layers: list = []
    width = attributes.shape[1]
    for depth, hidden in enumerate(int(h) for h in hidden_dims):
        layers.append(nn.Linear(width, hidden))
        # statistics over the class (prototype) dimension: ClassNorm, eq. 9
        if not class_norm or (layout == "around_relu" and depth == 0):
            layers.append(nn.ReLU())
        elif layout == "around_relu":
            layers += [class_standardization(hidden, divisor), nn.ReLU(),
                       class_standardization(hidden, divisor)]
        else:
            layers += [nn.ReLU(), class_standardization(hidden, divisor)]
        width = hidden
    last = nn.Linear(width, n_features)
    if proper_init:
        init_proper_(last.weight)
    layers += [last, nn.ReLU()]
    return AttributeModel(nn.Sequential(*layers), attributes, scale=scale)


def class_standardization(width, divisor="std"):
    """Standardize each of ``width`` units over the classes (the batch dimension).

    :param divisor: ``"std"``: a ``BatchNorm1d`` without affine parameters;
        ``"variance"``: :class:`czsl.models.VarianceNorm`, as the authors' ZSL notebook.
    """
    from torch import nn

    from czsl.models import VarianceNorm

    if divisor == "std":
        return nn.BatchNorm1d(width, affine=False)
    return VarianceNorm(width)


def init_proper_(weight):
    """Eq. 10 of Skorokhodov & Elhoseiny (2021): Var[w] = 1 / (fan_in * fan_out), uniform.

    :param weight: ``[fan_out, fan_in]`` weight, changed in place.
    """
    import torch

    fan_out, fan_in = weight.shape
    bound = math.sqrt(3.0 / (fan_in * fan_out))  # Var[U(-b, b)] = b^2 / 3
    with torch.no_grad():
        weight.uniform_(-bound, bound)
    return weight
