"""What a run shows in TensorBoard: scalars, figures, HParams, and the training losses.

:class:`RunLogger` writes a run folder's event files (``tensorboard --logdir runs/``, one
run per folder); :class:`LossLogger` is the Avalanche plugin that hands it every
mini-batch's losses. Which metrics appear, and under which tags, comes from
:mod:`czsl.metric_registry`; the figures are drawn by :mod:`czsl.figures`. The run's
other files (``scenario.toml``, ``results.json``) are written by :mod:`czsl.runfolder`.

What TensorBoard shows
----------------------
Step ``t`` means "evaluated after training task ``t``" (:mod:`czsl.metrics`); it is the x
axis of every per-step chart. Accuracies are in percent, forgetting is a fraction.

Scalars, per step:

* ``step/SA``, ``step/UA``, ``step/H``, ``step/JA``, ``step/AUSUC``: seen / unseen accuracy,
  their harmonic mean, joint accuracy and the area under the seen-unseen curve. ``UA``,
  ``H`` and ``AUSUC`` have no point at a step without unseen classes (usually the last
  step of a run; AUSUC would be SA by convention there, which only squashes the chart).
* ``step/forgetting``: forgetting so far (Chaudhry et al., 2018), from step 1 on.
* ``task_acc/task_KK``: the accuracy ``a[t, KK]`` on task ``KK``'s test samples, one
  series per task. Before task ``KK`` is trained this is its zero-shot accuracy; the
  jump is learning it, the slope after it is forgetting it.
* ``task_forgetting/task_KK``: how far task ``KK`` (``KK < t``) has fallen below its best
  earlier accuracy, ``(max_{i<t} a[i, KK] - a[t, KK]) / 100``; ``step/forgetting`` is the
  mean of these.

Scalars, per training iteration (x: Avalanche's ``strategy.clock.train_iterations``,
counted across tasks): ``train/loss`` (the cross-entropy), ``train/regularizer`` (what
the regularizer and replay plugins added to it, e.g. EWC's penalty; 0 without one) and
``train/total`` (the loss that was back-propagated). See :class:`LossLogger`.

Per-task series as one chart per metric: TensorBoard's ``add_scalars`` would give a chart
with a line per task, but it writes every line as a separate run folder
(``<run>/task_accuracy_task_00``, ...), which floods the run selector and the HParams
table with one fake run per task. The series are instead ordinary tags of the run
itself, and the run carries a *custom scalars* layout (:data:`LAYOUT`, the "Custom
Scalars" tab) whose multiline charts gather them by regular expression: "accuracy per
task" has one line per task (and per run, when several runs are shown), likewise
"forgetting per task", "SA, UA, H, JA" and "training losses". Layouts of several runs
merge into one (TensorBoard drops duplicate charts).

Images, per step (the "Images" tab; drag the step slider):

* ``figures/acc_matrix``: the accuracy matrix ``a[t, k]`` so far as a heatmap (x: task
  ``k``, y: step ``t``, colour: accuracy in percent with a colour bar; blank: steps not
  yet run). The staircase line separates the tasks seen at each step (left) from those
  still unseen (right): a column fading downwards is forgetting.
* ``figures/seen_unseen_curve``: the step's seen-unseen accuracy curve (Chao et al.,
  2016): every seen/unseen trade-off a calibration bias on the unseen classes can reach;
  its shaded area is ``AUSUC``, the dot the uncalibrated ``(UA, SA)``. Not drawn at a
  step without unseen classes (there is no trade-off to show).

HParams (the "HParams" tab), written once a run has finished: one row per run folder,
with the scenario's settings (:func:`scenario_hparams`) as columns against the final
``summary/mAUC``, ``summary/mH``, ``summary/mJA``, ``summary/mSA``, ``summary/mUA``,
``summary/forgetting_final`` and ``summary/forgetting_mean`` (:data:`HPARAM_METRICS`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from avalanche.core import SupervisedPlugin
from torch.utils.tensorboard import SummaryWriter

from czsl import metric_registry as registry
from czsl import metrics as czsl_metrics
from czsl.config import PluginConfig, Scenario
from czsl.figures import acc_matrix_figure, figure_pixels, seen_unseen_figure

#: Per-step scalar tags ``step/<key>``: the per-step metrics of the registry (keys of
#: :attr:`czsl.metrics.RunMetrics.steps`).
STEP_KEYS = registry.names(registry.of_scope(registry.STEP))

#: Keys of ``results["summary"]`` shown as HParams metrics, as tags ``summary/<key>``:
#: every summary metric of the registry.
HPARAM_METRICS = registry.names(registry.by_unit_then_name(
    registry.of_scope(registry.SUMMARY)))

#: The per-step headline percentages, drawn together in one chart.
_HEADLINE_PERCENT = [m.name for m in registry.of_scope(registry.STEP, headline=True)
                     if m.unit == registry.PERCENT]

#: The custom scalars layout: one multiline chart per metric, series picked by regex
#: (TensorBoard matches each regex at the start of the tag).
LAYOUT = {"czsl": {
    "accuracy per task a[t, k] (%)": ["Multiline", [r"task_acc/task_\d+$"]],
    "forgetting per task (fraction)": ["Multiline", [r"task_forgetting/task_\d+$"]],
    f"{', '.join(_HEADLINE_PERCENT)} (%)": ["Multiline",
                                            [rf"step/({'|'.join(_HEADLINE_PERCENT)})$"]],
    "training losses": ["Multiline", [r"train/(loss|regularizer|total)$"]],
}}

#: How a plugin table with no options reads in the HParams table.
NO_OPTIONS = "defaults"


def task_tag(prefix: str, task: int, n_tasks: int) -> str:
    """``prefix/task_KK``, zero-padded to the width of the largest task index."""
    width = max(2, len(str(max(n_tasks - 1, 0))))
    return f"{prefix}/task_{task:0{width}d}"


def _hparam_value(value: Any) -> bool | float | str:
    """A scenario value as an HParams value: bool, number, or text for anything else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(value.items())) or NO_OPTIONS
    return json.dumps(value)


def scenario_hparams(document: dict[str, Any], results: dict[str, Any]) -> dict[str, Any]:
    """The hyperparameters of a run, flattened for TensorBoard's HParams tab.

    Every key of the resolved scenario becomes one hparam with a dotted name
    (``protocol.name``, ``train.lr``, ``seed``, ...), except the run's ``name`` (the
    run folder already names the row). A plugin table gives its plugin's name under the
    table's name (``regularizer``) and all its options as one text
    ``regularizer.options`` (``"ewc_lambda=10, gamma=0.99"``, or ``"defaults"``); a
    free-form table (``data.synthesis``) reads the same, and a list becomes JSON text
    (``protocol.task_sizes``: ``"[10, 10, 10]"``). From ``results`` come
    ``data.source`` (``real`` / ``semi-synthetic`` / ``synthetic``), ``n_tasks`` and
    ``czsl_version``.

    The names are therefore the same for every run of a czsl version, whatever its
    plugins and options. That matters: TensorBoard takes the HParams columns from the
    first run's experiment summary it finds, so runs with different option names would
    lose columns if each run listed its own.

    :param document: the resolved scenario, as written to ``scenario.toml``.
    :param results: the run's results (``results.json`` content).
    :return: name -> bool, float or str.
    """
    plugin_tables = {f.name for f in dataclasses.fields(Scenario)
                     if isinstance(getattr(Scenario(), f.name), PluginConfig)}
    out: dict[str, Any] = {}
    for key, value in document.items():
        if key == "name":
            continue
        if key in plugin_tables:
            options = {k: v for k, v in value.items() if k != "name"}
            out[key] = value["name"]
            out[f"{key}.options"] = _hparam_value(options)
        elif isinstance(value, dict):
            out.update({f"{key}.{k}": _hparam_value(v) for k, v in value.items()})
        else:
            out[key] = _hparam_value(value)
    out["data.source"] = str(results["features"])
    out["n_tasks"] = float(results["n_tasks"])
    out["czsl_version"] = str(results["czsl_version"])
    return out


def _hparams_summaries(hparams: dict[str, Any], metric_tags: list[str]) -> list:
    """The HParams plugin's experiment, session-start and session-end summaries.

    Built with TensorBoard's own protos (``api_pb2``, ``plugin_data_pb2``,
    ``metadata.create_summary_metadata``); unlike ``SummaryWriter.add_hparams`` this
    keeps booleans boolean and writes into the run's own event file.
    """
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    def summary(tag: str, data: plugin_data_pb2.HParamsPluginData) -> Summary:
        return Summary(value=[Summary.Value(tag=tag, tensor=metadata.NULL_TENSOR,
                                            metadata=metadata.create_summary_metadata(data))])

    types = {bool: api_pb2.DATA_TYPE_BOOL, float: api_pb2.DATA_TYPE_FLOAT64,
             str: api_pb2.DATA_TYPE_STRING}
    now = time.time()
    experiment = api_pb2.Experiment(
        description="czsl runs: scenario settings against the final CZSL metrics",
        time_created_secs=now,
        hparam_infos=[api_pb2.HParamInfo(name=k, type=types[type(v)])
                      for k, v in hparams.items()],
        metric_infos=[api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag),
                                         display_name=tag.split("/", 1)[-1])
                      for tag in metric_tags])
    start = plugin_data_pb2.SessionStartInfo(start_time_secs=now)
    for key, value in hparams.items():
        if isinstance(value, bool):
            start.hparams[key].bool_value = value
        elif isinstance(value, float):
            start.hparams[key].number_value = value
        else:
            start.hparams[key].string_value = value
    end = plugin_data_pb2.SessionEndInfo(status=api_pb2.STATUS_SUCCESS, end_time_secs=now)
    return [summary(metadata.EXPERIMENT_TAG, plugin_data_pb2.HParamsPluginData(
                experiment=experiment)),
            summary(metadata.SESSION_START_INFO_TAG, plugin_data_pb2.HParamsPluginData(
                session_start_info=start)),
            summary(metadata.SESSION_END_INFO_TAG, plugin_data_pb2.HParamsPluginData(
                session_end_info=end))]


def _finite(value: float) -> bool:
    return value is not None and math.isfinite(value)


class RunLogger:
    """Writes one run's TensorBoard events (its other files: :mod:`czsl.runfolder`).

    It keeps no metric state: everything a chart shows comes from the arguments of each
    call, so a resumed run can create a new ``RunLogger`` on the same folder and go on
    logging at step ``k`` (TensorBoard reads all event files of a folder as one run).

    :param run_dir: the run's folder (from :func:`czsl.runfolder.new_run_dir`).
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.writer = SummaryWriter(log_dir=str(run_dir))
        self.writer.add_custom_scalars(LAYOUT)

    def purge_from(self, iteration: int) -> None:
        """Hide what an interrupted session logged from training iteration ``iteration``
        on (the loss points of the task it did not finish), so a resumed run shows each
        iteration once: TensorBoard drops earlier events whose step is at least
        ``iteration`` (``SummaryWriter(purge_step=...)``). Per-task charts, whose x is
        the step, keep their points (a step is logged once it is over).
        """
        self.writer.close()
        self.writer = SummaryWriter(log_dir=str(self.run_dir), purge_step=int(iteration))
        self.writer.add_custom_scalars(LAYOUT)

    def log_step(self, step: int, run: czsl_metrics.RunMetrics,
                 curve: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        """Everything TensorBoard shows for step ``step`` (see the module docstring).

        :param step: the step just evaluated.
        :param run: :func:`czsl.metrics.run_metrics` over the steps ``0..step`` (at
            least); row ``step`` is logged, rows ``0..step`` make the heatmap.
        :param curve: the step's ``(unseen_acc, seen_acc)`` from
            :func:`czsl.metrics.seen_unseen_curve`; without it no curve figure.
        :raises ValueError: when ``run`` has no row ``step``.
        """
        if run.acc_matrix.shape[0] <= step:
            raise ValueError(f"run metrics cover {run.acc_matrix.shape[0]} step(s); "
                             f"cannot log step {step}")
        values = {key: float(run.steps[key][step]) for key in STEP_KEYS}
        # UA is undefined exactly when the step has no unseen classes
        unseen = _finite(values["UA"])
        for key, value in values.items():
            if _finite(value) and (unseen or key not in registry.NEED_UNSEEN):
                self.writer.add_scalar(f"step/{key}", value, step)
        acc = run.acc_matrix[:step + 1].detach().to("cpu", torch.float64)  # [step+1, T]
        n_tasks = acc.shape[1]
        _, task_drop = czsl_metrics.forgetting_measure(acc)                # [T]
        for prefix, row in (("task_acc", acc[step]), ("task_forgetting", task_drop)):
            for k, value in enumerate(row.tolist()):
                if _finite(value):
                    self.writer.add_scalar(task_tag(prefix, k, n_tasks), value, step)
        self.writer.add_image("figures/acc_matrix",
                              figure_pixels(acc_matrix_figure(acc.numpy(), step)), step,
                              dataformats="HWC")
        if curve is not None and unseen:
            unseen_acc, seen_acc = (c.detach().to("cpu", torch.float64).numpy() for c in curve)
            figure = seen_unseen_figure(unseen_acc, seen_acc, step, sa=values["SA"],
                                        ua=values["UA"], ausuc=values["AUSUC"])
            self.writer.add_image("figures/seen_unseen_curve", figure_pixels(figure), step,
                                  dataformats="HWC")
        self.writer.flush()

    def log_losses(self, iteration: int, loss: float, total: float) -> None:
        """The losses of one training mini-batch (see :class:`LossLogger`).

        :param iteration: the global training iteration (x axis).
        :param loss: the training criterion (cross-entropy) alone.
        :param total: the loss back-propagated: ``loss`` plus whatever plugins added.
        """
        self.writer.add_scalar("train/loss", loss, iteration)
        self.writer.add_scalar("train/regularizer", total - loss, iteration)
        self.writer.add_scalar("train/total", total, iteration)

    def write_hparams(self, document: dict[str, Any], results: dict[str, Any]) -> None:
        """The run's row in the HParams tab: settings against final metrics.

        The summaries go into the run's own event file, so the row is the run folder
        (``SummaryWriter.add_hparams`` would make a timestamped sub-run). Metrics are the
        scalars ``summary/<key>`` for :data:`HPARAM_METRICS`, at the run's last step. A
        metric that is undefined (``None`` / NaN in ``results.json``, e.g. forgetting of
        a one-task run) is declared but not written: TensorBoard cannot serialise NaN,
        and an absent value shows as an empty cell.

        :param document: the resolved scenario (``scenario.toml`` content).
        :param results: the run's results (``results.json`` content).
        """
        last = int(results["n_tasks"]) - 1
        tags = [f"summary/{key}" for key in HPARAM_METRICS]
        for summary in _hparams_summaries(scenario_hparams(document, results), tags):
            self.writer.file_writer.add_summary(summary, last)
        for key, tag in zip(HPARAM_METRICS, tags):
            value = results["summary"].get(key)
            if _finite(value):
                self.writer.add_scalar(tag, value, last)
        self.writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        self.writer.close()


class LossLogger(SupervisedPlugin):
    """Avalanche plugin: sends every training mini-batch's losses to a :class:`RunLogger`.

    Put it **first** in the learner's plugin list. Avalanche calls plugins in list order,
    and regularizers (Avalanche's EWC, MAS, LwF, ...) add their penalty to
    ``strategy.loss`` in ``before_backward``; so in this plugin's ``before_backward`` the
    loss is still the criterion alone, and after the iteration it is the total that was
    back-propagated. Their difference is logged as ``train/regularizer``. A replay plugin
    that mixes stored samples into the mini-batch counts in the cross-entropy; one that
    only edits gradients (A-GEM) adds nothing to the loss.

    The values stay on the device until the end of each epoch, which reads them in one
    go (no host synchronisation per iteration). The x axis is Avalanche's
    ``strategy.clock.train_iterations``, counted across all tasks (a resumed run
    continues the axis where it left off only if the learner's clock is restored).

    :param logger: where the losses go.
    """

    def __init__(self, logger: RunLogger) -> None:
        super().__init__()
        self.logger = logger
        self._loss: torch.Tensor | None = None
        self._pending: list[tuple[int, torch.Tensor]] = []

    def before_backward(self, strategy, *args, **kwargs):
        # clone: plugins after this one add their penalty to strategy.loss in place
        self._loss = strategy.loss.detach().clone()

    def after_training_iteration(self, strategy, *args, **kwargs):
        # Avalanche's loss starts as zeros(1), so both are [1]-shaped
        pair = torch.cat([self._loss.reshape(1), strategy.loss.detach().reshape(1)])  # [2]
        self._pending.append((strategy.clock.train_iterations, pair))

    def after_training_epoch(self, strategy, *args, **kwargs):
        if not self._pending:
            return
        values = torch.stack([pair for _, pair in self._pending]).tolist()  # one host read
        for (iteration, _), (loss, total) in zip(self._pending, values):
            self.logger.log_losses(iteration, loss, total)
        self._pending = []
