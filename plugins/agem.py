"""A-GEM: project each gradient so it does not increase the loss on an episodic memory.

A small memory keeps training samples of past tasks. Before each update the gradient
``g`` of the current mini-batch is compared with the gradient ``g_ref`` of a random
memory sample; if ``g . g_ref < 0`` it is replaced by ``g - (g . g_ref / ||g_ref||^2) g_ref``
(Chaudhry et al., "Efficient Lifelong Learning with A-GEM", ICLR 2019, eq. 11). This is
Avalanche's own ``AGEMPlugin``, attached unchanged.

Defaults are the ClassNorm paper's (``universome/class-norm``, ``configs/agem.yml``): 10
memory samples per class (5 on SUN) and a reference gradient from 128 memory samples.
The reference loss is czsl's training loss, whose softmax runs over each sample's own
task's classes: the reference code masks memory samples the same way.

Differences from the reference code, documented rather than patched: Avalanche's memory
holds ``patterns_per_experience`` random samples *per task*, not per class; czsl sets it to
``samples_per_class`` times the size of the largest task, so the memory has the reference
size and is class-balanced in expectation, not exactly. The reference code also fills
each task's memory twice by a quirk (up to 2x the samples); czsl does not.
"""

from __future__ import annotations

from czsl import Component, hookimpl
from czsl.options import OptionError, integer

NAME = "agem"


@hookimpl
def czsl_components():
    """One regularizer: ``agem``."""
    return [Component("regularizer", NAME,
                      "A-GEM, Avalanche's AGEMPlugin (Chaudhry et al., ICLR 2019)")]


@hookimpl
def czsl_make_regularizer(options, stream):
    """Avalanche's ``AGEMPlugin`` sized from the stream's tasks."""
    plugin = make_plugin(max(stream.task_sizes),
                         dataset=stream.dataset_name, **options)
    past = stream.n_tasks - 1  # Avalanche draws sample_size // past_tasks from each
    if plugin.sample_size < past:
        raise OptionError("sample_size", f"must be at least {past} on this "
                          f"{stream.n_tasks}-task stream (each reference gradient takes "
                          f"sample_size // past tasks samples from every past task's "
                          f"memory), got {plugin.sample_size}")
    return [plugin]


def default_samples_per_class(dataset):
    """ClassNorm's memory size per class: 5 on SUN, 10 elsewhere (CUB)."""
    return 5 if dataset.upper() == "SUN" else 10


def make_plugin(classes_per_task, *, dataset="", samples_per_class=None, sample_size=128):
    """Avalanche's A-GEM.

    :param classes_per_task: size of the largest task.
    :param dataset: dataset name, for the default memory size.
    :param samples_per_class: memory samples per class (ClassNorm: CUB 10, SUN 5).
    :param sample_size: memory samples per reference gradient (ClassNorm: 128).
    """
    from avalanche.training.plugins import AGEMPlugin

    if samples_per_class is None:
        samples_per_class = default_samples_per_class(dataset)
    samples_per_class = integer("samples_per_class", samples_per_class)
    sample_size = integer("sample_size", sample_size)
    return AGEMPlugin(patterns_per_experience=samples_per_class * int(classes_per_task),
                      sample_size=sample_size)
