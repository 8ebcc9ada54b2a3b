"""Task streams: class-to-task maps, Avalanche experiences, protocols, no leakage."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from czsl import metrics
from czsl.config import ProtocolConfig
from czsl.data.synthetic import make_synthetic
from czsl.errors import ConfigError
from czsl.streams import build_stream


@pytest.fixture(scope="module")
def tiny():
    """9 classes, 8-d features, 4-d attributes, 3 unseen classes in the PS split."""
    return make_synthetic(n_classes=9, n_attributes=4, n_features=8, samples_per_class=20,
                          n_unseen=3, seed=1)


def _train_labels(stream, step):
    return {int(y) for _, y, _ in stream.benchmark.train_stream[step].dataset}


def test_grw_stream_maps_classes_to_tasks_in_dataset_order(tiny):
    stream = build_stream(tiny, ProtocolConfig(name="grw", task_sizes=[3, 3, 3]), seed=0)
    assert stream.tasks == ((0, 1, 2), (3, 4, 5), (6, 7, 8))
    assert stream.class_to_task.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert stream.per_class and stream.protocol.class_order == "dataset"
    assert len(stream.benchmark.train_stream) == 3
    for step in range(3):
        # each experience trains on exactly its task's classes: no unseen-class leakage
        assert _train_labels(stream, step) == set(stream.tasks[step])
        assert stream.seen_mask(step).tolist() == [c // 3 <= step for c in range(9)]
        batch = next(iter(torch.utils.data.DataLoader(
            stream.benchmark.train_stream[step].dataset, batch_size=4)))
        assert len(batch) == 3 and batch[0].shape == (4, 8)


def test_pooled_split_keeps_every_class_in_the_test_set(tiny):
    stream = build_stream(tiny, ProtocolConfig(name="grw", task_sizes=[3, 3, 3],
                                               stratified=True), seed=0)
    test_classes = set(stream.test_y.tolist())
    assert test_classes == set(range(9)), "a class was dropped from the test set"
    n_train = sum(len(stream.benchmark.train_stream[t].dataset) for t in range(3))
    assert n_train + stream.test_y.numel() == tiny.labels.size
    # stratified: 20 % of each class's 20 images
    assert np.bincount(stream.test_y.numpy()).tolist() == [4] * 9
    # the test set stays out of Avalanche: nothing a plugin reaches holds it
    assert not hasattr(stream.benchmark, "test_stream")
    assert stream.test_x.shape[0] == stream.test_y.numel()


def test_untrained_classes_stay_unseen_and_are_reported(tiny):
    stream = build_stream(tiny, ProtocolConfig(name="grw", task_sizes=[4, 4]), seed=0)
    assert stream.class_to_task.tolist() == [0] * 4 + [1] * 4 + [-1]
    assert not bool(stream.seen_mask(1)[8])
    assert any("8 of 9 classes" in note for note in stream.notes)


def test_classnorm_protocol_draws_class_order_from_the_seed(tiny):
    proto = ProtocolConfig(name="classnorm", task_sizes=[3, 3, 3])
    a = build_stream(tiny, proto, seed=1)
    b = build_stream(tiny, proto, seed=1)
    c = build_stream(tiny, proto, seed=2)
    assert a.tasks == b.tasks and a.tasks != c.tasks
    assert sorted(sum(a.tasks, ())) == list(range(9))
    assert not a.per_class and a.protocol.accuracy == "per_sample"
    for step in range(3):
        assert _train_labels(a, step) == set(a.tasks[step])


def test_static_protocol_is_one_task_on_the_proposed_split(tiny):
    stream = build_stream(tiny, ProtocolConfig(name="static"), seed=0)
    seen = set(np.unique(tiny.labels[tiny.splits["trainval"]]).tolist())
    assert stream.n_tasks == 1 and set(stream.tasks[0]) == seen
    assert _train_labels(stream, 0) == seen
    expected = np.sort(np.concatenate([tiny.splits["test_seen"], tiny.splits["test_unseen"]]))
    assert stream.test_y.tolist() == tiny.labels[expected].tolist()
    unseen = set(range(9)) - seen
    assert {c for c in range(9) if stream.class_to_task[c] < 0} == unseen


def test_presets_and_impossible_splits(tiny):
    with pytest.raises(ConfigError, match="no preset task split for dataset 'synthetic'"):
        build_stream(tiny, ProtocolConfig(name="grw"), seed=0)
    with pytest.raises(ConfigError, match="add up to 12 classes but synthetic"):
        build_stream(tiny, ProtocolConfig(name="grw", task_sizes=[4, 4, 4]), seed=0)
    with pytest.raises(ConfigError, match="remove task_sizes"):
        build_stream(tiny, ProtocolConfig(name="static", task_sizes=[2, 2]), seed=0)


def test_grw_on_sun_trains_and_scores_the_first_14_of_15_tasks():
    """GRW's code loops over T-1 tasks; czsl's grw preset does the same on SUN only."""
    sun = make_synthetic(n_classes=717, n_attributes=2, n_features=2, samples_per_class=5,
                         n_unseen=72, seed=0)
    sun = dataclasses.replace(sun, name="SUN")
    stream = build_stream(sun, ProtocolConfig(name="grw"), seed=0)
    assert stream.n_tasks == 14 and stream.tasks[-1] == tuple(range(13 * 47, 14 * 47))
    assert stream.protocol.task_sizes == [47] * 14 and stream.protocol.n_tasks == 14
    assert int((stream.class_to_task < 0).sum()) == 717 - 14 * 47
    assert len(stream.benchmark.train_stream) == 14
    assert any("first 14 of the 15 tasks" in note for note in stream.notes)
    # every step keeps unseen classes, so the means run over all 14 steps
    logits = torch.randn(14, stream.test_y.numel(), 717)
    run = metrics.run_metrics(logits, stream.test_y, stream.class_to_task, per_class=True)
    assert all(ua is not None for ua in run.to_dict()["steps"]["UA"])

    full = build_stream(sun, ProtocolConfig(name="grw", n_tasks=15), seed=0)
    assert full.n_tasks == 15 and not any("first 14" in note for note in full.notes)
    # a resolved scenario (task sizes written out) resolves to itself
    again = build_stream(sun, ProtocolConfig(name="grw", task_sizes=[47] * 14), seed=0)
    assert again.tasks == stream.tasks
    five = build_stream(sun, ProtocolConfig(name="grw", n_tasks=5), seed=0)
    assert five.tasks == stream.tasks[:5]
    with pytest.raises(ConfigError, match="n_tasks = 16 but the task split has 15"):
        build_stream(sun, ProtocolConfig(name="grw", n_tasks=16), seed=0)

    cub = dataclasses.replace(make_synthetic(n_classes=200, n_attributes=2, n_features=2,
                                             samples_per_class=5, n_unseen=50, seed=0),
                              name="CUB")
    assert build_stream(cub, ProtocolConfig(name="grw"), seed=0).n_tasks == 20
