"""What a component takes: one source (:meth:`czsl.plugins.Plugins.options`), read from
its factory without building it, and every consumer reading it."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import pytest
import tomli_w

from czsl import report
from czsl.cli import main
from czsl.errors import PluginError
from czsl.hparams import scenario_hparams
from czsl.plugin_options import REQUIRED, UNSET, ComponentOptions, read
from czsl.plugins import Plugins
from czsl.runfolder import RunFolder
from czsl.settings import plugin_defaults

PROBE = "czsl_probe_option"


class _Stop(Exception):
    pass


def _hook_call(plugins, item, monkeypatch):
    """Run ``item``'s factory hook with ``options={PROBE: 0}`` and catch the call that
    hands the options on: ``(the callee, its positional args, its other keywords)``.
    Every callable of the plugin's module is wrapped, so nothing but running the hook
    tells which one it is and what the hook passes it. The wrappers are undone before
    it returns: a module declaring several components (a replay and its generator) is
    probed once for each, each time unwrapped."""
    with monkeypatch.context() as patch:
        return _probe(plugins, item, patch)


def _probe(plugins, item, monkeypatch):
    """:func:`_hook_call` with its wrappers set through ``monkeypatch``."""
    impl = plugins.factory(item)
    module = inspect.getmodule(impl.function)
    # a module declaring several components is probed once per component: wrap its
    # originals, not the previous probe's wrappers (which report to that probe's list)
    monkeypatch.undo()
    caught = []
    for attr, value in list(vars(module).items()):
        if callable(value) and getattr(value, "__module__", None) == module.__name__ \
                and value is not impl.function:
            def wrapper(*args, _original=value, **kwargs):
                if PROBE in kwargs:
                    kwargs.pop(PROBE)
                    caught.append((_original, args, kwargs))
                    raise _Stop
                return _original(*args, **kwargs)
            monkeypatch.setattr(module, attr, wrapper)
    stream = SimpleNamespace(task_sizes=[2, 2], dataset_name="CUB", n_tasks=2)
    given = {"name": item.component.name, "options": {PROBE: 0}, "stream": stream,
             "make_generator": lambda: None, "n_features": 4, "n_attributes": 3,
             "attributes": None, "losses": None}
    with pytest.raises(_Stop):
        impl.function(**{arg: given[arg] for arg in impl.argnames})
    return caught[0]


def test_every_installed_component_lists_its_factorys_options_but_the_hooks(monkeypatch):
    plugins = Plugins()
    assert plugins.listed
    for item in plugins.listed:
        kind, name = item.component.kind, item.component.name
        told = plugins.options(kind, name)
        if item.component.options is not None:  # declared by the plugin: as declared
            assert told.defaults == dict(item.component.options)
            continue
        callee, args, kwargs = _hook_call(plugins, item, monkeypatch)
        bound = inspect.signature(callee).bind_partial(*args, **kwargs).arguments
        expected = {p.name: p.default
                    for p in inspect.signature(callee).parameters.values()
                    if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                    and p.name not in bound}
        assert dict(told.defaults) == expected, (kind, name)
        assert list(told.defaults) == list(expected)  # in the factory's order


def test_hook_supplied_arguments_are_not_options_and_losses_agree():
    plugins = Plugins()
    agem = plugins.options("regularizer", "agem").defaults
    assert agem == {"samples_per_class": None, "sample_size": 128}  # no 'dataset'
    assert "losses" not in plugins.options("generator", "cvae").defaults
    assert plugins.options("generator_loss", "anti_collapse").defaults == {
        "weight": 0.2, "eps": 1e-5}
    for name in plugins.names("generator_loss"):  # filled in as czsl plugins lists them
        assert plugin_defaults()("generator_loss", name) == dict(
            plugins.options("generator_loss", name).defaults)


def test_mas_gamma_defaults_to_unset_its_rule_off_and_reads_so_everywhere(capsys):
    plugins = Plugins()
    assert plugins.options("regularizer", "mas").defaults["gamma"] is None
    assert plugins.options("regularizer", "mas").filled()["gamma"] == UNSET
    assert main(["plugins"]) == 0
    assert "lambda_reg=0.0001, alpha=0.5, gamma=unset" in capsys.readouterr().out
    hparams = scenario_hparams({"regularizer": {"name": "mas"}},
                               {"features": "synthetic", "n_tasks": 2, "czsl_version": "0"},
                               plugin_defaults())
    assert hparams["regularizer.gamma"] == UNSET
    assert hparams["regularizer.alpha"] == 0.5


# module-level factories and callees, read by read() as a plugin's would be
def _callee(n_features, attributes, *, dataset="", width=8, depth, **extra):
    return None


def _factory(options, n_features, attributes, stream):
    return _callee(n_features, attributes, dataset=stream.dataset_name, **options)


def _starred(options, n_features):
    return _callee(*[n_features, None], **options)


def _no_hand_on(options):
    return _callee(1, 2, **dict(options))


def test_read_leaves_out_what_the_hook_passes_and_marks_required_options():
    from czsl.hookspecs import Component

    comp = Component("model", "m", "a model")
    told = read(comp, _factory)
    assert told == ComponentOptions({"width": 8, "depth": REQUIRED}, any_keyword=True)
    assert told.unknown(["wdth"]) == []  # **extra: any keyword may be right
    assert ComponentOptions({"width": 8}).unknown(["wdth", "width"]) == ["wdth"]
    assert told.format() == "width=8, depth=(required)"
    assert told.filled() == {"width": 8}
    assert read(comp, _starred).defaults == {"dataset": "", "width": 8, "depth": REQUIRED}
    assert read(comp, _no_hand_on) == ComponentOptions(None)
    assert read(comp, _no_hand_on).format() == "(see the plugin's documentation)"
    assert read(Component("model", "m", "a model", options={}), _factory).format() == "(none)"


def test_czsl_plugins_hparams_report_and_the_option_check_all_read_plugins_options(
        monkeypatch, capsys, tmp_path):
    def options(self, kind, name):
        self.find(kind, name)
        return ComponentOptions({"zeta": 7} if name == "attribute_embedder" else {})

    monkeypatch.setattr(Plugins, "options", options)
    assert main(["plugins"]) == 0
    assert "options: zeta=7" in capsys.readouterr().out
    document = {"model": {"name": "attribute_embedder"}, "regularizer": {"name": "none"}}
    results = {"features": "synthetic", "n_tasks": 2, "czsl_version": "0"}
    hparams = scenario_hparams(document, results, plugin_defaults())
    assert hparams["model.zeta"] == 7.0 and "model.scale" not in hparams
    (tmp_path / "scenario.toml").write_text(tomli_w.dumps(document))
    assert report._settings([RunFolder(tmp_path)])[0]["model.zeta"] == 7
    plugins = Plugins()
    plugins.check_options("model", "attribute_embedder", {"zeta": 1})
    with pytest.raises(PluginError, match=r"does not take the option 'scale'; it takes zeta"):
        plugins.check_options("model", "attribute_embedder", {"scale": 5.0})
