"""One place that builds a run: scenario + data folder -> everything a run needs.

:func:`build_run` reads the data, splits it into tasks, builds the model, the
regularizer, the replay (and the generator and its losses when the replay asks for
one), the optimizer and the learner, and checks every plugin's hook contract as it goes.
``czsl run``, ``czsl run --resume``, sweeps, tests and benchmarks all build runs here;
nothing else constructs a :class:`czsl.learner.ZSLLearner` (tests of the learner itself
use :func:`make_learner`).

Nothing is written: every bad input a run can detect before training is raised here,
before a run folder exists. :class:`Preflight` raises the same for many scenarios at
once (a sweep's cells), building each distinct component once, without training.

What plugins receive is a :class:`czsl.taskview.TaskView`, never the stream itself: the
test set stays in :attr:`BuiltRun.stream`, which only the run (testing outside the
learner) reads.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from avalanche.core import SupervisedPlugin

from czsl.blame import unpicklable_error
from czsl.checkpoint import (Unpicklable, dump_generator_states, dump_learner_state, fingerprint,
                             restore_object_state, seed_everything)
from czsl.config import PluginConfig, Scenario, TrainConfig
from czsl.data import ZSLDataset, load_dataset
from czsl.errors import ConfigError, CZSLError, PluginError, brief
from czsl.generators import CheckedGenerator, GeneratorLosses
from czsl.learner import ZSLLearner, make_lr_schedule
from czsl.plugins import Listed, Plugins
from czsl.streams import CZSLStream, build_stream, split_tasks
from czsl.taskview import TaskView


@dataclass
class BuiltRun:
    """Everything a run needs, built and checked; no folder exists yet.

    :param scenario: the scenario.
    :param data_dir: the data folder it was read from (``None`` for synthetic data).
    :param device: the torch device.
    :param dataset: the data.
    :param stream: the task stream, with the test set (the run's, never a plugin's).
    :param view: what the learner and the plugins see of the stream.
    :param model: the model, on ``device``.
    :param extra: the regularizer's and the replay's Avalanche plugins, in order.
    :param learner: the learner, holding the model, the view and ``extra``.
    :param owners: ``id()`` of each object a plugin built (the model, each Avalanche
        plugin) -> ``(kind, name, listing)`` of its component, to name it when it fails.
    :param generator: the ``[generator]`` name if the replay built one, else ``None``.
    :param timings: seconds spent reading the data (``"data"``) and building the rest
        (``"setup"``).
    :param generators: the generators the replay built (``make_generator`` in
        :func:`czsl.hookspecs.czsl_make_replay`, or later while training), in the order
        built, the very objects its plugins hold:
        checkpointed as references (:func:`checkpoint_refs`), their state restored into
        them on resume (:meth:`restore_generators`); TensorBoard shows their logged losses.
    :param observers: what the plugins' ``czsl_observers`` hooks add to the run's
        observers (:mod:`czsl.observers`), in plugin order.
    :param make_generator: what the replay was handed to build a generator; a resume
        calls it to rebuild those built while training (:meth:`rebuild_generators`).
    """

    scenario: Scenario
    data_dir: Path | None
    device: torch.device
    dataset: ZSLDataset
    stream: CZSLStream
    view: TaskView
    model: torch.nn.Module
    extra: list[SupervisedPlugin]
    learner: ZSLLearner
    owners: dict[int, tuple[str, str, Listed]]
    generator: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    generators: list[CheckedGenerator] = field(default_factory=list)
    make_generator: Callable[[], CheckedGenerator] | None = None
    observers: list[Any] = field(default_factory=list)

    def fingerprint(self) -> str:
        """A hash of the data and the task split, to check a resumed run reads the same."""
        return fingerprint(self.dataset.features, self.dataset.labels,
                           self.dataset.attributes, self.stream.tasks, self.stream.test_y)

    def plugin_classes(self) -> list[str]:
        """Qualified class names of :attr:`extra`, in order."""
        return [f"{type(p).__module__}.{type(p).__qualname__}" for p in self.extra]

    def start_task(self, step: int) -> None:
        """Show the view (and so the learner and plugins) the classes of task ``step``."""
        self.view.start_task(step, self.stream.tasks, self.stream.attributes)

    def refs(self) -> dict[str, Any]:
        """The live objects a plugin's state may point to (:func:`checkpoint_refs`)."""
        return checkpoint_refs(self.learner, self.model, self.view, self.generators)

    def rebuild_generators(self, count: int) -> None:
        """Build generators until the run holds ``count``, as the replay built them
        while training before the checkpoint (one per task, say): the checkpoint's
        references to them then resolve, and :meth:`restore_generators` gives them their
        state. Call it before the random generators are restored: building draws the
        new generators' initial weights."""
        while len(self.generators) < count and self.make_generator is not None:
            self.make_generator()

    def restore_generators(self, states: list[Any]) -> None:
        """Give each of :attr:`generators` its checkpointed state
        (:func:`czsl.checkpoint.load_generator_states`), in place: the replay's plugins
        hold these objects. The plugin's object it wraps is the checkpoint's, and is
        blamed on the generator plugin as the one it replaces was.

        :raises CZSLError: if the checkpoint holds another number of generators.
        """
        if len(states) != len(self.generators):
            raise CZSLError(f"the checkpoint holds {len(states)} generator(s), the rebuilt "
                            f"run built {len(self.generators)}; resume it with the plugin "
                            "versions that started it, or start the run again")
        for generator, state in zip(self.generators, states):
            owner = self.owners.pop(id(generator.generator))
            restore_object_state(generator, state)
            self.owners[id(generator.generator)] = owner


def resolve_device(name: str) -> torch.device:
    """``"cpu"`` or ``"cuda"``, checking that CUDA is really there."""
    if name == "cuda" and not torch.cuda.is_available():
        raise CZSLError("--device cuda was asked for but torch sees no CUDA GPU "
                        f"(torch {torch.__version__}); use --device cpu, or install a "
                        "CUDA build of torch on a machine with a GPU")
    return torch.device(name)


def make_optimizer(train: TrainConfig, params) -> torch.optim.Optimizer:
    """The optimizer named by ``[train]``."""
    if train.optimizer == "sgd":
        return torch.optim.SGD(params, lr=train.lr, momentum=train.momentum,
                               weight_decay=train.weight_decay)
    return torch.optim.Adam(params, lr=train.lr, weight_decay=train.weight_decay)


def make_view(stream: CZSLStream) -> TaskView:
    """The :class:`TaskView` of ``stream`` before its first task."""
    return TaskView(dataset_name=stream.dataset_name,
                    task_sizes=tuple(len(t) for t in stream.tasks),
                    n_classes=stream.n_classes,
                    n_attributes=int(stream.attributes.shape[1]),
                    train_experiences=stream.benchmark.train_stream)


def make_learner(model: torch.nn.Module, view: TaskView, train: TrainConfig,
                 device: torch.device, plugins: list[SupervisedPlugin]) -> ZSLLearner:
    """The learner for ``model`` with ``[train]``'s optimizer and schedule."""
    optimizer = make_optimizer(train, model.parameters())
    schedule = make_lr_schedule(train.lr_step, train.lr_gamma, optimizer)
    return ZSLLearner(
        model=model, view=view, optimizer=optimizer, loss_classes=train.loss_classes,
        train_mb_size=train.batch_size, train_epochs=train.epochs,
        eval_mb_size=train.eval_batch_size, device=device, plugins=[*plugins, *schedule])


def check_task_sizes(sizes: list[int], loss_classes: str) -> None:
    """Refuse tasks that cannot be trained: the cross-entropy over one class is always
    0 (and a model's BatchNorm needs two inputs), so the first task needs two classes,
    and so does every task when the loss runs over the task's classes only.

    :param sizes: classes per task, as the stream resolved them.
    :param loss_classes: :attr:`czsl.config.TrainConfig.loss_classes`.
    :raises ConfigError: naming the task.
    """
    for step, size in enumerate(sizes):
        if size < 2 and (step == 0 or loss_classes == "task"):
            why = ("the first task" if step == 0 else
                   f"task {step} (train.loss_classes = 'task' trains on its classes only)")
            raise ConfigError(f"protocol.task_sizes {sizes}: {why} has one class; a loss "
                              "over one class is always 0, nothing is learnt. Give it two "
                              "or more classes" + ("" if step == 0 else
                                                   ", or set train.loss_classes='seen'"))


def build_run(scenario: Scenario, *, data_dir: Path | None = None,
              echo: Callable[[str], None] = print) -> BuiltRun:
    """Check the device, read the data, split it into tasks, build and check every
    component, and the learner.

    :param scenario: the scenario.
    :param data_dir: the folder with the dataset's files (not needed for synthetic).
    :param echo: where to print notes about the stream.
    :raises CZSLError: for bad data, task splits, plugin names, options or devices;
        :class:`PluginError` naming the plugin when one breaks its hook contract.
    """
    started = time.perf_counter()
    device = resolve_device(scenario.device)
    plugins = Plugins()
    asked = [(kind, getattr(scenario, kind).name)
             for kind in ("model", "regularizer", "replay", "generator")]
    for problem in plugins.problems:  # those a component below needs fail there instead
        if not any(problem.concerns(kind, name) for kind, name in asked):
            echo(f"warning: {problem.message}")
    plugins.check_scenario_options(scenario)  # every unknown option, before the data are read
    dataset = load_dataset(scenario.data.dataset, data_dir, features=scenario.data.features,
                           seed=scenario.seed, options=scenario.data.synthesis)
    seed_everything(scenario.seed)
    stream = build_stream(dataset, scenario.protocol, scenario.seed)
    check_task_sizes(list(stream.protocol.task_sizes), scenario.train.loss_classes)
    for note in stream.notes:
        echo(f"note: {note}")
    loaded = time.perf_counter()
    view = make_view(stream)

    model = make_model(plugins, scenario, dataset.n_features, stream.attributes).to(device)
    owners = {id(model): ("model", scenario.model.name,
                          plugins.find("model", scenario.model.name))}
    built_generators: list[CheckedGenerator] = []
    # what the closure below holds is what a replay plugin can reach: sizes, not data
    n_features, n_attributes = dataset.n_features, view.n_attributes

    def make_generator() -> CheckedGenerator:
        """The scenario's ``[generator]``, for a replay plugin that asks for one: in its
        ``czsl_make_replay``, or later, once per generator, for a replay that keeps one
        per task (each is the run's from then on: checkpointed, and rebuilt on resume)."""
        generator = build_generator(plugins, scenario.generator.name,
                                    scenario.generator.options, n_features, n_attributes
                                    ).to(device)
        built_generators.append(generator)
        # its object is the generator plugin's: blamed on it, not on the replay holding it
        owners[id(generator.generator)] = ("generator", scenario.generator.name,
                                           plugins.find("generator", scenario.generator.name))
        return generator

    extra: list[SupervisedPlugin] = []
    for kind in ("regularizer", "replay"):
        built = make_plugins(plugins, scenario, kind, view, make_generator)
        item = plugins.find(kind, getattr(scenario, kind).name)
        owners.update({id(p): (kind, item.component.name, item) for p in built})
        extra += built
    if not built_generators:  # no replay asked for it: still its options are checked
        with preserved_rng():
            build_generator(plugins, scenario.generator.name, scenario.generator.options,
                            n_features, n_attributes)
    learner = make_learner(model, view, scenario.train, device, extra)
    check_checkpointable(learner, model, view, built_generators, owners)
    observers = plugin_observers(plugins, scenario)
    return BuiltRun(scenario=scenario, data_dir=data_dir, device=device, dataset=dataset,
                    stream=stream, view=view, model=model, extra=extra, learner=learner,
                    owners=owners,
                    generator=scenario.generator.name if built_generators else None,
                    timings={"data": loaded - started,
                             "setup": time.perf_counter() - loaded},
                    generators=built_generators, observers=observers,
                    make_generator=make_generator)


def make_model(plugins: Plugins, scenario: Scenario, n_features: int,
               attributes: torch.Tensor) -> torch.nn.Module:
    """The scenario's ``[model]``, checked against the hook's contract (on the CPU)."""
    cfg = scenario.model
    return _check_model(plugins.make("model", cfg.name, cfg.options, n_features=n_features,
                                     attributes=attributes), cfg.name, plugins)


def make_plugins(plugins: Plugins, scenario: Scenario, kind: str, view: TaskView,
                 make_generator: Callable[[], CheckedGenerator]) -> list[SupervisedPlugin]:
    """The Avalanche plugins of the scenario's ``[regularizer]`` or ``[replay]``."""
    cfg = getattr(scenario, kind)
    args: dict[str, Any] = {"stream": view}
    if kind == "replay":
        args["make_generator"] = make_generator
    return _check_avalanche_plugins(plugins.make(kind, cfg.name, cfg.options, **args),
                                    kind, cfg.name, plugins)


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Build something without drawing from the run's random numbers: Python's,
    numpy's and torch's generators are as they were afterwards."""
    state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            random.setstate(state[0])
            np.random.set_state(state[1])


class Preflight:
    """Checks scenarios as :func:`build_run` builds them, without training and without
    writing anything: the device, the data, the task split, and every plugin table's
    option names and values (each component is built as a run builds it, on the CPU).
    A sweep checks every cell so before any run starts.

    Cheap for many scenarios: each dataset is read once (a synthetic one once per seed:
    its seed draws it), and each distinct plugin table is built once for each dataset
    and task split, without drawing from the caller's random numbers.

    :param data_dir: the folder with the datasets' files, as for :func:`build_run`.
    :param check_device: whether ``device = "cuda"`` must find a GPU on this machine
        (not where the runs go to other machines).
    """

    def __init__(self, data_dir: Path | None = None, *, check_device: bool = True) -> None:
        self.data_dir, self.check_device = data_dir, check_device
        self.plugins = Plugins()
        self._datasets: dict[str, ZSLDataset] = {}
        self._built: set[str] = set()

    def check(self, scenario: Scenario) -> None:
        """Raise what :func:`build_run` would raise for ``scenario`` before training.

        :raises CZSLError: for a device, data, task split, plugin name or option that a
            run of ``scenario`` would refuse.
        """
        if self.check_device:
            resolve_device(scenario.device)
        self.plugins.check_scenario_options(scenario)
        data = scenario.data
        data_key = _key(data.dataset, data.features, data.synthesis,
                        scenario.seed if data.dataset == "synthetic" else None)
        if data_key not in self._datasets:
            self._datasets[data_key] = load_dataset(
                data.dataset, self.data_dir, features=data.features, seed=scenario.seed,
                options=data.synthesis)
        dataset = self._datasets[data_key]
        split = split_tasks(dataset, scenario.protocol, scenario.seed)
        sizes = [len(task) for task in split.tasks]
        check_task_sizes(sizes, scenario.train.loss_classes)
        view = TaskView(dataset_name=dataset.name, task_sizes=tuple(sizes),
                        n_classes=dataset.n_classes, n_attributes=dataset.n_attributes,
                        train_experiences=())
        tables = {kind: _key(getattr(scenario, kind)) for kind in
                  ("model", "regularizer", "replay", "generator")}
        n_features, n_attributes = dataset.n_features, dataset.n_attributes

        def make_generator() -> CheckedGenerator:
            self._built.add(_key(tables["generator"], n_features, n_attributes))
            return build_generator(self.plugins, scenario.generator.name,
                                   scenario.generator.options, n_features, n_attributes)

        for kind, key, build in (
                ("model", (data_key,), lambda: make_model(
                    self.plugins, scenario, n_features, torch.from_numpy(dataset.attributes))),
                ("regularizer", (data_key, sizes), lambda: make_plugins(
                    self.plugins, scenario, "regularizer", view, make_generator)),
                ("replay", (data_key, sizes, tables["generator"]), lambda: make_plugins(
                    self.plugins, scenario, "replay", view, make_generator)),
                ("generator", (n_features, n_attributes), make_generator)):
            key = _key(tables[kind], *key)
            if key not in self._built:
                with preserved_rng():
                    build()
                self._built.add(key)


def _key(*parts: Any) -> str:
    """A text that tells settings apart (``parts``: TOML values, plugin tables)."""
    return json.dumps([p.table() if isinstance(p, PluginConfig) else p
                       for p in parts], sort_keys=True, default=repr)


# ------------------------------------------------------------ hook contracts


def checkpoint_refs(learner: ZSLLearner, model: torch.nn.Module, view: TaskView,
                    generators: list[CheckedGenerator]) -> dict[str, Any]:
    """The run's live objects a plugin's state may point to: checkpointed as references
    (see :mod:`czsl.checkpoint`), the generators the replay built (:attr:`BuiltRun.generators`)
    included, whose own state the checkpoint saves beside
    (:func:`czsl.checkpoint.dump_generator_states`)."""
    return {"learner": learner, "model": model, "optimizer": learner.optimizer,
            "stream": view, **{f"generator:{i}": g for i, g in enumerate(generators)}}


def check_checkpointable(learner: ZSLLearner, model: torch.nn.Module, view: TaskView,
                         generators: list[CheckedGenerator],
                         owners: dict[int, tuple[str, str, Listed]]) -> None:
    """Pickle the learner's and the generators' state as every checkpoint will, before
    anything trains.

    A plugin (or the generator a replay holds) whose state cannot be pickled would
    otherwise fail only after its first task had trained.

    :raises PluginError: naming the component whose state cannot be pickled, and the fix.
    """
    refs = checkpoint_refs(learner, model, view, generators)
    try:
        dump_learner_state(learner.state_dict(), refs)
        dump_generator_states(generators, refs)
    except Unpicklable as exc:
        error = unpicklable_error(exc, learner.extra_plugins, owners, refs,
                                  when="(found when the run was built)",
                                  kept="Nothing was trained and no run folder was written.",
                                  generators=generators)
        raise error from exc.cause


def _check_model(model: Any, name: str, plugins: Plugins) -> torch.nn.Module:
    """The model hook's result must keep the contract in :mod:`czsl.hookspecs`."""
    item = plugins.find("model", name)
    if not isinstance(model, torch.nn.Module) or not callable(
            getattr(model, "set_visible_classes", None)):
        raise PluginError(f"{item.label()} returned {type(model).__name__}; czsl_make_model "
                          "must return a torch.nn.Module with set_visible_classes(mask)")
    return model


def _check_avalanche_plugins(result: Any, kind: str, name: str,
                             plugins: Plugins) -> list[SupervisedPlugin]:
    """Regularizer / replay hooks must return a list of Avalanche plugins."""
    item = plugins.find(kind, name)
    if not isinstance(result, (list, tuple)) or not all(
            isinstance(p, SupervisedPlugin) for p in result):
        raise PluginError(f"{item.label()} returned {brief(result)}; czsl_make_{kind} must "
                          "return a list of avalanche.core.SupervisedPlugin")
    return list(result)


def plugin_observers(plugins: Plugins, scenario: Scenario) -> list[Any]:
    """Every plugin's ``czsl_observers(scenario)``, in plugin order, checked: each must
    return a list of :class:`czsl.observers.Observer` (checked by their methods and
    ``name``: :mod:`czsl.observers` builds on this module).

    :raises PluginError: naming the plugin whose hook raised or returned anything else.
    """
    found: list[Any] = []
    for impl in plugins.pm.hook.czsl_observers.get_hookimpls():
        label = plugins.plugin_label(impl.plugin_name)
        try:
            result = impl.function(**{a: scenario for a in impl.argnames if a == "scenario"})
        except Exception as exc:
            raise PluginError(f"{label} failed in czsl_observers: {type(exc).__name__}: "
                              f"{exc}") from exc
        if not isinstance(result, (list, tuple)) or not all(map(_is_observer, result)):
            raise PluginError(f"{label} returned {brief(result)} from czsl_observers, which "
                              "must return a list of czsl.observers.Observer")
        found += result
    return found


def _is_observer(obj: Any) -> bool:
    """``obj`` has what the run calls on a :class:`czsl.observers.Observer`."""
    return isinstance(getattr(obj, "name", None), str) and all(
        callable(getattr(obj, m, None)) for m in ("before_run", "after_task", "after_run",
                                                  "close"))


def build_generator(plugins: Plugins, name: str, options: dict[str, Any], n_features: int,
                    n_attributes: int) -> CheckedGenerator:
    """A ``[generator]`` table's generator with its add-on losses, wrapped in its checks
    (:func:`czsl.testing.check_generator` builds one by name this way too).

    :param name: the generator's component name.
    :param options: the rest of the table, ``losses`` included.
    """
    item = plugins.find("generator", name)
    where = item.label()
    options = dict(options)
    sizes = {"n_features": n_features, "n_attributes": n_attributes}
    losses = make_generator_losses(plugins, options.pop("losses", []), sizes)
    if len(losses) and "losses" not in plugins.hook_args("generator", name):
        raise PluginError(f"{where} takes no add-on losses (its czsl_make_generator has no "
                          "'losses' argument); remove 'losses' from the scenario's "
                          "[generator] table or pick a generator that supports them")
    return CheckedGenerator(plugins.make("generator", name, options, losses=losses,
                                         **sizes), where, n_features, losses=losses)


def make_generator_losses(plugins: Plugins, specs: Any,
                          sizes: dict[str, int]) -> GeneratorLosses:
    """Build the ``losses`` list of a ``[generator]`` table.

    :param specs: a list of tables, each with a ``name`` (a ``generator_loss``
        component) and that loss's options.
    :param sizes: ``n_features`` and ``n_attributes``.
    :raises ConfigError: if ``specs`` is not a list of tables with names.
    :raises PluginError: for an unknown name or options the loss rejects.
    """
    if not isinstance(specs, list) or not all(
            isinstance(spec, dict) and isinstance(spec.get("name"), str) for spec in specs):
        raise ConfigError(f"[generator] losses must be a list of tables with a name, e.g. "
                          f"losses = [{{name = \"anti_collapse\", weight = 0.2}}]; got "
                          f"{brief(specs)}. 'czsl plugins' lists the generator losses")
    built = []
    for spec in specs:
        options = dict(spec)
        name = options.pop("name")
        item = plugins.find("generator_loss", name)
        built.append((item.label(kind="generator loss"),
                      plugins.make("generator_loss", name, options, **sizes)))
    return GeneratorLosses(built)
