"""The generator contract, enforced, and the add-on generator losses.

A replay plugin never holds a generator plugin's object directly: ``make_generator()``
(see :func:`czsl.hookspecs.czsl_make_replay`) hands it a :class:`CheckedGenerator`. The
wrapper forwards ``fit`` / ``sample`` / ``to`` and turns every way the generator can
break the contract of :func:`czsl.hookspecs.czsl_make_generator` (raising, returning
the wrong type, shape, dtype or device, or NaN / infinite features) into a
:class:`czsl.errors.PluginError` that names the generator, its plugin and its package.
The names are kept as strings, so they survive a checkpoint and a resume. What cannot be
checked cheaply on every call (the row order of ``sample``, determinism under a seed,
resuming from pickled state) is checked by :func:`czsl.testing.check_generator`.

:class:`GeneratorLosses` holds the add-on losses a scenario asks for (``losses`` in its
``[generator]`` table); a generator shows them a :class:`GeneratorBatch` at each of
its steps. Neither knows the other's class: any generator that fills a batch works
with any loss that reads one.

Logging a generator's own losses: the ``losses`` object a generator is handed also has
``log(name, value)``. A generator calls it with a named scalar at each of its steps
(``losses.log("critic", loss_d)``); each add-on loss is logged under its component's
name. TensorBoard shows them as ``generator/<name>`` (x: how many times that name has
been logged in the run, across fits), read after each task in one host transfer; a
generator that logs nothing shows nothing. A third-party generator that takes
``losses`` gets the same ``log``.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from czsl.errors import PluginError, brief

#: The methods every generator has (see :func:`czsl.hookspecs.czsl_make_generator`).
METHODS = ("fit", "sample", "to")


class CheckedGenerator:
    """A generator plugin's object, with its contract checked on every call.

    :param generator: what ``czsl_make_generator`` returned.
    :param where: how to name it, e.g. ``"generator 'cvae' (plugin 'cvae' from czsl 0.1.0)"``.
    :param n_features: the feature dimension ``D`` it must generate.
    :raises PluginError: if it lacks one of :data:`METHODS`.
    """

    def __init__(self, generator: Any, where: str, n_features: int,
                 losses: GeneratorLosses | None = None) -> None:
        missing = [m for m in METHODS if not callable(getattr(generator, m, None))]
        if missing:
            raise PluginError(f"{where} returned a {type(generator).__name__} without "
                              f"{', '.join(missing)}; czsl_make_generator must return an "
                              "object with fit(features, attributes), sample(attributes, n) "
                              "and to(device) (see czsl/hookspecs.py)")
        self.generator = generator
        self.where = where
        self.n_features = n_features
        #: what the generator logged (:meth:`GeneratorLosses.log`); empty if not handed one
        self.losses = losses if losses is not None else GeneratorLosses()

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
        """``[K * n, D]`` finite features, ``n`` for each row of ``attributes`` ``[K, A]``
        (rows ``k*n .. k*n + n - 1`` for ``attributes[k]``), of the attributes' dtype and
        on their device.

        :raises PluginError: if the generator raises or returns anything else (NaN or
            infinity included: the generator's training diverged, not the classifier's).
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
        if out.dtype != attributes.dtype or out.device != attributes.device:
            # a float64 or CPU sample would fail later, far from its cause
            raise PluginError(f"{self.where}: sample() returned a {out.dtype} tensor on "
                              f"{out.device} for {attributes.dtype} attributes on "
                              f"{attributes.device}; it must return features of the "
                              "attributes' dtype on their device (build them from the "
                              "attributes, e.g. with attributes.new_empty or "
                              "torch.randn(..., dtype=attributes.dtype, "
                              "device=attributes.device), and move its parameters in to())")
        finite = torch.isfinite(out)
        if not bool(finite.all()):  # one host read per call: a replay calls it once a task
            # the classifier would train on them and be blamed for diverging
            raise PluginError(f"{self.where}: sample() returned {int((~finite).sum())} NaN or "
                              f"infinite values among its {out.numel()}: the generator's own "
                              "training diverged. Lower its learning rate or epochs (its "
                              "options in the scenario's [generator] table; 'czsl plugins' "
                              "lists them) or its add-on losses' weights in a new run: a "
                              "resumed run keeps its scenario")
        return out.detach()

    def notes(self) -> list[str]:
        """The generator's optional ``notes``: facts a reader of its results needs (e.g.
        what share of its schedule a cap let run); empty if it has none.

        :raises PluginError: if reading them raises or gives anything but strings.
        """
        try:
            notes = getattr(self.generator, "notes", None)
        except Exception as exc:
            raise PluginError(f"{self.where} failed reading its notes: "
                              f"{type(exc).__name__}: {exc}") from exc
        if notes is None:
            return []
        if isinstance(notes, str) or not isinstance(notes, (list, tuple)) \
                or not all(isinstance(n, str) for n in notes):
            raise PluginError(f"{self.where}: its notes are {brief(notes)}; they must be a list "
                              "of strings (or leave notes out)")
        return list(notes)

    def to(self, device: torch.device) -> CheckedGenerator:
        """Move the generator to ``device``; returns this wrapper."""
        self._call("to", device)
        return self


class GeneratorBatch:
    """What a generator shows its add-on losses at one generator step.

    :param real: ``[B, D]`` real features of the step's mini-batch.
    :param attributes: ``[B, A]`` the attributes of their classes.
    :param labels: ``[B]`` long, each sample's row in ``class_attributes``.
    :param class_attributes: ``[C, A]`` the distinct classes of the current ``fit`` call.
    :param fake: ``[B, D]`` features generated for ``attributes`` from ``noise``, in the
        generator's autograd graph; or a function of no arguments that generates them,
        which is called the first time a loss reads ``batch.fake`` (and only then: a
        step whose losses never read it, such as the random walk's, does not pay for
        it).
    :param noise: ``[B, Z]`` the noise ``fake`` was generated from.
    :param generate: ``generate(attributes [K, A], noise [K, Z]) -> [K, D]``,
        differentiable with respect to the generator's parameters.
    :param sample_noise: ``sample_noise(k) -> [k, Z]``: fresh noise as the generator
        draws it.
    """

    def __init__(self, real: torch.Tensor, attributes: torch.Tensor, labels: torch.Tensor,
                 class_attributes: torch.Tensor,
                 fake: torch.Tensor | Callable[[], torch.Tensor], noise: torch.Tensor,
                 generate: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 sample_noise: Callable[[int], torch.Tensor]) -> None:
        self.real, self.attributes, self.labels = real, attributes, labels
        self.class_attributes, self.noise = class_attributes, noise
        self.generate, self.sample_noise = generate, sample_noise
        self._fake = fake

    @property
    def fake(self) -> torch.Tensor:
        """``[B, D]`` features generated for ``attributes`` from ``noise`` (made at the
        first read when the generator passed a function)."""
        if callable(self._fake):
            self._fake = self._fake()
        return self._fake

    @fake.setter
    def fake(self, value: torch.Tensor | Callable[[], torch.Tensor]) -> None:
        self._fake = value


class GeneratorLosses:
    """The add-on losses of a generator (see :func:`czsl.hookspecs.czsl_make_generator`).

    A generator calls :meth:`start` once at the start of ``fit`` and adds
    ``losses(batch)`` to its loss at each step. Failures and bad return values become a
    :class:`czsl.errors.PluginError` naming the loss and its plugin. The value of each
    loss at the last step is kept in :attr:`last` (name to float), for logging.

    :param losses: ``(where, loss)`` pairs: how to name the loss in errors, and the
        object ``czsl_make_generator_loss`` returned. A loss is logged under the first
        quoted name in ``where`` (``generator loss 'anti_collapse' (plugin ...)``).
    """

    def __init__(self, losses: list[tuple[str, Any]] = ()) -> None:
        for where, loss in losses:
            if not callable(loss):
                raise PluginError(f"{where} returned a {type(loss).__name__}, which is not "
                                  "callable; a generator loss must be an object with "
                                  "__call__(batch) -> scalar tensor (see czsl/hookspecs.py)")
        self.losses = list(losses)
        self.names = [where.split("'")[1] if where.count("'") >= 2 else where
                      for where, _ in self.losses]
        self.last: dict[str, float] = {}
        self._pending: list[tuple[str, torch.Tensor]] = []
        self._count: dict[str, int] = {}

    def log(self, name: str, value: torch.Tensor | float) -> None:
        """Record a named scalar of the generator's current step (``critic``, ``kl``).

        The value stays on its device until :meth:`drain` (no host synchronisation per
        step). Names are free text; a ``/`` groups them in TensorBoard.

        :param name: what the scalar is.
        :param value: a one-element tensor or a number.
        """
        if isinstance(value, torch.Tensor):
            value = value.detach().reshape(())
        else:
            value = torch.tensor(float(value))
        self._pending.append((str(name), value))

    def drain(self) -> list[tuple[str, int, float]]:
        """What was logged since the last call, as ``(name, index, value)``, ``index``
        counting that name's values in the run; the record is emptied."""
        if not self._pending:
            return []
        device = self._pending[0][1].device
        values = torch.stack([v.to(device) for _, v in self._pending]).tolist()  # one read
        out = []
        for (name, _), value in zip(self._pending, values):
            index = self._count.get(name, 0)
            self._count[name] = index + 1
            out.append((name, index, value))
        self._pending = []
        return out

    def __len__(self) -> int:
        return len(self.losses)

    def start(self, features: torch.Tensor, attributes: torch.Tensor) -> None:
        """Tell every loss that has a ``start`` method about the new fit set."""
        for where, loss in self.losses:
            start = getattr(loss, "start", None)
            if start is None:
                continue
            try:
                start(features, attributes)
            except PluginError:
                raise
            except Exception as exc:
                raise PluginError(f"{where} failed in start: {type(exc).__name__}: "
                                  f"{exc}") from exc

    def __call__(self, batch: GeneratorBatch) -> torch.Tensor:
        """The sum of the losses on ``batch`` (a zero tensor when there are none)."""
        total = batch.real.new_zeros(())
        for (where, loss), name in zip(self.losses, self.names):
            try:
                value = loss(batch)
            except PluginError:
                raise
            except Exception as exc:
                raise PluginError(f"{where} failed: {type(exc).__name__}: {exc}") from exc
            if not isinstance(value, torch.Tensor) or value.numel() != 1 \
                    or not value.is_floating_point():
                raise PluginError(f"{where} returned {brief(value)}; a generator loss must "
                                  "return a scalar float tensor")
            self.last[where] = float(value.detach())
            if not torch.isfinite(value).all():
                raise PluginError(f"{where} returned {self.last[where]} at a generator "
                                  "step; lower its weight or check its inputs")
            self.log(name, value)
            total = total + value.reshape(())
        return total
