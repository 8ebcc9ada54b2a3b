"""A plugin author's mistakes, each caught early and blamed on the right package.

Every test writes a throw-away package (``tests/conftest.py``'s
:func:`write_plugin_package`) and checks the one line a user would see.
"""

from __future__ import annotations

import pytest

from czsl.config import load_scenario
from czsl.errors import PluginError
from czsl.learner import ZSLLearner
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
