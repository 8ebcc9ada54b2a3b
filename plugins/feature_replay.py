"""Feature replay: a class-balanced buffer of real features of past classes.

After each task, the buffer keeps an equal share of ``mem_size`` for every class seen
so far (random samples of its training features); while training a later task every
mini-batch is joined by a mini-batch drawn from the buffer. This is Avalanche's
``ReplayPlugin`` with its ``ClassBalancedBuffer(adaptive_size=True)``, attached
unchanged. GRW (Zhang et al., ICCV 2023) keeps 5,000 features, the default here.

Use it with ``[train] loss_classes = "seen"``: with ``"task"`` each replayed sample's
softmax stays within its own task's classes (as A-GEM's reference loss does), which
does not teach the model to tell past classes from the current ones.
"""

from __future__ import annotations

from czsl import Component, hookimpl
from czsl.options import integer

NAME = "feature_replay"


@hookimpl
def czsl_components():
    """One replay: ``feature_replay``."""
    return [Component("replay", NAME, "class-balanced buffer of real past features "
                      "(Avalanche ReplayPlugin + ClassBalancedBuffer; GRW keeps 5,000)")]


@hookimpl
def czsl_make_replay(options):
    """Avalanche's ``ReplayPlugin`` with a class-balanced buffer."""
    return [make_plugin(**options)]


def make_plugin(*, mem_size=5000, batch_size_mem=None):
    """The replay plugin.

    :param mem_size: features kept in all (GRW: 5,000), shared equally by the classes
        seen so far.
    :param batch_size_mem: buffer samples added to each mini-batch; ``None``: the
        training mini-batch size.
    """
    mem_size = integer("mem_size", mem_size)
    if batch_size_mem is not None:  # None: the training mini-batch size
        batch_size_mem = integer("batch_size_mem", batch_size_mem)
    from avalanche.training.plugins import ReplayPlugin
    from avalanche.training.storage_policy import ClassBalancedBuffer

    return ReplayPlugin(mem_size=mem_size, batch_size_mem=batch_size_mem,
                        storage_policy=ClassBalancedBuffer(max_size=mem_size,
                                                           adaptive_size=True))
