"""What happens around each task: observers of a run.

A run calls ``before_run(start)`` of each of its observers, in order, with a
:class:`RunStart`, once the session is ready to train (a resumed run: once the
checkpoint's state is loaded); after task ``t`` has trained and the model has been
tested, ``after_task(end)`` with a :class:`TaskEnd`; once every task has finished,
``after_run(results)``; ``close()`` always. czsl's own are, in this order:

1. :class:`DivergenceCheck` — stops a run whose test logits hold NaN or infinity;
2. :class:`TensorBoard` — each mini-batch's losses, each step's scalars and figures,
   and the HParams row once the run has finished (:mod:`czsl.board`);
3. :class:`ProgressBar` — the bar on stderr;
4. :class:`Checkpointer` — the checkpoint of the task (the commit point of a resume);
5. :class:`ResultsFile` — ``results.json``, once every task has finished.

Then come the observers that plugins add (the ``czsl_observers`` hook,
:mod:`czsl.hookspecs`), then the caller's (``run_scenario(..., observers=[...])``): they
see a step only once it is saved, and the results once ``results.json`` is written. The
run times every observer (:attr:`Observer.name` -> seconds in
:attr:`czsl.results.RunResult.timings`), so a benchmark needs no patching to break a
run's time down.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch

from czsl import metrics
from czsl.blame import unpicklable_error, what_is_kept
from czsl.board import LossLogger, RunLogger
from czsl.checkpoint import (Checkpoint, Unpicklable, dump_generator_states,
                             dump_learner_state, rng_state, save_checkpoint)
from czsl.errors import DivergenceError
from czsl.runfolder import write_results

if TYPE_CHECKING:  # pragma: no cover - type names only
    from czsl.build import BuiltRun


@dataclass
class RunStart:
    """A session of a run about to train its first task, as observers see it.

    :param built: the run's components (a resumed run's with the checkpoint's state).
    :param run_dir: the run folder.
    :param first: the first task this session trains (above 0: a resumed run).
    """

    built: BuiltRun
    run_dir: Path
    first: int


@dataclass
class TaskEnd:
    """A finished task, as observers see it.

    :param step: the task just trained and tested.
    :param built: the run's components.
    :param run_dir: the run folder.
    :param scores: the test logits after this task, reduced to what the metrics need
        (:class:`czsl.metrics.StepScorer`; row 0 of its seen masks is this step's): a
        run never holds the ``[N_test, C]`` logits of the whole test set.
    :param records: :func:`czsl.metrics.step_record` of every step so far, this one last
        (a run keeps these, not the logits of earlier steps).
    :param timings: the run's timings, into which :attr:`metrics` adds its time.
    """

    step: int
    built: BuiltRun
    run_dir: Path
    scores: metrics.StepScorer
    records: list[dict[str, torch.Tensor]]
    timings: dict[str, float] = field(default_factory=dict)

    @cached_property
    def metrics(self) -> metrics.RunMetrics:
        """:func:`czsl.metrics.metrics_from_steps` over the steps so far (computed once)."""
        with timed(self.timings, "metrics"):
            return metrics.metrics_from_steps(self.records,
                                              per_class=self.built.stream.per_class)

    @cached_property
    def curve(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This step's seen-unseen curve (:func:`czsl.metrics.seen_unseen_curve`)."""
        with timed(self.timings, "metrics"):
            return metrics.curve_from_scores(self.scores, self.built.stream.test_y,
                                             per_class=self.built.stream.per_class)


class Observer:
    """Base of run observers; every method does nothing by default.

    :attr:`name` labels the observer's time in the run's timings.
    """

    name = "observer"

    def before_run(self, start: RunStart) -> None:
        """The session is about to train task ``start.first``. It must not draw random
        numbers (the run's numbers would change)."""

    def after_task(self, end: TaskEnd) -> None:
        """Task ``end.step`` has trained and been tested."""

    def after_run(self, results: dict[str, Any]) -> None:
        """Every task has finished; ``results`` is ``results.json``'s content."""

    def close(self) -> None:
        """The run is over (finished, failed or interrupted)."""


class DivergenceCheck(Observer):
    """Raises :class:`czsl.errors.DivergenceError` when the test logits are not finite
    (one host read per task)."""

    name = "divergence check"

    def after_task(self, end: TaskEnd) -> None:
        if not end.scores.finite:
            raise DivergenceError(diverged(end.built.model, end.step, end.built.scenario))


def diverged(model: torch.nn.Module, step: int, scenario: Any) -> str:
    """What a run whose test logits after task ``step`` are not finite is told."""
    bad = [name for name, p in model.named_parameters() if not bool(torch.isfinite(p).all())]
    what = (f"the model's {', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''} hold NaN "
            "or infinity" if bad else "the model's test logits hold NaN or infinity")
    return (f"training diverged during task {step}: {what}. No results were written. "
            f"Lower the learning rate (train.lr = {scenario.train.lr:g}) or the weight "
            "of the regularizer or generator losses, and start the run again")


class TensorBoard(Observer):
    """The run in TensorBoard (:mod:`czsl.board`): every mini-batch's losses (through a
    :class:`czsl.board.LossLogger` it puts first among the learner's Avalanche plugins:
    it must see the loss before regularizers add to it; it is not checkpointed), each
    step's metrics and figures, what the run's generators logged during the task, and
    the HParams row once the run has finished.

    :param run_dir: the run folder.
    :param document: the scenario as ``scenario.toml`` holds it (the HParams columns).
    """

    name = "tensorboard"

    def __init__(self, run_dir: Path, document: dict[str, Any]) -> None:
        self.logger = RunLogger(run_dir)
        self.document = document

    def before_run(self, start: RunStart) -> None:
        learner = start.built.learner
        learner.plugins.insert(0, LossLogger(self.logger))
        if start.first:  # hide what the stopped session logged after its last checkpoint
            self.logger.purge_from(learner.clock.train_iterations)

    def after_task(self, end: TaskEnd) -> None:
        self.logger.log_step(end.step, end.metrics, end.curve)
        # what the generators logged while this task trained (czsl.generators)
        for generator in getattr(end.built, "generators", ()):
            for name, index, value in generator.losses.drain():
                self.logger.log_generator(name, value, index)

    def after_run(self, results: dict[str, Any]) -> None:
        self.logger.write_hparams(self.document, results)

    def close(self) -> None:
        self.logger.close()


class ProgressBar(Observer):
    """A tqdm bar over the tasks on stderr, with the last step's SA, UA and H (UA and H
    read ``-`` at a step without unseen classes, where they are undefined).

    :param title: the bar's label.
    :param n_tasks: number of tasks.
    :param first: tasks already done (a resumed run).
    :param enabled: ``False`` shows nothing.
    """

    name = "progress"

    def __init__(self, title: str, n_tasks: int, first: int, enabled: bool) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=n_tasks, initial=first, desc=f"{title}: tasks", unit="task",
                        disable=not enabled, file=sys.stderr)

    def after_task(self, end: TaskEnd) -> None:
        now = {key: float(end.metrics.steps[key][end.step]) for key in ("SA", "UA", "H")}
        self.bar.set_postfix({key: "-" if math.isnan(value) else f"{value:.1f}"
                              for key, value in now.items()})
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


class Checkpointer(Observer):
    """Saves the run's state after each task (:mod:`czsl.checkpoint`), naming a plugin
    whose state cannot be saved.

    :param document: the scenario as ``scenario.toml`` holds it.
    :param elapsed_s: the run's time so far, every session's (asked at each save).
    """

    name = "checkpoint"

    def __init__(self, document: dict[str, Any], elapsed_s: Callable[[], float]) -> None:
        self.document = document
        self.elapsed_s = elapsed_s

    def before_run(self, start: RunStart) -> None:
        built = self.built = start.built
        data_dir = None if built.data_dir is None else str(Path(built.data_dir).resolve())
        self.fields = {"n_tasks": built.stream.n_tasks, "scenario": self.document,
                       "data_dir": data_dir, "fingerprint": built.fingerprint(),
                       "plugin_classes": built.plugin_classes()}

    def after_task(self, end: TaskEnd) -> None:
        learner = self.built.learner
        # live objects a plugin's state may point to: checkpointed as references (the
        # generators as they are now: a replay may have built one during the task)
        refs = self.built.refs()
        try:
            blobs = dump_learner_state(learner.state_dict(), refs)
            generators = dump_generator_states(self.built.generators, refs)
        except Unpicklable as exc:
            raise unpicklable_error(exc, learner.extra_plugins, self.built.owners, refs,
                                    when=f"after task {end.step}",
                                    kept=what_is_kept(end.run_dir, end.step),
                                    generators=self.built.generators) from exc.cause
        save_checkpoint(end.run_dir, Checkpoint(
            learner=blobs, generators=generators, step=end.step, records=end.records,
            elapsed_s=self.elapsed_s(), rng=rng_state(), **self.fields))


class ResultsFile(Observer):
    """Writes ``results.json`` once every task has finished
    (:func:`czsl.runfolder.write_results`)."""

    name = "results"

    def before_run(self, start: RunStart) -> None:
        self.run_dir = start.run_dir

    def after_run(self, results: dict[str, Any]) -> None:
        write_results(self.run_dir, results)


@contextlib.contextmanager
def timed(timings: dict[str, float], key: str) -> Iterator[None]:
    """Add the time spent in the ``with`` block to ``timings[key]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[key] = timings.get(key, 0.0) + time.perf_counter() - start
