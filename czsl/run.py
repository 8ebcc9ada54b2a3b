"""One scenario, end to end: data -> stream -> plugins -> learner -> metrics -> results.

:func:`run_scenario` is what ``czsl run`` calls; tests and benchmarks call it too.
:func:`resume_run` (``czsl run --resume``) continues a run that was stopped, from the
checkpoint of its last finished task (:mod:`czsl.checkpoint`).

Every check that can happen before training does (:func:`prepare_run`: device, data,
task split, plugin names and options), before the run folder is created, so a bad
input leaves nothing behind. A plugin that raises during training is named in a
:class:`czsl.errors.PluginError`; the run folder then keeps the checkpoint of the tasks
that finished (so it can be resumed) and never a ``results.json``.
"""

from __future__ import annotations

import random
import shutil
import sys
import time
import tomllib
import traceback
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import tomli_w
import torch
from avalanche.core import SupervisedPlugin
from tqdm import tqdm

import czsl
from czsl import metrics
from czsl.checkpoint import (
    Checkpoint,
    Unpicklable,
    dump_learner_state,
    fingerprint,
    has_checkpoint,
    load_checkpoint,
    load_learner_state,
    load_logits,
    remove_checkpoint,
    rng_state,
    run_lock,
    save_checkpoint,
    set_rng_state,
)
from czsl.config import Scenario, load_scenario, scenario_to_dict
from czsl.data import ZSLDataset, load_dataset
from czsl.errors import ConfigError, CZSLError, DivergenceError, PluginError
from czsl.generators import CheckedGenerator, GeneratorLosses
from czsl.learner import ZSLLearner, make_lr_schedule
from czsl.logging import LossLogger, RunLogger, json_ready, new_run_dir
from czsl.plugins import Listed, Plugins
from czsl.streams import CZSLStream, build_stream


@dataclass
class RunResult:
    """What a finished run produced.

    :param run_dir: the run's folder.
    :param results: the content of its ``results.json``.
    """

    run_dir: Path
    results: dict[str, Any]


def resolve_device(name: str) -> torch.device:
    """``"cpu"`` or ``"cuda"``, checking that CUDA is really there."""
    if name == "cuda" and not torch.cuda.is_available():
        raise CZSLError("--device cuda was asked for but torch sees no CUDA GPU "
                        f"(torch {torch.__version__}); use --device cpu, or install a "
                        "CUDA build of torch on a machine with a GPU")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _check_model(model: Any, name: str, plugins: Plugins) -> torch.nn.Module:
    """The model hook's result must keep the contract in :mod:`czsl.hookspecs`."""
    item = plugins.find("model", name)
    if not isinstance(model, torch.nn.Module) or not callable(
            getattr(model, "set_visible_classes", None)):
        raise PluginError(f"model {name!r} (plugin {item.plugin!r} from {item.package}) "
                          f"returned {type(model).__name__}; czsl_make_model must return a "
                          "torch.nn.Module with set_visible_classes(mask)")
    return model


def _check_avalanche_plugins(result: Any, kind: str, name: str,
                             plugins: Plugins) -> list[SupervisedPlugin]:
    """Regularizer / replay hooks must return a list of Avalanche plugins."""
    item = plugins.find(kind, name)
    if not isinstance(result, (list, tuple)) or not all(
            isinstance(p, SupervisedPlugin) for p in result):
        raise PluginError(f"{kind} {name!r} (plugin {item.plugin!r} from {item.package}) "
                          f"returned {result!r}; czsl_make_{kind} must return a list of "
                          "avalanche.core.SupervisedPlugin")
    return list(result)


def make_optimizer(scenario: Scenario, params) -> torch.optim.Optimizer:
    """The optimizer named by ``[train]``."""
    cfg = scenario.train
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


@dataclass
class Prepared:
    """Everything a run builds before it creates its folder.

    :param scenario: the scenario.
    :param data_dir: the data folder it was read from (``None`` for synthetic data).
    :param device: the torch device.
    :param dataset: the data.
    :param stream: the task stream.
    :param model: the model, on ``device``.
    :param extra: the regularizer's and the replay's Avalanche plugins.
    :param owners: ``id()`` of each object a plugin built (the model, each Avalanche
        plugin) -> ``(kind, name, listing)`` of its component, to name it when it fails.
    :param generator: the ``[generator]`` name if the replay plugin built one, else ``None``.
    """

    scenario: Scenario
    data_dir: Path | None
    device: torch.device
    dataset: ZSLDataset
    stream: CZSLStream
    model: torch.nn.Module
    extra: list[SupervisedPlugin]
    owners: dict[int, tuple[str, str, Listed]]
    generator: str | None = None

    def fingerprint(self) -> str:
        """A hash of the data and the task split, to check a resumed run reads the same."""
        return fingerprint(self.dataset.features, self.dataset.labels,
                           self.dataset.attributes, self.stream.tasks, self.stream.test_y)

    def plugin_classes(self) -> list[str]:
        """Qualified class names of :attr:`extra`, in order."""
        return [f"{type(p).__module__}.{type(p).__qualname__}" for p in self.extra]


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
                          f"{specs!r}. 'czsl plugins' lists the generator losses")
    built = []
    for spec in specs:
        options = dict(spec)
        name = options.pop("name")
        item = plugins.find("generator_loss", name)
        built.append((f"generator loss {name!r} (plugin {item.plugin!r} from {item.package} "
                      f"{item.version})",
                      plugins.make("generator_loss", name, options, **sizes)))
    return GeneratorLosses(built)


def prepare_run(scenario: Scenario, *, data_dir: Path | None = None,
                echo: Callable[[str], None] = print) -> Prepared:
    """Check the device, read the data, split it into tasks, build the model and plugins.

    Nothing is written: every bad input a run can detect before training is raised here.

    :param scenario: the scenario.
    :param data_dir: the folder with the dataset's files (not needed for synthetic).
    :param echo: where to print notes about the stream.
    :raises CZSLError: for bad data, task splits, plugin names, options or devices.
    """
    device = resolve_device(scenario.device)
    plugins = Plugins()
    dataset = load_dataset(scenario.data.dataset, data_dir, features=scenario.data.features,
                           seed=scenario.seed, options=scenario.data.synthesis)
    seed_everything(scenario.seed)
    stream = build_stream(dataset, scenario.protocol, scenario.seed)
    for note in stream.notes:
        echo(f"note: {note}")

    model = _check_model(plugins.make("model", scenario.model.name, scenario.model.options,
                                      n_features=dataset.n_features,
                                      attributes=stream.attributes),
                         scenario.model.name, plugins).to(device)
    owners = {id(model): ("model", scenario.model.name,
                          plugins.find("model", scenario.model.name))}
    plugins.find("generator", scenario.generator.name)  # a misspelled name fails here
    built_generators: list[CheckedGenerator] = []

    def make_generator() -> CheckedGenerator:
        """The scenario's ``[generator]``, for a replay plugin that asks for one."""
        cfg = scenario.generator
        item = plugins.find("generator", cfg.name)
        where = (f"generator {cfg.name!r} (plugin {item.plugin!r} from {item.package} "
                 f"{item.version})")
        options = dict(cfg.options)
        sizes = {"n_features": dataset.n_features,
                 "n_attributes": int(stream.attributes.shape[1])}
        losses = make_generator_losses(plugins, options.pop("losses", []), sizes)
        if len(losses) and "losses" not in plugins.hook_args("generator", cfg.name):
            raise PluginError(f"{where} takes no add-on losses (its czsl_make_generator "
                              "has no 'losses' argument); remove 'losses' from the "
                              "scenario's [generator] table or pick a generator that "
                              "supports them")
        generator = CheckedGenerator(
            plugins.make("generator", cfg.name, options, losses=losses, **sizes),
            where, dataset.n_features).to(device)
        built_generators.append(generator)
        return generator

    extra: list[SupervisedPlugin] = []
    for kind in ("regularizer", "replay"):
        cfg = getattr(scenario, kind)
        args = {"stream": stream}
        if kind == "replay":
            args["make_generator"] = make_generator
        built = _check_avalanche_plugins(
            plugins.make(kind, cfg.name, cfg.options, **args), kind, cfg.name, plugins)
        item = plugins.find(kind, cfg.name)
        owners.update({id(p): (kind, cfg.name, item) for p in built})
        extra += built
    return Prepared(scenario=scenario, data_dir=data_dir, device=device, dataset=dataset,
                    stream=stream, model=model, extra=extra, owners=owners,
                    generator=scenario.generator.name if built_generators else None)


def run_scenario(scenario: Scenario, *, data_dir: Path | None = None,
                 runs_dir: Path = Path("runs"), progress: bool = True,
                 echo: Callable[[str], None] = print) -> RunResult:
    """Run a scenario and write its run folder.

    The folder is created only once :func:`prepare_run` has passed. After every task a
    checkpoint is written into it (:mod:`czsl.checkpoint`); ``results.json`` only once
    every task has finished, and then the checkpoint is removed. If a plugin fails
    before the first task has finished, the folder is removed again.

    :param scenario: the scenario.
    :param data_dir: the folder with the dataset's files (not needed for synthetic).
    :param runs_dir: where run folders are created.
    :param progress: show a progress bar on stderr.
    :param echo: where to print notes.
    :raises CZSLError: for bad data, plugin names, options or devices.
    :raises PluginError: naming the plugin, if one raises during training.
    """
    started = time.perf_counter()
    prepared = prepare_run(scenario, data_dir=data_dir, echo=echo)
    run_dir = new_run_dir(runs_dir, scenario.name)
    document = scenario_to_dict(scenario)
    document["protocol"] = {**document["protocol"], **_resolved(prepared.stream)}
    try:
        with run_lock(run_dir):
            return _train(prepared, run_dir, document, started=started, progress=progress,
                          echo=echo)
    except PluginError:
        if not has_checkpoint(run_dir):
            # no task finished: there is nothing to resume, and half a task is no result
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    except DivergenceError as exc:
        # resuming would diverge again: the same settings, the same random draws
        shutil.rmtree(run_dir, ignore_errors=True)
        exc.args = (f"{exc} ({run_dir} was removed)",)
        raise


def resume_run(run_dir: Path, *, data_dir: Path | None = None, progress: bool = True,
               echo: Callable[[str], None] = print) -> RunResult:
    """Continue a stopped run from the checkpoint of its last finished task.

    The scenario is the run's own ``scenario.toml``; data, stream, model and plugins are
    rebuilt from it as when the run started, then the checkpoint's state is loaded into
    them. On CPU the ``results.json`` is the one an uninterrupted run with the same seed
    writes, except ``wall_time_s``, which adds up the time of every session up to its
    last checkpoint (work lost to the interruption is not counted).

    :param run_dir: the run folder.
    :param data_dir: where the data are now; default: where the run read them.
    :param progress: show a progress bar on stderr.
    :param echo: where to print notes.
    :raises CZSLError: if the folder has finished or has no checkpoint, its
        ``scenario.toml``, data or plugin classes differ from the run's, or another
        process is running it; and for everything :func:`run_scenario` raises.
    """
    started = time.perf_counter()
    run_dir = Path(run_dir)
    with run_lock(run_dir) if run_dir.is_dir() else nullcontext():
        checkpoint = load_checkpoint(run_dir)
        scenario_file = run_dir / "scenario.toml"
        scenario = load_scenario(scenario_file)
        if tomllib.loads(scenario_file.read_text(encoding="utf-8")) != tomllib.loads(
                tomli_w.dumps(checkpoint.scenario)):
            raise CZSLError(f"--resume {run_dir}: {scenario_file} was edited after the run "
                            "started; a run resumes with the scenario it started with. Undo "
                            "the edit, or start a new run with the edited scenario")
        if data_dir is None and checkpoint.data_dir is not None:
            data_dir = Path(checkpoint.data_dir)
        prepared = prepare_run(scenario, data_dir=data_dir, echo=echo)
        if prepared.fingerprint() != checkpoint.fingerprint:
            raise CZSLError(f"--resume {run_dir}: the data read from "
                            f"{data_dir or 'the synthetic generator'} differ from the data "
                            "the run started with; point --data-dir at the original data, "
                            "or start a new run")
        if prepared.plugin_classes() != checkpoint.plugin_classes:
            raise CZSLError(f"--resume {run_dir}: the run started with the plugin classes "
                            f"{checkpoint.plugin_classes}, the installed plugins build "
                            f"{prepared.plugin_classes()}; reinstall the plugin versions "
                            "the run started with, or start a new run")
        echo(f"note: resuming {run_dir} after task {checkpoint.step} "
             f"(tasks 0-{checkpoint.n_tasks - 1})")
        return _train(prepared, run_dir, checkpoint.scenario, started=started,
                      progress=progress, echo=echo, resume=checkpoint)


def _train(prepared: Prepared, run_dir: Path, document: dict[str, Any], *, started: float,
           progress: bool, echo: Callable[[str], None],
           resume: Checkpoint | None = None) -> RunResult:
    """Train the remaining tasks in ``run_dir``, checkpoint each, write the results."""
    scenario, stream, device, model = (prepared.scenario, prepared.stream, prepared.device,
                                       prepared.model)
    dataset, extra = prepared.dataset, prepared.extra
    data_id = prepared.fingerprint()
    logger = RunLogger(run_dir)
    if resume is None:
        logger.write_scenario(document)
    optimizer = make_optimizer(scenario, model.parameters())
    schedule = make_lr_schedule(scenario.train.lr_step, scenario.train.lr_gamma, optimizer)
    learner = ZSLLearner(
        model=model, stream=stream, optimizer=optimizer,
        loss_classes=scenario.train.loss_classes, train_mb_size=scenario.train.batch_size,
        train_epochs=scenario.train.epochs, eval_mb_size=scenario.train.eval_batch_size,
        # LossLogger first: it must see the loss before regularizers add to it
        device=device, plugins=[LossLogger(logger), *extra, *schedule])
    # live objects a plugin's state may point to: checkpointed as references
    refs = {"learner": learner, "model": model, "optimizer": learner.optimizer,
            "stream": stream, "run_logger": logger}

    history: list[torch.Tensor] = []
    elapsed = 0.0  # training time of earlier sessions
    if resume is not None:
        history = load_logits(run_dir, resume.step + 1, device)
        learner.load_state_dict(load_learner_state(resume.learner, refs))
        logger.purge_from(learner.clock.train_iterations)
        # the generators as they were at the end of the task, not as rebuilding left them
        set_rng_state(resume.rng)
        elapsed = resume.elapsed_s
    first = len(history)
    bar = tqdm(range(first, stream.n_tasks), desc=f"{scenario.name}: tasks", unit="task",
               total=stream.n_tasks, initial=first, disable=not progress, file=sys.stderr)
    step = first
    try:
        for step in bar:
            try:
                learner.train_task(step)
                logits = learner.test_logits()  # [N_test, C]
            except Exception as exc:
                failure = _plugin_failure(exc, prepared.owners, step, run_dir)
                if failure is None and isinstance(exc, PluginError):
                    # a contract check (czsl.generators) already named the plugin
                    raise PluginError(f"{exc} (during task {step}). "
                                      f"{_what_is_kept(run_dir, step)}") from exc
                if failure is None:  # czsl's own code failed: a bug, keep its traceback
                    raise
                raise failure from exc
            if not bool(torch.isfinite(logits).all()):  # one host read per task
                raise DivergenceError(_diverged(model, step, scenario))
            history.append(logits)
            # the metrics of all steps so far: the logger keeps no state of its own
            so_far = metrics.run_metrics(torch.stack(history), stream.test_y.to(device),
                                         stream.class_to_task.to(device),
                                         per_class=stream.per_class)
            curve = metrics.seen_unseen_curve(logits, stream.test_y.to(device),
                                              stream.seen_mask(step).to(device),
                                              per_class=stream.per_class)
            logger.log_step(step, so_far, curve)
            now = {key: float(so_far.steps[key][step]) for key in ("SA", "UA", "H")}
            bar.set_postfix(SA=f"{now['SA']:.1f}", UA=f"{now['UA']:.1f}", H=f"{now['H']:.1f}")
            _checkpoint(prepared, learner, refs, run_dir, logits, step=step,
                        n_tasks=stream.n_tasks, scenario=document,
                        data_dir=None if prepared.data_dir is None else str(
                            Path(prepared.data_dir).resolve()),
                        fingerprint=data_id, plugin_classes=prepared.plugin_classes(),
                        elapsed_s=elapsed + time.perf_counter() - started, rng=rng_state())
        results = _results(scenario, dataset.source, stream, torch.stack(history), device)
        results["generator"] = prepared.generator
        # a replay that read unseen classes' attributes during training says so
        results["semantic_transductive"] = any(
            getattr(p, "semantic_transductive", False) is True for p in extra)
        results["wall_time_s"] = elapsed + time.perf_counter() - started
        results = json_ready(results)
        logger.write_hparams(document, results)
        logger.write_results(results)
    except KeyboardInterrupt:
        if has_checkpoint(run_dir):
            echo(f"note: interrupted during task {step}; the tasks before it are saved: "
                 f"continue with: czsl run --resume {run_dir}")
        raise
    finally:
        bar.close()
        logger.close()
    remove_checkpoint(run_dir)  # finished: nothing left to resume
    return RunResult(run_dir, results)


def _checkpoint(prepared: Prepared, learner: ZSLLearner, refs: dict[str, Any], run_dir: Path,
                logits: torch.Tensor, **fields: Any) -> None:
    """Save a :class:`Checkpoint` of ``fields`` and the learner's state; name a plugin
    whose state cannot be saved."""
    step = fields["step"]
    try:
        blobs = dump_learner_state(learner.state_dict(), refs)
    except Unpicklable as exc:
        path = exc.path  # ("plugins", index, attribute, ...) or ("model", ...), ...
        plugin = learner.extra_plugins[path[1]] if path[0] == "plugins" else None
        owner = None if plugin is None else prepared.owners.get(id(plugin))
        if owner is None:  # czsl's own state: a bug
            raise RuntimeError(f"cannot checkpoint the learner's {path}") from exc.cause
        kind, name, item = owner
        what = f"its attribute {path[2]!r}" if len(path) > 2 else "its state"
        raise PluginError(
            f"{kind} {name!r} (plugin {item.plugin!r} from {item.package} {item.version}) "
            f"cannot be checkpointed after task {step}: {what} cannot be pickled "
            f"({type(exc.cause).__name__}: {exc.cause}). czsl saves every plugin's "
            f"__getstate__() after each task (see czsl.hookspecs); {type(plugin).__name__} "
            "needs __getstate__/__setstate__ that leave it out. "
            + _what_is_kept(run_dir, step)) from exc.cause
    save_checkpoint(run_dir, Checkpoint(learner=blobs, **fields), logits)


def _diverged(model: torch.nn.Module, step: int, scenario: Scenario) -> str:
    """What a run whose test logits after task ``step`` are not finite is told."""
    bad = [name for name, p in model.named_parameters() if not bool(torch.isfinite(p).all())]
    what = (f"the model's {', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''} hold NaN "
            "or infinity" if bad else "the model's test logits hold NaN or infinity")
    return (f"training diverged during task {step}: {what}. No results were written. "
            f"Lower the learning rate (train.lr = {scenario.train.lr:g}) or the weight "
            "of the regularizer or generator losses, and start the run again")


def _what_is_kept(run_dir: Path, step: int) -> str:
    """What a failure during task ``step`` leaves in ``run_dir``, and what to do."""
    if step == 0:
        return f"No task had finished, so {run_dir} was removed."
    done = "task 0 is" if step == 1 else f"tasks 0-{step - 1} are"
    return (f"In {run_dir}, {done} saved: once the plugin is fixed, continue with: "
            f"czsl run --resume {run_dir}")


def _plugin_failure(exc: Exception, owners: dict[int, tuple[str, str, Listed]], step: int,
                    run_dir: Path) -> PluginError | None:
    """A :class:`PluginError` naming the plugin that raised ``exc``, or ``None``.

    The culprit is the innermost frame of the traceback that runs a method of an object
    a plugin built (the model, a regularizer or replay plugin), unless czsl's own code
    runs further in: then the error is czsl's (or a plugin misusing it) and is not
    dressed up as a plugin failure.
    """
    culprit = None
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        owner = owners.get(id(frame.f_locals.get("self")))
        if owner is not None:
            culprit = owner, frame
        elif frame.f_globals.get("__name__", "").split(".")[0] == "czsl":
            culprit = None
    if culprit is None:
        return None
    (kind, name, item), frame = culprit
    where = f"{type(frame.f_locals['self']).__name__}.{frame.f_code.co_name}"
    return PluginError(
        f"{kind} {name!r} (plugin {item.plugin!r} from {item.package} {item.version}) failed "
        f"during task {step}, in {where}: {type(exc).__name__}: {exc}. "
        f"{_what_is_kept(run_dir, step)} (czsl --debug shows the traceback.)")


def _resolved(stream: CZSLStream) -> dict[str, Any]:
    """The protocol choices filled in from presets, for scenario.toml."""
    p = stream.protocol
    return {"task_sizes": list(p.task_sizes), "class_order": p.class_order,
            "accuracy": p.accuracy}


def _results(scenario: Scenario, source: str, stream: CZSLStream,
             history: torch.Tensor, device: torch.device) -> dict[str, Any]:
    """The content of results.json."""
    targets = stream.test_y.to(device)
    class_to_task = stream.class_to_task.to(device)
    run = metrics.run_metrics(history, targets, class_to_task, per_class=stream.per_class)
    out: dict[str, Any] = {
        "czsl_version": czsl.__version__,
        "name": scenario.name,
        "seed": scenario.seed,
        "dataset": stream.dataset_label,
        "features": source,
        "semi_synthetic": source == "semi-synthetic",
        "protocol": {"name": stream.protocol.name, **_resolved(stream)},
        "model": scenario.model.name,
        "regularizer": scenario.regularizer.name,
        "replay": scenario.replay.name,
        "n_tasks": stream.n_tasks,
        "n_test": int(targets.shape[0]),
        "notes": list(stream.notes),
        "summary": run.summary(),
        "metrics": run.to_dict(),
    }
    if stream.protocol.name == "static":
        out["gzsl"] = {k: float(v) for k, v in metrics.gzsl_metrics(
            history[-1], targets, stream.seen_mask(0).to(device),
            per_class=stream.per_class).items()}
    return out


def format_results(result: RunResult) -> str:
    """The table ``czsl run`` prints: per-step SA / UA / H, then the run's summary."""
    res = result.results
    steps = res["metrics"]["steps"]
    conv = res["protocol"]["accuracy"].replace("_", "-")

    def pct(value):
        return "   -" if value is None else f"{value:5.1f}"

    lines = [f"{res['name']}: {res['dataset']}, protocol {res['protocol']['name']}, "
             f"{res['n_tasks']} task(s), {conv} accuracy (%)",
             " step   SA     UA     H      JA",
             *(f" {t:4d} {pct(steps['SA'][t])}  {pct(steps['UA'][t])}  {pct(steps['H'][t])}  "
               f"{pct(steps['JA'][t])}" for t in range(len(steps["SA"])))]
    s = res["summary"]
    lines.append(" ".join(f"{k} {pct(s.get(k))}" for k in ("mSA", "mUA", "mH", "mJA", "mAUC")))
    if s.get("forgetting_final") is not None:
        lines.append(f"forgetting (fraction): final step {s['forgetting_final']:.3f}, "
                     f"mean over steps {s['forgetting_mean']:.3f}")
    if "gzsl" in res:
        g = res["gzsl"]
        lines.append(f"static GZSL: ZSL top-1 {g['zsl_top1']:.1f}  u {g['u']:.1f}  "
                     f"s {g['s']:.1f}  H {g['H']:.1f}  AUSUC {g['AUSUC']:.1f}")
    if res.get("semantic_transductive"):
        lines.append("SEMANTIC-TRANSDUCTIVE: the attributes of unseen classes were used in "
                     "training (features synthesised for them); not comparable with "
                     "inductive results")
    if res["semi_synthetic"]:
        lines.append("these figures are from SEMI-SYNTHETIC features (real metadata, "
                     "features synthesised from the attributes), not real image features")
    lines.append(f"results: {result.run_dir / 'results.json'} "
                 f"(TensorBoard: tensorboard --logdir {result.run_dir.parent})")
    return "\n".join(lines)
