"""One scenario, end to end: build -> train and test task by task -> observers -> results.

:func:`run_scenario` is what ``czsl run`` calls; sweeps, tests and benchmarks call it
too. :func:`resume_run` (``czsl run --resume``) continues a run that was stopped, from
the checkpoint of its last finished task (:mod:`czsl.checkpoint`).

The way through a run: :func:`czsl.build.build_run` reads the data, splits it into
tasks and builds every component (every bad input is raised there, before the run
folder is created, so it leaves nothing behind); then one session (:func:`_session`,
the same for a fresh and a resumed run) runs the loop: for each task, the learner
trains on it, the model is tested outside the learner (:func:`czsl.predict.predict`),
and the run's observers (:mod:`czsl.observers`: divergence check, TensorBoard, progress,
checkpoint, then the plugins' and the caller's) see the result; once every task has
finished they see the results (TensorBoard's HParams, ``results.json``, then the
plugins' and the caller's).

A plugin that raises during training is named in a :class:`czsl.errors.PluginError`
(:mod:`czsl.blame`); the run folder then keeps the checkpoint of the tasks that
finished (so it can be resumed) and never a ``results.json``. Any stop before the first
checkpoint (a plugin, a storage fault, SIGINT/SIGTERM/SIGHUP, a bug) removes the folder;
after it, the folder is resumable. ``czsl run`` turns SIGTERM and SIGHUP into the same
interruption as Ctrl-C (:func:`czsl.signals.interruptible`).
"""

from __future__ import annotations

import contextlib
import shutil
import time
import tomllib
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import tomli_w
import torch

from czsl import metrics
from czsl.blame import plugin_failure, what_is_kept
from czsl.build import BuiltRun, build_run, checkpoint_refs
from czsl.checkpoint import (Checkpoint, has_checkpoint, load_checkpoint, load_learner_state,
                             set_rng_state)
from czsl.config import Scenario, load_scenario, scenario_to_dict
from czsl.errors import CZSLError, DivergenceError, PluginError
from czsl.observers import (Checkpointer, DivergenceCheck, Observer, ProgressBar, ResultsFile,
                            RunStart, TaskEnd, TensorBoard, timed)
from czsl.predict import predict_batches
from czsl.results import (RunResult, resolved_protocol, results_document, static_gzsl,
                          static_split)
from czsl.runfolder import (RunFolder, check_writable, json_ready, new_run_dir, run_lock,
                            storage_error, tidy, write_scenario)


def run_scenario(scenario: Scenario, *, data_dir: Path | None = None,
                 runs_dir: Path = Path("runs"), progress: bool = True,
                 echo: Callable[[str], None] = print,
                 observers: Sequence[Observer] = (),
                 run_dir: Path | None = None) -> RunResult:
    """Run a scenario and write its run folder.

    The folder is created only once :func:`czsl.build.build_run` has passed. After every
    task a checkpoint is written into it (:mod:`czsl.checkpoint`); ``results.json`` only
    once every task has finished, and then the checkpoint is removed. A run stopped
    before its first task was saved (a plugin failure, a storage fault, an interruption,
    a bug) removes its folder again: there is nothing to resume.

    :param scenario: the scenario.
    :param data_dir: the folder with the dataset's files (not needed for synthetic).
    :param runs_dir: where run folders are created.
    :param progress: show a progress bar on stderr.
    :param echo: where to print notes.
    :param observers: more observers of every task, after czsl's own.
    :param run_dir: use exactly this folder (created if needed; ``runs_dir`` is then
        ignored) instead of a new one under ``runs_dir``; refused if it holds a
        ``results.json`` or a checkpoint (sweeps key their runs' folders this way).
    :raises CZSLError: for bad data, plugin names, options or devices.
    :raises PluginError: naming the plugin, if one raises during training.
    """
    started = time.perf_counter()
    scenario = replace(scenario, threads=use_threads(scenario.threads))
    # a storage fault is found before the data are read
    check_writable(Path(runs_dir) if run_dir is None else Path(run_dir).parent)
    built = build_run(scenario, data_dir=data_dir, echo=echo)
    if run_dir is None:
        run_dir = new_run_dir(runs_dir, scenario.name)
    elif RunFolder(run_dir).is_finished() or has_checkpoint(Path(run_dir)):
        raise CZSLError(f"{run_dir} already holds a finished run or a checkpoint; resume "
                        f"it with: czsl run --resume {run_dir}, or pick another folder")
    else:
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
    document = scenario_to_dict(scenario)
    document["protocol"] = {**document["protocol"], **resolved_protocol(built.stream)}
    with run_lock(run_dir):
        return _session(built, run_dir, document, started=started, progress=progress,
                        echo=echo, observers=observers)


def use_threads(threads: int) -> int:
    """Give torch ``threads`` CPU threads (``0``: leave its count) and return the count.

    :param threads: :attr:`czsl.config.Scenario.threads`.
    """
    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def runtime_settings(built: BuiltRun) -> dict[str, Any]:
    """The settings outside the scenario that change a run's numbers, for ``results.json``."""
    return {"torch": torch.__version__, "device": str(built.device),
            "threads": torch.get_num_threads(),
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "default_dtype": str(torch.get_default_dtype()).removeprefix("torch.")}


def resume_run(run_dir: Path, *, data_dir: Path | None = None, progress: bool = True,
               echo: Callable[[str], None] = print,
               observers: Sequence[Observer] = (), threads: int | None = None) -> RunResult:
    """Continue a stopped run from the checkpoint of its last finished task.

    The scenario is the run's own ``scenario.toml``; data, stream, model and plugins are
    rebuilt from it as when the run started, then the checkpoint's state is loaded into
    them. On CPU the ``results.json`` is the one an uninterrupted run with the same seed
    writes, except ``wall_time_s``, which adds up the time of every session up to its
    last checkpoint (work lost to the interruption is not counted). The session is run
    as :func:`run_scenario` runs one: a failure leaves what it would leave there (a run
    that diverges is removed; after another failure the tasks saved stay resumable).

    :param run_dir: the run folder.
    :param data_dir: where the data are now; default: where the run read them.
    :param progress: show a progress bar on stderr.
    :param echo: where to print notes.
    :param observers: more observers of every task, after czsl's own.
    :param threads: torch threads asked for (``czsl run --resume --threads``); the run
        uses the count recorded in its ``scenario.toml``, and another count is refused.
    :raises CZSLError: if the folder has finished or has no checkpoint, its
        ``scenario.toml``, data or plugin classes differ from the run's, or another
        process is running it; and for everything :func:`run_scenario` raises.
    """
    started = time.perf_counter()
    run_dir = Path(run_dir)
    if run_dir.is_dir():
        check_writable(run_dir, f"then continue with: czsl run --resume {run_dir}")
    with run_lock(run_dir) if run_dir.is_dir() else nullcontext():
        if run_dir.is_dir():
            tidy(run_dir)  # what a killed process left: temp files, a finished checkpoint
        checkpoint = load_checkpoint(run_dir)
        scenario_file = RunFolder(run_dir).scenario_file
        scenario = load_scenario(scenario_file)
        if tomllib.loads(scenario_file.read_text(encoding="utf-8")) != tomllib.loads(
                tomli_w.dumps(checkpoint.scenario)):
            raise CZSLError(f"--resume {run_dir}: {scenario_file} was edited after the run "
                            "started; a run resumes with the scenario it started with. Undo "
                            "the edit, or start a new run with the edited scenario")
        recorded = scenario.threads or torch.get_num_threads()  # 0: recorded before czsl kept it
        if threads is not None and threads != recorded:
            raise CZSLError(f"--resume {run_dir}: the run started with --threads {recorded} "
                            f"(recorded in {scenario_file}) and its numbers depend on it; "
                            f"drop --threads {threads}, or start a new run")
        use_threads(recorded)
        if data_dir is None and checkpoint.data_dir is not None:
            data_dir = Path(checkpoint.data_dir)
        built = build_run(scenario, data_dir=data_dir, echo=echo)
        if built.fingerprint() != checkpoint.fingerprint:
            raise CZSLError(f"--resume {run_dir}: the data read from "
                            f"{data_dir or 'the synthetic generator'} differ from the data "
                            "the run started with; point --data-dir at the original data, "
                            "or start a new run")
        if built.plugin_classes() != checkpoint.plugin_classes:
            raise CZSLError(f"--resume {run_dir}: the run started with the plugin classes "
                            f"{checkpoint.plugin_classes}, the installed plugins build "
                            f"{built.plugin_classes()}; reinstall the plugin versions "
                            "the run started with, or start a new run")
        echo(f"note: resuming {run_dir} after task {checkpoint.step} "
             f"(tasks 0-{checkpoint.n_tasks - 1})")
        return _session(built, run_dir, checkpoint.scenario, started=started,
                        progress=progress, echo=echo, observers=observers, resume=checkpoint)


def _session(built: BuiltRun, run_dir: Path, document: dict[str, Any], *,
             echo: Callable[[str], None], resume: Checkpoint | None = None,
             **loop: Any) -> RunResult:
    """One session of a run, fresh (:func:`run_scenario`) or resumed (:func:`resume_run`),
    in the locked ``run_dir``: the loop (:func:`_train`), and one policy for what a
    failure leaves (docs/guarantees.md).

    A run that diverged is removed, whatever it had saved: resuming it would diverge
    again (the same settings, the same random draws). Any other stop keeps the folder
    if a task was saved (it is resumable, :func:`czsl.blame.what_is_kept`), and removes
    it otherwise. A storage fault becomes one line naming the folder and the fix.
    """
    try:
        with _storage_faults(run_dir):
            return _train(built, run_dir, document, echo=echo, resume=resume, **loop)
    except DivergenceError as exc:
        shutil.rmtree(run_dir, ignore_errors=True)
        exc.args = (f"{exc} ({run_dir} was removed)",)
        raise
    except BaseException as exc:
        if not has_checkpoint(run_dir):
            # one rule for every cause (a plugin, a storage fault, a signal, a bug): a
            # run stopped before its first task was saved has nothing to resume
            shutil.rmtree(run_dir, ignore_errors=True)
            if not isinstance(exc, CZSLError):  # those say so themselves
                echo(f"note: stopped during task 0, before any task was saved; "
                     f"{run_dir} was removed")
        raise


@contextlib.contextmanager
def _storage_faults(run_dir: Path) -> Iterator[None]:
    """Turn a storage fault met while the run writes into one line; the tasks saved
    before it stay resumable."""
    try:
        yield
    except OSError as exc:
        then = (f"then continue with: czsl run --resume {run_dir}" if has_checkpoint(run_dir)
                else "then start the run again")
        error = storage_error(run_dir, exc, then)
        if error is None:
            raise
        raise error from exc


def _train(built: BuiltRun, run_dir: Path, document: dict[str, Any], *, started: float,
           progress: bool, echo: Callable[[str], None], observers: Sequence[Observer],
           resume: Checkpoint | None = None) -> RunResult:
    """The loop: train and test the remaining tasks in ``run_dir``, the observers seeing
    each (czsl's own, then the plugins', then ``observers``); then the results."""
    scenario, stream = built.scenario, built.stream
    timings = dict(built.timings)
    if resume is None:
        write_scenario(run_dir, document)
    # what the run keeps of each step: O(T) numbers, never the logits of earlier steps
    records = [] if resume is None else _restore(built, resume)
    elapsed = 0.0 if resume is None else resume.elapsed_s  # time of earlier sessions
    first = step = len(records)
    everyone = [DivergenceCheck(), TensorBoard(run_dir, document),
                ProgressBar(scenario.name, stream.n_tasks, first, progress),
                Checkpointer(document, lambda: elapsed + time.perf_counter() - started),
                ResultsFile(), *built.observers, *observers]
    try:
        for observer in everyone:
            _observe(observer, "before_run", RunStart(built, run_dir, first), timings)
        for step in range(first, stream.n_tasks):
            scores = _train_and_test(built, step, run_dir, timings)
            with timed(timings, "metrics"):
                record = metrics.record_from_scores(scores, stream.test_y.to(built.device),
                                                    stream.class_to_task.to(built.device),
                                                    per_class=stream.per_class)
                gzsl = static_gzsl(stream, scores)  # kept for the last step's results
                if gzsl is not None:
                    record.update({f"gzsl:{k}": v for k, v in gzsl.items()})
            end = TaskEnd(step=step, built=built, run_dir=run_dir, scores=scores,
                          records=[*records, record], timings=timings)
            for observer in everyone:
                _observe(observer, "after_task", end, timings)
            records.append(record)
        with timed(timings, "results"):
            results = _results(built, records, elapsed + time.perf_counter() - started, echo)
        for observer in everyone:  # HParams, results.json, then the plugins' and caller's
            _observe(observer, "after_run", results, timings)
    except KeyboardInterrupt:
        if has_checkpoint(run_dir):
            echo(f"note: interrupted during task {step}; the tasks before it are saved: "
                  f"continue with: czsl run --resume {run_dir}")
        raise
    finally:
        for observer in everyone:
            observer.close()
    tidy(run_dir)  # finished: nothing left to resume
    return RunResult(run_dir, results, timings)


def _restore(built: BuiltRun, resume: Checkpoint) -> list[dict[str, torch.Tensor]]:
    """Load the checkpoint's state into the rebuilt run; return its step records."""
    learner = built.learner
    records = [{k: v.to(built.device) for k, v in r.items()} for r in resume.records]
    built.start_task(resume.step)
    # live objects a plugin's state may point to: checkpointed as references
    refs = checkpoint_refs(learner, built.model, built.view)
    learner.load_state_dict(load_learner_state(resume.learner, refs))
    # a replay's generator comes back from the checkpoint as a new object (its
    # weights, its losses' counters): log and report the one the learner now holds
    built.generators[:] = _held_generators(learner.plugins) or built.generators
    # the generators as they were at the end of the task, not as rebuilding left them
    set_rng_state(resume.rng)
    return records


def _train_and_test(built: BuiltRun, step: int, run_dir: Path,
                    timings: dict[str, float]) -> metrics.StepScorer:
    """Train task ``step``, test the model on the whole test set; name the plugin that
    fails (:mod:`czsl.blame`)."""
    scenario, stream, device = built.scenario, built.stream, built.device
    try:
        built.start_task(step)
        with timed(timings, "training"):
            built.learner.train_task(step)
        # scored chunk by chunk: the [N_test, C] logits are never held at once
        splits = _splits(stream, step).to(device)
        scores = metrics.StepScorer(splits)
        with timed(timings, "testing"):
            predict_batches(built.model, stream.test_x, n_classes=stream.n_classes,
                            batch_size=scenario.train.eval_batch_size, device=device,
                            each=_calibrated(scores, splits[0], scenario.protocol.seen_scale))
        return scores
    except Exception as exc:
        failure = plugin_failure(exc, built.owners, step, run_dir)
        if failure is None and isinstance(exc, PluginError):
            # a contract check (czsl.generators) already named the plugin
            raise PluginError(f"{exc} (during task {step}). "
                              f"{what_is_kept(run_dir, step)}") from exc
        if failure is None:  # czsl's own code failed: a bug, keep its traceback
            raise
        raise failure from exc


def _results(built: BuiltRun, records: list[dict[str, torch.Tensor]], wall_time_s: float,
             echo: Callable[[str], None]) -> dict[str, Any]:
    """``results.json``'s content, from every step's record."""
    scenario, stream = built.scenario, built.stream
    gzsl = {k.removeprefix("gzsl:"): v for k, v in records[-1].items()
            if k.startswith("gzsl:")}
    results = results_document(
        scenario, built.dataset.source, stream,
        metrics.metrics_from_steps(records, per_class=stream.per_class), gzsl or None)
    results["generator"] = built.generator
    if built.generators:  # added only with generative replay: other runs unchanged
        results["generator_losses"] = list(built.generators[0].losses.names)
        for note in built.generators[0].notes():
            echo(f"note: {note}")
            results["notes"].append(note)
    # a replay that read unseen classes' attributes during training says so
    results["semantic_transductive"] = built.view.semantic_transductive
    results["runtime"] = runtime_settings(built)
    results["wall_time_s"] = wall_time_s
    return json_ready(results)


def _held_generators(plugins: Sequence[Any]) -> list[Any]:
    """The generators (:class:`czsl.generators.CheckedGenerator`) the learner's plugins
    hold as attributes, or in a list, tuple or dict attribute (one generator per task),
    in plugin order, each once."""
    from czsl.generators import CheckedGenerator

    found: dict[int, Any] = {}
    for plugin in plugins:
        for value in getattr(plugin, "__dict__", {}).values():
            items = (value.values() if isinstance(value, dict) else
                     value if isinstance(value, (list, tuple)) else [value])
            for item in items:
                if isinstance(item, CheckedGenerator):
                    found.setdefault(id(item), item)
    return list(found.values())


def _calibrated(scores: metrics.StepScorer, seen: torch.Tensor, scale: float
                ) -> Callable[[torch.Tensor], None]:
    """``scores``, fed each chunk of logits with the columns of the ``seen`` classes
    multiplied by ``scale`` (``[protocol] seen_scale``); ``scores`` itself at 1."""
    if scale == 1.0:
        return scores
    factor = torch.where(seen, scale, 1.0)  # [C]

    def feed(logits: torch.Tensor) -> None:
        scores(logits * factor.to(dtype=logits.dtype))
    return feed


def _splits(stream: Any, step: int) -> torch.Tensor:
    """``[S, C]``: the seen classes a step is scored under: the step's own, and the
    static protocol's fixed split (:func:`czsl.results.static_gzsl`) where it differs."""
    own = stream.seen_mask(step)
    fixed = static_split(stream)
    if fixed is None or torch.equal(fixed, own):
        return own[None]
    return torch.stack([own, fixed])


def _observe(observer: Observer, method: str, argument: Any,
             timings: dict[str, float]) -> None:
    """Call ``observer.<method>(argument)``; its time, less the metrics it computed, goes
    to ``timings[observer.name]``."""
    before = timings.get("metrics", 0.0)
    start = time.perf_counter()
    getattr(observer, method)(argument)
    spent = time.perf_counter() - start - (timings.get("metrics", 0.0) - before)
    timings[observer.name] = timings.get(observer.name, 0.0) + spent


