"""The Avalanche training template that trains a zero-shot model task by task.

:class:`ZSLLearner` is an Avalanche ``SupervisedTemplate``; regularizer and replay
plugins are plain Avalanche ``SupervisedPlugin`` objects attached to it unchanged. What
it adds to the template is what zero-shot learning needs:

* while training task t the model may use only the attributes of the classes of tasks
  <= t (``set_visible_classes``); while testing, all classes;
* the training loss is a cross-entropy whose softmax runs over each sample's own
  task's classes (``loss_classes = "task"``, ClassNorm's Sequential setting) or over all
  classes seen so far (``"seen"``);
* it holds a :class:`czsl.taskview.TaskView`, never the stream: nothing a plugin can
  reach from the learner holds test data. Testing happens outside it
  (:func:`czsl.predict.predict`).

:func:`make_lr_schedule` turns ``[train] lr_step`` into Avalanche's ``LRSchedulerPlugin``.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F
from avalanche.core import SupervisedPlugin
from avalanche.training.plugins import EvaluationPlugin, LRSchedulerPlugin
from avalanche.training.templates import SupervisedTemplate
from torch import nn

from czsl.checkpoint import object_state, restore_object_state
from czsl.taskview import TaskView


class MaskedCrossEntropy(nn.Module):
    """Cross-entropy restricted to a per-sample set of classes.

    With ``over="task"`` the softmax of sample ``i`` runs over the classes of the task
    its label belongs to (ClassNorm's Sequential trainer prunes logits to the current
    task; its A-GEM trainer prunes each memory sample to its own task: both are this
    rule). With ``over="seen"`` it runs over every class the model currently scores
    (the others already have logit ``-inf``).

    :param view: the task view; its ``class_to_task`` (``-1`` for classes not visible)
        is read at every call.
    :param over: ``"task"`` or ``"seen"``.
    """

    def __init__(self, view: TaskView, over: str = "task") -> None:
        super().__init__()
        if over not in ("task", "seen"):
            raise ValueError(f"over must be 'task' or 'seen', not {over!r}")
        self.over = over
        self.view = view

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean loss of ``logits`` ``[B, C]`` against ``targets`` ``[B]``."""
        targets = targets.long()
        if self.over == "task":
            c2t = self.view.class_to_task.to(logits.device)
            same_task = c2t[None, :] == c2t[targets][:, None]  # [B, C]
            logits = logits.masked_fill(~same_task, float("-inf"))
        return F.cross_entropy(logits, targets)


def make_lr_schedule(lr_step: int, lr_gamma: float,
                     optimizer: torch.optim.Optimizer) -> list[SupervisedPlugin]:
    """The learning-rate schedule of ``[train]``, as Avalanche plugins for the learner.

    :param lr_step: epochs between two decays; 0 = no schedule (an empty list, so a
        run without one trains exactly as before schedules existed).
    :param lr_gamma: the factor of each decay.
    :param optimizer: the learner's optimizer.
    :returns: ``[]`` or one ``LRSchedulerPlugin`` around torch's ``StepLR``, stepped
        after every epoch and reset (rate and counter) after every task.
    """
    if not lr_step:
        return []
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=lr_step, gamma=lr_gamma)
    return [LRSchedulerPlugin(scheduler, reset_scheduler=True, reset_lr=True,
                              step_granularity="epoch")]


class ZSLLearner(SupervisedTemplate):
    """Trains a zero-shot model task by task.

    Built by :func:`czsl.build.make_learner`; the run calls
    :meth:`czsl.taskview.TaskView.start_task` before :meth:`train_task`.

    :param model: a model as described in :func:`czsl.hookspecs.czsl_make_model`.
    :param view: what the learner (and every plugin through it) sees of the stream.
    :param optimizer: a torch optimizer over the model's parameters.
    :param loss_classes: ``"task"`` or ``"seen"`` (see :class:`MaskedCrossEntropy`).
    :param train_mb_size: training mini-batch size.
    :param train_epochs: epochs per task.
    :param eval_mb_size: mini-batch size of Avalanche's evaluation loop (czsl's own
        test pass, :func:`czsl.predict.predict`, does not use it).
    :param device: torch device.
    :param plugins: Avalanche plugins (regularizers, replay, loggers); kept in
        :attr:`extra_plugins`, whose state :meth:`state_dict` holds.
    """

    def __init__(self, *, model: nn.Module, view: TaskView, optimizer: torch.optim.Optimizer,
                 loss_classes: str = "task", train_mb_size: int = 64, train_epochs: int = 1,
                 eval_mb_size: int = 1024, device: str | torch.device = "cpu",
                 plugins: list[SupervisedPlugin] = ()) -> None:
        self.view = view
        self.extra_plugins = list(plugins)
        with warnings.catch_warnings():
            # no Avalanche metrics or loggers: czsl.metrics computes ours from test_logits()
            warnings.filterwarnings("ignore", "No loggers specified")
            evaluator = EvaluationPlugin(loggers=[])
        super().__init__(
            model=model, optimizer=optimizer,
            criterion=MaskedCrossEntropy(view, loss_classes),
            train_mb_size=train_mb_size, train_epochs=train_epochs,
            eval_mb_size=eval_mb_size, device=device,
            plugins=list(plugins), evaluator=evaluator)

    def _before_training_exp(self, **kwargs):
        self.model.set_visible_classes(self.view.visible.to(self.device))
        super()._before_training_exp(**kwargs)

    def train_task(self, step: int) -> None:
        """Train on task ``step`` of the stream (Avalanche's ``train``).

        :raises ValueError: if the view has not started task ``step``.
        """
        if self.view.step != step:
            raise ValueError(f"the view is at task {self.view.step}, not {step}: call "
                             "view.start_task(step, ...) first")
        self.train(self.view.experience(step), eval_streams=[])

    def state_dict(self) -> dict[str, Any]:
        """Everything training has changed, to resume after a task (:mod:`czsl.checkpoint`).

        Call it between tasks. The values are live objects, to be pickled at once:

        * ``model``, ``optimizer``: their ``state_dict()``;
        * ``clock``: Avalanche's counters (EWC reads the task counter from it, the loss
          logger its iteration);
        * ``plugins``: the pickling state (``__getstate__()``) of each of
          :attr:`extra_plugins`, in order.
        """
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "clock": object_state(self.clock),
                "plugins": [object_state(p) for p in self.extra_plugins]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned, into a learner built the same way.

        :raises ValueError: if the number of plugins differs.
        """
        if len(state["plugins"]) != len(self.extra_plugins):
            raise ValueError(f"the state has {len(state['plugins'])} plugin(s), the learner "
                             f"{len(self.extra_plugins)}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        restore_object_state(self.clock, state["clock"])
        for plugin, plugin_state in zip(self.extra_plugins, state["plugins"]):
            restore_object_state(plugin, plugin_state)
        # Avalanche resets the optimizer's state (Adam's moments) the first time a
        # learner trains, when it has no parameter map yet
        # (BatchObservation.check_model_and_optimizer); this learner has trained before.
        self.optimized_param_id = dict(self.model.named_parameters())
