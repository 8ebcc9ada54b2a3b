"""A minimal third-party czsl plugin: a Gaussian feature generator.

Each class's features are modelled as a Gaussian whose mean is a linear function of
the class attributes, ``mean(a) = [a, 1] @ W``, with one shared diagonal standard
deviation. ``fit`` solves for ``W`` by ridge regression on the features it is given;
``sample`` draws from the Gaussians. It is the simplest thing that keeps czsl's
generator contract (``czsl.hookspecs.czsl_make_generator``), and a template for your own.

torch is imported inside the methods, never at the top: ``czsl plugins`` imports this
module to list it, and must stay fast.
"""

from czsl import Component, hookimpl
from czsl.options import number

NAME = "example_generator"


@hookimpl
def czsl_components():
    """Tell ``czsl plugins`` (and the name look-up) what this plugin provides."""
    return [Component("generator", NAME,
                      "Gaussian per class, mean linear in the attributes (ridge regression)")]


@hookimpl
def czsl_make_generator(options, n_features, n_attributes):
    """Build the generator: czsl asks this hook only for the names it declared."""
    # the rest of the [generator] table are keyword arguments: a typo is an error
    return GaussianGenerator(n_features, n_attributes, **options)


class GaussianGenerator:
    """``x ~ N([a, 1] @ W, diag(std^2))``.

    :param n_features: feature dimension ``D``.
    :param n_attributes: attribute dimension ``A``.
    :param ridge: L2 penalty of the ridge regression.
    """

    def __init__(self, n_features, n_attributes, *, ridge=1.0):
        import torch

        # a bad value (a string, NaN, a negative number) is named with the fix
        self.ridge = number("ridge", ridge, at_least=0)
        self.weight = torch.zeros(n_attributes + 1, n_features)  # [A + 1, D]
        self.std = torch.ones(n_features)  # [D]

    def to(self, device):
        """Move the parameters to ``device``; returns itself."""
        self.weight, self.std = self.weight.to(device), self.std.to(device)
        return self

    def fit(self, features, attributes):
        """Ridge regression of ``features`` ``[N, D]`` on ``attributes`` ``[N, A]``.

        Refits from scratch on the data given; under generative replay those hold the
        replayed features of earlier classes, so nothing is forgotten.
        """
        import torch

        a = torch.cat([attributes, torch.ones_like(attributes[:, :1])], 1)  # [N, A + 1]
        eye = torch.eye(a.shape[1], device=a.device, dtype=a.dtype)
        self.weight = torch.linalg.solve(a.T @ a + self.ridge * eye, a.T @ features)
        self.std = (features - a @ self.weight).std(0).clamp_min(1e-6)

    def sample(self, attributes, n):
        """``n`` features per row of ``attributes`` ``[K, A]``: ``[K * n, D]``."""
        import torch

        a = torch.cat([attributes, torch.ones_like(attributes[:, :1])], 1)
        mean = (a @ self.weight).repeat_interleave(n, 0)  # [K * n, D]
        return mean + torch.randn_like(mean) * self.std
