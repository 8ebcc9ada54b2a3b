"""The czsl plugin API: every hook a plugin may implement.

This file *is* the contract. A plugin is a module (or object) with functions marked
``@czsl.hookimpl`` whose names match the specifications below; it is found through the
``czsl`` entry-point group, exactly like the built-ins in ``plugins/``::

    # pyproject.toml of a third-party package
    [project.entry-points.czsl]
    mygen = "czsl_mygen"

Two rules keep ``czsl plugins`` and ``czsl --help`` fast and honest:

* ``czsl plugins`` imports every plugin module to call :func:`czsl_components`, so a
  plugin module must not import torch or Avalanche at import time: import them inside
  the factory hooks (``czsl plugins`` names a plugin slower than 0.5 s to import).
* A name is routed to the plugin that declared it: czsl calls the ``czsl_make_<kind>``
  factory of the plugin whose :func:`czsl_components` lists that component, and no
  other plugin's (see :meth:`czsl.plugins.Plugins.make`). A factory therefore needs no
  ``if name != ...: return None`` check, and can omit the ``name`` argument, unless its
  plugin declares several components of one kind. Two plugins declaring the same
  component make it unusable (a built-in's name stays the built-in's), so no second
  answer is ever needed (the factory hooks are still ``firstresult`` for pluggy, which
  changes nothing here). A plugin that cannot be used is a warning for every command
  that does not need it, and the error of a run that asks for one of its components.
* A factory's unknown option is a ``TypeError`` raised by the factory's own call
  (``make_plugin(**options)``): czsl reports it as the plugin rejecting its options. Any
  other exception while building is reported as a failure of that plugin.

pluggy never passes a hook argument that has a default value, so implementations take
the arguments they need by name and omit the rest.

Training is Avalanche's business, not pluggy's: factories return torch modules and
Avalanche ``SupervisedPlugin`` instances, and everything that happens during training
goes through Avalanche's own callbacks.

Checkpoints need nothing from a plugin but picklable state. After every task czsl saves
the model's ``state_dict()`` and each Avalanche plugin's ``__getstate__()`` (by default,
its attributes); on ``czsl run --resume`` it calls the factories again with the same
arguments and restores that state into the new objects (``__setstate__``, or by updating
``__dict__``). Attributes that point to the learner, the model (or its parameters,
buffers, submodules), the optimizer, the task view or a generator ``make_generator``
built are saved as references and point to the rebuilt ones (a generator's own state is
saved beside and restored into the rebuilt generator, so a replay holds the same
generator object before and after a resume); an iterator made by ``iter(obj)`` that has
not started is saved as ``iter(obj)``. Torch modules of the plugin's own are saved by
value, so a plugin can grow a network as tasks come (modules appended to an
``nn.ModuleList`` it holds, as ``plugins/aczsl.py`` does): a resumed run gets them back.
A plugin holding anything else that pickle refuses (an open file, a lambda, a running generator, a torch-parametrized module)
defines ``__getstate__``/``__setstate__``; otherwise the run stops, with an error naming
the component (the generator, not the replay holding it) and the attribute: when it is
built, before any training (the state is pickled once then), or at the end of the first
task whose state cannot be saved. See :mod:`czsl.checkpoint`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import pluggy

if TYPE_CHECKING:  # pragma: no cover - type names only
    import torch
    from avalanche.core import SupervisedPlugin

    from czsl.generators import GeneratorLosses
    from czsl.taskview import TaskView

PROJECT = "czsl"

hookspec = pluggy.HookspecMarker(PROJECT)
#: Marker for hook implementations: ``@czsl.hookimpl``.
hookimpl = pluggy.HookimplMarker(PROJECT)

#: The kinds of component a plugin can provide, one factory hook each.
KINDS = ("model", "regularizer", "replay", "generator", "generator_loss")


@dataclass(frozen=True)
class Component:
    """One thing a plugin provides, as listed by ``czsl plugins``.

    :param kind: one of :data:`KINDS`.
    :param name: the name a scenario file uses, e.g. ``"ewc_online"``; unique per kind.
    :param summary: one line saying what it is and which paper it comes from.
    :param options: optional: the options it takes, name -> default, shown by ``czsl
        plugins``. Leave it out when the factory hands its ``options`` on as
        ``f(**options)`` to a function or class of the plugin's module: czsl reads the
        options from that callee's keyword parameters (see
        :meth:`czsl.plugins.Plugins.options`).
    """

    kind: str
    name: str
    summary: str
    options: Mapping[str, Any] | None = field(default=None, compare=False)


@hookspec
def czsl_components() -> list[Component]:
    """Say what this plugin provides.

    Called by ``czsl plugins`` and by every name look-up, before any training, so it
    must be cheap: no torch or Avalanche imports.

    :return: the components this plugin can build; their ``name`` is what the
        matching ``czsl_make_<kind>`` hook will be asked for.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def czsl_make_model(
    name: str, options: dict[str, Any], n_features: int, attributes: torch.Tensor
) -> torch.nn.Module | None:
    """Build the zero-shot model that scores image features against class attributes.

    Called once per run, before the first task, on the plugin that declared ``name``.

    The returned module must

    * map features ``[B, n_features]`` to logits ``[B, C]`` over *all* ``C`` classes
      with ``forward(x)`` (Avalanche plugins call ``model(x)`` directly);
    * have ``set_visible_classes(mask)``, ``mask`` a bool tensor ``[C]``: from then on
      it may use only the attributes of classes where ``mask`` is true and must give
      every other class the logit ``-inf``. The learner shows it the classes of tasks
      seen so far while training and all classes while testing;
    * keep everything training changes in parameters and buffers: checkpoints save
      its ``state_dict()`` only.

    :class:`czsl.models.AttributeModel` implements both around any attribute embedder.

    :param name: the ``[model] name`` of the scenario.
    :param options: the rest of the scenario's ``[model]`` table, to be passed on as
        keyword arguments (so a misspelled option is an error). Check each value with
        :mod:`czsl.options` (every factory hook alike): its :class:`czsl.OptionError` is
        reported with the plugin's name and where to fix the value.
    :param n_features: image feature dimension ``D``.
    :param attributes: ``[C, A]`` float tensor of every class's attributes.
    :return: the model (``None`` is a bug of the
        plugin: czsl asks a factory only for names its plugin declared).

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def czsl_make_regularizer(
    name: str, options: dict[str, Any], stream: TaskView
) -> list[SupervisedPlugin] | None:
    """Build the continual-learning regularizer (EWC, MAS, A-GEM, ...).

    Called once per run, before the first task, on the plugin that declared ``name``.

    :param name: the ``[regularizer] name`` of the scenario (``"none"``: plain
        sequential fine-tuning).
    :param options: the rest of the ``[regularizer]`` table, as keyword arguments.
    :param stream: a :class:`czsl.taskview.TaskView`: the number and sizes of the
        tasks, the dataset's name, and, once training runs, the current task, the
        classes visible so far and their attributes. Never test data, never the
        attributes of classes not visible yet. The same view is what the learner
        Avalanche hands to callbacks holds (``strategy.view``).
    :return: the Avalanche plugins that implement it (an empty list for none). Their
        state must pickle (see
        "Checkpoints" above).

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def czsl_make_replay(
    name: str, options: dict[str, Any], stream: TaskView, make_generator: Callable[[], Any]
) -> list[SupervisedPlugin] | None:
    """Build the replay scheme (a buffer of past features, generative replay, ...).

    Called once per run, before the first task, on the plugin that declared ``name``.

    A replay that needs a feature generator calls ``make_generator()`` in this hook, so a
    bad ``[generator]`` table fails before training; a replay that needs none does not
    take the argument, and the scenario's ``[generator]`` is then only checked. A replay
    that keeps several generators (one per task, as DVGR-CZSL) may call it again while
    training: every call builds a new, independent generator from the same table, and
    the run checkpoints each (a resume rebuilds as many before restoring their state).
    ``make_generator`` itself is the run's, not state: leave it out of the plugin's
    ``__getstate__`` and keep the rebuilt plugin's in ``__setstate__`` (see
    ``plugins/dvgr.py``). This keeps generators and replay schemes independent: every
    replay works with every generator plugin.

    A replay plugin that reads the attributes of classes not seen yet (transductive
    generative replay) says so by calling ``stream.declare_transductive()`` in this hook; the view then reveals every
    class's attributes, and czsl records it in ``results.json`` and prints it with the
    results. An inductive replay can read (``stream.attributes_of(classes)``) only the
    attributes of the classes of tasks up to the current one: asking for others raises.

    :param name: the ``[replay] name`` of the scenario (``"none"``: no replay).
    :param options: the rest of the ``[replay]`` table, as keyword arguments.
    :param stream: a :class:`czsl.taskview.TaskView` (see :func:`czsl_make_regularizer`).
    :param make_generator: builds the scenario's ``[generator]`` (see
        :func:`czsl_make_generator`) for this stream, on the run's device, and returns
        it wrapped in a :class:`czsl.generators.CheckedGenerator`: same ``fit`` /
        ``sample`` / ``to``, with its results checked and its failures named.
    :return: the Avalanche plugins that implement it (an empty list for none). Their
        state must pickle (see
        "Checkpoints" above).

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def czsl_make_generator(
    name: str, options: dict[str, Any], n_features: int, n_attributes: int,
    losses: GeneratorLosses,
) -> Any | None:
    """Build a conditional feature generator (f-CLSWGAN, VAE, ...).

    Called when the replay plugin asks for one (``make_generator`` in
    :func:`czsl_make_replay`: once per run, or once per generator for a replay that keeps
    several), on the plugin that declared ``name``.

    A generator is any object with these three methods (a small protocol, not a base
    class; it need not be a ``torch.nn.Module``):

    ``fit(features, attributes) -> None``
        Train on ``features`` ``[N, D]`` (float, on the generator's device), sample ``i``
        belonging to the class whose attribute vector is ``attributes[i]`` ``[N, A]``.
        Continues training from the generator's current state (called once per task, on
        that task's real features plus replayed ones); how many epochs, with which
        optimizer, is the generator's own business (its options). Classes are told
        apart by their attribute rows only: no label ids.
    ``sample(attributes, n) -> Tensor``
        ``attributes`` ``[K, A]``: return ``[K * n, D]`` finite float features of the
        attributes' dtype on the generator's device, in blocks of ``n``: rows ``k*n ..
        k*n + n - 1`` are generated for ``attributes[k]``, in the order given (as for
        the rows of ``attributes.repeat_interleave(n, 0)``; not interleaved). The
        replay labels them ``classes.repeat_interleave(n)``, so another order trains the
        classifier on wrong labels without any error. Called under ``torch.no_grad()``;
        it may use (and advance) torch's random generator.
    ``to(device) -> generator``
        Move to ``device`` (a ``torch.device``) and return itself, as ``nn.Module.to``.

    Neither ``fit`` nor ``sample`` changes its input tensors. Determinism: a run with the
    same seed gives the same results, and a resumed run those of an uninterrupted one,
    so ``fit`` and ``sample`` draw randomness only from the global generators czsl seeds
    and checkpoints (torch's, numpy's, Python's ``random``), and everything a later
    ``fit`` or ``sample`` depends on is in the generator's pickled state (an optimizer
    kept across fits included).

    Optional: ``notes``, an attribute or property: a list of strings a reader of the
    results needs (f-CLSWGAN's says what share of its schedule a step cap let run).
    czsl prints them when the run ends and keeps them in ``results.json``'s ``notes``.

    Its state must pickle (it is saved with the replay plugin after every task, see
    "Checkpoints" above): keep torch modules and tensors, not open files or lambdas;
    a class defined at module level pickles by reference. czsl checks the shape, type,
    dtype, device and finiteness of what ``sample`` returns and names the plugin and its
    package when a method raises or breaks this contract. The rest (the row order,
    determinism, resuming) a plugin's own tests check with
    :func:`czsl.testing.check_generator`, which runs every rule on a tiny problem::

        from czsl.testing import check_generator
        check_generator("mygen", options={"epochs": 5})  # installed: built by name
        check_generator(functools.partial(MyGen, epochs=5))  # or a factory / an instance

    Add-on losses. A scenario may ask for extra generator losses by name
    (``losses = [{name = "anti_collapse", weight = 0.2}]`` in ``[generator]``; each is
    a ``generator_loss`` component, see :func:`czsl_make_generator_loss`). czsl builds
    them and passes them as ``losses``, a :class:`czsl.generators.GeneratorLosses`
    (empty when none are asked for). A generator that supports them calls
    ``losses.start(features, attributes)`` at the start of ``fit`` and adds
    ``losses(batch)`` to its generator loss at every generator step, ``batch`` a
    :class:`czsl.generators.GeneratorBatch`. A generator whose hook does not take the
    ``losses`` argument cannot be given any: the run stops before training, naming it.

    :param name: the ``[generator] name`` of the scenario.
    :param options: the rest of the ``[generator]`` table (without ``losses``), as
        keyword arguments.
    :param n_features: feature dimension ``D`` to generate.
    :param n_attributes: attribute dimension ``A`` to condition on.
    :param losses: the add-on losses the scenario asks for.
    :return: the generator (``None`` is a bug of the
        plugin: czsl asks a factory only for names its plugin declared).

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def czsl_make_generator_loss(
    name: str, options: dict[str, Any], n_features: int, n_attributes: int
) -> Any | None:
    """Build an add-on generator loss (gradient matching, anti-mode-collapse, ...).

    Called once per run for each entry of the ``[generator]`` table's ``losses`` list,
    before the generator is built, on the plugin that declared ``name``.

    A generator loss is any object with

    ``__call__(batch) -> Tensor``
        ``batch`` a :class:`czsl.generators.GeneratorBatch` (real features, their
        attributes, generated features, the noise, and a differentiable
        ``generate(attributes, noise)``): return a scalar tensor, already weighted,
        that the generator adds to the loss it minimises. Gradients must flow through
        ``batch.fake`` or ``batch.generate``.
    ``start(features, attributes) -> None`` (optional)
        Called at the start of every ``fit`` with the whole fit set (e.g. to compute
        class means or pre-train a classifier).

    Its state must pickle, like the generator's (it is saved with it).

    :param name: the loss's ``name`` in the ``losses`` list.
    :param options: the rest of that entry, as keyword arguments.
    :param n_features: feature dimension ``D``.
    :param n_attributes: attribute dimension ``A``.
    :return: the loss (``None`` is a bug of the
        plugin: czsl asks a factory only for names its plugin declared).

    .. versionadded:: 0.1
    """


@hookspec
def czsl_observers(scenario: Any) -> list[Any]:
    """Observers to add to every run: each plugin's, not only one (not ``firstresult``).

    Called once per run session (a resumed run calls it again), after the components are
    built and before the run folder is created. Each returned object is a
    :class:`czsl.observers.Observer`: its ``before_run``, ``after_task``, ``after_run``
    and ``close`` are called like those passed to ``run_scenario(observers=...)``, after
    czsl's own (so it sees a task only once it is saved, and the results once
    ``results.json`` is written) and before the caller's; its time is reported under
    its ``name`` in the run's timings. An exception it raises stops the run; the tasks
    saved stay resumable.

    Import what the observers need inside the hook, not at module level (see above).

    :param scenario: the run's :class:`czsl.config.Scenario`.
    :return: a list of observers (empty to add none).

    .. versionadded:: 0.1
    """
