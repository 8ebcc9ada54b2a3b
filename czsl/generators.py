"""The generator contract, enforced: a thin wrapper around a generator plugin's object.

A replay plugin never holds a generator plugin's object directly: ``make_generator()``
(see :func:`czsl.hookspecs.czsl_make_replay`) hands it a :class:`CheckedGenerator`. The
wrapper forwards ``fit`` / ``sample`` / ``to`` and turns every way the generator can
break the contract of :func:`czsl.hookspecs.czsl_make_generator` (raising, returning
the wrong type or shape) into a :class:`czsl.errors.PluginError` that names the
generator, its plugin and its package. The names are kept as strings, so they survive
a checkpoint and a resume.
"""

from __future__ import annotations

from typing import Any

import torch

from czsl.errors import PluginError

#: The methods every generator has (see :func:`czsl.hookspecs.czsl_make_generator`).
METHODS = ("fit", "sample", "to")


class CheckedGenerator:
    """A generator plugin's object, with its contract checked on every call.

    :param generator: what ``czsl_make_generator`` returned.
    :param where: how to name it, e.g. ``"generator 'cvae' (plugin 'cvae' from czsl 0.1.0)"``.
    :param n_features: the feature dimension ``D`` it must generate.
    :raises PluginError: if it lacks one of :data:`METHODS`.
    """

    def __init__(self, generator: Any, where: str, n_features: int) -> None:
        missing = [m for m in METHODS if not callable(getattr(generator, m, None))]
        if missing:
            raise PluginError(f"{where} returned a {type(generator).__name__} without "
                              f"{', '.join(missing)}; czsl_make_generator must return an "
                              "object with fit(features, attributes), sample(attributes, n) "
                              "and to(device) (see czsl/hookspecs.py)")
        self.generator = generator
        self.where = where
        self.n_features = n_features

    def _call(self, method: str, *args: Any) -> Any:
        try:
            return getattr(self.generator, method)(*args)
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(f"{self.where} failed in {type(self.generator).__name__}."
                              f"{method}: {type(exc).__name__}: {exc}") from exc

    def fit(self, features: torch.Tensor, attributes: torch.Tensor) -> None:
        """Train on ``features`` ``[N, D]`` with their classes' ``attributes`` ``[N, A]``."""
        self._call("fit", features, attributes)

    @torch.no_grad()
    def sample(self, attributes: torch.Tensor, n: int) -> torch.Tensor:
        """``[K * n, D]`` features, ``n`` for each row of ``attributes`` ``[K, A]``.

        :raises PluginError: if the generator raises or returns anything else.
        """
        out = self._call("sample", attributes, n)
        want = (attributes.shape[0] * n, self.n_features)
        if not isinstance(out, torch.Tensor) or not out.is_floating_point() \
                or tuple(out.shape) != want:
            got = (f"a {out.dtype} tensor of shape {tuple(out.shape)}"
                   if isinstance(out, torch.Tensor) else f"a {type(out).__name__}")
            raise PluginError(f"{self.where}: sample(attributes [{attributes.shape[0]}, "
                              f"{attributes.shape[1]}], n={n}) returned {got}; it must "
                              f"return a float tensor of shape {list(want)} (K * n rows)")
        return out.detach()

    def to(self, device: torch.device) -> CheckedGenerator:
        """Move the generator to ``device``; returns this wrapper."""
        self._call("to", device)
        return self
