"""ClassNorm's variants (standardization layout and divisor) and the learning-rate schedule."""

from __future__ import annotations

import pytest
import torch
from avalanche.core import SupervisedPlugin
from torch import nn

from czsl.config import ProtocolConfig, load_scenario
from czsl.data.synthetic import make_synthetic
from czsl.errors import ConfigError
from czsl.learner import make_lr_schedule
from czsl.models import VarianceNorm
from czsl.plugins import Plugins
from czsl.streams import build_stream
from tests.conftest import Tiny


def _embedder(**options):
    model = Plugins().make("model", "attribute_embedder", {"hidden_dims": [8, 6], **options},
                           n_features=5, attributes=torch.rand(7, 4))
    return [type(m).__name__ for m in model.embedder]


def test_class_norm_layouts():
    assert _embedder() == ["Linear", "ReLU", "BatchNorm1d", "Linear", "ReLU", "BatchNorm1d",
                           "Linear", "ReLU"]
    # the authors' ZSL notebook: none in the first layer, twice around the later ReLUs
    assert _embedder(class_norm_layout="around_relu", class_norm_divisor="variance") == [
        "Linear", "ReLU", "Linear", "VarianceNorm", "ReLU", "VarianceNorm", "Linear", "ReLU"]
    assert _embedder(class_norm_layout="around_relu") == [
        "Linear", "ReLU", "Linear", "BatchNorm1d", "ReLU", "BatchNorm1d", "Linear", "ReLU"]
    assert _embedder(class_norm=False, class_norm_divisor="variance") == [
        "Linear", "ReLU", "Linear", "ReLU", "Linear", "ReLU"]


def test_variance_norm_divides_by_the_variance_and_tracks_running_statistics():
    torch.manual_seed(0)
    x = torch.randn(10, 3) * torch.tensor([0.5, 2.0, 4.0]) + 1.0
    norm = VarianceNorm(3)
    out = norm(x)
    for j in range(3):                         # one unit at a time, by hand
        col = x[:, j]
        mean = sum(col.tolist()) / 10
        var = sum((v - mean) ** 2 for v in col.tolist()) / 9        # unbiased
        torch.testing.assert_close(out[:, j], (col - mean) / (var + 1e-5))
        assert norm.running_mean[j].item() == pytest.approx(0.1 * mean, rel=1e-5)
        assert norm.running_var[j].item() == pytest.approx(0.9 + 0.1 * var, rel=1e-5)
    # BatchNorm divides by the (biased) std: each unit comes out std times larger
    bn = nn.BatchNorm1d(3, affine=False)(x)
    ratio = (bn.std(dim=0) / out.std(dim=0)).tolist()
    assert ratio == pytest.approx((x.std(dim=0) * (10 / 9) ** 0.5).tolist(), rel=1e-3)
    norm.eval()                                # testing uses the running statistics only
    torch.testing.assert_close(norm(x[:2]), (x[:2] - norm.running_mean)
                               / (norm.running_var + 1e-5))


class _LearningRates(SupervisedPlugin):
    def __init__(self):
        super().__init__()
        self.seen = []

    def before_training_epoch(self, strategy, **kwargs):
        self.seen.append(strategy.optimizer.param_groups[0]["lr"])


def test_lr_schedule_steps_each_epoch_and_starts_afresh_with_each_task():
    data = make_synthetic(n_classes=6, n_attributes=4, n_features=8, samples_per_class=10,
                          n_unseen=2, seed=0)
    stream = Tiny(build_stream(data, ProtocolConfig(name="grw", task_sizes=[3, 3]), seed=0))
    model = Plugins().make("model", "attribute_embedder", {"hidden_dims": [8]},
                           n_features=8, attributes=stream.attributes)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    assert make_lr_schedule(0, 0.1, optimizer) == []        # no schedule: no plugin at all
    spy = _LearningRates()
    learner = stream.learner([*make_lr_schedule(2, 0.1, optimizer), spy], model=model,
                             optimizer=optimizer, train_epochs=5, train_mb_size=16)
    for step in range(2):
        stream.train(learner, step)
    assert spy.seen == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001] * 2)


@pytest.mark.parametrize("override, words", [
    ("train.lr_step=-1", "train.lr_step': must be zero or positive"),
    ("train.lr_gamma=0", "train.lr_gamma': must be positive"),
])
def test_lr_schedule_settings_are_checked(override, words):
    with pytest.raises(ConfigError, match=words):
        load_scenario(None, [override])
