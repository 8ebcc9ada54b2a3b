"""Property tests: the scenario parser, fed malformed input, only raises ConfigError.

The readers of ``.mat`` / ``.npz`` files are fuzzed in tests/test_data.py. Here: random
TOML documents, random scenario file contents (valid files cut, flipped and spliced,
and random text), random ``--set`` overrides; and, for scenarios the parser accepts,
everything a run does before it trains (:func:`czsl.build.build_run`) raises only
:class:`czsl.errors.CZSLError`, and the values that reach numpy and the file system are
ones they accept.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import tempfile
import tomllib
from pathlib import Path

import numpy as np
import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from czsl.config import Scenario, load_scenario, scenario_from_document
from czsl.errors import ConfigError, CZSLError
from czsl.runfolder import new_run_dir

REPO = Path(__file__).resolve().parents[1]
SCENARIO_TEXTS = [p.read_bytes() for p in sorted((REPO / "scenarios").glob("*.toml"))]

_EXAMPLES = settings(max_examples=200, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

#: Every key a scenario has, as (section, key); section "" is the top level.
KEYS = [("", f.name) for f in dataclasses.fields(Scenario)] + [
    (f.name, sub.name) for f in dataclasses.fields(Scenario)
    if dataclasses.is_dataclass(getattr(Scenario(), f.name))
    for sub in dataclasses.fields(getattr(Scenario(), f.name))]

_SCALARS = st.one_of(
    st.integers(min_value=-2**63, max_value=2**63 - 1),
    st.integers(min_value=-3, max_value=60),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=12),
    st.sampled_from(["", "grw", "static", "random", "cuda", "none", "agem", "CUB", "seen",
                     "a/b", ".", "x" * 300]),
    st.datetimes(), st.dates(), st.times(),
)
#: Anything a TOML document can hold.
TOML_VALUES = st.recursive(
    _SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.text(max_size=8), children, max_size=4)),
    max_leaves=8)


def _canonical(value):
    """For comparing documents: NaN equal to NaN, key order ignored."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, dict):
        return sorted((k, _canonical(v)) for k, v in value.items())
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def _check_accepted(scenario: Scenario) -> None:
    """What an accepted scenario must be good for, before anything is trained."""
    assert isinstance(scenario, Scenario)
    document = scenario.document()
    assert scenario_from_document(document) == scenario
    # scenario.toml: written after the checks, so writing it must not fail
    assert _canonical(tomllib.loads(tomli_w.dumps(document))) == _canonical(document)
    for table in (scenario.train, scenario.protocol):  # lr = nan would train on NaN
        assert all(math.isfinite(v) for v in vars(table).values() if isinstance(v, float))
    np.random.RandomState(scenario.seed)              # seed_everything, class order
    np.random.RandomState(scenario.protocol.split_seed)  # the pooled split
    with tempfile.TemporaryDirectory() as tmp:        # runs/<name>/
        assert new_run_dir(Path(tmp), scenario.name).is_dir()


def _parse_document(document):
    try:
        scenario = scenario_from_document(document)
    except ConfigError:
        return
    _check_accepted(scenario)


@_EXAMPLES
@given(st.data())
def test_random_documents_only_raise_config_error(data):
    document = tomllib.loads(tomli_w.dumps(Scenario().document()))
    for _ in range(data.draw(st.integers(1, 4))):
        section, key = data.draw(st.sampled_from(KEYS + [("", "junk"), ("train", "junk")]))
        table = document if not section else document.setdefault(section, {})
        if not isinstance(table, dict):
            continue
        action = data.draw(st.sampled_from(["set", "set", "delete", "table"]))
        if action == "delete":
            table.pop(key, None)
        elif action == "table":
            table[key] = data.draw(st.dictionaries(st.text(max_size=6), TOML_VALUES,
                                                   max_size=3))
        else:
            table[key] = data.draw(TOML_VALUES)
    _parse_document(document)


@_EXAMPLES
@given(st.dictionaries(st.text(max_size=10), TOML_VALUES, max_size=5))
def test_arbitrary_documents_only_raise_config_error(document):
    _parse_document(document)


@_EXAMPLES
@given(st.data())
def test_random_scenario_files_only_raise_config_error(data):
    how = data.draw(st.sampled_from(["cut", "flip", "splice", "text", "bytes"]))
    text = data.draw(st.sampled_from(SCENARIO_TEXTS))
    if how == "cut":
        text = text[:data.draw(st.integers(0, len(text)))]
    elif how == "flip":
        buf = bytearray(text)
        for _ in range(data.draw(st.integers(1, 6))):
            buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
        text = bytes(buf)
    elif how == "splice":
        at = data.draw(st.integers(0, len(text)))
        insert = data.draw(st.sampled_from(
            [b"\n[train]\n", b"\nepochs = 1\n", b"\nseed = -5\n", b" = ", b"[[x]]\n",
             b"\nname = \"\"\n", b"\nlr = nan\n", b"\n[model]\nname = 3\n"]))
        text = text[:at] + insert + text[at:]
    elif how == "text":
        text = data.draw(st.text(max_size=200)).encode("utf-8", "surrogatepass")
    else:
        text = data.draw(st.binary(max_size=200))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scenario.toml"
        path.write_bytes(text)
        try:
            scenario = load_scenario(path)
        except ConfigError as exc:
            assert str(path) in str(exc)
            return
    _check_accepted(scenario)


_DOTTED = [f"{s}.{k}" if s else k for s, k in KEYS] + [
    "regularizer", "replay", "model", "model.hidden_dims", "data.synthesis.n_classes",
    "train", "train.epochs.x", "", ".", "a..b", "seed.x"]


@_EXAMPLES
@given(st.lists(st.tuples(
    st.one_of(st.sampled_from(_DOTTED), st.text(max_size=10)),
    st.sampled_from(["=", "", "==", " = "]),
    st.one_of(st.text(max_size=12), TOML_VALUES.map(lambda v: tomli_w.dumps({"v": v})[4:]
                                                    .strip()))), max_size=4))
def test_random_overrides_only_raise_config_error(items):
    overrides = [f"{key}{sep}{value}" for key, sep, value in items]
    try:
        scenario = load_scenario(None, overrides)
    except ConfigError:
        return
    _check_accepted(scenario)


#: Values at the edges of what each key could accept.
EDGES = [0, -1, 1, 2**32 - 1, 2**32, 2**63 - 1, -2**63, 0.0, -0.0, 1e-300, 1e308,
         float("nan"), float("inf"), float("-inf"), True, False, "", " ", ".", "..", "a/b",
         "a\\b", "x" * 300, "\u00e9" * 101, "cuda", "static", "random", "seen", "none", [],
         [0], [1, 2], [2**62, 2**62], ["a"], [1.5], {}, {"x": 1}, datetime.date(2020, 1, 1)]


def test_every_key_with_every_edge_value():
    """Each key alone set to each edge value: refused with ConfigError, or fit for a run."""
    accepted = 0
    for section, key in KEYS:
        for value in EDGES:
            _parse_document({section: {key: value}} if section else {key: value})
            try:
                scenario_from_document({section: {key: value}} if section else {key: value})
                accepted += 1
            except ConfigError:
                pass
    assert 0 < accepted < len(KEYS) * len(EDGES)


# ------------------------------------------------------ after parsing, before training

_PREPARE_OVERRIDES = st.fixed_dictionaries({}, optional={
    "seed": st.integers(0, 2**32 - 1),
    "device": st.sampled_from(["cpu", "cuda"]),
    "protocol.name": st.sampled_from(["grw", "classnorm", "static"]),
    "protocol.task_sizes": st.lists(st.integers(1, 8), max_size=5),
    "protocol.class_order": st.sampled_from(["dataset", "random"]),
    "protocol.test_fraction": st.floats(0.01, 0.99),
    "protocol.stratified": st.booleans(),
    "data.synthesis.n_classes": st.integers(-1, 12),
    "data.synthesis.samples_per_class": st.integers(0, 6),
    "data.synthesis.n_unseen": st.integers(0, 6),
    "data.synthesis.noise": st.one_of(st.floats(), st.sampled_from([1e154, 1e6, -0.0])),
    "data.synthesis.colour": st.integers(),
    "model.hidden_dims": st.lists(st.integers(-1, 8), max_size=2),
    "model.scale": st.one_of(st.floats(allow_nan=True), st.text(max_size=3)),
    "regularizer": st.sampled_from(["none", "agem", "ewc_online", "mas", "ewc"]),
    "regularizer.gamma": st.one_of(st.floats(allow_nan=True), st.text(max_size=3)),
    "replay": st.sampled_from(["none", "multitask", "multitsk"]),
})


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_PREPARE_OVERRIDES)
def test_everything_before_training_only_raises_czsl_errors(values):
    from czsl.build import build_run

    overrides = [f"{key}={tomli_w.dumps({'v': value})[4:].strip()}"
                 for key, value in values.items()]
    try:
        scenario = load_scenario(None, ["data.synthesis.n_features=4",
                                        "data.synthesis.n_attributes=3",
                                        "data.synthesis.n_classes=8",
                                        "data.synthesis.samples_per_class=5",
                                        "data.synthesis.n_unseen=2",
                                        "protocol.task_sizes=[2, 2, 2]", *overrides])
        prepared = build_run(scenario, echo=lambda _: None)
    except CZSLError:
        return
    assert prepared.stream.n_tasks == len(prepared.stream.tasks) >= 1


def test_the_fuzzed_keys_cover_every_section():
    assert {s for s, _ in KEYS} == {"", "data", "protocol", "train", "model", "regularizer",
                                    "replay", "generator"}
    assert ("train", "epochs") in KEYS and ("protocol", "split_seed") in KEYS
    # a date is a TOML value, and not a seed
    with pytest.raises(ConfigError, match="key 'seed': expected int"):
        scenario_from_document({"seed": datetime.date(2020, 1, 1)})
