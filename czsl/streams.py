"""Class splits -> an Avalanche benchmark, plus what the metrics need to know.

Protocols (``[protocol] name``):

``grw``
    The feature-based continual protocol of GRW (Zhang et al., ICCV 2023; also
    Tf-GCZSL, A-CZSL, DVGR): every image of the dataset pooled and split once 80/20
    into train/test with a fixed seed (``split_seed``; not stratified unless
    ``stratified = true``), classes in dataset order, CUB 20 tasks x 10 classes, SUN 15
    tasks x 47 of which, as in GRW's code, the first 14 are trained and scored (its loop
    runs over T-1 tasks; the classes of the 15th and the 12 that no task reaches stay
    unseen; ``n_tasks = 15`` runs all 15), per-class mean accuracy. On CUB every task
    is trained; the means cover the 19 steps that have unseen classes, as GRW's do.
``classnorm``
    The continual protocol of ClassNorm (Skorokhodov & Elhoseiny, ICLR 2021): CUB 10
    tasks x 20 classes, SUN 15 tasks of 47, 47, 47 and then 48 x 12, class order a random
    permutation drawn from the run's seed, per-sample accuracy. The paper trained on
    images with its own train/test split; on features we use the pooled 80/20 split.
``static``
    Static GZSL on the xlsa17 proposed split (Xian et al. 2017) as a one-task stream:
    train on ``trainval``, test on ``test_seen`` + ``test_unseen``; per-class mean
    accuracy.

In every protocol the learner trains at task t on the train images of task t's classes
only, and is tested on the *whole* test set, predicting among all classes: classes of
tasks <= t are seen, the rest unseen. That evaluation does not go through Avalanche's
per-experience test streams, which drop classes never trained on: the Avalanche benchmark
holds the training experiences only, and the test set stays with the run
(:attr:`CZSLStream.test_x`, :attr:`CZSLStream.test_y`), out of the learner's and the
plugins' reach (they see a :class:`czsl.taskview.TaskView`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
from avalanche.benchmarks.scenarios.supervised import with_classes_timeline
from avalanche.benchmarks.utils.classification_dataset import (
    _as_taskaware_supervised_classification_dataset,
)
from torch.utils.data import TensorDataset

from czsl.config import ProtocolConfig
from czsl.data.dataset import ZSLDataset
from czsl.errors import ConfigError

#: Task sizes of the published protocols, by (protocol, dataset name).
PRESET_TASK_SIZES = {
    ("grw", "CUB"): [10] * 20,
    ("grw", "SUN"): [47] * 15,
    ("classnorm", "CUB"): [20] * 10,
    ("classnorm", "SUN"): [47] * 3 + [48] * 12,
}
#: Tasks trained and scored where a protocol stops before its last task, by (protocol,
#: dataset name): GRW's code loops over T-1 tasks; on SUN the classes left over keep the
#: last trained step's unseen accuracy defined, so all 14 of its steps are averaged.
PRESET_N_TASKS = {("grw", "SUN"): 14}
#: (class order, accuracy convention) of each protocol.
PROTOCOL_DEFAULTS = {
    "grw": ("dataset", "per_class"),
    "classnorm": ("random", "per_sample"),
    "static": ("dataset", "per_class"),
}


@dataclass(frozen=True, eq=False)
class CZSLStream:
    """A continual zero-shot stream: tasks of classes, their train data, one test set.

    :param benchmark: the Avalanche benchmark of the training experiences:
        ``benchmark.train_stream[t]`` holds the train images of task t's classes
        (batches are ``(x, y, task_label)``). It holds no test data.
    :param tasks: class ids of each task, in training order.
    :param class_to_task: ``[C]`` long tensor: the task of each class, ``-1`` for a
        class no task trains (it is unseen at every step).
    :param attributes: ``[C, A]`` float tensor, every class's attributes.
    :param test_x: ``[N_test, D]`` test features (all classes).
    :param test_y: ``[N_test]`` long test labels.
    :param protocol: the resolved protocol settings.
    :param per_class: whether accuracies are per-class means (else per sample).
    :param dataset_name: the dataset's name, e.g. ``"CUB"``.
    :param dataset_label: the dataset's name, with "(semi-synthetic)" where it applies.
    :param notes: facts about this stream to print with the results.
    """

    benchmark: object
    tasks: tuple[tuple[int, ...], ...]
    class_to_task: torch.Tensor
    attributes: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    protocol: ProtocolConfig
    per_class: bool
    dataset_name: str
    dataset_label: str
    notes: tuple[str, ...] = ()

    @property
    def n_tasks(self) -> int:
        """Number of tasks ``T``."""
        return len(self.tasks)

    @property
    def n_classes(self) -> int:
        """Number of classes ``C`` (all of them, trained or not)."""
        return int(self.class_to_task.shape[0])

    def seen_mask(self, step: int) -> torch.Tensor:
        """``[C]`` bool: the classes seen after training task ``step``."""
        return (self.class_to_task >= 0) & (self.class_to_task <= step)

    def task_mask(self, step: int) -> torch.Tensor:
        """``[C]`` bool: the classes of task ``step``."""
        return self.class_to_task == step


def _pooled_split(labels: np.ndarray, fraction: float, seed: int,
                  stratified: bool) -> tuple[np.ndarray, np.ndarray]:
    """Split all images once into (train, test) indices, ``fraction`` held out."""
    rng = np.random.RandomState(seed)
    if not stratified:
        order = rng.permutation(labels.shape[0])
        n_test = int(round(fraction * labels.shape[0]))
        return np.sort(order[n_test:]), np.sort(order[:n_test])
    test = []
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        test.append(idx[:int(round(fraction * idx.size))])
    test_idx = np.sort(np.concatenate(test))
    return np.setdiff1d(np.arange(labels.shape[0]), test_idx), test_idx


def resolve_protocol(protocol: ProtocolConfig, dataset: ZSLDataset) -> ProtocolConfig:
    """Fill in the protocol's presets for this dataset (task sizes, order, accuracy).

    :raises ConfigError: if the task sizes are unknown or impossible for the dataset.
    """
    order, accuracy = PROTOCOL_DEFAULTS[protocol.name]
    sizes = list(protocol.task_sizes)
    if protocol.name == "static":
        seen = np.unique(dataset.labels[dataset.splits["trainval"]])
        if sizes and sizes != [seen.size]:
            raise ConfigError(f"protocol 'static' trains one task of the {seen.size} trainval "
                              f"classes of {dataset.name}; remove task_sizes = {sizes}")
        sizes = [int(seen.size)]
    elif not sizes:
        key = (protocol.name, dataset.name.upper())
        if key not in PRESET_TASK_SIZES:
            raise ConfigError(f"protocol {protocol.name!r} has no preset task split for "
                              f"dataset {dataset.name!r}; set [protocol] task_sizes = [...]")
        sizes = PRESET_TASK_SIZES[key]
        if not protocol.n_tasks:
            sizes = sizes[:PRESET_N_TASKS.get(key, len(sizes))]
    if protocol.n_tasks > len(sizes):
        raise ConfigError(f"[protocol] n_tasks = {protocol.n_tasks} but the task split has "
                          f"{len(sizes)} task(s); use n_tasks = 1 .. {len(sizes)}, or 0 "
                          "for the protocol's preset")
    sizes = sizes[:protocol.n_tasks or len(sizes)]
    if sum(sizes) > dataset.n_classes:
        raise ConfigError(f"[protocol] task_sizes add up to {sum(sizes)} classes but "
                          f"{dataset.label} has {dataset.n_classes}; use fewer or smaller tasks")
    return ProtocolConfig(
        name=protocol.name, task_sizes=sizes,
        class_order=protocol.class_order or order,
        accuracy=protocol.accuracy or accuracy,
        test_fraction=protocol.test_fraction, split_seed=protocol.split_seed,
        stratified=protocol.stratified, n_tasks=len(sizes))


@dataclass(frozen=True, eq=False)
class TaskSplit:
    """Which classes each task trains and which images train and test: a stream before
    its data are handed to Avalanche (numpy only, cheap).

    :param protocol: the resolved protocol settings.
    :param tasks: class ids of each task, in training order.
    :param class_to_task: ``[C]`` the task of each class, ``-1`` for a class no task trains.
    :param train_idx: indices of the training images.
    :param test_idx: indices of the test images.
    :param notes: facts about the split to print with the results.
    """

    protocol: ProtocolConfig
    tasks: tuple[tuple[int, ...], ...]
    class_to_task: np.ndarray
    train_idx: np.ndarray
    test_idx: np.ndarray
    notes: tuple[str, ...]


def split_tasks(dataset: ZSLDataset, protocol: ProtocolConfig, seed: int) -> TaskSplit:
    """Split ``dataset``'s classes into tasks and its images into train and test.

    :param dataset: the data (only its labels, splits and class count are read).
    :param protocol: the scenario's ``[protocol]``; presets are filled in here.
    :param seed: the run's seed (draws the class order where the protocol is random).
    :raises ConfigError: for an impossible task split (more classes than the dataset
        has, a task without training images, ...).
    """
    preset = (protocol.name, dataset.name.upper())
    notes = []
    if not (protocol.task_sizes or protocol.n_tasks) and preset in PRESET_N_TASKS:
        notes.append(f"the first {PRESET_N_TASKS[preset]} of the "
                     f"{len(PRESET_TASK_SIZES[preset])} tasks are trained and scored, as in "
                     f"the {protocol.name} code (protocol.n_tasks = "
                     f"{len(PRESET_TASK_SIZES[preset])} runs all)")
    protocol = resolve_protocol(protocol, dataset)
    labels = dataset.labels
    n_classes = dataset.n_classes
    if protocol.name == "static":
        train_idx = dataset.splits["trainval"]
        test_idx = np.concatenate([dataset.splits["test_seen"], dataset.splits["test_unseen"]])
        order = np.unique(labels[train_idx])
    else:
        train_idx, test_idx = _pooled_split(labels, protocol.test_fraction,
                                            protocol.split_seed, protocol.stratified)
        order = (np.random.RandomState(seed).permutation(n_classes)
                 if protocol.class_order == "random" else np.arange(n_classes))
        notes.append(f"all {labels.size} images pooled and split "
                     f"{1 - protocol.test_fraction:.0%}/{protocol.test_fraction:.0%} "
                     f"(seed {protocol.split_seed}"
                     f"{', stratified' if protocol.stratified else ''})")
    bounds = np.cumsum([0] + list(protocol.task_sizes))
    tasks = tuple(tuple(int(c) for c in order[a:b]) for a, b in zip(bounds[:-1], bounds[1:]))
    class_to_task = np.full(n_classes, -1, dtype=np.int64)
    for t, classes in enumerate(tasks):
        class_to_task[list(classes)] = t
    untrained = int((class_to_task < 0).sum())
    if untrained and protocol.name != "static":
        notes.append(f"{n_classes - untrained} of {n_classes} classes are reached by the "
                     f"{len(tasks)} tasks; the other {untrained} stay unseen at every step")
    trained = np.unique(class_to_task[labels[train_idx]])
    for t, classes in enumerate(tasks):
        if t not in trained:
            raise ConfigError(f"task {t} (classes {list(classes)[:5]}...) has no training "
                              f"images in {dataset.label}; choose another task split")
    return TaskSplit(protocol=protocol, tasks=tasks, class_to_task=class_to_task,
                     train_idx=train_idx, test_idx=test_idx, notes=tuple(notes))


def build_stream(dataset: ZSLDataset, protocol: ProtocolConfig, seed: int) -> CZSLStream:
    """Split ``dataset`` into tasks under ``protocol`` (:func:`split_tasks`) and hand each
    task's training images to Avalanche.

    :param dataset: the data.
    :param protocol: the scenario's ``[protocol]``; presets are filled in here.
    :param seed: the run's seed (draws the class order where the protocol is random).
    :raises ConfigError: for an impossible task split.
    """
    split = split_tasks(dataset, protocol, seed)
    protocol, tasks, class_to_task = split.protocol, split.tasks, split.class_to_task
    labels, train_idx, test_idx = dataset.labels, split.train_idx, split.test_idx
    features = torch.from_numpy(dataset.features)
    targets = torch.from_numpy(labels)
    train_task = class_to_task[labels[train_idx]]
    experiences = []
    for t in range(len(tasks)):
        idx = torch.from_numpy(train_idx[train_task == t])
        # Avalanche's own conversion adds task label 0, so batches are (x, y, t).
        experiences.append(_as_taskaware_supervised_classification_dataset(
            TensorDataset(features[idx], targets[idx])))
    test_sel = torch.from_numpy(np.sort(test_idx))
    # training experiences only: the test set never enters Avalanche, so nothing the
    # learner or a plugin can reach (an experience's origin_stream.benchmark) holds it
    benchmark = with_classes_timeline(benchmark_from_datasets(train=experiences))
    return CZSLStream(
        benchmark=benchmark, tasks=tasks,
        class_to_task=torch.from_numpy(class_to_task),
        attributes=torch.from_numpy(dataset.attributes),
        test_x=features[test_sel], test_y=targets[test_sel],
        protocol=protocol, per_class=protocol.accuracy == "per_class",
        dataset_name=dataset.name, dataset_label=dataset.label, notes=split.notes)
