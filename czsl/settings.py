"""A run's settings as flat ``dotted.name -> value`` pairs, and which differ between runs.

``czsl report`` prints the settings that differ between the runs it compares, and the
HParams tab (:mod:`czsl.board`) shows one column per setting; both read a resolved
scenario (``scenario.toml``) through :func:`flatten`. A plugin table becomes its
component's name under the table's name (``model = "attribute_embedder"``) and one entry
per option (``model.class_norm``), so an option can be sorted and filtered on its own.

:func:`plugin_defaults` fills in the options a scenario left at their defaults, as
:meth:`czsl.plugins.Plugins.options` tells them. Only the standard library is imported
here; :func:`plugin_defaults` loads the plugins (which may import torch).
"""

from __future__ import annotations

import json
from typing import Any, Callable

#: The scenario tables that name a component (``name = ...`` plus its options).
PLUGIN_TABLES = ("model", "regularizer", "replay", "generator")


def _value(value: Any) -> Any:
    """Numbers, booleans and text as they are; lists and tables as JSON text."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    return json.dumps(value, sort_keys=True)


def flatten(document: dict[str, Any],
            defaults: Callable[[str, str], dict[str, Any]] | None = None) -> dict[str, Any]:
    """The settings of a resolved scenario as ``dotted.name -> value``.

    :param document: a resolved scenario (``scenario.toml`` content); its ``name`` is
        left out (it names the run, it is not a setting).
    :param defaults: ``defaults(kind, name)`` -> the component's options and their
        defaults (:func:`plugin_defaults`); the options a scenario does not set are
        filled in from it. Without it only the options the scenario sets are listed.
    :return: dotted names in the scenario's order, options of a component sorted.
    """
    out: dict[str, Any] = {}
    for key, value in document.items():
        if key == "name":
            continue
        if key in PLUGIN_TABLES and isinstance(value, dict) and "name" in value:
            options = {k: v for k, v in value.items() if k != "name"}
            if defaults is not None:
                options = {**defaults(key, value["name"]), **options}
            out[key] = value["name"]
            out.update({f"{key}.{k}": _value(v) for k, v in sorted(options.items())})
        elif isinstance(value, dict):
            out.update({f"{key}.{k}": _value(v) for k, v in value.items()})
        else:
            out[key] = _value(value)
    return out


def differing(settings: list[dict[str, Any]]) -> list[str]:
    """The names whose value is not the same in every one of ``settings`` (a name missing
    from some counts as differing), in order of first appearance.

    :param settings: one :func:`flatten` result per run.
    """
    names = list(dict.fromkeys(name for one in settings for name in one))
    def key(one: dict[str, Any], name: str) -> str:
        value = one.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            value = float(value)  # TOML's 10 is the factory's 10.0
        return json.dumps([name in one, value])  # missing: a value no setting has

    return [name for name in names if len({key(one, name) for one in settings}) > 1]


def plugin_defaults() -> Callable[[str, str], dict[str, Any]] | None:
    """``defaults(kind, name)`` for :func:`flatten` from the installed plugins: the
    component's options that have a default, with it
    (:meth:`czsl.plugins.Plugins.options`; a default of ``None`` reads
    :data:`czsl.plugin_options.UNSET`), ``{}`` for a component not installed. ``None``
    if the plugins do not load (the options a scenario sets are still listed).
    """
    from czsl.errors import CZSLError, PluginError
    from czsl.plugins import Plugins  # may import the plugins' modules (torch)

    try:
        plugins = Plugins()
    except CZSLError:
        return None

    def defaults(kind: str, name: str) -> dict[str, Any]:
        try:
            return plugins.options(kind, name).filled()
        except PluginError:  # an uninstalled plugin: the report still reads the rest
            return {}

    return defaults
