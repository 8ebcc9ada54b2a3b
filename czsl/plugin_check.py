"""Mistakes that make a plugin vanish without an error, and what each component takes.

``czsl plugins`` runs :func:`check` and prints one line per finding; a look-up of an
unknown name adds the first finding to its error. Found here:

* an installed distribution whose entry-point group is a near-miss of ``czsl``
  (``cszl``, ``czsl_plugins``): czsl never sees its plugins;
* a plugin module in the ``czsl`` group that implements no hook, or has ``czsl_*``
  functions without ``@czsl.hookimpl`` (pluggy ignores them);
* a component declared without its ``czsl_make_<kind>`` factory.

:func:`component_options` tells the options a component takes and their defaults,
without building it (see its docstring for how); :func:`check_option_names` refuses a
scenario's options that its components do not take, before anything is built.

Nothing here imports torch or Avalanche.
"""

from __future__ import annotations

import ast
import difflib
import inspect
import textwrap
from importlib import metadata
from typing import Any

from czsl import hookspecs
from czsl.plugins import ENTRY_POINT_GROUP, Listed, Plugins

#: what pluggy sets on a function marked ``@czsl.hookimpl``
_MARK = f"{hookspecs.PROJECT}_impl"
#: arguments czsl passes to factories itself: never options
_HOOK_ARGS = {"name", "options", "stream", "make_generator", "n_features", "n_attributes",
              "attributes", "losses", "self"}


def check(plugins: Plugins, distributions: Any = None) -> list[str]:
    """Every finding, one line each (empty when all is well).

    :param plugins: the loaded plugins.
    :param distributions: the installed distributions (default:
        ``importlib.metadata.distributions()``).
    """
    return [*near_miss_groups(distributions), *unmarked_hooks(plugins),
            *missing_factories(plugins)]


def near_miss_groups(distributions: Any = None) -> list[str]:
    """Distributions with an entry-point group that is almost ``czsl``."""
    found = []
    seen = set()
    for dist in metadata.distributions() if distributions is None else distributions:
        name = dist.metadata["Name"]
        if name in seen:
            continue
        seen.add(name)
        groups = {ep.group for ep in dist.entry_points} - {ENTRY_POINT_GROUP}
        for group in sorted(groups):
            lower = group.lower()
            if lower.startswith(ENTRY_POINT_GROUP) or difflib.get_close_matches(
                    lower, [ENTRY_POINT_GROUP], n=1, cutoff=0.7):
                found.append(f"package {name} {dist.version} declares entry points in group "
                             f"{group!r}, not 'czsl', so czsl never loads them; write "
                             "[project.entry-points.czsl] in its pyproject.toml and "
                             "reinstall it")
    return found


def unmarked_hooks(plugins: Plugins) -> list[str]:
    """Plugin modules that implement no hook, or have hook-like functions without
    ``@czsl.hookimpl``."""
    found = []
    for plugin, module in sorted(plugins.modules.items()):
        where = plugins.plugin_label(plugin)
        functions = {name: value for name, value in vars(module).items()
                     if name.startswith("czsl_") and callable(value)}
        unmarked = sorted(name for name, value in functions.items()
                          if not hasattr(value, _MARK))
        if unmarked:
            found.append(f"{where}: {', '.join(unmarked)} "
                         f"{'lacks' if len(unmarked) == 1 else 'lack'} @czsl.hookimpl, so "
                         "czsl never calls it; put @hookimpl (from czsl import hookimpl) "
                         "on the line above each")
        elif not functions or not any(hasattr(v, _MARK) for v in functions.values()):
            found.append(f"{where}: {module.__name__} implements no czsl hook; a plugin "
                         "needs @hookimpl czsl_components() and a czsl_make_<kind>() "
                         "(see czsl/hookspecs.py)")
    return found


def missing_factories(plugins: Plugins) -> list[str]:
    """Components whose plugin has no ``czsl_make_<kind>`` hook."""
    found = []
    for item in plugins.listed:
        kind = item.component.kind
        caller = getattr(plugins.pm.hook, f"czsl_make_{kind}")
        if not any(impl.plugin_name == item.plugin for impl in caller.get_hookimpls()):
            found.append(f"{item.label()} is declared but the plugin has no "
                         f"czsl_make_{kind} hook; add one marked @czsl.hookimpl")
    return found


def component_options(plugins: Plugins, item: Listed) -> dict[str, Any] | None:
    """The options a component takes, with their defaults (``inspect.Parameter.empty``
    for a required one), or ``None`` where they cannot be told.

    ``Component.options``, when the plugin sets it, is the answer. Otherwise the
    factory's source is read (never run): the callable it hands ``**options`` to
    (``make_plugin(**options)``, ``CVAE(n_features, n_attributes, **options)``) is
    looked up in the plugin's module, and its keyword parameters other than those czsl
    passes itself are the options. Reading the signature of the callee, not of the hook
    (which takes ``options`` as one dict), is what makes this work for every factory
    written the documented way, without importing torch.
    """
    found = _options(plugins, item)
    return None if found is None else found[0]


def unknown_options(plugins: Plugins, item: Listed, options: dict[str, Any]) -> list[str]:
    """The names in ``options`` that the component does not take, sorted; empty where
    its options cannot be told (see :func:`component_options`) or its factory takes any
    keyword (``**kwargs``)."""
    found = _options(plugins, item)
    if found is None or found[1]:
        return []
    return sorted(set(options) - set(found[0]))


def _options(plugins: Plugins, item: Listed) -> tuple[dict[str, Any], bool] | None:
    """``(options and their defaults, whether the factory takes any other keyword)``."""
    declared = item.component.options
    if declared is not None:
        return dict(declared), False
    caller = getattr(plugins.pm.hook, f"czsl_make_{item.component.kind}")
    impls = [impl for impl in caller.get_hookimpls() if impl.plugin_name == item.plugin]
    if not impls:
        return None
    target = _options_target(impls[0].function)
    if target is None:
        return None
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return None
    return ({p.name: p.default for p in params
             if p.name not in _HOOK_ARGS
             and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
             and (p.kind == p.KEYWORD_ONLY or p.default is not p.empty)},
            any(p.kind == p.VAR_KEYWORD for p in params))


def _options_target(factory: Any) -> Any:
    """The module-level callable ``factory`` calls with ``**options``, or ``None``."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(factory)))
    except (OSError, TypeError, SyntaxError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and any(
                kw.arg is None and isinstance(kw.value, ast.Name) and kw.value.id == "options"
                for kw in node.keywords):
            return factory.__globals__.get(node.func.id)
    return None


def format_options(options: dict[str, Any] | None) -> str:
    """``"ewc_lambda=10.0, gamma=0.99"``; ``"(required)"`` marks an option without a
    default."""
    if options is None:
        return "(see the plugin's documentation)"
    if not options:
        return "(none)"
    return ", ".join(f"{name}={'(required)' if value is inspect.Parameter.empty else repr(value)}"
                     for name, value in options.items())


def check_option_names(plugins: Plugins, scenario: Any) -> None:
    """Refuse every option of a scenario's plugin tables (and of its generator's
    ``losses``) that the chosen component does not take, before anything is built.

    :param scenario: a :class:`czsl.config.Scenario`.
    :raises PluginError: for an unknown component, or naming the table and every option
        of it the component does not take (:meth:`czsl.plugins.Plugins.check_options`).
    """
    for kind in ("model", "regularizer", "replay", "generator"):
        cfg = getattr(scenario, kind)
        options = dict(cfg.options)
        losses = options.pop("losses", []) if kind == "generator" else []
        plugins.check_options(kind, cfg.name, options)
        # a malformed list is refused, with its own message, when the generator is built
        for spec in losses if isinstance(losses, list) else ():
            if isinstance(spec, dict) and isinstance(spec.get("name"), str):
                plugins.check_options("generator_loss", spec["name"],
                                      {k: v for k, v in spec.items() if k != "name"})
