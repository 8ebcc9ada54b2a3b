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

How the classifier gets the replayed features (``mix``):

* ``"concat"`` (default): they are concatenated to the task's training set, so an epoch
  runs over ``N_t + replay_per_class * P`` samples and its cost grows with the number
  ``P`` of past classes;
* ``"batch"``: every mini-batch of the task's real features is joined by
  ``batch_size_mem`` (default: the training mini-batch size) features drawn from the
  replayed ones, with Avalanche's ``ReplayDataLoader``, exactly as ``feature_replay``
  joins its buffer of real features: an epoch runs over the task's real features
  only, its cost independent of ``P``.

The generator's own fit set holds ``generator_replay_per_class`` (default:
``replay_per_class``) of the replayed features per past class.

GRW's code (``wx-zhang/IGCZSL``, ``main.py``) replays *real* features: ``real_buffer =
5000`` keeps GRW's buffer (after each task, every seen class keeps its first
``real_buffer // seen classes`` training features, GRW's rule) and the generator then
fits on the task's real features plus the buffer. ``to_classifier`` says what the
classifier gets: ``"generated"`` features (default), the ``"real"`` buffer only (GRW as
its code runs: its random-walk losses on the classifier are computed but never stepped,
so only the generator learns from the walk; the generator's features reach GRW's
classifier only through one adversarial term of its loss, the log of their mean cosine
to their class embeddings, which czsl does not reproduce), or ``"both"`` (the
walk-trained generator's features are replayed to the classifier beside the buffer).

Use it with ``[train] loss_classes = "seen"`` (the softmax over every class with
training data, replayed ones included) or ``"task"`` (each sample's softmax within its
own task's classes); that is the scenario's choice, not forced. With generated
features only, ``"seen"`` lets the classifier learn to tell generated old features
from real new ones, which forgets the old classes when the generator is imperfect
(``benchmarks/generative_replay.md``); ``scenarios/cub_czsl_generative_replay.toml``
uses ``"task"``.
"""

from __future__ import annotations

import functools

from czsl import Component, hookimpl
from czsl.options import OptionError, boolean, choice, integer

NAME = "generative_replay"
MIXES = ("concat", "batch")
TO_CLASSIFIER = ("generated", "real", "both")


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
                semantic_transductive=False, mix="concat", batch_size_mem=None,
                generator_replay_per_class=None, real_buffer=0, to_classifier="generated"):
    """Generative replay.

    :param stream: the task view (:class:`czsl.taskview.TaskView`).
    :param make_generator: builds the generator (see
        :func:`czsl.hookspecs.czsl_make_generator`); called once the options are checked.
    :param replay_per_class: features synthesised per past class at each task
        (f-CLSWGAN synthesises 300 per class on CUB).
    :param semantic_transductive: also synthesise features of the classes not seen yet
        for the classifier (uses their attributes during training).
    :param mix: ``"concat"`` or ``"batch"``: how the classifier gets the replayed
        features (see the module docstring).
    :param batch_size_mem: with ``mix = "batch"``, replayed features joined to each
        mini-batch; ``None``: the training mini-batch size.
    :param generator_replay_per_class: replayed features per past class in the
        generator's fit set (at most ``replay_per_class``); ``None``: ``replay_per_class``.
    :param real_buffer: GRW's buffer of real features (0: none): after each task every
        seen class keeps its first ``real_buffer // seen classes`` training features; the
        generator then fits on the task's features plus the buffer instead of its own
        replay.
    :param to_classifier: what the classifier is replayed: ``"generated"`` features,
        the ``"real"`` buffer only (GRW's code: the generator never reaches the
        classifier), or ``"both"``.
    """
    replay_per_class = integer("replay_per_class", replay_per_class)
    semantic_transductive = boolean("semantic_transductive", semantic_transductive)
    mix = choice("mix", mix, MIXES)
    if batch_size_mem is not None:
        batch_size_mem = integer("batch_size_mem", batch_size_mem)
    if generator_replay_per_class is None:
        generator_replay_per_class = replay_per_class
    generator_replay_per_class = integer("generator_replay_per_class",
                                         generator_replay_per_class, at_least=0)
    if generator_replay_per_class > replay_per_class:
        raise OptionError("generator_replay_per_class", f"must be at most replay_per_class "
                                                        f"({replay_per_class}), got "
                                                        f"{generator_replay_per_class}")
    if semantic_transductive:  # the view then reveals every class's attributes
        stream.declare_transductive()
    real_buffer = integer("real_buffer", real_buffer, at_least=0)
    to_classifier = choice("to_classifier", to_classifier, TO_CLASSIFIER)
    if to_classifier != "generated" and not real_buffer:
        raise OptionError("to_classifier", f"{to_classifier!r} replays the real buffer: "
                                           "set real_buffer (GRW: 5000) or use 'generated'")
    return _plugin_class()(stream, make_generator(), replay_per_class, semantic_transductive,
                           mix, batch_size_mem, generator_replay_per_class, real_buffer,
                           to_classifier)


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
    from avalanche.benchmarks.utils.data_loader import ReplayDataLoader
    from avalanche.benchmarks.utils.classification_dataset import (
        _as_taskaware_supervised_classification_dataset,
    )
    from avalanche.core import SupervisedPlugin
    from torch.utils.data import TensorDataset

    class GenerativeReplay(SupervisedPlugin):
        """Trains the generator on each task, and replays its features to the classifier."""

        def __init__(self, stream, generator, replay_per_class, semantic_transductive,
                     mix="concat", batch_size_mem=None, generator_replay_per_class=None,
                     real_buffer=0, to_classifier="generated"):
            super().__init__()
            self.stream = stream
            self.generator = generator
            self.replay_per_class = replay_per_class
            self.semantic_transductive = semantic_transductive
            self.mix = mix
            self.batch_size_mem = batch_size_mem
            self.generator_replay_per_class = (replay_per_class if generator_replay_per_class
                                               is None else generator_replay_per_class)
            self.real_buffer = real_buffer
            self.to_classifier = to_classifier
            self.buffer_x = self.buffer_y = None  # GRW's buffer of real features [M, D], [M]
            self.task = None  # the task's real (x, y) until the buffer takes them
            self.replayed = None  # with mix = "batch": this task's replayed dataset

        def __setstate__(self, state):  # checkpoints written before these options existed
            for key, value in (("mix", "concat"), ("batch_size_mem", None),
                               ("generator_replay_per_class", state["replay_per_class"]),
                               ("real_buffer", 0), ("to_classifier", "generated"),
                               ("buffer_x", None), ("buffer_y", None), ("task", None),
                               ("replayed", None)):
                state.setdefault(key, value)
            self.__dict__.update(state)

        def _synthesise(self, classes, device):
            """``replay_per_class`` features ``[K * n, D]`` and labels of ``classes``."""
            n = self.replay_per_class
            attrs = self.stream.attributes_of(classes).to(device)  # [K, A]
            return self.generator.sample(attrs, n), classes.repeat_interleave(n)

        def after_train_dataset_adaptation(self, strategy, *args, **kwargs):
            device = strategy.device
            past = self.stream.past_classes()  # [P] class ids
            x, y = task_features(strategy.adapted_dataset)  # real features of task t
            self.task = (x, y) if self.real_buffer else None  # for the buffer, after it
            generated = self.to_classifier != "real" or not self.real_buffer
            empty = (x.new_zeros((0, x.shape[1])).to(device), y.new_zeros(0))
            # the generator's replay of the past, with its state after task t-1
            x_old, y_old = self._synthesise(past, device) if len(past) and generated \
                else empty
            # the generator learns task t without forgetting: real new + the past, its own
            # replay or, with a real buffer, the buffer's real features (as GRW's code)
            if self.real_buffer:
                x_gen, y_gen = ((self.buffer_x.to(device), self.buffer_y)
                                if self.buffer_x is not None else empty)
            else:
                x_gen, y_gen = x_old, y_old
                if self.generator_replay_per_class < self.replay_per_class:  # first k each
                    keep = (torch.arange(len(y_old)) % self.replay_per_class
                            < self.generator_replay_per_class)
                    x_gen, y_gen = x_old[keep.to(x_old.device)], y_old[keep.to(y_old.device)]
            x_fit = torch.cat([x.to(device).float(), x_gen.float()])
            y_fit = torch.cat([y, y_gen.cpu()])
            self.generator.fit(x_fit, self.stream.attributes_of(y_fit).to(device))
            extra = [(x_old, y_old)] if generated else []
            if self.to_classifier != "generated" and self.buffer_x is not None:
                extra.append((self.buffer_x, self.buffer_y))
            if self.semantic_transductive:
                unseen = self.stream.hidden_classes()
                if len(unseen):
                    extra.append(self._synthesise(unseen, device))
            x_syn = torch.cat([e[0].cpu().to(x.dtype) for e in extra] or [empty[0].cpu()])
            y_syn = torch.cat([e[1].cpu() for e in extra] or [empty[1]])
            self.replayed = None
            if len(y_syn):
                replayed = _as_taskaware_supervised_classification_dataset(
                    TensorDataset(x_syn, y_syn))
                if self.mix == "batch":
                    self.replayed = replayed  # joined to each mini-batch, below
                else:
                    strategy.adapted_dataset = concat_datasets([strategy.adapted_dataset,
                                                                replayed])

        def after_training_exp(self, strategy, *args, **kwargs):
            if not self.real_buffer or self.task is None:
                return
            # GRW's update: each seen class keeps its first real_buffer // classes features
            x, y = self.task
            self.task = None
            if self.buffer_x is not None:
                x, y = torch.cat([self.buffer_x, x.cpu()]), torch.cat([self.buffer_y, y])
            classes = y.unique()
            k = self.real_buffer // len(classes)
            keep = torch.cat([(y == c).nonzero()[:k, 0] for c in classes.tolist()])
            self.buffer_x, self.buffer_y = x[keep].clone(), y[keep].clone()

        def before_training_exp(self, strategy, *args, num_workers=0, shuffle=True,
                                drop_last=False, **kwargs):
            if self.replayed is not None:  # as Avalanche's ReplayPlugin joins its buffer
                strategy.dataloader = ReplayDataLoader(
                    strategy.adapted_dataset, self.replayed, oversample_small_tasks=True,
                    batch_size=strategy.train_mb_size,
                    batch_size_mem=self.batch_size_mem or strategy.train_mb_size,
                    num_workers=num_workers, shuffle=shuffle, drop_last=drop_last)
                self.replayed = None  # not kept in the checkpoint
            if self.semantic_transductive:
                # the classifier trains on synthesised unseen classes too: show them
                strategy.model.set_visible_classes(torch.ones(
                    self.stream.n_classes, dtype=torch.bool, device=strategy.device))

    return GenerativeReplay
