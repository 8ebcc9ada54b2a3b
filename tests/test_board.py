"""Monitoring a continual run: TensorBoard scalars, images and hparams, and ``czsl report``.

Event files are read back with TensorBoard's own readers (``EventAccumulator`` and the
HParams plugin's backend), never parsed by hand.
"""

from __future__ import annotations

import io
import json
import math
import shutil
import subprocess
import sys
import tomllib

import numpy as np
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

from czsl import metrics
from czsl.cli import main
from czsl.config import load_scenario
from czsl.errors import CZSLError
from czsl.board import HPARAM_METRICS, LAYOUT, RunLogger
from czsl.hparams import scenario_hparams
from czsl.settings import plugin_defaults
from czsl.figures import Heatmap
from czsl.plugins import Plugins
from czsl.report import format_table, load_runs, plot_runs
from czsl.run import run_scenario

# 12 classes in 3 tasks of 4; one mini-batch per epoch, so iterations 0-2 are task 0's
TINY = ["train.epochs=3", "train.batch_size=1000", "train.lr=0.01",
        "data.synthesis.n_classes=12", "data.synthesis.n_unseen=2",
        "data.synthesis.samples_per_class=20", "data.synthesis.n_features=16",
        "data.synthesis.n_attributes=8", "protocol.task_sizes=[4, 4, 4]"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _installed(kind: str, name: str) -> bool:
    return any(item.component.kind == kind and item.component.name == name
               for item in Plugins().listed)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A plain run and, if the plugin is installed, an ewc_online run of TINY."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for key, extra in (("plain", []), ("ewc", ["regularizer=ewc_online"])):
        if key == "ewc" and not _installed("regularizer", "ewc_online"):
            out[key] = None
            continue
        scenario = load_scenario(None, TINY + extra + [f"name={key!r}"])
        out[key] = run_scenario(scenario, runs_dir=root, progress=False, echo=lambda _: None)
    return out


def _events(run_dir) -> EventAccumulator:
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0,
                                                         "tensors": 0})
    acc.Reload()
    return acc


def _series(acc: EventAccumulator, tag: str) -> dict[int, float]:
    return {e.step: e.value for e in acc.Scalars(tag)}


def _defined(values) -> dict[int, float]:
    return {t: v for t, v in enumerate(values) if v is not None}


# --- the seen-unseen curve --------------------------------------------------------------

def _slow_curve(logits, targets, seen, per_class):
    """The curve by brute force: one calibration bias between each pair of sorted gaps,
    predictions by argmax of the biased logits, accuracies by counting."""
    logits = logits.double()
    gaps = sorted(set((logits[:, seen].max(1).values
                       - logits[:, ~seen].max(1).values).tolist()))
    biases = [gaps[0] - 1] + [(a + b) / 2 for a, b in zip(gaps, gaps[1:])] + [gaps[-1] + 1]

    def accuracy(pred, side):
        members = [i for i in range(len(targets)) if bool(side[targets[i]])]
        if not per_class:
            return 100 * sum(int(pred[i] == targets[i]) for i in members) / len(members)
        by_class = {}
        for i in members:
            by_class.setdefault(int(targets[i]), []).append(int(pred[i] == targets[i]))
        return 100 * sum(sum(v) / len(v) for v in by_class.values()) / len(by_class)

    unseen_acc, seen_acc = [], []
    for bias in biases:
        pred = (logits + bias * (~seen).double()).argmax(1)
        unseen_acc.append(accuracy(pred, ~seen))
        seen_acc.append(accuracy(pred, seen))
    return unseen_acc, seen_acc


@pytest.mark.parametrize("per_class", [True, False])
def test_seen_unseen_curve_matches_brute_force_and_its_area_is_ausuc(per_class):
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(120, 9, generator=gen).round(decimals=1)  # many tied gaps
    targets = torch.randint(0, 9, (120,), generator=gen)
    class_to_task = torch.arange(9) // 3
    for step in range(3):
        seen = class_to_task <= step
        unseen_acc, seen_acc = metrics.seen_unseen_curve(logits, targets, seen,
                                                         per_class=per_class)
        ausuc = metrics.step_metrics(logits, targets, class_to_task, step,
                                     per_class=per_class)["AUSUC"]
        area = torch.trapezoid(seen_acc, unseen_acc) / 100
        assert float(area) == pytest.approx(float(ausuc), abs=1e-9)
        if step < 2:
            slow_u, slow_s = _slow_curve(logits, targets, seen, per_class)
            assert unseen_acc.tolist() == pytest.approx(slow_u, abs=1e-9)
            assert seen_acc.tolist() == pytest.approx(slow_s, abs=1e-9)
            assert unseen_acc[0] == 0 and seen_acc[-1] == 0
        else:  # no unseen classes: ClassNorm's rectangle, area = SA
            sa = metrics.step_metrics(logits, targets, class_to_task, step,
                                      per_class=per_class)["SA"]
            assert unseen_acc.tolist() == [0.0, 100.0, 100.0]
            assert seen_acc.tolist() == pytest.approx([float(sa), float(sa), 0.0])
    none_seen = torch.zeros(9, dtype=torch.bool)
    unseen_acc, seen_acc = metrics.seen_unseen_curve(logits, targets, none_seen,
                                                     per_class=per_class)
    gzsl = metrics.gzsl_metrics(logits, targets, none_seen, per_class=per_class)
    assert float(torch.trapezoid(seen_acc, unseen_acc) / 100) == pytest.approx(
        float(gzsl["AUSUC"]))


# --- TensorBoard: scalars -----------------------------------------------------------------

def test_per_step_scalars_equal_results_json(runs):
    res, acc = runs["plain"].results, _events(runs["plain"].run_dir)
    steps = res["metrics"]["steps"]
    with_unseen = {t for t, ua in enumerate(steps["UA"]) if ua is not None}
    for key in ("SA", "UA", "H", "JA", "AUSUC", "forgetting"):
        expected = {t: v for t, v in _defined(steps[key]).items()
                    if key not in ("UA", "H", "AUSUC") or t in with_unseen}
        got = _series(acc, f"step/{key}")
        assert sorted(got) == sorted(expected), key
        assert [got[t] for t in sorted(got)] == pytest.approx(
            [expected[t] for t in sorted(expected)], rel=1e-5, abs=1e-7), key
    assert set(_series(acc, "step/UA")) == {0, 1}  # no unseen class at the last step
    assert set(_series(acc, "step/forgetting")) == {1, 2}


def test_per_task_lines_equal_the_accuracy_matrix(runs):
    res, acc = runs["plain"].results, _events(runs["plain"].run_dir)
    matrix = res["metrics"]["acc_matrix"]  # [step][task]
    n_tasks = len(matrix[0])
    for k in range(n_tasks):
        got = _series(acc, f"task_acc/task_{k:02d}")
        assert sorted(got) == [0, 1, 2]
        assert [got[t] for t in range(3)] == pytest.approx(
            [matrix[t][k] for t in range(3)], rel=1e-5)
    # task forgetting so far: best earlier accuracy minus the current one, for k < t
    tags = acc.Tags()["scalars"]
    assert f"task_forgetting/task_{n_tasks - 1:02d}" not in tags  # never an earlier task
    for k in range(n_tasks - 1):
        got = _series(acc, f"task_forgetting/task_{k:02d}")
        expected = {t: (max(matrix[i][k] for i in range(t)) - matrix[t][k]) / 100
                    for t in range(k + 1, 3)}
        assert sorted(got) == sorted(expected)
        assert [got[t] for t in sorted(got)] == pytest.approx(
            [expected[t] for t in sorted(expected)], rel=1e-5, abs=1e-7)
    # step/forgetting is their mean
    f = _series(acc, "step/forgetting")
    assert f[2] == pytest.approx(np.mean([_series(acc, f"task_forgetting/task_{k:02d}")[2]
                                          for k in range(2)]), rel=1e-5, abs=1e-7)


def test_custom_scalar_layout_gathers_each_metric_into_one_chart(runs):
    import re

    from tensorboard.plugins.custom_scalar import layout_pb2

    acc = _events(runs["plain"].run_dir)
    tags = acc.Tags()["scalars"]
    layout = layout_pb2.Layout.FromString(
        acc.Tensors("custom_scalars__config__")[0].tensor_proto.string_val[0])
    charts = {chart.title: list(chart.multiline.tag)
              for category in layout.category for chart in category.chart}
    assert set(charts) == set(LAYOUT["czsl"]) | {f"task {k}: a[t, {k}] (%)" for k in range(3)}

    def matched(title):
        return sorted(t for t in tags if any(re.match(rx, t) for rx in charts[title]))

    assert matched("accuracy per task a[t, k] (%)") == [f"task_acc/task_{k:02d}"
                                                        for k in range(3)]
    assert matched("SA, UA, H, JA (%)") == ["step/H", "step/JA", "step/SA", "step/UA"]
    assert matched("training losses") == ["train/loss", "train/regularizer", "train/total"]
    assert matched("forgetting so far (fraction, a line per run)") == ["step/forgetting"]
    for k in range(3):  # one chart per task, holding that task of every run
        assert matched(f"task {k}: a[t, {k}] (%)") == [f"task_acc/task_{k:02d}"]
    # no sub-run folder per line, as add_scalars would make
    assert not [p for p in runs["plain"].run_dir.iterdir() if p.is_dir()]


def test_losses_without_a_regularizer(runs):
    acc = _events(runs["plain"].run_dir)
    loss, reg, total = (_series(acc, f"train/{k}") for k in ("loss", "regularizer", "total"))
    assert sorted(loss) == list(range(9))  # 3 tasks x 3 epochs x 1 mini-batch
    assert set(reg.values()) == {0.0}
    assert total == loss
    assert all(v > 0 for v in loss.values())


def test_losses_with_ewc_online_separate_the_penalty(runs):
    if runs["ewc"] is None:
        pytest.skip("regularizer ewc_online is not installed")
    acc = _events(runs["ewc"].run_dir)
    loss, reg, total = (_series(acc, f"train/{k}") for k in ("loss", "regularizer", "total"))
    assert sorted(reg) == list(range(9))
    assert [reg[i] for i in range(3)] == [0.0, 0.0, 0.0]  # task 0: nothing to protect
    # later tasks: after their first update the weights leave the anchor
    assert all(reg[i] > 0 for i in (4, 5, 7, 8)), reg
    for i in reg:
        assert total[i] == pytest.approx(loss[i] + reg[i], rel=1e-5)


# --- TensorBoard: images --------------------------------------------------------------------

def _decode(event) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(event.encoded_image_string)).convert("RGB"))


def test_heatmap_every_step_and_seen_unseen_figure_every_step_with_unseen_classes(runs):
    acc = _events(runs["plain"].run_dir)
    assert set(acc.Tags()["images"]) == {"figures/acc_matrix", "figures/seen_unseen_curve",
                                         "figures/forgetting_matrix"}
    for tag, steps in (("figures/acc_matrix", [0, 1, 2]), ("figures/forgetting_matrix", [0, 1, 2]),
                       ("figures/seen_unseen_curve", [0, 1])):
        events = acc.Images(tag)
        assert [e.step for e in events] == steps, tag
        images = [_decode(e) for e in events]
        for image, event in zip(images, events):
            assert image.shape == (event.height, event.width, 3)
            assert len(np.unique(image.reshape(-1, 3), axis=0)) > 20  # not blank
        assert not np.array_equal(images[0], images[-1])  # a new row / curve each step


def test_heatmap_is_labelled_and_leaves_nan_cells_blank():
    matrix = np.array([[50.0, np.nan, 10.0]])
    heatmap = Heatmap("accuracy")
    image = heatmap.pixels(matrix, 0)
    ax, colorbar = heatmap.figure.axes
    assert ax.get_xlabel() == "task k" and ax.get_ylabel().startswith("step t")
    assert colorbar.get_ylabel() == "accuracy on task k (%)"
    height = image.shape[0]

    def pixel(task, step):
        x, y = ax.transData.transform((task, step))
        return tuple(image[int(height - y), int(x)])

    assert pixel(1, 0) == (255, 255, 255)      # NaN: blank
    assert pixel(1, 2) == (255, 255, 255)      # a step not run yet: blank
    assert pixel(0, 0) != (255, 255, 255) and pixel(0, 0) != pixel(2, 0)


# --- TensorBoard: hparams -------------------------------------------------------------------

def _hparams(run_dir) -> dict:
    acc = _events(run_dir)
    content = acc.PluginTagToContent("hparams")
    return {tag.split("/")[-1]: plugin_data_pb2.HParamsPluginData.FromString(data)
            for tag, data in content.items()}, acc


def test_hparams_entries_hold_the_scenario_and_final_metrics(runs):
    run = runs["plain"]
    data, acc = _hparams(run.run_dir)
    assert set(data) == {"experiment", "session_start_info", "session_end_info"}
    experiment = data["experiment"].experiment
    assert [m.name.tag for m in experiment.metric_infos] == [
        f"summary/{k}" for k in HPARAM_METRICS]
    values = data["session_start_info"].session_start_info.hparams
    document = tomllib.loads((run.run_dir / "scenario.toml").read_text())
    expected = scenario_hparams(document, run.results, plugin_defaults())
    assert set(values) == set(expected)
    assert set(values) <= {h.name for h in experiment.hparam_infos}
    assert values["regularizer"].string_value == "none"
    assert values["model"].string_value == "attribute_embedder"
    assert values["model.class_norm"].bool_value is True  # a default, filled in
    assert values["model.scale"].number_value == 5.0
    assert values["train.epochs"].number_value == 3
    assert values["train.lr"].number_value == pytest.approx(0.01)
    assert values["seed"].number_value == 0
    assert values["protocol.name"].string_value == "grw"
    assert values["protocol.task_sizes"].string_value == "[4, 4, 4]"
    assert values["protocol.accuracy"].string_value == "per_class"
    assert values["protocol.stratified"].WhichOneof("kind") == "bool_value"
    assert values["data.dataset"].string_value == "synthetic"
    assert values["data.source"].string_value == "synthetic"
    assert values["n_tasks"].number_value == 3
    assert json.loads(values["data.synthesis"].string_value)["n_classes"] == 12
    assert "name" not in values
    assert data["session_end_info"].session_end_info.status == api_pb2.STATUS_SUCCESS
    summary = run.results["summary"]
    for key in HPARAM_METRICS:
        series = _series(acc, f"summary/{key}")
        assert list(series) == [2]
        assert series[2] == pytest.approx(summary[key], rel=1e-5)


def test_hparams_mark_what_differs_between_runs_and_list_each_option(runs):
    if runs["ewc"] is None:
        pytest.skip("regularizer ewc_online is not installed")
    # the fixture runs "ewc" after "plain": its summary covers both
    data, _ = _hparams(runs["ewc"].run_dir)
    infos = data["experiment"].experiment.hparam_infos
    differs = [h.name for h in infos if h.differs]
    assert set(differs) == {"regularizer", "regularizer.ewc_lambda", "regularizer.gamma",
                            "regularizer.normalize"}
    assert [h.name for h in infos][:len(differs)] == differs  # differing ones first
    assert "train.lr" in {h.name for h in infos if not h.differs}
    values = _hparams(runs["ewc"].run_dir)[0]["session_start_info"].session_start_info.hparams
    assert values["regularizer"].string_value == "ewc_online"
    assert values["regularizer.ewc_lambda"].number_value == 10.0  # the factory's default
    assert values["regularizer.normalize"].bool_value is True
    assert [m.name.tag for m in data["experiment"].experiment.metric_infos] == [
        "summary/mH", "summary/forgetting_final", "summary/forgetting_mean",
        "summary/mAUC", "summary/mJA", "summary/mSA", "summary/mUA"]


def test_tensorboard_hparams_backend_lists_one_row_per_run_sortable_by_mh(runs):
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider
    from tensorboard.backend.event_processing import plugin_event_multiplexer as pem
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import backend_context, list_session_groups

    logdir = str(runs["plain"].run_dir.parent)
    mux = pem.EventMultiplexer()
    mux.AddRunsFromDirectory(logdir)
    mux.Reload()
    backend = backend_context.Context(base_plugin.TBContext(
        logdir=logdir, multiplexer=mux,
        data_provider=data_provider.MultiplexerDataProvider(mux, logdir)))
    request = api_pb2.ListSessionGroupsRequest(
        start_index=0, slice_size=100,
        allowed_statuses=[api_pb2.STATUS_SUCCESS, api_pb2.STATUS_UNKNOWN],
        col_params=[api_pb2.ColParams(metric=api_pb2.MetricName(tag="summary/mH"),
                                      order=api_pb2.ORDER_DESC)])
    groups = list_session_groups.Handler(context.RequestContext(), backend, "", request).run()
    finished = {r.run_dir.name: r for r in runs.values() if r is not None}
    assert sorted(g.name for g in groups.session_groups) == sorted(finished)  # the folders
    mh = []
    for group in groups.session_groups:
        run = finished[group.name]
        metric = {m.name.tag: m.value for m in group.metric_values}
        assert set(metric) == {f"summary/{k}" for k in HPARAM_METRICS}
        for key in HPARAM_METRICS:
            assert metric[f"summary/{key}"] == pytest.approx(run.results["summary"][key],
                                                              rel=1e-5)
        assert group.hparams["regularizer"].string_value == run.results["regularizer"]
        mh.append(metric["summary/mH"])
    assert mh == sorted(mh, reverse=True)


def test_undefined_final_metrics_are_declared_but_not_written(tmp_path):
    logger = RunLogger(tmp_path)
    document = load_scenario(None, []).document()
    results = {"features": "synthetic", "n_tasks": 1, "czsl_version": "0",
               "summary": {"mSA": 50.0, "mUA": None, "mH": None, "mJA": 40.0, "mAUC": None,
                           "forgetting_final": None, "forgetting_mean": None}}
    logger.write_hparams(document, results)
    logger.close()
    data, acc = _hparams(tmp_path)
    declared = [m.name.tag for m in data["experiment"].experiment.metric_infos]
    assert declared == [f"summary/{k}" for k in HPARAM_METRICS]
    assert sorted(acc.Tags()["scalars"]) == ["summary/mJA", "summary/mSA"]
    assert _series(acc, "summary/mSA") == {0: 50.0}


def test_a_new_logger_on_the_same_folder_continues_the_run(tmp_path):
    """The logger keeps no state: a resumed run logs its later steps with a new one."""
    gen = torch.Generator().manual_seed(0)
    history = torch.randn(3, 60, 6, generator=gen)
    targets = torch.randint(0, 6, (60,), generator=gen)
    class_to_task = torch.arange(6) // 2
    for step in range(3):
        logger = RunLogger(tmp_path)  # a fresh logger at every step, as after a resume
        so_far = metrics.run_metrics(history[:step + 1], targets, class_to_task,
                                     per_class=False)
        logger.log_step(step, so_far)
        logger.close()
    full = metrics.run_metrics(history, targets, class_to_task, per_class=False)
    acc = _events(tmp_path)
    assert _series(acc, "step/JA") == pytest.approx(dict(enumerate(full.steps["JA"].tolist())))
    assert [e.step for e in acc.Images("figures/acc_matrix")] == [0, 1, 2]
    with pytest.raises(ValueError, match="cannot log step 3"):
        RunLogger(tmp_path).log_step(3, full)


# --- czsl report ----------------------------------------------------------------------------

def _two_runs(runs, tmp_path):
    """Two finished run folders; the second is marked semi-synthetic CUB if no ewc run."""
    first = runs["plain"].run_dir
    if runs["ewc"] is not None:
        return first, runs["ewc"].run_dir
    second = tmp_path / "copied"
    shutil.copytree(first, second)
    return first, second


def test_report_prints_runs_side_by_side_and_writes_a_png(runs, tmp_path, capsys):
    first, second = _two_runs(runs, tmp_path)
    out = tmp_path / "report.png"
    assert main(["report", str(first), str(second), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0].split() == ["run", first.name, second.name]
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:] if line.strip()}
    a, b = (json.loads((p / "results.json").read_text()) for p in (first, second))
    assert rows["regularizer"] == [a["regularizer"], b["regularizer"]]
    assert rows["protocol"] == ["grw", "grw"] and rows["tasks"] == ["3", "3"]
    mh = next(line for line in lines if line.startswith("mH (%)")).split()[2:]
    assert mh == [f"{a['summary']['mH']:.1f}", f"{b['summary']['mH']:.1f}"]
    final = next(line for line in lines if line.startswith("forgetting, final")).split()[2:]
    assert final == [f"{a['summary']['forgetting_final']:.3f}",
                     f"{b['summary']['forgetting_final']:.3f}"]
    assert "semi-synthetic" not in text
    assert f"figure: {out}" in text
    data = out.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 1000
    with Image.open(out) as image:
        image.verify()
    with Image.open(out) as image:
        assert image.size == (1320, 540)


def test_report_marks_semi_synthetic_runs_and_missing_values(runs, tmp_path):
    run_dir = tmp_path / "cub-run"
    shutil.copytree(runs["plain"].run_dir, run_dir)
    res = json.loads((run_dir / "results.json").read_text())
    res.update(dataset="CUB", semi_synthetic=True)
    res["summary"]["mAUC"] = None
    (run_dir / "results.json").write_text(json.dumps(res))
    table = format_table(load_runs([runs["plain"].run_dir, run_dir]))
    assert "CUB (semi-synthetic)" in table and "semi-synthetic: real class metadata" in table
    assert next(line for line in table.splitlines() if line.startswith("mAUC")).split()[-1] == "-"
    out = plot_runs(load_runs([run_dir]), tmp_path / "one.png")
    assert out.read_bytes().startswith(PNG_MAGIC)
    # czsl's own label already says so: not twice
    res["dataset"] = "CUB (semi-synthetic)"
    (run_dir / "results.json").write_text(json.dumps(res))
    table = format_table(load_runs([run_dir]))
    assert "CUB (semi-synthetic)" in table and "(semi-synthetic) (semi-synthetic)" not in table


def test_report_labels_runs_by_path_when_names_clash(runs, tmp_path):
    other = tmp_path / "elsewhere" / runs["plain"].run_dir.name
    shutil.copytree(runs["plain"].run_dir, other)
    labels = [r.label for r in load_runs([runs["plain"].run_dir, other])]
    assert labels == [str(runs["plain"].run_dir), str(other)]


@pytest.mark.parametrize("case, words", [
    ("missing", ["does not exist"]),
    ("empty", ["has no results.json", "not finished"]),
    ("corrupt", ["not valid JSON"]),
    ("foreign", ["not a czsl results file", "'summary'"]),
])
def test_report_errors_are_one_clear_line(tmp_path, capsys, case, words):
    run_dir = tmp_path / "run"
    if case != "missing":
        run_dir.mkdir()
    if case == "corrupt":
        (run_dir / "results.json").write_text('{"summary": ')
    if case == "foreign":
        (run_dir / "results.json").write_text(json.dumps({"dataset": "x", "protocol": {
            "name": "grw"}, "model": "m", "regularizer": "r", "replay": "p", "seed": 0}))
    with pytest.raises(CZSLError):
        load_runs([run_dir])
    assert main(["report", str(run_dir), "--out", str(tmp_path / "r.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("czsl: error: ") and "Traceback" not in err
    for word in words:
        assert word in err
    assert not (tmp_path / "r.png").exists()


def test_report_refuses_an_output_folder_that_does_not_exist(runs, tmp_path, capsys):
    out = tmp_path / "nowhere" / "r.png"
    assert main(["report", str(runs["plain"].run_dir), "--out", str(out)]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_report_and_help_stay_light(runs, tmp_path):
    """``czsl report`` imports neither torch nor Avalanche; ``--help`` not even matplotlib."""
    for argv, heavy in (
            (["report", str(runs["plain"].run_dir), "--out", str(tmp_path / "r.png")],
             ("torch", "avalanche")),
            (["--help"], ("torch", "avalanche", "matplotlib")),
            (["plugins"], ("torch", "avalanche", "matplotlib"))):
        code = (f"import sys; from czsl.cli import main\n"
                f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
                f"loaded = [m for m in {heavy!r} if m in sys.modules]\n"
                "assert not loaded, loaded\n")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=False)
        assert out.returncode == 0, (argv, out.stderr)
    assert (tmp_path / "r.png").is_file()


def test_nan_metrics_never_reach_tensorboard(runs):
    acc = _events(runs["plain"].run_dir)
    for tag in acc.Tags()["scalars"]:
        assert all(math.isfinite(e.value) for e in acc.Scalars(tag)), tag


# --- steps without unseen classes, the terminal table, the report's settings -------------

def test_no_unseen_metric_or_curve_at_a_step_without_unseen_classes(runs):
    res, acc = runs["plain"].results, _events(runs["plain"].run_dir)
    no_unseen = {t for t, ua in enumerate(res["metrics"]["steps"]["UA"]) if ua is None}
    assert no_unseen == {2}
    for key in ("UA", "H", "AUSUC"):
        assert set(_series(acc, f"step/{key}")) == {0, 1}, key
    assert set(_series(acc, "step/SA")) == {0, 1, 2}
    assert [e.step for e in acc.Images("figures/seen_unseen_curve")] == [0, 1]
    assert [e.step for e in acc.Images("figures/acc_matrix")] == [0, 1, 2]


def test_progress_bar_shows_a_dash_not_nan(runs, capsys):
    from czsl.observers import ProgressBar

    class End:  # what ProgressBar reads of a TaskEnd
        step = 2
        metrics = metrics.run_metrics(
            torch.randn(3, 30, 12), torch.arange(30) % 12, torch.arange(12) // 4,
            per_class=True)

    bar = ProgressBar("t", 3, 2, enabled=True)
    bar.after_task(End())
    text = str(bar.bar)
    bar.close()
    assert "UA=-" in text and "H=-" in text and "nan" not in text.lower()


def test_final_table_has_a_forgetting_column(runs):
    from czsl.results import format_results

    result = runs["plain"]
    lines = format_results(result).splitlines()
    assert lines[1].split() == ["step", "SA", "UA", "H", "JA", "forgetting"]
    forgetting = result.results["metrics"]["steps"]["forgetting"]
    for t in range(3):
        cell = lines[2 + t].split()[-1]
        assert cell == ("-" if forgetting[t] is None else f"{forgetting[t]:.3f}")
    assert "nan" not in "\n".join(lines).lower()


def test_report_prints_the_settings_that_differ(runs, tmp_path):
    if runs["ewc"] is None:
        pytest.skip("the ewc_online plugin is not installed")
    scenario = load_scenario(None, TINY + ["name='nonorm'", "model.class_norm=false"])
    nonorm = run_scenario(scenario, runs_dir=tmp_path, progress=False, echo=lambda _: None)
    table = format_table(load_runs([runs["plain"].run_dir, runs["ewc"].run_dir,
                                    nonorm.run_dir]))
    rows = {line.split()[0]: line.split()[1:] for line in table.splitlines()[2:]}
    assert rows["model.class_norm"] == ["True", "True", "False"]  # default filled in
    assert rows["regularizer.ewc_lambda"] == ["-", "10.0", "-"]
    assert "train.lr" not in rows  # the same in every run


def test_forgetting_matrix_is_the_drop_below_the_best_earlier_accuracy(runs):
    from czsl.figures import forgetting_matrix

    acc = np.array([[10.0, 5.0, 1.0], [60.0, 8.0, 2.0], [40.0, 70.0, 3.0]])
    drop = forgetting_matrix(acc)
    assert np.isnan(drop[0]).all() and np.isnan(drop[1, 1:]).all() and np.isnan(drop[2, 2])
    assert drop[1, 0] == -50.0  # better than ever
    assert drop[2, 0] == 20.0 and drop[2, 1] == -62.0
    # its row mean is step/forgetting as TensorBoard shows it
    res = runs["plain"].results
    matrix = np.array(res["metrics"]["acc_matrix"], dtype=float)
    logged = _series(_events(runs["plain"].run_dir), "step/forgetting")
    for t in (1, 2):
        assert np.nanmean(forgetting_matrix(matrix)[t]) / 100 == pytest.approx(
            logged[t], rel=1e-5, abs=1e-7)
    # the colour map is centred on zero: a task that kept its accuracy is drawn white
    painter = Heatmap("forgetting")
    image = painter.pixels(np.array([[50.0, 0.0], [50.0, 0.0]]), 1)
    heatmap = painter.figure.axes[0].images[0]
    assert heatmap.cmap(heatmap.norm(0.0))[:3] == pytest.approx((0.97, 0.97, 0.97), abs=0.03)
    assert heatmap.norm.vmin == -heatmap.norm.vmax
    ax = painter.figure.axes[0]
    x, y = ax.transData.transform((0.3, 1.3))  # in the cell, beside its number
    assert tuple(image[int(image.shape[0] - y), int(x)]) == pytest.approx((247,) * 3, abs=8)


@pytest.mark.parametrize("kind", ["accuracy", "forgetting"])
def test_a_kept_heatmap_draws_each_step_as_a_fresh_one_would(kind):
    # the figure is kept from step to step and only its cells, staircase and numbers are
    # redrawn; the colour range of the forgetting heatmap grows (5 -> 50 points) on the way
    acc = np.array([[10.0, 5.0, 1.0, 2.0], [12.0, 60.0, 2.0, 3.0], [9.0, 20.0, 45.0, 1.0],
                    [11.0, 18.0, 40.0, 70.0]])
    kept = Heatmap(kind)
    for step in range(4):
        image = kept.pixels(acc[:step + 1], step)
        assert np.array_equal(image, Heatmap(kind).pixels(acc[:step + 1], step)), step
    assert not np.array_equal(image, Heatmap(kind).pixels(acc[:3], 2))
    many = np.random.default_rng(0).uniform(0, 100, (12, 12))  # numbers up to 10 tasks only
    assert np.array_equal(Heatmap(kind).pixels(many, 11), kept.pixels(many, 11))


def test_a_kept_seen_unseen_figure_draws_each_step_as_a_fresh_one_would():
    from czsl.figures import SeenUnseenCurve

    curves = [(np.array([0.0, 20.0, 40.0]), np.array([60.0, 30.0, 0.0]), 45.0, 10.0, 12.5),
              (np.array([0.0, 10.0, 70.0]), np.array([80.0, 50.0, 0.0]), 70.0, 5.0, 30.0)]
    kept = SeenUnseenCurve()
    images = []
    for step, (unseen, seen, sa, ua, ausuc) in enumerate(curves):
        images.append(kept.pixels(unseen, seen, step, sa=sa, ua=ua, ausuc=ausuc))
        fresh = SeenUnseenCurve().pixels(unseen, seen, step, sa=sa, ua=ua, ausuc=ausuc)
        assert np.array_equal(images[-1], fresh), step
    assert not np.array_equal(*images)


# --- generator losses -------------------------------------------------------------------

@pytest.mark.parametrize("generator, own", [
    ("cvae", {"cvae/reconstruction", "cvae/kl", "cvae/margin"}),
    ("fclswgan", {"fclswgan/critic", "fclswgan/generator", "fclswgan/classification"})])
def test_generator_losses_are_logged_under_their_names(tmp_path, generator, own):
    for kind, name in (("replay", "generative_replay"), ("generator", generator),
                       ("generator_loss", "random_walk")):
        if not _installed(kind, name):
            pytest.skip(f"{kind} {name} is not installed")
    fast = (["generator.epochs=1"] if generator == "cvae" else
            ["generator.max_iterations=4", "generator.cls_epochs=1", "generator.hidden=32",
             "generator.critic_steps=2"])
    scenario = load_scenario(None, TINY + ["replay=generative_replay", f"generator={generator!r}",
                                           "generator.losses=[{name='random_walk'}]",
                                           "replay.replay_per_class=5"] + fast)
    result = run_scenario(scenario, runs_dir=tmp_path, progress=False, echo=lambda _: None)
    acc = _events(result.run_dir)
    tags = {t for t in acc.Tags()["scalars"] if t.startswith("generator/")}
    assert tags == {f"generator/{n}" for n in own | {"random_walk"}}
    for tag in tags:  # one point per generator step, numbered from 0
        steps = sorted(_series(acc, tag))
        assert steps == list(range(len(steps))) and steps, tag
    assert len(_series(acc, "generator/random_walk")) == len(
        _series(acc, f"generator/{sorted(own)[0]}"))
    assert result.results["generator"] == generator
    assert result.results["generator_losses"] == ["random_walk"]
    saved = json.loads((result.run_dir / "results.json").read_text())
    assert saved["generator_losses"] == ["random_walk"]
