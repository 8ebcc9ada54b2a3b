"""Plugin options: a bad value stops the run before it starts, naming the plugin, the
option and where to fix it (czsl.options, and Plugins.make around it)."""

from __future__ import annotations

import inspect
import math
from pathlib import Path

import pytest

import czsl_plugins.aczsl
import czsl_plugins.agem
import czsl_plugins.anti_collapse
import czsl_plugins.attribute_embedder
import czsl_plugins.bd_cgzsl
import czsl_plugins.cvae
import czsl_plugins.dvgr
import czsl_plugins.ewc_online
import czsl_plugins.fclswgan
import czsl_plugins.feature_classifier
import czsl_plugins.feature_replay
import czsl_plugins.generative_replay
import czsl_plugins.gradient_matching
import czsl_plugins.grw
import czsl_plugins.mas
import czsl_plugins.multitask
import czsl_plugins.random_walk
import czsl_plugins.tfgczsl
from czsl.cli import main
from czsl.config import ProtocolConfig, load_scenario
from czsl.data import make_synthetic
from czsl.errors import OptionError, PluginError
from czsl.options import boolean, choice, integer, number
from czsl.plugins import Plugins
from czsl.streams import build_stream
from tests.conftest import Tiny

NAN, INF = math.nan, math.inf


def test_boolean_takes_only_true_and_false():
    assert boolean("on", True) is True and boolean("on", False) is False
    for bad in (1, 0, "false", "true", None, 1.0):
        with pytest.raises(OptionError, match=r"^on must be true or false, got"):
            boolean("on", bad)


def test_integer_takes_whole_numbers_from_its_bound():
    assert integer("n", 1) == 1 and integer("n", 0, at_least=0) == 0
    assert integer("n", 3, at_least=3) == 3
    for bad, at_least, words in [(0, 1, "a positive integer"), (-1, 0, "a non-negative"),
                                 (2, 3, "an integer >= 3"), (2.0, 1, "a positive"),
                                 (True, 0, "a non-negative"), ("3", 1, "a positive"),
                                 (None, 1, "a positive")]:
        with pytest.raises(OptionError, match=f"^n must be {words}.*got {bad!r}"):
            integer("n", bad, at_least=at_least)


def test_number_takes_finite_numbers_within_open_or_closed_bounds():
    assert number("x", 2) == 2.0 and isinstance(number("x", 2), float)
    assert number("x", 0, at_least=0) == 0.0 and number("x", 1, at_most=1) == 1.0
    assert number("x", 0.5, above=0, below=1) == 0.5
    for bad, bounds, words in [
            (NAN, {}, "a finite number, got nan"), (INF, {}, "got inf"),
            (-INF, {"at_least": 0}, "got -inf"), ("1", {}, "got '1'"), (True, {}, "got True"),
            (None, {}, "got None"), (-1, {"at_least": 0}, ">= 0, got -1"),
            (0, {"above": 0}, "> 0, got 0"), (1.5, {"at_most": 1}, "<= 1, got 1.5"),
            (1, {"below": 1}, "< 1, got 1"), (1, {"at_least": 0, "below": 1}, r"in \[0, 1\)"),
            (0, {"above": 0, "at_most": 1}, r"in \(0, 1\]")]:
        with pytest.raises(OptionError, match=f"^x must be {words}" if words.startswith(
                "a ") else words):
            number("x", bad, **bounds)


def test_choice_lists_the_choices():
    assert choice("c", "b", ("a", "b")) == "b"
    for bad in ("z", 1, None):
        with pytest.raises(OptionError, match=r"^c must be one of 'a', 'b', got"):
            choice("c", bad, ("a", "b"))


# -- every built-in plugin checks every option ------------------------------------------

BOOL = [1, "false", None]
CHOICE = ["nope", 1]


def INT(at_least=1):  # noqa: N802 - reads as a type in the table below
    return [2.5, True, "3", at_least - 1]


def NUM(*out_of_range):  # noqa: N802
    return [NAN, INF, "1", True, *out_of_range]


def DECLARED(options):  # noqa: N802
    """A stand-in factory for a plugin whose factory takes ``**options`` and declares their
    defaults in a dict (``Component(options=...)``): keyword defaults from that dict."""
    def factory():
        pass
    factory.__signature__ = inspect.Signature([inspect.Parameter(
        key, inspect.Parameter.KEYWORD_ONLY, default=value) for key, value in options.items()])
    return factory


PAIR = [[0.01], 0.01, "0.01", [NAN, 0.01], [-0.1, 0.01]]


#: (kind, name) -> (factory whose keyword defaults hold the options, option -> bad values)
BUILT_INS = {
    ("model", "attribute_embedder"): (czsl_plugins.attribute_embedder.build_model, {
        "hidden_dims": [[0], [2.5], 16, "16"], "class_norm": BOOL, "proper_init": BOOL,
        "class_norm_layout": CHOICE, "class_norm_divisor": CHOICE,
        "normalize_attributes": BOOL, "scale": NUM(0, -1)}),
    ("model", "feature_classifier"): (czsl_plugins.feature_classifier.build_model, {
        "hidden_dims": [[0], [2.5], 16, "16"], "dropout": NUM(-0.1, 1),
        "normalize_input": BOOL, "standardize": BOOL, "dropout_when_testing": BOOL}),
    ("regularizer", "ewc_online"): (czsl_plugins.ewc_online.make_plugin, {
        "ewc_lambda": NUM(-1), "gamma": NUM(-0.1, 1.5), "normalize": BOOL}),
    ("regularizer", "mas"): (czsl_plugins.mas.make_plugin, {
        "lambda_reg": NUM(-1), "alpha": NUM(1.5), "gamma": NUM(1.5)}),
    ("regularizer", "agem"): (czsl_plugins.agem.make_plugin, {
        # the stream has 3 tasks: a reference gradient needs >= 1 sample per past task
        "samples_per_class": INT(), "sample_size": [*INT(), 1]}),
    ("regularizer", "none"): (lambda: None, {}),
    ("replay", "multitask"): (czsl_plugins.multitask.make_plugin, {
        "max_iterations": INT()}),
    ("replay", "feature_replay"): (czsl_plugins.feature_replay.make_plugin, {
        "mem_size": [*INT(), None], "batch_size_mem": INT()}),
    ("replay", "generative_replay"): (czsl_plugins.generative_replay.make_plugin, {
        "replay_per_class": INT(), "semantic_transductive": BOOL, "mix": CHOICE,
        "batch_size_mem": INT(), "generator_replay_per_class": [*INT(0), 301],
        "real_buffer": INT(0), "to_classifier": [*CHOICE, "real"]}),
    ("replay", "aczsl"): (czsl_plugins.aczsl.make_plugin, {
        "epochs": INT(), "batch_size": INT(), "lr": NUM(0), "latent_dim": INT(),
        "hidden": INT(), "adv_weight": NUM(-1), "grl_lambda": NUM(-1),
        "replay_per_class": INT(), "classifier_per_class": INT(), "relu_latent": BOOL,
        "fixed_batches": BOOL, "reset_classifier": BOOL}),
    ("replay", "none"): (lambda: None, {}),
    ("model", "tfgczsl"): (czsl_plugins.tfgczsl.build_model, {
        "latent_dim": INT(), "feature_hidden": [[0, 5], [2.5, 3], 16, "16", [16]],
        "attribute_hidden": [[0, 5], [16, 16, 16], None]}),
    ("replay", "tfgczsl"): (czsl_plugins.tfgczsl.make_plugin, {
        "epochs": INT(), "batch_size": INT(), "lr": NUM(0), "mem_size": INT(0),
        "mem_batch_size": INT(0), "der_weight": NUM(-1), "seen_samples": INT(),
        "unseen_samples": INT(), "transductive": BOOL}),
    ("generator", "cvae"): (czsl_plugins.cvae.CVAE, {
        "latent_dim": INT(), "hidden": INT(), "epochs": INT(), "batch_size": INT(),
        "lr": NUM(0), "margin": NUM(-1), "margin_weight": NUM(-1), "fast_math": BOOL}),
    ("generator", "fclswgan"): (czsl_plugins.fclswgan.FCLSWGAN, {
        "hidden": INT(), "noise_dim": INT(), "batch_size": INT(), "epochs": INT(),
        "critic_steps": INT(), "cls_batch_size": INT(), "cls_epochs": INT(0),
        "max_iterations": INT(0), "cpu_max_iterations": INT(0), "lr": NUM(0),
        "cls_lr": NUM(0), "beta1": NUM(1, -0.1),
        "gp_weight": NUM(-1), "cls_weight": NUM(-1)}),
    ("generator_loss", "anti_collapse"): (czsl_plugins.anti_collapse.AntiCollapse, {
        "weight": NUM(-1), "eps": NUM(0)}),
    ("generator_loss", "gradient_matching"): (
        czsl_plugins.gradient_matching.GradientMatching, {
            "weight": NUM(-1), "classifier": CHOICE, "n_classes": INT(0),
            "per_class": INT(), "fake_repeat": INT(), "reset_every": INT(0),
            "epochs": INT(0), "lr": NUM(0), "weight_decay": NUM(-1), "batch_size": INT()}),
    ("generator_loss", "random_walk"): (czsl_plugins.random_walk.RandomWalk, {
        "weight": NUM(-1), "steps": INT(0), "decay": NUM(0, 1.5), "visit_weight": NUM(-1),
        "similarity": CHOICE, "scale": NUM(0), "prototypes": CHOICE,
        "per_prototype": INT(), "n_hallucinated": INT(0),
        "interpolation": [[0.8, 0.2], [0.2], "0.5", [NAN, 0.5], [-0.1, 0.5]]}),
    ("generator", "dvgr_cvae"): (czsl_plugins.dvgr.DVGRCVAE, {
        "encoder_dims": [[0], [2.5], [True], [], 16, "16"],
        "decoder_dims": [[0], [2.5], [True], [], 16, "16"], "latent_dim": INT(),
        "label_slots": INT(0), "unseen_labels": CHOICE, "lr": NUM(0), "epochs": INT(0),
        "batch_size": INT(), "fixed_epsilon": BOOL, "reshuffle": BOOL,
        "label_weight": NUM(-1), "attribute_weight": NUM(-1)}),
    ("replay", "dvgr"): (czsl_plugins.dvgr.make_replay, {
        "replay_per_class": INT(0), "classifier_per_class": INT(), "transductive": BOOL,
        "real_to_classifier": BOOL, "reset_classifier": BOOL}),
    ("model", "grw_discriminator"): (czsl_plugins.grw.build_discriminator, {
        "hidden": INT(), "temperature": NUM(0)}),
    ("replay", "grw"): (DECLARED(czsl_plugins.grw.OPTIONS), {
        "hallucination": CHOICE, "buffer_size": INT(0), "lr": NUM(0),
        "weight_decay": NUM(-1), "dictionary_lr": NUM(0), "temperature": NUM(0),
        "adversarial_weight": NUM(-1), "mse_weight": NUM(-1),
        "classification_weight": NUM(-1), "mean_distance_weight": NUM(-1),
        "correlation_weight": NUM(-1), "neighbours": INT(), "correlation_margins": PAIR,
        "creativity_weight": NUM(-1), "imitative_weight": NUM(-1),
        "real_walk_weight": NUM(-1), "creative_walk_weight": NUM(-1),
        "visit_weight": NUM(-1), "steps": INT(0), "decay": NUM(0, 1.5),
        "per_prototype": INT(), "prototypes": CHOICE, "prototype_draws": CHOICE,
        "interpolation": [[0.8, 0.2], [0.2, 1.5], [0.2], "0.5", [NAN, 0.5], [-0.1, 0.5]],
        "hidden": INT(), "reset_optimizer": BOOL, "real_pairs": CHOICE}),
    ("replay", "bd_cgzsl"): (DECLARED(czsl_plugins.bd_cgzsl.OPTIONS), {
        "transductive": BOOL, "replay_per_class": INT(), "unseen_batch_size": INT(),
        "unseen_weight": NUM(-1), "lr": NUM(0), "weight_decay": NUM(-1),
        "temperature": NUM(0), "adversarial_weight": NUM(-1), "mse_weight": NUM(-1),
        "classification_weight": NUM(-1), "mean_distance_weight": NUM(-1),
        "correlation_weight": NUM(-1), "neighbours": INT(), "correlation_margins": PAIR,
        "hidden": INT(), "reset_optimizer": BOOL, "real_pairs": CHOICE}),
}


def test_the_table_covers_every_built_in_and_every_option():
    plugins = Plugins()
    built_ins = {(item.component.kind, item.component.name) for item in plugins.listed
                 if item.package == "czsl"}
    assert built_ins == set(BUILT_INS)
    for (kind, name), (factory, bad) in BUILT_INS.items():
        assert set(plugins.options(kind, name).defaults) == set(bad), (kind, name)
        defaults = {p.name for p in inspect.signature(factory).parameters.values()
                    if p.default is not inspect.Parameter.empty}
        assert set(bad) <= defaults, (kind, name)  # the factory's own keywords


@pytest.fixture
def stream():
    data = make_synthetic(n_classes=9, n_attributes=4, n_features=8, samples_per_class=10,
                          n_unseen=3, seed=0)
    return Tiny(build_stream(data, ProtocolConfig(name="grw", task_sizes=[2, 2, 2]), seed=0))


def _make(kind, name, options, stream):
    args = {"model": {"n_features": 8, "attributes": stream.attributes},
            "regularizer": {"stream": stream.view},
            "replay": {"stream": stream.view, "make_generator": lambda: Plugins().make(
                "generator", "cvae", {"hidden": 8}, n_features=8, n_attributes=4)},
            "generator": {"n_features": 8, "n_attributes": 4},
            "generator_loss": {"n_features": 8, "n_attributes": 4}}[kind]
    return Plugins().make(kind, name, options, **args)


CASES = [(kind, name, option, value) for (kind, name), (_, bad) in BUILT_INS.items()
         for option, values in bad.items() for value in values]


@pytest.mark.parametrize("kind, name, option, value", CASES,
                         ids=[f"{n}.{o}={v!r}" for _, n, o, v in CASES])
def test_a_bad_option_value_is_named_with_its_plugin_and_fix(stream, kind, name, option,
                                                             value):
    with pytest.raises(PluginError) as caught:
        _make(kind, name, {option: value}, stream)
    message = str(caught.value)
    assert isinstance(caught.value.__cause__, OptionError), message
    assert caught.value.__cause__.key == option
    assert f"{kind} {name!r} (plugin " in message and f"option {option} " in message
    fix = ("[generator] losses" if kind == "generator_loss"
           else f"--set {kind}.{option}=VALUE")
    assert fix in message


@pytest.mark.parametrize("kind, name", list(BUILT_INS))
def test_every_built_in_builds_with_its_defaults(stream, kind, name):
    assert _make(kind, name, {}, stream) is not None


@pytest.mark.parametrize("override, words", [
    ("model.class_norm=1", "option class_norm must be true or false, got 1"),
    ("model.scale=nan", "option scale must be a finite number > 0, got nan"),
    ("model.proper_init='false'", "option proper_init must be true or false, got 'false'"),
])
def test_the_cli_stops_before_writing_anything(tmp_path, capsys, override, words):
    code = main(["run", "--runs-dir", str(tmp_path / "runs"), "--no-progress",
                 "--set", override])
    assert code == 2
    err = capsys.readouterr().err
    assert words in err and "--set model." in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[1] / "scenarios")
                                        .glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_scenarios_plugin_options_pass_the_checks(stream, path):
    scenario = load_scenario(path)
    for kind in ("model", "regularizer", "replay", "generator"):
        config = getattr(scenario, kind)
        options = dict(config.options)
        for loss in options.pop("losses", []) if kind == "generator" else []:
            loss = dict(loss)
            _make("generator_loss", loss.pop("name"), loss, stream)
        _make(kind, config.name, options, stream)
