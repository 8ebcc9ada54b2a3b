"""The feature classifier model: masking, input normalisation and standardization,
test-time dropout, options, and a transductive generative-replay run with it."""

from __future__ import annotations

import pickle

import pytest
import torch

from czsl.config import load_scenario
from czsl.errors import CZSLError
from czsl.run import run_scenario
from czsl_plugins import feature_classifier

QUIET = {"progress": False, "echo": lambda _: None}
TINY = ["data.synthesis.n_classes=10", "data.synthesis.samples_per_class=12",
        "data.synthesis.n_features=8", "data.synthesis.n_attributes=5",
        "data.synthesis.n_unseen=2", "train.epochs=1", "train.batch_size=16",
        "protocol.task_sizes=[4, 4]"]


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_hidden_classes_get_minus_infinity_and_visible_ones_the_mlp():
    torch.manual_seed(0)
    model = feature_classifier.build_model(6, 4, hidden_dims=[5])
    x = torch.randn(3, 6)
    full = model(x)
    model.set_visible_classes(torch.tensor([True, False, True, False]))
    masked = model(x)
    assert torch.equal(masked[:, [0, 2]], full[:, [0, 2]])
    assert torch.isinf(masked[:, [1, 3]]).all() and (masked[:, [1, 3]] < 0).all()
    with pytest.raises(ValueError, match="at least one class"):
        model.set_visible_classes(torch.zeros(4, dtype=torch.bool))


def test_linear_classifier_is_one_affine_map():
    model = feature_classifier.build_model(3, 2, hidden_dims=[])
    (layer,) = model.net
    x = torch.tensor([[1.0, -2.0, 0.5]])
    assert torch.allclose(model(x), x @ layer.weight.T + layer.bias)


def test_standardizer_is_per_dimension_mean_and_population_std():
    model = feature_classifier.build_model(2, 2, hidden_dims=[], standardize=True)
    feats = torch.tensor([[1.0, 5.0], [3.0, 5.0]])  # dim 0: mean 2, std 1; dim 1 constant
    model.fit_standardizer(feats)
    assert model.input_mean.tolist() == [2.0, 5.0] and model.input_std.tolist() == [1.0, 1.0]
    (layer,) = model.net
    x = torch.tensor([[4.0, 7.0]])
    assert torch.allclose(model(x), torch.tensor([[2.0, 2.0]]) @ layer.weight.T + layer.bias)
    off = feature_classifier.build_model(2, 2, hidden_dims=[])
    off.fit_standardizer(feats)  # a no-op unless standardize is on
    assert off.input_mean.tolist() == [0.0, 0.0]


def test_normalize_input_scores_directions_only():
    model = feature_classifier.build_model(3, 2, hidden_dims=[4], normalize_input=True)
    x = torch.tensor([[1.0, 2.0, 2.0]])
    assert torch.allclose(model(x), model(10 * x))
    plain = feature_classifier.build_model(3, 2, hidden_dims=[4])
    plain.load_state_dict(model.state_dict())
    assert torch.allclose(plain(x / 3), model(x))


def test_dropout_when_testing_keeps_eval_predictions_random():
    torch.manual_seed(0)
    model = feature_classifier.build_model(8, 3, hidden_dims=[64], dropout=0.5,
                                           dropout_when_testing=True).eval()
    x = torch.randn(4, 8)
    assert not torch.equal(model(x), model(x))
    plain = feature_classifier.build_model(8, 3, hidden_dims=[64], dropout=0.5).eval()
    assert torch.equal(plain(x), plain(x))


def test_the_model_pickles_by_reference():
    model = feature_classifier.build_model(4, 3, hidden_dims=[2], dropout=0.1,
                                           dropout_when_testing=True)
    again = pickle.loads(pickle.dumps(model))
    assert type(again) is type(model)
    assert type(again).__module__ == "czsl_plugins.feature_classifier"


@pytest.mark.parametrize("options, words", [
    ({"hidden_dims": [0]}, "hidden_dims"),
    ({"dropout": 1.0}, "dropout"),
    ({"standardize": "yes"}, "standardize"),
    ({"width": 3}, "width"),
])
def test_bad_options_are_one_line(tmp_path, options, words):
    overrides = ["model=feature_classifier", *[f"model.{k}={v!r}".replace("'", '"')
                                               for k, v in options.items()]]
    with pytest.raises(CZSLError) as err:
        run_scenario(load_scenario(None, TINY + overrides), runs_dir=tmp_path, **QUIET)
    assert words in str(err.value) and "\n" not in str(err.value)
    assert not any(tmp_path.iterdir())


def test_a_transductive_generative_replay_run_with_it(tmp_path):
    run = run_scenario(load_scenario(None, TINY + [
        "model=feature_classifier", "model.hidden_dims=[16]", "train.loss_classes=seen",
        "replay=generative_replay", "replay.semantic_transductive=true",
        "replay.replay_per_class=10", "generator.epochs=2", "generator.hidden=16",
        "generator.latent_dim=4"]), runs_dir=tmp_path, **QUIET)
    results = run.results
    assert results["semantic_transductive"] is True and results["n_tasks"] == 2
    assert results["model"] == "feature_classifier"
    steps = results["metrics"]["steps"]
    assert len(steps["UA"]) == 2 and all(0 <= ua <= 100 for ua in steps["UA"])
