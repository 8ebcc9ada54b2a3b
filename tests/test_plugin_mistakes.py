"""A plugin author's mistakes, each caught early and blamed on the right package.

Every test writes a throw-away package (``tests/conftest.py``'s
:func:`write_plugin_package`) and checks the one line a user would see.
"""

from __future__ import annotations

from importlib import metadata

import pytest

from czsl.build import build_run
from czsl.cli import main
from czsl.config import load_scenario
from czsl.errors import PluginError
from czsl.learner import ZSLLearner
from czsl.plugin_check import check
from czsl.plugins import Plugins
from czsl.run import run_scenario
from tests.conftest import write_plugin_package

QUIET = {"progress": False, "echo": lambda _: None}
SMALL = ["train.epochs=1", "model.hidden_dims=[16]", "data.synthesis.n_classes=8",
         "data.synthesis.samples_per_class=10", "data.synthesis.n_features=8",
         "data.synthesis.n_attributes=4", "data.synthesis.n_unseen=2",
         "protocol.task_sizes=[4, 4]"]

#: A GAN-style generator whose network uses torch's spectral-norm parametrization:
#: such modules cannot be pickled (only their state_dict can).
SPECTRAL = """
    from czsl import Component, hookimpl

    @hookimpl
    def czsl_components():
        return [Component("generator", "sngan", "spectral-norm generator")]

    @hookimpl
    def czsl_make_generator(options, n_features, n_attributes):
        return SNGenerator(n_features, n_attributes)

    class SNGenerator:
        def __init__(self, n_features, n_attributes):
            import torch
            from torch.nn.utils.parametrizations import spectral_norm

            self.net = spectral_norm(torch.nn.Linear(n_attributes, n_features))

        def to(self, device):
            self.net.to(device)
            return self

        def fit(self, features, attributes):
            pass

        def sample(self, attributes, n):
            import torch

            with torch.no_grad():
                return self.net(attributes.repeat_interleave(n, 0))
"""


@pytest.fixture
def no_training(monkeypatch):
    """Fails the test if any task starts training."""
    def train_task(self, step):
        raise AssertionError(f"task {step} trained before the error")
    monkeypatch.setattr(ZSLLearner, "train_task", train_task)


def test_unpicklable_generator_is_named_before_anything_trains(plugin_dir, tmp_path,
                                                               no_training):
    write_plugin_package(plugin_dir, "czsl-sngan", "czsl_test_sngan",
                         {"sngan": "czsl_test_sngan"}, SPECTRAL, version="0.3")
    scenario = load_scenario(None, SMALL + ["replay=generative_replay", "generator=sngan"])
    runs = tmp_path / "runs"
    with pytest.raises(PluginError) as err:
        run_scenario(scenario, runs_dir=runs, **QUIET)
    message = str(err.value)
    # the generator's package, not the built-in replay that holds the generator
    assert message.startswith(
        "generator 'sngan' (plugin 'sngan' from czsl-sngan 0.3, held by replay "
        "'generative_replay' as 'generator') cannot be checkpointed (found when the run "
        "was built): its attribute 'net' cannot be pickled"), message
    assert "SNGenerator needs __getstate__/__setstate__" in message
    assert "Nothing was trained" in message
    assert not runs.exists()


REGULARIZER = """
    from czsl import Component, hookimpl

    @hookimpl
    def czsl_components():
        return [Component("regularizer", "NAME", "a toy regularizer")]

    @hookimpl
    def czsl_make_regularizer(options):
        return [make_plugin(**options)]

    def make_plugin(*, alpha=1.0, temperature=2.0):
        from avalanche.core import SupervisedPlugin

        return SupervisedPlugin()
"""


def _regularizer(name: str) -> str:
    return REGULARIZER.replace('"NAME"', repr(name))


def test_two_packages_with_one_plugin_name_are_both_named(plugin_dir):
    write_plugin_package(plugin_dir, "czsl-lwf", "czsl_test_lwf", {"lwf": "czsl_test_lwf"},
                         _regularizer("lwf"))
    write_plugin_package(plugin_dir, "czsl-mistake", "czsl_test_mistake",
                         {"lwf": "czsl_test_mistake"}, _regularizer("lwf"), version="0.2")
    plugins = Plugins()
    assert plugins.find("regularizer", "ewc_online").package == "czsl"  # the rest works
    with pytest.raises(PluginError) as err:
        plugins.find("regularizer", "lwf")
    assert "packages czsl-lwf 0.1 and czsl-mistake 0.2 both register a czsl plugin named " \
           "'lwf', so czsl loads neither" in str(err.value)


def test_a_plugin_named_like_a_built_in_says_what_to_rename(plugin_dir):
    write_plugin_package(plugin_dir, "czsl-ewc", "czsl_test_ewc",
                         {"ewc_online": "czsl_test_ewc"}, _regularizer("my_ewc"))
    plugins = Plugins()
    assert plugins.find("regularizer", "ewc_online").package == "czsl"
    [problem] = plugins.problems
    assert problem.message.startswith(
        "package czsl-ewc 0.1 registers a czsl plugin named 'ewc_online', the name of a "
        "built-in czsl plugin, so czsl ignores it; rename that entry point (the key before "
        "'=' under [project.entry-points.czsl] in czsl-ewc's pyproject.toml")
    assert "uninstall" not in problem.message


def test_a_near_miss_entry_point_group_is_reported(plugin_dir):
    write_plugin_package(plugin_dir, "czsl-gan", "czsl_test_gan", {"gan": "czsl_test_gan"},
                         _regularizer("gan"), group="cszl")
    plugins = Plugins()
    line = ("package czsl-gan 0.1 declares entry points in group 'cszl', not 'czsl', so czsl "
            "never loads them")
    assert any(found.startswith(line) for found in check(plugins))
    with pytest.raises(PluginError) as err:  # and the unknown name says why
        plugins.find("regularizer", "gan")
    assert line in str(err.value)


def test_hook_functions_without_hookimpl_are_reported(plugin_dir):
    unmarked = _regularizer("quiet").replace("@hookimpl\n    def czsl_components",
                                             "def czsl_components")
    write_plugin_package(plugin_dir, "czsl-quiet", "czsl_test_quiet",
                         {"quiet": "czsl_test_quiet"}, unmarked)
    write_plugin_package(plugin_dir, "czsl-empty", "czsl_test_empty",
                         {"empty": "czsl_test_empty"}, "X = 1\n")
    plugins = Plugins()
    found = check(plugins)
    line = ("plugin 'quiet' (czsl-quiet 0.1): czsl_components lacks @czsl.hookimpl, so czsl "
            "never calls it")
    assert line in "\n".join(found)
    with pytest.raises(PluginError) as err:  # the unknown name says why
        plugins.find("regularizer", "quiet")
    assert line in str(err.value)
    assert "plugin 'empty' (czsl-empty 0.1): czsl_test_empty implements no czsl hook" \
           in "\n".join(found)


def test_a_component_without_factory_is_reported(plugin_dir):
    source = _regularizer("lonely").replace("@hookimpl\n    def czsl_make_regularizer",
                                            "def make_regularizer")
    write_plugin_package(plugin_dir, "czsl-lonely", "czsl_test_lonely",
                         {"lonely": "czsl_test_lonely"}, source)
    assert "regularizer 'lonely' (plugin 'lonely' from czsl-lonely 0.1) is declared but " \
           "the plugin has no czsl_make_regularizer hook" in "\n".join(check(Plugins()))


def test_a_broken_package_blocks_neither_czsl_plugins_nor_an_unrelated_run(
        plugin_dir, tmp_path, capsys):
    write_plugin_package(plugin_dir, "czsl-broken", "czsl_test_broken",
                         {"broken": "czsl_test_broken"}, "import no_such_module\n")
    assert main(["plugins"]) == 0
    out = capsys.readouterr()
    assert "attribute_embedder" in out.out
    assert "czsl: warning: plugin 'broken' from package czsl-broken 0.1 failed to import" \
           in out.err
    assert main(["plugins", "--check"]) == 1  # for a plugin's CI
    capsys.readouterr()

    notes = []
    result = run_scenario(load_scenario(None, SMALL), runs_dir=tmp_path / "runs",
                          progress=False, echo=notes.append)
    assert result.results["n_tasks"] == 2
    assert any(n.startswith("warning: plugin 'broken' from package czsl-broken") for n in notes)

    with pytest.raises(PluginError, match="regularizer 'broken' cannot be used: plugin "
                                          "'broken' from package czsl-broken 0.1 failed"):
        build_run(load_scenario(None, SMALL + ["regularizer=broken"]), echo=notes.append)


def test_options_and_defaults_are_listed(plugin_dir, capsys):
    write_plugin_package(plugin_dir, "czsl-toy", "czsl_test_toy", {"toy": "czsl_test_toy"},
                         _regularizer("toy"))
    assert main(["plugins"]) == 0
    lines = capsys.readouterr().out.splitlines()
    row = next(i for i, line in enumerate(lines) if line.split()[:2] == ["regularizer", "toy"])
    assert lines[row + 1].split() == ["options:", "alpha=1.0,", "temperature=2.0"]


def test_a_slow_import_is_named(plugin_dir):
    write_plugin_package(plugin_dir, "czsl-slow", "czsl_test_slow", {"slow": "czsl_test_slow"},
                         _regularizer("slow"))
    eps = list(metadata.entry_points(group="czsl", name="slow"))
    ticks = iter([10.0, 12.5])  # the import "took" 2.5 s: no real timing in a test
    plugins = Plugins(eps, clock=lambda: next(ticks))
    [note] = plugins.notes
    assert note.startswith("plugin 'slow' from package czsl-slow 0.1 took 2.5 s to import")
    assert not Plugins(eps, clock=iter([10.0, 10.2]).__next__).notes


@pytest.mark.parametrize("cast, words", [
    (lambda x: x.double(), "returned a torch.float64 tensor on cpu for torch.float32"),
    (lambda x: x.to("meta"), "returned a torch.float32 tensor on meta for torch.float32"),
])
def test_a_sample_of_the_wrong_dtype_or_device_is_refused_at_once(cast, words):
    import torch

    from czsl.generators import CheckedGenerator

    class Generator:
        def fit(self, features, attributes):
            pass

        def to(self, device):
            return self

        def sample(self, attributes, n):
            return cast(torch.zeros(len(attributes) * n, 3))

    checked = CheckedGenerator(Generator(), "generator 'g' (plugin 'g' from czsl-g 0.1)", 3)
    with pytest.raises(PluginError, match=words):
        checked.sample(torch.zeros(2, 4), 5)


def test_state_that_becomes_unpicklable_in_training_is_named_after_the_task(plugin_dir,
                                                                            tmp_path):
    source = REGULARIZER.replace('"NAME"', '"late"').replace('''
        return SupervisedPlugin()''', '''
        class Late(SupervisedPlugin):
            def after_training_exp(self, strategy, **kwargs):
                self.hook = lambda: None  # pickle cannot save this

        return Late()''')
    write_plugin_package(plugin_dir, "czsl-late", "czsl_test_late", {"late": "czsl_test_late"},
                         source)
    runs = tmp_path / "runs"
    with pytest.raises(PluginError) as err:
        run_scenario(load_scenario(None, SMALL + ["regularizer=late"]), runs_dir=runs, **QUIET)
    message = str(err.value)
    assert message.startswith("regularizer 'late' (plugin 'late' from czsl-late 0.1) cannot "
                              "be checkpointed after task 0: its attribute 'hook' cannot be "
                              "pickled"), message
    assert "Late needs __getstate__/__setstate__" in message
    assert "No task had finished" in message and not any(runs.glob("*/results.json"))


LAMBDA_LOSS = """
    from czsl import Component, hookimpl

    @hookimpl
    def czsl_components():
        return [Component("generator_loss", "lam", "a lambda: cannot be checkpointed")]

    @hookimpl
    def czsl_make_generator_loss(options):
        return lambda batch: batch.fake.sum() * 0
"""


def test_an_unpicklable_generator_loss_is_named_not_the_generator(plugin_dir, tmp_path,
                                                                  no_training):
    write_plugin_package(plugin_dir, "czsl-lam", "czsl_test_lam", {"lam": "czsl_test_lam"},
                         LAMBDA_LOSS)
    scenario = load_scenario(None, SMALL + ["replay=generative_replay", "generator=cvae",
                                            "generator.losses=[{name='lam'}]"])
    with pytest.raises(PluginError) as err:
        run_scenario(scenario, runs_dir=tmp_path / "runs", **QUIET)
    assert str(err.value).startswith(
        "generator loss 'lam' (plugin 'lam' from czsl-lam 0.1), held by generator 'cvae', "
        "cannot be checkpointed (found when the run was built): the function its "
        "czsl_make_generator_loss returned cannot be pickled"), str(err.value)
