"""Everything a run writes: its folder, TensorBoard events, the scenario, results.json.

This is the only module that writes TensorBoard events or results files. A run folder
``runs/<name>/`` holds

* ``scenario.toml`` — the scenario as resolved (protocol presets filled in);
* ``results.json`` — every per-step figure and the run's summary, written atomically
  once the run has finished (a crashed run leaves none);
* TensorBoard event files (``tensorboard --logdir runs/``), one run per folder.

An existing run folder is never reused: the name gets a ``-2``, ``-3``, ... suffix.

What TensorBoard shows
----------------------
Step ``t`` means "evaluated after training task ``t``" (:mod:`czsl.metrics`); it is the x
axis of every per-step chart. Accuracies are in percent, forgetting is a fraction.

Scalars, per step:

* ``step/SA``, ``step/UA``, ``step/H``, ``step/JA``, ``step/AUSUC``: seen / unseen accuracy,
  their harmonic mean, joint accuracy and the area under the seen-unseen curve. ``UA``
  and ``H`` have no point at a step without unseen classes (the last step of a run).
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
  its shaded area is ``AUSUC``, the dot the uncalibrated ``(UA, SA)``.

HParams (the "HParams" tab), written once a run has finished: one row per run folder,
with the scenario's settings (:func:`scenario_hparams`) as columns against the final
``summary/mAUC``, ``summary/mH``, ``summary/mJA``, ``summary/mSA``, ``summary/mUA``,
``summary/forgetting_final`` and ``summary/forgetting_mean`` (:data:`HPARAM_METRICS`).
Figures are drawn with matplotlib's Agg canvas (no display needed, and the global
pyplot backend is left alone); matplotlib is imported only when a figure is drawn.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w
import torch
from avalanche.core import SupervisedPlugin
from torch.utils.tensorboard import SummaryWriter

from czsl import metrics as czsl_metrics
from czsl.config import PluginConfig, Scenario
from czsl.errors import CZSLError

#: Per-step scalar tags ``step/<key>``: keys of :attr:`czsl.metrics.RunMetrics.steps`.
STEP_KEYS = ("SA", "UA", "H", "JA", "AUSUC", "forgetting")

#: Keys of ``results["summary"]`` shown as HParams metrics, as tags ``summary/<key>``.
HPARAM_METRICS = ("mAUC", "mH", "mJA", "mSA", "mUA", "forgetting_final", "forgetting_mean")

#: The custom scalars layout: one multiline chart per metric, series picked by regex
#: (TensorBoard matches each regex at the start of the tag).
LAYOUT = {"czsl": {
    "accuracy per task a[t, k] (%)": ["Multiline", [r"task_acc/task_\d+$"]],
    "forgetting per task (fraction)": ["Multiline", [r"task_forgetting/task_\d+$"]],
    "SA, UA, H, JA (%)": ["Multiline", [r"step/(SA|UA|H|JA)$"]],
    "training losses": ["Multiline", [r"train/(loss|regularizer|total)$"]],
}}

#: How a plugin table with no options reads in the HParams table.
NO_OPTIONS = "defaults"


def new_run_dir(runs_dir: Path, name: str) -> Path:
    """Create and return a fresh folder ``runs_dir/name`` (suffixed if it exists)."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    for i in range(1, 10_000):
        path = runs_dir / (name if i == 1 else f"{name}-{i}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise CZSLError(f"{runs_dir} has 10,000 runs named {name!r}; choose another --name")


def atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    """Call ``write(binary file)`` on a temporary file, then move it to ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable (POSIX)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` so that it is whole or absent."""
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def json_ready(value: Any) -> Any:
    """Tensors to lists, NaN to None, recursively."""
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


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


def figure_pixels(figure) -> np.ndarray:
    """Draw a matplotlib figure on an Agg canvas (no display, pyplot untouched).

    :param figure: a ``matplotlib.figure.Figure``.
    :return: its pixels, ``[H, W, 3]`` uint8 RGB.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def acc_matrix_figure(acc_matrix: np.ndarray, step: int):
    """A heatmap of the accuracy matrix after ``step``.

    :param acc_matrix: ``[S, T]`` accuracy (percent) of task ``k`` after step ``t``, NaN
        where undefined; rows ``S..T-1`` (steps not yet run) are drawn blank.
    :param step: the step the figure is for (its title).
    :return: a ``matplotlib.figure.Figure`` (not registered with pyplot: nothing to close).
    """
    import matplotlib
    from matplotlib.figure import Figure

    n_steps, n_tasks = acc_matrix.shape
    grid = np.full((max(n_steps, n_tasks), n_tasks), np.nan)
    grid[:n_steps] = acc_matrix
    fig = Figure(figsize=(6.4, 5.4), dpi=100)
    fig.subplots_adjust(left=0.11, right=0.9, bottom=0.1, top=0.94)  # fixed: cheap to draw
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="white")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0.0, vmax=100.0,
                      interpolation="nearest", aspect="auto")
    fig.colorbar(image, ax=ax, fraction=0.05, pad=0.03).set_label("accuracy on task k (%)")
    # Staircase between seen (k <= t) and unseen (k > t) tasks, one stair per step run.
    xs = np.repeat(np.arange(n_steps) + 0.5, 2)
    ys = np.arange(2 * n_steps) // 2 + np.tile([-0.5, 0.5], n_steps)
    ax.plot(xs, ys, color="red", linewidth=1.5, label="seen | unseen")
    if n_tasks <= 10:  # small matrices: print the numbers too
        for (t, k), value in np.ndenumerate(acc_matrix):
            if not math.isnan(value):
                ax.text(k, t, f"{value:.0f}", ha="center", va="center", fontsize=8,
                        color="black" if value > 60 else "white")
    # a label per task up to 10 tasks, then every 5th (tick labels are most of the
    # figure's drawing time: benchmarks/speed.md)
    every = 1 if n_tasks <= 10 else 5
    ax.set_xticks(np.arange(0, n_tasks, every))
    ax.set_yticks(np.arange(0, grid.shape[0], every))
    ax.set_xlim(-0.5, n_tasks - 0.5)
    ax.set_ylim(grid.shape[0] - 0.5, -0.5)
    ax.set_xlabel("task k")
    ax.set_ylabel("step t (after training task t)")
    ax.set_title(f"accuracy a[t, k] after step {step}")
    ax.legend(loc="lower left", fontsize=8)
    return fig


def seen_unseen_figure(unseen_acc: np.ndarray, seen_acc: np.ndarray, step: int, *,
                       sa: float, ua: float, ausuc: float):
    """The seen-unseen accuracy curve of one step.

    :param unseen_acc: ``[K]`` unseen accuracy (percent) of each vertex
        (:func:`czsl.metrics.seen_unseen_curve`).
    :param seen_acc: ``[K]`` seen accuracy (percent) of each vertex.
    :param step: the step the figure is for.
    :param sa: the step's ``SA`` (percent), drawn with ``ua`` as the uncalibrated point.
    :param ua: the step's ``UA`` (percent; NaN at a step without unseen classes).
    :param ausuc: the step's ``AUSUC`` (the shaded area, for the title).
    :return: a ``matplotlib.figure.Figure`` (not registered with pyplot: nothing to close).
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.4, 5.0), dpi=100)
    fig.subplots_adjust(left=0.12, right=0.96, bottom=0.1, top=0.94)
    ax = fig.add_subplot()
    ax.fill_between(unseen_acc, seen_acc, alpha=0.25, label=f"AUSUC {ausuc:.1f}")
    ax.plot(unseen_acc, seen_acc, linewidth=1.5, label="seen-unseen curve")
    if math.isnan(ua):
        ax.text(50, 50, "no unseen classes:\nAUSUC = SA by convention", ha="center",
                va="center", fontsize=9)
    else:
        ax.plot([ua], [sa], "o", color="red", label=f"no calibration: UA {ua:.1f}, SA {sa:.1f}")
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    ax.set_xlabel("unseen accuracy (%)")
    ax.set_ylabel("seen accuracy (%)")
    ax.set_title(f"seen-unseen curve after step {step}")
    ax.legend(loc="upper right", fontsize=8)
    return fig


def _finite(value: float) -> bool:
    return value is not None and math.isfinite(value)


class RunLogger:
    """Writes one run's folder.

    It keeps no metric state: everything a chart shows comes from the arguments of each
    call, so a resumed run can create a new ``RunLogger`` on the same folder and go on
    logging at step ``k`` (TensorBoard reads all event files of a folder as one run).

    :param run_dir: the run's folder (from :func:`new_run_dir`).
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

    def write_scenario(self, document: dict[str, Any]) -> None:
        """Save the resolved scenario as ``scenario.toml``."""
        atomic_write_text(self.run_dir / "scenario.toml", tomli_w.dumps(document))

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
        for key, value in values.items():
            if _finite(value):
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
        if curve is not None:
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

    def write_results(self, results: dict[str, Any]) -> Path:
        """Write ``results.json`` atomically and return its path."""
        path = self.run_dir / "results.json"
        atomic_write_text(path, json.dumps(json_ready(results), indent=2) + "\n")
        return path

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
