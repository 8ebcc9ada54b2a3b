"""Multi-task: train each task on the data of every task seen so far (the upper bound).

"Multi-task" in the ClassNorm paper's continual table (Skorokhodov & Elhoseiny, ICLR
2021; ``joint`` trainer of ``universome/class-norm``): at task t the model trains on the
union of the training data of tasks 0..t, with the softmax over all seen classes, so
nothing is forgotten except through capacity. It is a replay of all past real data, done
the way Avalanche's ``Cumulative`` strategy does it: the experience's training set is
replaced by the concatenation of every training set so far.

Use it with ``[train] loss_classes = "seen"`` (the softmax over all seen classes, as the
reference does); with ``"task"`` each sample's softmax would stay within its own task.

Option ``max_iterations`` (default: none): stop each task after that many mini-batches,
through Avalanche's ``stop_training()``. The reference caps joint training at 200 (CUB)
/ 150 (SUN) iterations per task (``configs/joint.yml``); without a cap czsl trains the
scenario's epochs over the growing data, which costs about T/2 times a sequential run.
"""

from __future__ import annotations

import functools

from czsl import Component, hookimpl
from czsl.options import integer

NAME = "multitask"


@hookimpl
def czsl_components():
    """One replay: ``multitask``."""
    return [Component("replay", NAME,
                      "Multi-task upper bound: train on all data of the tasks seen so far")]


@hookimpl
def czsl_make_replay(options):
    """The cumulative-data plugin."""
    return [make_plugin(**options)]


def make_plugin(*, max_iterations=None):
    """Train on all data so far.

    :param max_iterations: mini-batches per task at most (ClassNorm: 200 CUB, 150 SUN);
        ``None`` trains the scenario's full epochs.
    """
    if max_iterations is not None:  # None: no cap
        max_iterations = integer("max_iterations", max_iterations)
    return _plugin_class()(max_iterations)


@functools.cache
def _plugin_class():
    """Built on first use: Avalanche is imported only when a run needs it."""
    from avalanche.benchmarks.utils import concat_datasets
    from avalanche.core import SupervisedPlugin

    class Cumulative(SupervisedPlugin):
        """Replaces each experience's training data by all training data so far."""

        def __init__(self, max_iterations):
            super().__init__()
            self.max_iterations = max_iterations
            self.seen = []
            self.iterations = 0

        def after_train_dataset_adaptation(self, strategy, *args, **kwargs):
            self.seen.append(strategy.adapted_dataset)
            strategy.adapted_dataset = concat_datasets(self.seen)
            self.iterations = 0

        def after_training_iteration(self, strategy, *args, **kwargs):
            self.iterations += 1
            if self.max_iterations is not None and self.iterations >= self.max_iterations:
                strategy.stop_training()

    return Cumulative
