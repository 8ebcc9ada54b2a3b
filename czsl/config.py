"""Scenario files: TOML in, frozen dataclasses out.

A scenario says which data, which protocol, how to train and which plugins to use.
Unknown keys and wrong types are errors (:class:`czsl.errors.ConfigError`) that name
the file and the key. The plugin tables (``[model]``, ``[regularizer]``, ``[replay]``,
``[generator]``) hold a ``name`` and the plugin's keyword arguments, which the plugin
itself checks.

A scenario with every key left out is the built-in default: a continual run on the
synthetic dataset (``scenarios/synthetic.toml`` spells it out).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from czsl.errors import ConfigError

PROTOCOLS = ("grw", "classnorm", "static")
ACCURACY = ("per_class", "per_sample")


@dataclass(frozen=True)
class DataConfig:
    """``[data]``: which dataset.

    :param dataset: ``"synthetic"`` (built in), or a dataset name such as ``"CUB"`` /
        ``"SUN"`` read from ``--data-dir``.
    :param features: ``"auto"`` (real features if the folder has them, else
        semi-synthetic from the metadata), ``"real"`` or ``"semi-synthetic"``.
    :param synthesis: keyword arguments of the synthetic / semi-synthetic generator.
    """

    dataset: str = "synthetic"
    features: str = "auto"
    synthesis: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProtocolConfig:
    """``[protocol]``: how classes are split into tasks and how accuracy is counted.

    :param name: ``"grw"``, ``"classnorm"`` or ``"static"`` (see :mod:`czsl.streams`).
    :param task_sizes: classes per task; empty = the protocol's preset for the dataset.
    :param class_order: ``"dataset"`` (class-id order) or ``"random"`` (a permutation
        drawn from the run's seed); empty = the protocol's choice.
    :param accuracy: ``"per_class"`` (mean of per-class accuracies) or ``"per_sample"``;
        empty = the protocol's choice.
    :param test_fraction: share of the pooled images held out for testing (``grw``,
        ``classnorm``).
    :param split_seed: seed of that pooled train/test split (fixed across runs;
        ``0 .. 2**32 - 1``).
    :param stratified: hold out ``test_fraction`` of every class rather than of all images.
    :param n_tasks: train and score only the first ``n_tasks`` tasks (the classes of the
        others stay unseen at every step); 0 = the protocol's preset: every task, except
        ``grw`` on SUN, whose preset is 14 of its 15 tasks, as GRW's code trains and
        averages (its loop runs over T-1 tasks). With ``task_sizes`` given, 0 = all of them.
    :param seen_scale: test-time calibration: the logits of the classes seen at a step
        are multiplied by ``seen_scale`` before every metric of that step is computed
        (AUSUC included), trading a little seen accuracy for unseen accuracy in GZSL;
        1 = no calibration. ClassNorm's static ZSL notebook uses 0.95 on SUN (1 on CUB).
    """

    name: str = "grw"
    task_sizes: list[int] = field(default_factory=list)
    class_order: str = ""
    accuracy: str = ""
    test_fraction: float = 0.2
    split_seed: int = 42
    stratified: bool = False
    n_tasks: int = 0
    seen_scale: float = 1.0


@dataclass(frozen=True)
class TrainConfig:
    """``[train]``: the optimisation of each task.

    :param epochs: epochs per task.
    :param batch_size: training mini-batch size.
    :param eval_batch_size: mini-batch size for testing.
    :param optimizer: ``"adam"`` or ``"sgd"``.
    :param lr: learning rate.
    :param momentum: SGD momentum (ignored by Adam).
    :param weight_decay: L2 weight decay.
    :param loss_classes: classes the softmax of the training loss runs over:
        ``"task"`` (the current task's classes, ClassNorm's Sequential) or ``"seen"``
        (all classes seen so far).
    :param lr_step: multiply the learning rate by ``lr_gamma`` every ``lr_step`` epochs
        of a task (torch's ``StepLR``; it starts afresh with each task); 0 = a fixed rate.
        ClassNorm's static ZSL notebook: 25, with ``lr_gamma = 0.1``.
    :param lr_gamma: the factor of each ``lr_step``.
    """

    epochs: int = 4
    batch_size: int = 64
    eval_batch_size: int = 1024
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    loss_classes: str = "task"
    lr_step: int = 0
    lr_gamma: float = 0.1


@dataclass(frozen=True)
class PluginConfig:
    """A plugin table: the component's ``name`` and its keyword ``options``."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)

    def table(self) -> dict[str, Any]:
        """The table as a scenario file writes it: ``name`` and the options beside it."""
        return {"name": self.name, **self.options}


@dataclass(frozen=True)
class Scenario:
    """A whole scenario file.

    :param name: run name; results go to ``runs/<name>/`` (suffixed if taken).
    :param seed: seed of everything random in the run (model init, batches, memory
        samples, and the class order where the protocol draws one); ``0 .. 2**32 - 1``.
        On CPU the same scenario, seed and thread count give the same ``results.json``
        (but its ``wall_time_s``).
    :param device: ``"cpu"`` or ``"cuda"``.
    :param threads: torch's CPU threads (``czsl run --threads``); ``0``: torch's count
        when the run starts. Part of the run: torch's parallel reductions (sums,
        BatchNorm's statistics) add in an order that depends on it, so 1 and 2 threads
        give slightly different numbers. A run records the count it used in
        ``scenario.toml``, and a resumed run uses that count.
    """

    name: str = "synthetic"
    seed: int = 0
    device: str = "cpu"
    threads: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    protocol: ProtocolConfig = field(default_factory=lambda: ProtocolConfig(
        name="grw", task_sizes=[10, 10, 10, 10, 10]))
    train: TrainConfig = field(default_factory=TrainConfig)
    model: PluginConfig = field(default_factory=lambda: PluginConfig("attribute_embedder"))
    regularizer: PluginConfig = field(default_factory=lambda: PluginConfig("none"))
    replay: PluginConfig = field(default_factory=lambda: PluginConfig("none"))
    #: built only when the replay plugin asks for a generator (generative replay)
    generator: PluginConfig = field(default_factory=lambda: PluginConfig("cvae"))

    def document(self) -> dict[str, Any]:
        """The scenario as a document: the dict a scenario file parses to, every key
        resolved (plugin tables as :meth:`PluginConfig.table`).

        The one conversion of a scenario to plain data, undone by
        :func:`scenario_from_document`: ``scenario.toml`` (its TOML text), a checkpoint's
        scenario, a sweep's run ids and the specs its workers get are this document.
        """
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, PluginConfig):
                out[f.name] = value.table()
            elif dataclasses.is_dataclass(value):
                out[f.name] = dataclasses.asdict(value)
            else:
                out[f.name] = value
        return out


_CHOICES = {
    ("data", "features"): ("auto", "real", "semi-synthetic"),
    ("protocol", "name"): PROTOCOLS,
    ("protocol", "class_order"): ("", "dataset", "random"),
    ("protocol", "accuracy"): ("",) + ACCURACY,
    ("train", "optimizer"): ("adam", "sgd"),
    ("train", "loss_classes"): ("task", "seen"),
    ("", "device"): ("cpu", "cuda"),
}
_POSITIVE = {("train", "epochs"), ("train", "batch_size"), ("train", "eval_batch_size"),
             ("train", "lr"), ("train", "lr_gamma"), ("protocol", "seen_scale")}
_NON_NEGATIVE = {("train", "momentum"), ("train", "weight_decay"), ("protocol", "n_tasks"),
                 ("train", "lr_step"), ("", "threads")}
#: numpy's legacy seeding (np.random.seed, RandomState) takes 32-bit unsigned seeds only
_SEEDS = {("", "seed"), ("protocol", "split_seed")}


def _check_value(where: str, key: tuple[str, str], value: Any, hint: Any) -> Any:
    """Type-check one scalar or list value against its dataclass annotation."""
    origin = typing.get_origin(hint)
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif hint is str:
        ok = isinstance(value, str)
    elif origin is list:
        ok = isinstance(value, list) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value)
    elif origin is dict:
        ok = isinstance(value, dict)
    else:  # pragma: no cover - every field type is covered above
        raise TypeError(hint)
    if not ok:
        name = getattr(hint, "__name__", str(hint))
        raise ConfigError(f"{where}: expected {name}, got {type(value).__name__} {value!r}")
    if hint is float and not math.isfinite(value):
        raise ConfigError(f"{where}: must be a finite number, got {value!r}")
    if key in _SEEDS and not 0 <= value < 2**32:
        raise ConfigError(f"{where}: a seed must lie in 0 .. 2**32 - 1, got {value}")
    if key in _NON_NEGATIVE and value < 0:
        raise ConfigError(f"{where}: must be zero or positive, got {value!r}")
    if key in _CHOICES and value not in _CHOICES[key]:
        choices = [c for c in _CHOICES[key] if c]
        raise ConfigError(f"{where}: {value!r} is not one of {choices}")
    if key in _POSITIVE and value <= 0:
        raise ConfigError(f"{where}: must be positive, got {value!r}")
    if key == ("protocol", "task_sizes") and any(v <= 0 for v in value):
        raise ConfigError(f"{where}: every task needs at least one class, got {value}")
    if key == ("protocol", "test_fraction") and not 0.0 < value < 1.0:
        raise ConfigError(f"{where}: must lie strictly between 0 and 1, got {value}")
    if key == ("", "name") and (value.strip() in ("", ".", "..")
                                or any(c in value for c in "/\\\0")
                                or len(value.encode("utf-8", "surrogatepass")) > 200):
        # the run folder is runs/<name>: one folder, never a path, and file systems
        # refuse names over 255 bytes (a "-NNNN" suffix may be added)
        raise ConfigError(f"{where}: {value!r} cannot name a run folder; use up to 200 "
                          "letters, digits, '-', '_' (no '/')")
    return value


def _build(cls: type, table: dict[str, Any], section: str, source: str) -> Any:
    """Build dataclass ``cls`` from a TOML table, rejecting unknown keys and bad types."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        dotted = f"{section}.{key}" if section else key
        where = f"{source}: key '{dotted}'"
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{source}: unknown key '{dotted}'{hint}; "
                              f"[{section or 'top level'}] accepts {names}")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: expected a table [{key}], got {value!r}")
            value = (_plugin(value, key, source, getattr(cls(), key).name)
                     if hint is PluginConfig else _build(hint, value, key, source))
        else:
            value = _check_value(where, (section, key), value, hint)
        kwargs[key] = value
    return cls(**kwargs)


def _plugin(table: dict[str, Any], section: str, source: str, default: str) -> PluginConfig:
    """``[model]``-style table: ``name`` (``default`` if left out) plus the plugin's options."""
    options = dict(table)
    name = options.pop("name", default)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{source}: key '{section}.name' must be a plugin name in quotes "
                          f"('czsl plugins' lists them), got {name!r}")
    return PluginConfig(name=name, options=options)


def scenario_from_document(table: dict[str, Any], source: str = "scenario") -> Scenario:
    """Build a :class:`Scenario` from a document: a parsed scenario file, or what
    :meth:`Scenario.document` returned (the scenario back, equal).

    Tables and keys left out keep their defaults (a plugin table without ``name``
    keeps the default plugin).

    :param table: the document.
    :param source: the file name, for error messages.
    :raises ConfigError: for unknown keys, wrong types and invalid choices.
    """
    return _build(Scenario, table, "", source)


def load_scenario(path: str | Path | None, overrides: list[str] = ()) -> Scenario:
    """Read a scenario file (or the default one) and apply ``--set`` overrides.

    :param path: a ``.toml`` file, or ``None`` for the built-in default scenario.
    :param overrides: ``key=value`` strings; ``key`` is dotted (``train.epochs=2``),
        ``value`` is read as a TOML value, falling back to a bare string. A plugin
        table's component may be swapped by name alone (``regularizer=mas``): the
        options set for that table (in the file or by other overrides) stay, so the
        overrides compose in any order, and an option the chosen component does not
        take is an error when the run is built. A table value replaces the whole table
        (``generator={name="cvae", epochs=3}``); table values apply before the other
        overrides, whatever their order.
    :raises ConfigError: naming the file or override that is wrong.
    """
    table: dict[str, Any] = {}
    source = "default scenario"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise ConfigError(f"scenario file {path} does not exist; the scenarios that "
                              "come with czsl are in its scenarios/ folder")
        try:
            table = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
        if not table:  # a mistake, not a wish for the defaults (which need no file)
            raise ConfigError(f"{path} holds no settings (it is empty or only comments); "
                              "write the scenario into it, or leave the file out to run the "
                              "built-in default scenario")
    parsed = [_parse_override(item) for item in overrides]
    # whole tables first, so a table value never drops a key another override set
    for item, parts, value in sorted(parsed, key=lambda p: not isinstance(p[2], dict)):
        _apply_override(table, item, parts, value)
    return scenario_from_document(table, source)


_PLUGIN_TABLES = {f.name for f in dataclasses.fields(Scenario)
                  if typing.get_type_hints(Scenario)[f.name] is PluginConfig}


def _parse_override(item: str) -> tuple[str, list[str], Any]:
    """``--set key=value`` -> ``(item, dotted key's parts, value)``."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {item!r}: expected key=value, e.g. train.epochs=2")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    parts = key.split(".")
    if len(parts) == 1 and parts[0] in _PLUGIN_TABLES and not isinstance(value, dict):
        # a swap: the component's name; the options set for the table stay
        parts = [parts[0], "name"]
    return item, parts, value


def _apply_override(table: dict[str, Any], item: str, parts: list[str], value: Any) -> None:
    """Apply one parsed ``--set key=value`` to the parsed document, in place."""
    node = table
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {item!r}: '{part}' is a value, not a table")
        node = child
    node[parts[-1]] = value


def plugin_tables(document: dict[str, Any]) -> str:
    """The plugin tables of a resolved scenario in one line, only the options it sets:
    ``model=attribute_embedder{class_norm=true,scale=5.0} regularizer=none ...``.

    :param document: :meth:`Scenario.document` of the scenario.
    """
    out = []
    for kind in (f.name for f in dataclasses.fields(Scenario) if f.name in _PLUGIN_TABLES):
        options = {k: v for k, v in document[kind].items() if k != "name"}
        out.append(f"{kind}={document[kind]['name']}"
                   + (_inline(options) if options else ""))
    return " ".join(out)


def _inline(value: Any) -> str:
    """``value`` written as TOML, on one line."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}={_inline(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_inline(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)


__all__ = ["DataConfig", "PluginConfig", "ProtocolConfig", "Scenario", "TrainConfig",
           "load_scenario", "plugin_tables", "scenario_from_document"]
