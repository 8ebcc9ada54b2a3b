"""The metric registry: every metric it declares is computed and shown everywhere, and
nothing shows a metric it does not declare (a metric added in one place only fails here).

The views checked: :mod:`czsl.metrics`' output, ``results.json``, TensorBoard's scalar
tags and HParams metrics, ``czsl report``'s rows, the table ``czsl run`` prints and the
sweep table's columns.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from czsl import metric_registry as registry
from czsl import metrics
from czsl.board import HPARAM_METRICS, LAYOUT, STEP_KEYS
from czsl.config import load_scenario
from czsl.report import format_table, load_runs
from czsl.results import format_results
from czsl.run import run_scenario

REPO = Path(__file__).resolve().parents[1]
# 12 classes in 3 tasks of 4 (as tests/test_board.py), 1 epoch
TINY = ["train.epochs=1", "train.batch_size=1000", "data.synthesis.n_classes=12",
        "data.synthesis.n_unseen=2", "data.synthesis.samples_per_class=20",
        "data.synthesis.n_features=16", "data.synthesis.n_attributes=8"]
#: Rows of ``czsl report`` that describe a run rather than measure it.
DESCRIPTIVE_ROWS = {"run", "dataset", "protocol", "tasks", "accuracy", "model", "regularizer",
                    "replay", "seed", "generator", "semantic-transductive", "wall time"}
#: TensorBoard scalar tag prefixes that are not registry metrics (per task, per iteration).
OTHER_TAG_PREFIXES = ("task_acc/", "task_forgetting/", "train/")

STEP = registry.of_scope(registry.STEP)
SUMMARY = registry.of_scope(registry.SUMMARY)
GZSL = registry.of_scope(registry.GZSL)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A continual run (3 tasks) and a static GZSL run (1 task) of the tiny scenario."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for key, extra in (("czsl", ["protocol.task_sizes=[4, 4, 4]"]),
                       ("static", ['protocol.name="static"'])):
        scenario = load_scenario(None, TINY + extra + [f"name={key!r}"])
        out[key] = run_scenario(scenario, runs_dir=root, progress=False, echo=lambda _: None)
    return out


def _names(metrics_: tuple[registry.Metric, ...]) -> list[str]:
    return [m.name for m in metrics_]


# --- the registry itself --------------------------------------------------------------------

def test_entries_are_unique_and_complete():
    keys = [(m.scope, m.name) for m in registry.METRICS]
    assert len(keys) == len(set(keys))
    for m in registry.METRICS:
        assert m.unit in (registry.PERCENT, registry.FRACTION), m
        assert m.label and m.column and m.digits >= 0, m
        if m.scope == registry.SUMMARY:  # a summary names the series it condenses
            assert m.series in _names(STEP) and m.over, m
        else:
            assert m.series is None and m.over is None, m


def test_unknown_scope_is_refused():
    with pytest.raises(ValueError, match="unknown metric scope 'steps'"):
        registry.of_scope("steps")


def test_format_and_table_order():
    m_h = next(m for m in SUMMARY if m.name == "mH")
    f_final = next(m for m in SUMMARY if m.name == "forgetting_final")
    assert m_h.format(12.345) == "12.3" and f_final.format(0.01234) == "0.012"
    assert m_h.format(None) == "-" and m_h.format(math.nan, missing="n/a") == "n/a"
    order = registry.by_unit_then_name(SUMMARY)
    units = [m.unit for m in order]
    assert units == sorted(units, key=lambda u: u != registry.PERCENT)  # percentages first
    for unit in (registry.PERCENT, registry.FRACTION):
        within = [m.name for m in order if m.unit == unit]
        assert within == sorted(within)


# --- computed: czsl.metrics ---------------------------------------------------------------

def test_metrics_module_computes_exactly_the_registered_metrics():
    gen = torch.Generator().manual_seed(0)
    history = torch.randn(3, 40, 6, generator=gen)           # [S, N, C]
    targets = torch.randint(0, 6, (40,), generator=gen)
    run = metrics.run_metrics(history, targets, torch.arange(6) // 2, per_class=False)
    assert list(run.steps) == _names(STEP)
    assert list(run.summary()) == _names(SUMMARY)
    assert list(run.to_dict()["summary"]) == _names(SUMMARY)
    gzsl = metrics.gzsl_metrics(history[-1], targets, torch.arange(6) < 4)
    assert list(gzsl) == _names(GZSL)


# --- shown: results.json, TensorBoard, report, terminal, sweep table -----------------------------

def test_results_json_holds_every_registered_metric_and_no_other(runs):
    res = json.loads((runs["czsl"].run_dir / "results.json").read_text())
    assert list(res["summary"]) == _names(SUMMARY)
    assert list(res["metrics"]["summary"]) == _names(SUMMARY)
    assert list(res["metrics"]["steps"]) == _names(STEP)
    assert "gzsl" not in res
    static = json.loads((runs["static"].run_dir / "results.json").read_text())
    assert list(static["gzsl"]) == _names(GZSL)


def test_tensorboard_tags_are_the_registered_metrics(runs):
    acc = EventAccumulator(str(runs["czsl"].run_dir), size_guidance={"scalars": 0,
                                                                      "tensors": 0})
    acc.Reload()
    tags = acc.Tags()["scalars"]
    step_tags = {t.split("/", 1)[1] for t in tags if t.startswith("step/")}
    summary_tags = {t.split("/", 1)[1] for t in tags if t.startswith("summary/")}
    assert step_tags == set(_names(STEP)) == set(STEP_KEYS)
    assert summary_tags == set(_names(SUMMARY)) == set(HPARAM_METRICS)  # all defined here
    others = [t for t in tags if not t.startswith(("step/", "summary/", *OTHER_TAG_PREFIXES))]
    assert others == []
    experiment = plugin_data_pb2.HParamsPluginData.FromString(
        acc.PluginTagToContent("hparams")["_hparams_/experiment"]).experiment
    assert [m.name.tag for m in experiment.metric_infos] == [
        f"summary/{name}" for name in registry.HPARAMS_ORDER]
    assert sorted(registry.HPARAMS_ORDER) == sorted(_names(SUMMARY))  # each metric once
    # the chart of headline percentages lists exactly those
    headline = [m.name for m in registry.of_scope(registry.STEP, headline=True)
                if m.unit == registry.PERCENT]
    assert f"{', '.join(headline)} (%)" in LAYOUT["czsl"]


def test_report_rows_are_the_registered_metrics(runs):
    loaded = load_runs([runs["czsl"].run_dir, runs["static"].run_dir])
    table = format_table(loaded)
    labels = [line[:line.index("  ")] if "  " in line else line
              for line in table.splitlines()[2:]]
    labels = [label.strip() for label in labels if label and not label.startswith("-")]
    settings = {name for run in loaded for name in run.settings}  # the rows that differ
    measured = [label for label in labels
                if label not in DESCRIPTIVE_ROWS and label not in settings]
    expected = [m.label + m.unit_suffix for m in SUMMARY] + [
        m.label + m.unit_suffix for m in registry.of_scope(registry.GZSL, headline=True)]
    assert measured == expected


def test_terminal_table_shows_the_headline_metrics(runs):
    text = format_results(runs["czsl"])
    header = text.splitlines()[1].split()
    assert header == ["step"] + [m.column for m in registry.of_scope(registry.STEP,
                                                                     headline=True)
                                 if m.unit == registry.PERCENT] + [
        m.column for m in registry.of_scope(registry.STEP) if m.unit == registry.FRACTION]
    res = runs["czsl"].results
    for m in SUMMARY:
        shown = (f"{m.column} {res['summary'][m.name]:5.{m.digits}f}"
                 if m.unit == registry.PERCENT else f"{m.over} {m.format(res['summary'][m.name])}")
        assert shown in text, m.name
    static = format_results(runs["static"])
    for m in GZSL:
        assert f"{m.column} {m.format(runs['static'].results['gzsl'][m.name])}" in static


def test_sweep_table_columns_are_the_headline_summary_metrics():
    text = (REPO / "benchmarks" / "czsl_table.md").read_text(encoding="utf-8")
    header = next(line for line in text.splitlines() if line.startswith("| data |"))
    cells = [c.strip() for c in header.strip("|").split("|")]
    metric_columns = cells[cells.index("seeds") + 1:cells.index("wall s")]
    assert metric_columns == [m.column for m in registry.by_unit_then_name(
        registry.of_scope(registry.SUMMARY, headline=True))]
