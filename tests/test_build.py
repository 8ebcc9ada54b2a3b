"""czsl.build: one builder for every run, and what plugins can (not) reach from it."""

from __future__ import annotations

import gc
import sys
import types

import numpy as np
import pytest
import torch

from czsl.build import build_run
from czsl.config import load_scenario
from czsl.errors import PluginError
from czsl.observers import Observer
from czsl.run import run_scenario
from tests.conftest import write_plugin_package

TINY = ["train.epochs=1", "data.synthesis.n_classes=12", "data.synthesis.n_unseen=3",
        "data.synthesis.samples_per_class=12", "data.synthesis.n_features=8",
        "data.synthesis.n_attributes=4", "protocol.task_sizes=[3, 3, 3]"]


def _pointers(*arrays) -> set[int]:
    """Addresses of the memory behind tensors / arrays."""
    out = set()
    for a in arrays:
        if isinstance(a, torch.Tensor):
            out.add(a.untyped_storage().data_ptr())
        else:
            out.add(np.asarray(a).__array_interface__["data"][0])
    return out


def _reachable_memory(*roots) -> set[int]:
    """Addresses of every tensor's storage and array's buffer reachable from ``roots``,
    following references (not into modules, classes or functions' globals, which reach
    the whole interpreter)."""
    module_dicts = {id(vars(m)) for m in list(sys.modules.values()) if m is not None}
    seen, found, todo = set(), set(), list(roots)
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, (types.ModuleType, type, types.FrameType)):
            continue
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            found.add(obj.untyped_storage().data_ptr())
            if obj.grad is not None:
                todo.append(obj.grad)
            continue
        if isinstance(obj, np.ndarray):
            base = obj if obj.base is None else obj.base
            found.add(np.asarray(base).__array_interface__["data"][0])
            found.add(obj.__array_interface__["data"][0])
            continue
        if isinstance(obj, dict) and id(obj) in module_dicts:
            continue
        if isinstance(obj, types.FunctionType):
            todo.extend(c.cell_contents for c in obj.__closure__ or () if _filled(c))
            todo.extend(obj.__defaults__ or ())
            continue
        todo.extend(gc.get_referents(obj))
    return found


def _filled(cell) -> bool:
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True


@pytest.fixture
def spy_plugin(plugin_dir):
    """A third-party regularizer and replay that keep every argument their factories got."""
    from tests.conftest import write_plugin_package

    write_plugin_package(plugin_dir, "czsl-test-spy", "czsl_test_spy", {"spy": "czsl_test_spy"},
                         """
        from czsl import Component, hookimpl

        GOT = []

        @hookimpl
        def czsl_components():
            return [Component("regularizer", "spy", "keeps its arguments"),
                    Component("replay", "spy", "keeps its arguments")]

        @hookimpl
        def czsl_make_regularizer(name, options, stream):
            GOT.append((name, options, stream))
            return []

        @hookimpl
        def czsl_make_replay(name, options, stream, make_generator):
            GOT.append((name, options, stream, make_generator))
            return []
        """)
    import importlib

    return importlib.import_module("czsl_test_spy")


def test_nothing_a_plugin_can_reach_holds_test_data(spy_plugin):
    built = build_run(load_scenario(None, TINY + ["regularizer=spy", "replay=spy"]),
                      echo=lambda _: None)
    test = _pointers(built.stream.test_x, built.stream.test_y, built.dataset.features,
                     built.dataset.labels)
    # the check can fail: the run's own stream does hold the test set
    assert _reachable_memory(built.stream) & test
    assert len(spy_plugin.GOT) == 2
    assert not _reachable_memory(spy_plugin.GOT) & test
    for step in range(2):  # also once Avalanche has set its experience, loaders, ...
        built.start_task(step)
        built.learner.train_task(step)
        assert not _reachable_memory(built.learner) & test, step


def test_the_view_hides_the_attributes_of_classes_not_visible_yet():
    built = build_run(load_scenario(None, TINY), echo=lambda _: None)
    view, stream = built.view, built.stream
    assert view.n_tasks == 3 and view.task_sizes == (3, 3, 3) and view.step == -1
    assert not view.visible.any() and not view._attributes.any()
    built.start_task(0)
    first = torch.tensor(stream.tasks[0])
    assert torch.equal(view.visible, stream.seen_mask(0))
    assert torch.equal(view.attributes_of(first), stream.attributes[first].float())
    # no trace of the other classes' attributes in the view at all
    hidden = view.hidden_classes()
    assert len(hidden) == stream.n_classes - 3 and not view._attributes[hidden].any()
    with pytest.raises(PermissionError, match="not visible at task 0"):
        view.attributes_of(hidden[:1])
    assert (view.class_to_task[hidden] == -1).all()
    built.start_task(1)
    assert view.past_classes().tolist() == sorted(stream.tasks[0])


def test_a_transductive_replay_is_shown_every_class_and_results_say_so(tmp_path):
    scenario = load_scenario(None, TINY + ["replay=generative_replay", "generator=cvae",
                                           "generator.epochs=1", "generator.hidden=8",
                                           "replay.replay_per_class=4",
                                           "train.loss_classes=seen",
                                           "replay.semantic_transductive=true"])
    built = build_run(scenario, echo=lambda _: None)
    assert built.view.semantic_transductive
    built.start_task(0)
    assert built.view.attributes_of(built.view.hidden_classes()).shape[0] > 0
    result = run_scenario(scenario, runs_dir=tmp_path, progress=False, echo=lambda _: None)
    assert result.results["semantic_transductive"] is True
    inductive = run_scenario(load_scenario(None, TINY), runs_dir=tmp_path, progress=False,
                             echo=lambda _: None)
    assert inductive.results["semantic_transductive"] is False


class _Recorder(Observer):
    name = "recorder"

    def __init__(self):
        self.steps, self.finished, self.closed = [], None, False

    def after_task(self, end):
        self.steps.append((end.step, float(end.metrics.steps["SA"][end.step]),
                           (end.run_dir / "checkpoint").is_dir()))

    def after_run(self, results):
        self.finished = results

    def close(self):
        self.closed = True


def test_a_users_observer_sees_every_saved_step_and_is_timed(tmp_path):
    recorder = _Recorder()
    result = run_scenario(load_scenario(None, TINY), runs_dir=tmp_path, progress=False,
                          echo=lambda _: None, observers=[recorder])
    sa = result.results["metrics"]["steps"]["SA"]
    assert [s for s, _, _ in recorder.steps] == [0, 1, 2]
    assert [v for _, v, _ in recorder.steps] == pytest.approx(sa)
    assert all(saved for _, _, saved in recorder.steps)  # it runs after the checkpoint
    assert recorder.finished == result.results and recorder.closed
    for part in ("data", "setup", "training", "testing", "metrics", "tensorboard",
                 "checkpoint", "recorder", "results"):
        assert result.timings[part] >= 0.0, part


@pytest.fixture
def typo_plugin(plugin_dir):
    from tests.conftest import write_plugin_package

    write_plugin_package(plugin_dir, "czsl-test-typo", "czsl_test_typo",
                         {"typo": "czsl_test_typo"}, """
        from czsl import Component, hookimpl

        @hookimpl
        def czsl_components():
            return [Component("regularizer", "typo", "a factory with a bug")]

        @hookimpl
        def czsl_make_regularizer(options):
            return make(**options)

        def make(*, strength=1.0):
            return [len(strength)]   # a bug of the plugin: TypeError inside its body
        """)


def test_a_factorys_own_type_error_is_a_bug_not_a_rejected_option(typo_plugin):
    from czsl.plugins import Plugins

    with pytest.raises(PluginError, match="does not take the option 'strenght'") as unknown:
        Plugins().make("regularizer", "typo", {"strenght": 2}, stream=None)
    assert "did you mean 'strength'" in str(unknown.value)
    with pytest.raises(PluginError, match="failed to build, a bug in that plugin") as bug:
        Plugins().make("regularizer", "typo", {"strength": 2}, stream=None)
    assert "czsl-test-typo" in str(bug.value) and "rejected" not in str(bug.value)


@pytest.mark.parametrize("body, message", [
    ("return [object()]", "from czsl_observers, which must return a list of "
                          "czsl.observers.Observer"),
    ("raise RuntimeError('no journal')", "failed in czsl_observers: RuntimeError: no journal"),
], ids=["not_an_observer", "raises"])
def test_a_plugins_observers_are_checked_before_the_run_folder_exists(tmp_path, plugin_dir,
                                                                      body, message):
    write_plugin_package(plugin_dir, "czsl-test-badobs", "czsl_test_badobs",
                         {"badobs": "czsl_test_badobs"}, f"""
        from czsl import hookimpl

        @hookimpl
        def czsl_observers(scenario):
            {body}
        """)
    with pytest.raises(PluginError) as err:
        run_scenario(load_scenario(None, TINY), runs_dir=tmp_path / "runs", progress=False,
                     echo=lambda _: None)
    assert str(err.value).startswith("plugin 'badobs' (czsl-test-badobs 0.1) ")
    assert message in str(err.value)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
