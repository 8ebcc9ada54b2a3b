"""What plugins and the learner may see of a stream: :class:`TaskView`.

czsl is inductive by construction. A regularizer or replay factory receives a
:class:`TaskView` (as its ``stream`` argument), and the learner that Avalanche hands to
every plugin callback holds one too. A view holds

* facts about the stream: dataset name, number of tasks, classes, attributes, the size
  of each task;
* the current task (:attr:`TaskView.step`) and its training experience (Avalanche's
  ``strategy.experience`` while it trains);
* the classes visible so far (the tasks ``<= step``), their task and their attributes.

It never holds test features or labels (they stay with the run, which tests the model
outside the learner), and it gets the attributes of a task's classes only when that
task starts: before then they are not in it at all. A plugin that needs the attributes
of classes not yet visible (transductive generative replay) calls
:meth:`TaskView.declare_transductive` in its factory; every class is then revealed at the
first task and ``results.json`` says ``"semantic_transductive": true``.

The model is the one component that gets every class's attributes (``czsl_make_model``):
it must score unseen classes at test time. While training it may use only the visible
ones (``set_visible_classes``); :class:`czsl.models.AttributeModel` enforces that by
never embedding the rows of hidden classes.
"""

from __future__ import annotations

from typing import Any

import torch


class TaskView:
    """A stream as a plugin may see it at the current task.

    Built by :func:`czsl.build.build_run` from a :class:`czsl.streams.CZSLStream`; the
    run calls :meth:`start_task` before each task. Plugins only read it.

    :param dataset_name: e.g. ``"CUB"``.
    :param task_sizes: number of classes of each task, in training order.
    :param n_classes: number of classes ``C`` (trained or not).
    :param n_attributes: attribute dimension ``A``.
    :param train_experiences: the Avalanche training experiences, one per task.
    """

    def __init__(self, *, dataset_name: str, task_sizes: tuple[int, ...], n_classes: int,
                 n_attributes: int, train_experiences: Any) -> None:
        self.dataset_name = dataset_name
        self.task_sizes = tuple(int(n) for n in task_sizes)
        self.n_classes = int(n_classes)
        self.n_attributes = int(n_attributes)
        self.semantic_transductive = False
        self.step = -1
        self._experiences = train_experiences
        # -1: not visible (yet, or never trained); rows of hidden classes are zero
        self._class_to_task = torch.full((self.n_classes,), -1, dtype=torch.long)
        self._attributes = torch.zeros(self.n_classes, self.n_attributes)
        self._known = torch.zeros(self.n_classes, dtype=torch.bool)

    @property
    def n_tasks(self) -> int:
        """Number of tasks ``T``."""
        return len(self.task_sizes)

    def declare_transductive(self) -> None:
        """Ask for the attributes of every class, seen or not, from the first task on.

        Call it from a factory (before training). The run is then *semantic-
        transductive*: its results say so and are not comparable with inductive ones.
        """
        self.semantic_transductive = True

    def start_task(self, step: int, tasks: tuple[tuple[int, ...], ...],
                   attributes: torch.Tensor) -> None:
        """Make the classes of tasks up to ``step`` visible (called by the run with the
        stream's tasks and attributes, which the view does not keep; never by a plugin).

        A ``step`` before the current one starts the stream over (a new learner on the
        same view, as tests do): only the tasks up to ``step`` are visible again.

        :param step: the task about to train.
        :param tasks: class ids of every task.
        :param attributes: ``[C, A]`` attributes of every class; only the rows of
            visible classes are copied (all of them in a transductive run).
        """
        if not 0 <= step < self.n_tasks:
            raise ValueError(f"task {step} is not a task of this {self.n_tasks}-task stream")
        if step < self.step:
            self.step = -1
            self._class_to_task.fill_(-1)
            self._attributes.zero_()
        for t in range(self.step + 1, step + 1):
            self._class_to_task[list(tasks[t])] = t
        known = (torch.ones_like(self._known) if self.semantic_transductive
                 else self._class_to_task >= 0)
        self._attributes[known] = attributes[known].float()
        self._known = known
        self.step = max(self.step, step)

    @property
    def visible(self) -> torch.Tensor:
        """``[C]`` bool: the classes of tasks ``<= step``."""
        return self._class_to_task >= 0

    @property
    def class_to_task(self) -> torch.Tensor:
        """``[C]`` long: the task of each visible class, ``-1`` for the others."""
        return self._class_to_task.clone()

    def classes(self, step: int) -> torch.Tensor:
        """Class ids ``[K]`` of task ``step`` (``step <= self.step``)."""
        if step > self.step:
            raise ValueError(f"task {step} has not started (the current task is {self.step})")
        return torch.nonzero(self._class_to_task == step)[:, 0]

    def past_classes(self) -> torch.Tensor:
        """Class ids ``[P]`` of the tasks before the current one."""
        c2t = self._class_to_task
        return torch.nonzero((c2t >= 0) & (c2t < self.step))[:, 0]

    def hidden_classes(self) -> torch.Tensor:
        """Class ids of the classes not visible at the current task (their attributes
        are known only in a transductive run)."""
        return torch.nonzero(self._class_to_task < 0)[:, 0]

    def attributes_of(self, classes: torch.Tensor) -> torch.Tensor:
        """``[K, A]`` float attributes of ``classes`` ``[K]`` (long).

        :raises PermissionError: if one of them is not visible yet and the run is not
            transductive (see :meth:`declare_transductive`).
        """
        classes = torch.as_tensor(classes, dtype=torch.long).cpu()
        if not bool(self._known[classes].all()):
            hidden = classes[~self._known[classes]].tolist()
            raise PermissionError(
                f"the attributes of classes {hidden[:5]} are not visible at task "
                f"{self.step}; an inductive plugin may use only the classes of tasks up "
                "to the current one (a transductive one calls declare_transductive() in "
                "its factory)")
        return self._attributes[classes]

    def experience(self, step: int) -> Any:
        """The Avalanche training experience of task ``step``."""
        return self._experiences[step]

