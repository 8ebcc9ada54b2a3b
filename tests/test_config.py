"""Scenario files: parsing, defaults, overrides and their errors."""

from __future__ import annotations

import itertools
import json
import tomllib
from pathlib import Path

import pytest

from czsl.config import PluginConfig, Scenario, load_scenario, scenario_from_document
from czsl.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((REPO / "scenarios").glob("*.toml"))


def test_synthetic_scenario_file_is_the_builtin_default():
    assert load_scenario(REPO / "scenarios" / "synthetic.toml") == load_scenario(None) == Scenario()


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_every_shipped_scenario_parses_and_says_how_to_run_it(path):
    scenario = load_scenario(path)
    assert scenario.name == path.stem
    header = path.read_text().splitlines()[:6]
    assert any(f"czsl run scenarios/{path.name}" in line for line in header), header


def test_round_trip_through_toml_document():
    scenario = load_scenario(None, ["model.hidden_dims=[16]", "regularizer=none"])
    assert scenario_from_document(scenario.document()) == scenario


def test_overrides_set_values_and_plugin_names():
    scenario = load_scenario(None, ["train.epochs=2", "train.lr=0.01", "seed=7",
                                    "model.class_norm=false", "regularizer=mas",
                                    "protocol.name=classnorm", "data.dataset=CUB"])
    assert scenario.train.epochs == 2 and scenario.train.lr == 0.01 and scenario.seed == 7
    assert scenario.model.options == {"class_norm": False}
    assert scenario.regularizer.name == "mas" and scenario.regularizer.options == {}
    assert scenario.protocol.name == "classnorm" and scenario.data.dataset == "CUB"
    swapped = load_scenario(None, ["regularizer=mas", "regularizer.lambda_reg=1e-3"])
    assert swapped.regularizer.name == "mas" and swapped.regularizer.options == {"lambda_reg": 1e-3}


#: a scenario file whose plugin tables set options of their own
TABLES = """
[replay]
name = "generative_replay"
replay_per_class = 7

[generator]
name = "cvae"
fast_math = true
losses = [{name = "random_walk", prototypes = "real"}]
"""


def test_overrides_compose_in_any_order(tmp_path):
    """A swap keeps the options set for its table (in the file or by other overrides), a
    table value replaces the file's table, whatever the order of the overrides."""
    path = tmp_path / "s.toml"
    path.write_text(TABLES)
    overrides = ["generator.epochs=3", "generator=cvae", "replay=feature_replay",
                 "replay.mem_size=50", 'model={name="attribute_embedder", scale=4.0}',
                 "model.class_norm=false"]
    resolved = {json.dumps(load_scenario(path, list(order)).document(), sort_keys=True)
                for order in itertools.permutations(overrides)}
    assert len(resolved) == 1
    scenario = load_scenario(path, overrides)
    assert scenario.generator.options == {
        "fast_math": True, "losses": [{"name": "random_walk", "prototypes": "real"}],
        "epochs": 3}
    assert scenario.replay == PluginConfig("feature_replay",
                                           {"replay_per_class": 7, "mem_size": 50})
    assert scenario.model == PluginConfig("attribute_embedder",
                                          {"scale": 4.0, "class_norm": False})


def test_a_table_value_replaces_the_whole_table(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(TABLES)
    swapped = load_scenario(path, ['replay={name="feature_replay"}', "generator=cvae"])
    assert swapped.replay == PluginConfig("feature_replay")
    assert swapped.generator == load_scenario(path).generator  # the same plugin: kept
    default = load_scenario(path, ["generator={epochs=2}"]).generator
    assert default == PluginConfig("cvae", {"epochs": 2})  # no name: the default plugin


@pytest.mark.parametrize("text, words", [
    ("[train]\nepocs = 3\n", ["unknown key 'train.epocs'", "did you mean 'epochs'"]),
    ("[train]\nepochs = 'three'\n", ["train.epochs", "expected int"]),
    ("[train]\nepochs = 0\n", ["train.epochs", "positive"]),
    ("[protocol]\nname = 'gwr'\n", ["protocol.name", "'gwr' is not one of"]),
    ("[protocol]\ntask_sizes = [10, 0]\n", ["at least one class"]),
    ("[model]\nname = 3\n", ["model.name", "must be a plugin name"]),
    ("train = 3\n", ["expected a table [train]"]),
    ("[train\nepochs = 3\n", ["not valid TOML"]),
    ("colour = 'red'\n", ["unknown key 'colour'"]),
])
def test_bad_scenarios_give_clear_errors(tmp_path, text, words):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_scenario(path)
    for word in words:
        assert word in str(err.value)
    assert str(path) in str(err.value)


def test_missing_file_and_bad_override():
    with pytest.raises(ConfigError, match="does not exist"):
        load_scenario(Path("no/such/scenario.toml"))
    with pytest.raises(ConfigError, match="expected key=value"):
        load_scenario(None, ["train.epochs"])
    with pytest.raises(ConfigError, match="key 'seed': expected int"):
        load_scenario(None, ["seed.x=1"])
    with pytest.raises(ConfigError, match="'seed' is a value, not a table"):
        load_scenario(None, ["seed=1", "seed.x=1"])


def test_scenario_document_is_valid_toml():
    import tomli_w

    text = tomli_w.dumps(Scenario().document())
    assert tomllib.loads(text)["model"]["name"] == "attribute_embedder"
