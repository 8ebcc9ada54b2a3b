"""What happens after each task: observers of a run.

After task ``t`` has trained and the model has been tested, the run calls
``after_task(end)`` of each of its observers, in order, with a :class:`TaskEnd`; once
every task has finished it calls ``after_run(results)``; ``close()`` always. czsl's own
are, in this order:

1. :class:`DivergenceCheck` — stops a run whose test logits hold NaN or infinity;
2. :class:`StepLogger` — the step's scalars and figures in TensorBoard;
3. :class:`ProgressBar` — the bar on stderr;
4. :class:`Checkpointer` — the checkpoint of the task (the commit point of a resume).

A user's observers (``run_scenario(..., observers=[...])``) come after them, so they see
a step only once it is saved. The run times every observer (:attr:`Observer.name` ->
seconds in :attr:`czsl.results.RunResult.timings`), so a benchmark needs no patching to
break a run's time down.
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
from czsl.errors import DivergenceError

if TYPE_CHECKING:  # pragma: no cover - type names only
    from czsl.build import BuiltRun


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


class StepLogger(Observer):
    """Logs each step's metrics and figures to TensorBoard through a run logger, and
    what the run's generators logged during the task.

    :param logger: the run's TensorBoard logger (``log_step(step, run, curve)``,
        ``log_generator(name, value, index)``).
    """

    name = "tensorboard"

    def __init__(self, logger: Any) -> None:
        self.logger = logger

    def after_task(self, end: TaskEnd) -> None:
        self.logger.log_step(end.step, end.metrics, end.curve)
        # what the generators logged while this task trained (czsl.generators)
        for generator in getattr(end.built, "generators", ()):
            for name, index, value in generator.losses.drain():
                self.logger.log_generator(name, value, index)


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
    """Saves the run's state after each task (:mod:`czsl.checkpoint`).

    :param save: ``save(end)`` writes the checkpoint of ``end.step``.
    """

    name = "checkpoint"

    def __init__(self, save: Callable[[TaskEnd], None]) -> None:
        self.save = save

    def after_task(self, end: TaskEnd) -> None:
        self.save(end)


@contextlib.contextmanager
def timed(timings: dict[str, float], key: str) -> Iterator[None]:
    """Add the time spent in the ``with`` block to ``timings[key]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[key] = timings.get(key, 0.0) + time.perf_counter() - start
