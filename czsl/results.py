"""A finished run's results: the ``results.json`` document and the table ``czsl run`` prints.

:func:`results_document` lays a run's metrics (:mod:`czsl.metrics`) out as ``results.json`` holds them; :func:`format_results` turns that document
into the terminal table. Which metrics appear, under which names, units and formats,
comes from :mod:`czsl.metric_registry`. Writing the file is :mod:`czsl.runfolder`'s job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import Any

import torch

import czsl
from czsl import metric_registry as registry
from czsl import metrics
from czsl.config import Scenario
from czsl.runfolder import RunFolder
from czsl.streams import CZSLStream



@dataclass
class RunResult:
    """What a finished run produced (:func:`czsl.run.run_scenario` returns it).

    :param run_dir: the run's folder.
    :param results: the content of its ``results.json``.
    :param timings: seconds this session spent in each part of the run: ``data``,
        ``setup``, ``training``, ``testing``, ``metrics``, each observer by its name,
        ``results``.
    """

    run_dir: Path
    results: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)


def resolved_protocol(stream: CZSLStream) -> dict[str, Any]:
    """The protocol choices filled in from presets, for ``scenario.toml`` and results.

    :param stream: the run's task stream.
    :return: ``task_sizes``, ``class_order`` and ``accuracy`` as the stream uses them.
    """
    p = stream.protocol
    return {"task_sizes": list(p.task_sizes), "class_order": p.class_order,
            "accuracy": p.accuracy}


def results_document(scenario: Scenario, source: str, stream: CZSLStream,
                     run: metrics.RunMetrics,
                     gzsl: dict[str, torch.Tensor] | None = None) -> dict[str, Any]:
    """The content of ``results.json``, less what only the run knows (generator,
    transductive flag, wall time), which :mod:`czsl.run` adds.

    :param scenario: the run's scenario.
    :param source: where the features came from (``real``, ``semi-synthetic``,
        ``synthetic``).
    :param stream: the run's task stream (test labels, class-to-task map, protocol).
    :param run: the run's metrics (:func:`czsl.metrics.metrics_from_steps`).
    :param gzsl: :func:`static_gzsl` of the last step (the static protocol only).
    :return: the document, with tensors still in it (:func:`czsl.runfolder.json_ready`
        makes it JSON).
    """
    summary = run.summary()
    out: dict[str, Any] = {
        "czsl_version": czsl.__version__,
        "name": scenario.name,
        "seed": scenario.seed,
        "dataset": stream.dataset_label,
        "features": source,
        "semi_synthetic": source == "semi-synthetic",
        "protocol": {"name": stream.protocol.name, **resolved_protocol(stream)},
        "model": scenario.model.name,
        "regularizer": scenario.regularizer.name,
        "replay": scenario.replay.name,
        "n_tasks": stream.n_tasks,
        "n_test": int(stream.test_y.shape[0]),
        "notes": list(stream.notes),
        "summary": {m.name: summary[m.name] for m in registry.of_scope(registry.SUMMARY)},
        "metrics": run.to_dict(),
    }
    if gzsl is not None:
        out["gzsl"] = {m.name: float(gzsl[m.name]) for m in registry.of_scope(registry.GZSL)}
    return out


def static_split(stream: CZSLStream) -> torch.Tensor | None:
    """``[C]`` bool: the static protocol's seen classes (those of its one training task);
    ``None`` for other protocols."""
    if stream.protocol.name != "static":
        return None
    return stream.seen_mask(0)


def static_gzsl(stream: CZSLStream, scores: metrics.StepScorer
                ) -> dict[str, torch.Tensor] | None:
    """The static protocol's GZSL figures (:func:`czsl.metrics.gzsl_from_scores`) of a
    step's test logits; ``None`` for other protocols.

    :param stream: the run's task stream.
    :param scores: the step's test logits, scored under the step's split (row 0) and,
        where it differs, :func:`static_split` (row 1).
    """
    split = static_split(stream)
    if split is None:
        return None
    row = 0 if torch.equal(scores.seen[0].cpu(), split) else 1
    return metrics.gzsl_from_scores(scores, stream.test_y, per_class=stream.per_class,
                                    row=row)


def _cell(metric: registry.Metric, value: float | None, width: int = 5) -> str:
    """A number of the terminal table, right-aligned in ``width`` (``-`` where undefined)."""
    return metric.format(value).rjust(width)


def format_results(result: RunResult) -> str:
    """The table ``czsl run`` prints: the headline per-step metrics and forgetting so far,
    the run's summary, static GZSL figures where the protocol is static, and the warnings
    a reader needs.

    :param result: a finished run (its ``results`` and ``run_dir``).
    """
    res = result.results
    steps = res["metrics"]["steps"]
    conv = res["protocol"]["accuracy"].replace("_", "-")
    percent = [m for m in registry.of_scope(registry.STEP, headline=True)
               if m.unit == registry.PERCENT]
    # forgetting so far sits next to the accuracies: the column a continual run is about
    columns = percent + [m for m in registry.of_scope(registry.STEP)
                         if m.unit == registry.FRACTION]
    widths = [max(5, len(m.column)) for m in columns]
    lines = [f"{res['name']}: {res['dataset']}, protocol {res['protocol']['name']}, "
             f"{res['n_tasks']} task(s), {conv} accuracy (%), forgetting (fraction)",
             " step  " + "  ".join(m.column.rjust(w) for m, w in zip(columns, widths)),
             *(f" {t:4d}  " + "  ".join(_cell(m, steps[m.name][t], w)
                                        for m, w in zip(columns, widths))
               for t in range(len(steps[columns[0].name])))]
    s = res["summary"]
    summary = registry.of_scope(registry.SUMMARY)
    lines.append(" ".join(f"{m.column} {_cell(m, s.get(m.name))}" for m in summary
                          if m.unit == registry.PERCENT))
    # fractions (forgetting) read as one sentence per per-step series they condense
    fractions = [m for m in summary if m.unit == registry.FRACTION]
    for series, group in groupby(fractions, key=lambda m: m.series):
        group = list(group)
        if all(s.get(m.name) is not None for m in group):
            lines.append(f"{series} (fraction): " + ", ".join(
                f"{m.over} {m.format(s[m.name])}" for m in group))
    if "gzsl" in res:
        lines.append("static GZSL: " + "  ".join(
            f"{m.column} {m.format(res['gzsl'][m.name])}"
            for m in registry.of_scope(registry.GZSL)))
    if res.get("semantic_transductive"):
        lines.append("SEMANTIC-TRANSDUCTIVE: the attributes of unseen classes were used in "
                     "training (features synthesised for them); not comparable with "
                     "inductive results")
    if res["semi_synthetic"]:
        lines.append("these figures are from SEMI-SYNTHETIC features (real metadata, "
                     "features synthesised from the attributes), not real image features")
    # TensorBoard names a run by its folder relative to --logdir: "--logdir <run>" would
    # name it "." (and --logdir_spec "<name>/."), so the parent is what to open
    lines.append(f"results: {RunFolder(result.run_dir).results_file} (TensorBoard: tensorboard "
                 f"--logdir {result.run_dir.parent}, run {result.run_dir.name})")
    return "\n".join(lines)
