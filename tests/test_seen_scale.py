"""``[protocol] seen_scale``: the test-time calibration of ClassNorm's notebook (seen
classes' logits multiplied by a factor before scoring)."""

from __future__ import annotations

import pytest
import torch

from czsl import metrics
from czsl.config import load_scenario
from czsl.errors import ConfigError
from czsl.run import _calibrated


def _record(feed, scorer, logits, targets, class_to_task):
    for chunk in logits.split(7):
        feed(chunk)
    return metrics.record_from_scores(scorer, targets, class_to_task, per_class=True)


def test_the_seen_logits_are_scaled_before_every_metric():
    gen = torch.Generator().manual_seed(0)
    logits = torch.rand(60, 12, generator=gen) + 0.5  # positive: scaling favours unseen
    targets = torch.randint(0, 12, (60,), generator=gen)
    class_to_task = torch.tensor([0] * 4 + [1] * 4 + [-1] * 4)
    seen = class_to_task.eq(0)
    scale = torch.where(seen, 0.6, 1.0)

    scorer = metrics.StepScorer(seen)
    got = _record(_calibrated(scorer, seen, 0.6), scorer, logits, targets, class_to_task)
    expected = metrics.step_record(logits * scale, targets, class_to_task, 0, per_class=True)
    plain = metrics.step_record(logits, targets, class_to_task, 0, per_class=True)
    for key in expected:
        assert torch.equal(got[key].nan_to_num(-1), expected[key].nan_to_num(-1)), key
    assert not torch.equal(got["UA"], plain["UA"])  # the calibration did act


def test_scale_one_scores_the_logits_as_they_are():
    scorer = metrics.StepScorer(torch.tensor([True, False]))
    assert _calibrated(scorer, scorer.seen[0], 1.0) is scorer


@pytest.mark.parametrize("value", ["0", "-0.5", "nan"])
def test_a_scale_that_is_not_positive_is_refused(value):
    with pytest.raises(ConfigError, match="seen_scale"):
        load_scenario(None, [f"protocol.seen_scale={value}"])


def test_sun_gzsl_uses_the_notebooks_calibration():
    assert load_scenario("scenarios/sun_gzsl.toml", []).protocol.seen_scale == 0.95
    assert load_scenario("scenarios/cub_gzsl.toml", []).protocol.seen_scale == 1.0


def test_the_new_key_at_its_default_keeps_older_run_ids():
    from czsl.sweep.identity import run_id

    document = load_scenario(None, []).document()
    older = {**document, "protocol": {k: v for k, v in document["protocol"].items()
                                      if k != "seen_scale"}}
    assert document["protocol"]["seen_scale"] == 1.0
    assert run_id(document, threads=1, data="x") == run_id(older, threads=1, data="x")
    scaled = load_scenario(None, ["protocol.seen_scale=0.95"]).document()
    assert run_id(scaled, threads=1, data="x") != run_id(document, threads=1, data="x")
