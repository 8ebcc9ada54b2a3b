"""A run's settings as flat ``dotted.name -> value`` pairs, and which differ between runs.

``czsl report`` prints the settings that differ between the runs it compares, and the
HParams tab (:mod:`czsl.board`) shows one column per setting; both read a resolved
scenario (``scenario.toml``) through :func:`flatten`. A plugin table becomes its
component's name under the table's name (``model = "attribute_embedder"``) and one entry
per option (``model.class_norm``), so an option can be sorted and filtered on its own.

:func:`option_defaults` fills in the options a scenario left at their defaults, from
the signature of the component's factory. Only the standard library is imported here;
:func:`option_defaults` imports the plugin's module (which may import torch).
"""

from __future__ import annotations

import inspect
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
        defaults (:func:`option_defaults`); the options a scenario does not set are
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


def _keyword_defaults(function: Any) -> dict[str, Any]:
    """The keyword-only parameters of ``function`` (or of a class's ``__init__``) that
    have a default, with it."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return {}
    return {p.name: p.default for p in parameters
            if p.kind is p.KEYWORD_ONLY and p.default is not p.empty}


def option_defaults(kind: str, name: str, plugins: Any) -> dict[str, Any]:
    """A component's options and their defaults, read from its factory's signature.

    czsl's hooks pass a scenario table's options on as keyword arguments
    (``czsl_make_regularizer(options)`` returns ``[make_plugin(**options)]``); the factory
    is the function or class of the hook's module that the hook calls, and its
    keyword-only parameters are the options. A component whose factory cannot be found
    so gives ``{}`` (its options still show where a scenario sets them).

    :param kind: the table (``model``, ``regularizer``, ...).
    :param name: the component's name.
    :param plugins: a :class:`czsl.plugins.Plugins`.
    """
    try:
        item = plugins.find(kind, name)
    except Exception:  # an uninstalled plugin: the report still reads the rest
        return {}
    for impl in getattr(plugins.pm.hook, f"czsl_make_{kind}").get_hookimpls():
        if impl.plugin_name != item.plugin:
            continue
        module = inspect.getmodule(impl.function)
        found: dict[str, Any] = {}
        for called in impl.function.__code__.co_names:
            found.update(_keyword_defaults(getattr(module, called, None)))
        # what the hook passes itself (a generator's ``losses``) is not an option
        return {k: _value(v) for k, v in sorted(found.items()) if k not in impl.argnames}
    return {}
