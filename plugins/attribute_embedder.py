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
the static ZSL notebook uses two 1024-unit layers and scale 5.

Options (``[model]`` table):

* ``hidden_dims`` (``[1024]``): widths of the hidden layers; ``[]`` is a linear model.
* ``class_norm`` (``true``): class standardization after each hidden layer.
* ``proper_init`` (``true``): uniform init of the last layer with variance
  ``1 / (fan_in * fan_out)`` (eq. 10); otherwise torch's default.
* ``scale`` (``5.0``): cosine scale on each side; temperature ``scale**2``.
* ``normalize_attributes`` (``true``): rescale each attribute vector to norm
  ``sqrt(A)``, as the reference code does.
"""

from __future__ import annotations

import math

from czsl import Component, hookimpl
from czsl.options import OptionError, boolean, number

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


def build_model(n_features, attributes, *, hidden_dims=(1024,), class_norm=True,
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
    for hidden in hidden_dims:
        layers += [nn.Linear(width, int(hidden)), nn.ReLU()]
        if class_norm:
            # statistics over the class (prototype) dimension: ClassNorm, eq. 9
            layers.append(nn.BatchNorm1d(int(hidden), affine=False))
        width = int(hidden)
    last = nn.Linear(width, n_features)
    if proper_init:
        init_proper_(last.weight)
    layers += [last, nn.ReLU()]
    return AttributeModel(nn.Sequential(*layers), attributes, scale=scale)


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
