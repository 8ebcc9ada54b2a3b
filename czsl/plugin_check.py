"""Mistakes that make a plugin vanish without an error.

``czsl plugins`` runs :func:`check` and prints one line per finding; a look-up of an
unknown name adds the first finding to its error. Found here:

* an installed distribution whose entry-point group is a near-miss of ``czsl``
  (``cszl``, ``czsl_plugins``): czsl never sees its plugins;
* a plugin module in the ``czsl`` group that implements no hook, or has ``czsl_*``
  functions without ``@czsl.hookimpl`` (pluggy ignores them);
* a component declared without its ``czsl_make_<kind>`` factory.

The options a component takes are :meth:`czsl.plugins.Plugins.options`'s business.
Nothing here imports torch or Avalanche.
"""

from __future__ import annotations

import difflib
from importlib import metadata
from typing import Any

from czsl import hookspecs
from czsl.plugin_problems import ENTRY_POINT_GROUP

#: what pluggy sets on a function marked ``@czsl.hookimpl``
_MARK = f"{hookspecs.PROJECT}_impl"


def check(plugins: Any, distributions: Any = None) -> list[str]:
    """Every finding, one line each (empty when all is well).

    :param plugins: the loaded :class:`czsl.plugins.Plugins` (which imports this module:
        it is not imported here).
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


def unmarked_hooks(plugins: Any) -> list[str]:
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


def missing_factories(plugins: Any) -> list[str]:
    """Components whose plugin has no ``czsl_make_<kind>`` hook."""
    found = []
    for item in plugins.listed:
        kind = item.component.kind
        if plugins.factory(item) is None:
            found.append(f"{item.label()} is declared but the plugin has no "
                         f"czsl_make_{kind} hook; add one marked @czsl.hookimpl")
    return found
