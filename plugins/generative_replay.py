"""Generative replay: a conditional feature generator stands in for the past tasks' data.

At task t the scenario's ``[generator]`` first synthesises ``replay_per_class`` features
for every class of tasks < t from their attributes (with its state after task t-1),
then trains on the real features of task t plus those replayed features, so it keeps
generating the old classes. The classifier trains on the real features of task t plus
the same replayed features (they are concatenated to the experience's training set,
as Avalanche's ``Cumulative`` strategy concatenates real data). This is the feature
replay of the CZSL generative methods (GRW, Zhang et al., ICCV 2023; DVGR; Tf-GCZSL,
Gautam et al. 2021), with the generator a plugin of its own: any generator that keeps
the contract of :func:`czsl.hookspecs.czsl_make_generator` works.

Inductive by default: only the attributes of classes of tasks <= t are ever read
before test time. With ``semantic_transductive = true`` the classifier also trains on
features synthesised for the classes not seen yet, from their attributes, as Tf-GCZSL
and DVGR do; such runs say ``"semantic_transductive": true`` in ``results.json``.

Use it with ``[train] loss_classes = "seen"`` (the softmax over every class with
training data, replayed ones included); that is the scenario's choice, not forced.
"""

from __future__ import annotations

import functools

from czsl import Component, hookimpl
from czsl.options import boolean, integer

NAME = "generative_replay"


@hookimpl
def czsl_components():
    """One replay: ``generative_replay``."""
    return [Component("replay", NAME, "replay of past classes' features synthesised by "
                      "the scenario's [generator] (GRW, DVGR, Tf-GCZSL)")]


@hookimpl
def czsl_make_replay(options, stream, make_generator):
    """The generative replay plugin around the scenario's generator."""
    return [make_plugin(stream, make_generator, **options)]


def make_plugin(stream, make_generator, *, replay_per_class=300,
                semantic_transductive=False):
    """Generative replay.

    :param stream: the task view (:class:`czsl.taskview.TaskView`).
    :param make_generator: builds the generator (see
        :func:`czsl.hookspecs.czsl_make_generator`); called once the options are checked.
    :param replay_per_class: features synthesised per past class at each task
        (f-CLSWGAN synthesises 300 per class on CUB).
    :param semantic_transductive: also synthesise features of the classes not seen yet
        for the classifier (uses their attributes during training).
    """
    replay_per_class = integer("replay_per_class", replay_per_class)
    semantic_transductive = boolean("semantic_transductive", semantic_transductive)
    if semantic_transductive:  # the view then reveals every class's attributes
        stream.declare_transductive()
    return _plugin_class()(stream, make_generator(), replay_per_class, semantic_transductive)


def task_features(dataset):
    """All ``(x [N, D], y [N])`` of an Avalanche dataset with ``(x, y, t)`` items."""
    import torch

    xs, ys = zip(*((item[0], item[1]) for item in dataset))
    return torch.stack(xs), torch.as_tensor(ys, dtype=torch.long)


@functools.cache
def _plugin_class():
    """Built on first use: Avalanche is imported only when a run needs it."""
    import torch
    from avalanche.benchmarks.utils import concat_datasets
    from avalanche.benchmarks.utils.classification_dataset import (
        _as_taskaware_supervised_classification_dataset,
    )
    from avalanche.core import SupervisedPlugin
    from torch.utils.data import TensorDataset

    class GenerativeReplay(SupervisedPlugin):
        """Trains the generator on each task, and replays its features to the classifier."""

        def __init__(self, stream, generator, replay_per_class, semantic_transductive):
            super().__init__()
            self.stream = stream
            self.generator = generator
            self.replay_per_class = replay_per_class
            self.semantic_transductive = semantic_transductive

        def _synthesise(self, classes, device):
            """``replay_per_class`` features ``[K * n, D]`` and labels of ``classes``."""
            n = self.replay_per_class
            attrs = self.stream.attributes_of(classes).to(device)  # [K, A]
            return self.generator.sample(attrs, n), classes.repeat_interleave(n)

        def after_train_dataset_adaptation(self, strategy, *args, **kwargs):
            device = strategy.device
            past = self.stream.past_classes()  # [P] class ids
            x, y = task_features(strategy.adapted_dataset)  # real features of task t
            x_old, y_old = self._synthesise(past, device) if len(past) else (
                x.new_zeros((0, x.shape[1])).to(device), y.new_zeros(0))
            # the generator learns task t without forgetting: real new + replayed old
            x_fit = torch.cat([x.to(device).float(), x_old])
            y_fit = torch.cat([y, y_old.cpu()])
            self.generator.fit(x_fit, self.stream.attributes_of(y_fit).to(device))
            extra = [(x_old, y_old)]
            if self.semantic_transductive:
                unseen = self.stream.hidden_classes()
                if len(unseen):
                    extra.append(self._synthesise(unseen, device))
            x_syn = torch.cat([e[0] for e in extra]).cpu()
            y_syn = torch.cat([e[1] for e in extra]).cpu()
            if len(y_syn):
                replayed = _as_taskaware_supervised_classification_dataset(
                    TensorDataset(x_syn.to(x.dtype), y_syn))
                strategy.adapted_dataset = concat_datasets([strategy.adapted_dataset,
                                                            replayed])

        def before_training_exp(self, strategy, *args, **kwargs):
            if self.semantic_transductive:
                # the classifier trains on synthesised unseen classes too: show them
                strategy.model.set_visible_classes(torch.ones(
                    self.stream.n_classes, dtype=torch.bool, device=strategy.device))

    return GenerativeReplay
