"""Plugin discovery through the ``czsl`` entry-point group, and its errors."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from czsl.errors import PluginError
from czsl.plugins import Plugins
from tests.conftest import write_plugin_package

GOOD = """
    from czsl import Component, hookimpl

    @hookimpl
    def czsl_components():
        return [Component("regularizer", "toy_reg", "a toy regularizer")]

    @hookimpl
    def czsl_make_regularizer(name, options):
        if name != "toy_reg":
            return None
        return ["built", dict(options)]
"""


def test_builtins_are_found_through_entry_points():
    plugins = Plugins()
    by_name = {(i.component.kind, i.component.name): i for i in plugins.listed}
    item = by_name[("model", "attribute_embedder")]
    assert item.package == "czsl" and item.plugin == "attribute_embedder"
    assert ("regularizer", "none") in by_name and ("replay", "none") in by_name


def test_third_party_plugin_is_discovered_and_built(plugin_dir):
    write_plugin_package(plugin_dir, "czsl-toy", "czsl_test_toy", {"toy": "czsl_test_toy"}, GOOD)
    plugins = Plugins()
    item = plugins.find("regularizer", "toy_reg")
    assert (item.package, item.version, item.plugin) == ("czsl-toy", "0.1", "toy")
    assert plugins.make("regularizer", "toy_reg", {"strength": 3}, stream=None) == [
        "built", {"strength": 3}]


def test_unknown_name_lists_names_and_suggests_closest():
    with pytest.raises(PluginError) as err:
        Plugins().find("model", "atribute_embedder")
    message = str(err.value)
    assert "unknown model 'atribute_embedder'" in message
    assert "attribute_embedder" in message and "Did you mean" in message


def test_plugin_that_fails_to_import_names_itself(plugin_dir):
    write_plugin_package(plugin_dir, "czsl-broken", "czsl_test_broken",
                         {"broken": "czsl_test_broken"}, "raise RuntimeError('boom')\n")
    plugins = Plugins()  # the others still load
    assert plugins.find("model", "attribute_embedder").package == "czsl"
    [problem] = plugins.problems
    assert problem.package == "czsl-broken 0.1"
    with pytest.raises(PluginError, match=r"regularizer 'broken' cannot be used: plugin "
                                          r"'broken' from package czsl-broken 0.1 failed to "
                                          r"import.*boom"):
        plugins.find("regularizer", "broken")


def test_misspelled_hook_fails_loudly_where_its_components_are_asked_for(plugin_dir):
    source = GOOD + "\n    @hookimpl\n    def czsl_make_regulariser(name):\n        return None\n"
    write_plugin_package(plugin_dir, "czsl-typo", "czsl_test_typo", {"typo": "czsl_test_typo"},
                         source)
    plugins = Plugins()
    assert ("regularizer", "toy_reg") not in {(i.component.kind, i.component.name)
                                               for i in plugins.listed}
    with pytest.raises(PluginError, match="regularizer 'toy_reg' cannot be used: plugin "
                                          "'typo' \\(czsl-typo 0.1\\) implements a hook czsl "
                                          "does not have.*czsl_make_regulariser"):
        plugins.find("regularizer", "toy_reg")


def test_factory_errors_name_the_plugin_and_package(plugin_dir):
    source = GOOD.replace('return ["built", dict(options)]', "raise ValueError('bad lambda')")
    write_plugin_package(plugin_dir, "czsl-raises", "czsl_test_raises",
                         {"raises": "czsl_test_raises"}, source)
    with pytest.raises(PluginError, match=r"regularizer 'toy_reg' \(plugin 'raises' from "
                                          r"czsl-raises 0.1\) failed to build.*bad lambda"):
        Plugins().make("regularizer", "toy_reg", {}, stream=None)


def test_unknown_option_is_an_error_naming_the_option():
    with pytest.raises(PluginError, match="does not take the option 'hiden_dims'"):
        Plugins().make("model", "attribute_embedder", {"hiden_dims": [8]},
                       n_features=8, attributes=[[1.0, 0.0]])


@pytest.mark.parametrize("dims", [[0], [16, -2], [8.5], "16"])
def test_attribute_embedder_refuses_layers_without_width(dims):
    with pytest.raises(PluginError, match="hidden_dims must be a list of positive layer"):
        Plugins().make("model", "attribute_embedder", {"hidden_dims": dims},
                       n_features=8, attributes=[[1.0, 0.0]])


def test_a_component_named_like_a_built_in_is_ignored_with_what_to_rename(plugin_dir):
    source = GOOD.replace('"toy_reg"', '"none"')
    write_plugin_package(plugin_dir, "czsl-dup", "czsl_test_dup", {"dup": "czsl_test_dup"},
                         source)
    plugins = Plugins()
    assert plugins.find("regularizer", "none").package == "czsl"
    [problem] = plugins.problems
    assert problem.message.startswith(
        "plugin 'dup' (czsl-dup 0.1) declares the regularizer 'none', a built-in name, so "
        "czsl ignores its regularizer; rename it in that plugin's czsl_components()")


def test_two_third_party_plugins_declaring_one_component_are_both_named_and_left_out(
        plugin_dir):
    for dist, module, plugin in (("czsl-one", "czsl_test_one", "one"),
                                 ("czsl-two", "czsl_test_two", "two")):
        write_plugin_package(plugin_dir, dist, module, {plugin: module}, GOOD)
    plugins = Plugins()
    with pytest.raises(PluginError):
        plugins.find("regularizer", "toy_reg")
    messages = {problem.message for problem in plugins.problems}
    # each plugin named as every message names a plugin (Listed.plugin_label)
    assert messages == {
        "plugin 'one' (czsl-one 0.1) and plugin 'two' (czsl-two 0.1) both declare the "
        "regularizer 'toy_reg', so czsl uses neither; rename it in one of them or "
        "uninstall one (pip uninstall czsl-one / czsl-two)"}


def test_cli_lists_third_party_plugin_without_importing_torch(plugin_dir):
    write_plugin_package(plugin_dir, "czsl-toy", "czsl_test_toy", {"toy": "czsl_test_toy"}, GOOD)
    code = ("import sys; from czsl.cli import main; rc = main(['plugins']); "
            "assert 'torch' not in sys.modules and 'avalanche' not in sys.modules, "
            "'czsl plugins imported torch'; sys.exit(rc)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_dir), *sys.path])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=False)
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines()]
    assert ["regularizer", "toy_reg", "czsl-toy", "0.1", "a", "toy", "regularizer"] in rows
    assert any(r[:3] == ["model", "attribute_embedder", "czsl"] for r in rows)


def test_the_readme_lists_every_built_in_component():
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| (\w+) \| `(\w+)` \|", readme, flags=re.M))
    built_in = {(item.component.kind, item.component.name) for item in Plugins().listed
                if item.package == "czsl"}
    assert documented == built_in
