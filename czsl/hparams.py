"""The HParams tab: one row per run, its settings against its final metrics.

TensorBoard takes the tab's columns from one experiment summary (the first it finds in
any run) and sorts the hyperparameters that summary marks as differing first; it does
not compare runs itself once a summary exists. So each run's summary covers every run
folder next to it (``runs/*`` with a ``scenario.toml`` and ``results.json``) as well as
its own: the columns are the union of their settings, ``differs`` is set where their
values are not all the same, and the metrics come in
:data:`czsl.metric_registry.HPARAMS_ORDER`.
Each component option is its own column (``model.class_norm``, ``regularizer.ewc_lambda``)
with its default filled in from the component's factory (:mod:`czsl.settings`), so an
option can be sorted and filtered on. A run started after this one was written is
covered by that later run's summary; TensorBoard may still pick this one: relaunch after
the last run has finished and every summary but the oldest runs' covers all of them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

from czsl import metric_registry as registry
from czsl import settings as czsl_settings
from czsl.errors import CZSLError
from czsl.runfolder import RunFolder

#: Keys of ``results["summary"]`` shown as HParams metrics (tags ``summary/<key>``), in
#: the order the tab shows them.
HPARAM_METRICS = registry.HPARAMS_ORDER


def _hparam_value(value: Any) -> bool | float | str:
    """A setting as an HParams value: bool, number, or text for anything else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        return value
    return json.dumps(value)


def scenario_hparams(document: dict[str, Any], results: dict[str, Any],
                     defaults: Callable[[str, str], dict[str, Any]] | None = None
                     ) -> dict[str, Any]:
    """The hyperparameters of a run, flattened for TensorBoard's HParams tab.

    Every setting of the resolved scenario becomes one hparam with a dotted name
    (:func:`czsl.settings.flatten`: ``protocol.name``, ``train.lr``, ``model`` and
    ``model.class_norm``, ...), but the run's ``name`` (the row is the run folder). From
    ``results`` come ``data.source`` (``real`` / ``semi-synthetic`` / ``synthetic``),
    ``n_tasks`` and ``czsl_version``.

    :param document: the resolved scenario, as written to ``scenario.toml``.
    :param results: the run's results (``results.json`` content).
    :param defaults: fills in the options left at their defaults
        (:func:`czsl.settings.plugin_defaults`).
    :return: name -> bool, float or str.
    """
    out = {k: _hparam_value(v)
           for k, v in czsl_settings.flatten(document, defaults).items()}
    out["data.source"] = str(results["features"])
    out["n_tasks"] = float(results["n_tasks"])
    out["czsl_version"] = str(results["czsl_version"])
    return out


def neighbours(run_dir: Path, defaults: Callable[[str, str], dict[str, Any]] | None
               ) -> list[dict[str, Any]]:
    """The hparams of the finished runs next to ``run_dir`` (itself left out); a folder
    whose files cannot be read is skipped: it is not this run's to judge."""
    out = []
    for other in sorted(run_dir.parent.iterdir()):
        folder = RunFolder(other)
        if other == run_dir or not folder.is_finished():
            continue
        try:
            results = folder.read_finished()
            out.append(scenario_hparams(folder.read_scenario(), results, defaults))
        except (CZSLError, OSError, ValueError, KeyError, TypeError):
            continue
    return out


def summaries(hparams: dict[str, Any], others: list[dict[str, Any]],
              metric_tags: list[str]) -> list:
    """The HParams plugin's experiment, session-start and session-end summaries.

    Built with TensorBoard's own protos (``api_pb2``, ``plugin_data_pb2``,
    ``metadata.create_summary_metadata``); unlike ``SummaryWriter.add_hparams`` this
    keeps booleans boolean, writes into the run's own event file and marks the
    hyperparameters that differ between this run and ``others``.

    :param hparams: this run's (:func:`scenario_hparams`).
    :param others: the other runs' (:func:`neighbours`).
    :param metric_tags: the metrics' scalar tags, in column order.
    """
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    def summary(tag: str, data: plugin_data_pb2.HParamsPluginData) -> Summary:
        return Summary(value=[Summary.Value(tag=tag, tensor=metadata.NULL_TENSOR,
                                            metadata=metadata.create_summary_metadata(data))])

    runs = [hparams, *others]
    names = czsl_settings.differing(runs)
    names += [n for n in dict.fromkeys(n for run in runs for n in run) if n not in names]
    types = {bool: api_pb2.DATA_TYPE_BOOL, float: api_pb2.DATA_TYPE_FLOAT64,
             str: api_pb2.DATA_TYPE_STRING}
    differs = set(czsl_settings.differing(runs))
    infos = []
    for name in names:
        kinds = {type(run[name]) for run in runs if name in run}
        infos.append(api_pb2.HParamInfo(
            name=name,
            type=types[kinds.pop()] if len(kinds) == 1 else api_pb2.DATA_TYPE_STRING,
            differs=name in differs))
    now = time.time()
    experiment = api_pb2.Experiment(
        description="czsl runs: scenario settings against the final CZSL metrics",
        time_created_secs=now, hparam_infos=infos,
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
