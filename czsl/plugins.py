"""Finding plugins and building components by name.

Plugins are found only through the ``czsl`` entry-point group (built-ins included:
they are listed in czsl's own ``pyproject.toml``). Each entry point names a module
whose ``@czsl.hookimpl`` functions implement :mod:`czsl.hookspecs`.

This module imports neither torch nor Avalanche; the factories it calls may.
"""

from __future__ import annotations

import difflib
import traceback
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import pluggy

from czsl import hookspecs
from czsl.errors import CZSLError, OptionError, PluginError
from czsl.hookspecs import KINDS, Component

ENTRY_POINT_GROUP = "czsl"


@dataclass(frozen=True)
class Listed:
    """A component together with where it comes from.

    :param component: what the plugin declared.
    :param plugin: the entry-point name of the plugin that provides it.
    :param package: the distribution (pip package) that installed that plugin.
    :param version: that distribution's version.
    """

    component: Component
    plugin: str
    package: str
    version: str


class Plugins:
    """The loaded plugins: list components and build them by name.

    :param entry_points: the entry points to load; all of group ``czsl`` by default.
    :raises PluginError: if a plugin fails to import, implements a hook that does not
        exist (a misspelled name), or declares a component badly.
    """

    def __init__(self, entry_points: list[metadata.EntryPoint] | None = None) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self._package: dict[str, tuple[str, str]] = {}
        if entry_points is None:
            entry_points = list(metadata.entry_points(group=ENTRY_POINT_GROUP))
        for ep in sorted(entry_points, key=lambda e: e.name):
            self._load(ep)
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            name = self.pm.get_name(exc.plugin)
            raise PluginError(f"plugin {name!r} ({self.package_of(name)}) implements a hook "
                              f"czsl does not have: {exc}. Fix the function's name (the hooks "
                              "are listed in czsl/hookspecs.py)") from exc
        self.listed = self._collect_components()

    def _load(self, ep: metadata.EntryPoint) -> None:
        dist = ep.dist
        package = (dist.name, dist.version) if dist is not None else ("?", "?")
        self._package[ep.name] = package
        if self.pm.has_plugin(ep.name):
            other = self._package.get(ep.name)
            raise PluginError(f"two packages register a czsl plugin named {ep.name!r} "
                              f"({other[0]} and {package[0]}); uninstall one of them")
        try:
            module = ep.load()
        except Exception as exc:
            raise PluginError(f"plugin {ep.name!r} from package {package[0]} {package[1]} "
                              f"failed to import ({ep.value}): {type(exc).__name__}: {exc}. "
                              f"Reinstall or fix that package, or uninstall it "
                              f"(pip uninstall {package[0]})") from exc
        try:
            self.pm.register(module, name=ep.name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            raise PluginError(f"plugin {ep.name!r} from package {package[0]}: {exc}") from exc

    def package_of(self, plugin: str) -> str:
        """``"name version"`` of the distribution that installed ``plugin``."""
        name, version = self._package.get(plugin, ("?", "?"))
        return f"{name} {version}"

    def _collect_components(self) -> list[Listed]:
        listed: list[Listed] = []
        seen: dict[tuple[str, str], str] = {}
        for impl in self.pm.hook.czsl_components.get_hookimpls():
            where = f"plugin {impl.plugin_name!r} ({self.package_of(impl.plugin_name)})"
            try:
                components = impl.function()
            except Exception as exc:
                raise PluginError(f"{where}: czsl_components() raised "
                                  f"{type(exc).__name__}: {exc}") from exc
            if not isinstance(components, (list, tuple)) or not all(
                    isinstance(c, Component) for c in components):
                raise PluginError(f"{where}: czsl_components() must return a list of "
                                  f"czsl.Component, got {components!r}")
            for comp in components:
                if comp.kind not in KINDS:
                    raise PluginError(f"{where}: component {comp.name!r} has kind "
                                      f"{comp.kind!r}; kinds are {list(KINDS)}")
                key = (comp.kind, comp.name)
                if key in seen:
                    raise PluginError(f"{where} and plugin {seen[key]!r} both provide the "
                                      f"{comp.kind} {comp.name!r}; uninstall one of them")
                seen[key] = impl.plugin_name
                name, version = self._package.get(impl.plugin_name, ("?", "?"))
                listed.append(Listed(comp, impl.plugin_name, name, version))
        return sorted(listed, key=lambda item: (KINDS.index(item.component.kind),
                                                item.component.name))

    def names(self, kind: str) -> list[str]:
        """Names of the components of ``kind`` that are installed."""
        return [item.component.name for item in self.listed if item.component.kind == kind]

    def find(self, kind: str, name: str) -> Listed:
        """The listing of component ``name`` of ``kind``.

        :raises PluginError: naming the components that exist and the closest match.
        """
        for item in self.listed:
            if item.component.kind == kind and item.component.name == name:
                return item
        names = self.names(kind)
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise PluginError(f"unknown {kind} {name!r}. Installed {kind}s: "
                          f"{', '.join(names) or '(none)'}.{hint} "
                          "Run 'czsl plugins' to list every plugin.")

    def hook_args(self, kind: str, name: str) -> tuple[str, ...]:
        """The arguments the ``czsl_make_<kind>`` hook of ``name``'s plugin takes."""
        item = self.find(kind, name)
        for impl in getattr(self.pm.hook, f"czsl_make_{kind}").get_hookimpls():
            if impl.plugin_name == item.plugin:
                return tuple(impl.argnames)
        return ()

    def make(self, kind: str, name: str, options: dict[str, Any], **args: Any) -> Any:
        """Build component ``name`` of ``kind`` with the plugin that declared it.

        Only that plugin's ``czsl_make_<kind>(name=name, options=options, **args)`` is
        called: a name is routed to the plugin whose ``czsl_components`` declared it, so
        no other plugin is asked and a factory needs no check of ``name`` unless its
        plugin declares several components of one kind. (A generator gets no add-on
        ``losses`` unless ``args`` has them.)

        :raises PluginError: if the name is unknown, the factory rejects its options
            (an unknown option: a ``TypeError`` raised by the factory's own call, or an
            :class:`czsl.errors.OptionError`), raises anything else while building (a
            bug of the plugin, named as such), or returns ``None`` for a name it declared.
        """
        item = self.find(kind, name)
        where = f"{kind} {name!r} (plugin {item.plugin!r} from {item.package} {item.version})"
        if kind == "generator" and "losses" not in args:
            from czsl.generators import GeneratorLosses  # imports torch: only when needed

            args["losses"] = GeneratorLosses()
        [impl] = [impl for impl in getattr(self.pm.hook, f"czsl_make_{kind}").get_hookimpls()
                  if impl.plugin_name == item.plugin] or [None]
        if impl is None:
            raise PluginError(f"{where} is declared by czsl_components() but the plugin has "
                              f"no czsl_make_{kind} hook; add one marked @czsl.hookimpl")
        others = [p for p in self.pm.get_plugins() if self.pm.get_name(p) != item.plugin]
        caller = self.pm.subset_hook_caller(f"czsl_make_{kind}", remove_plugins=others)
        try:
            result = caller(name=name, options=dict(options), **args)
        except OptionError as exc:  # raised by czsl.options: name the plugin and the fix
            table = ("an entry of the scenario's [generator] losses"
                     if kind == "generator_loss" else f"the scenario's [{kind}] table")
            fix = "" if kind == "generator_loss" else f" or with --set {kind}.{exc.key}=VALUE"
            raise PluginError(f"{where}: option {exc}. Fix it in {table}{fix}") from exc
        except CZSLError:  # already names the problem (e.g. a nested make_generator)
            raise
        except TypeError as exc:
            if _raised_in(exc, impl.function):  # the factory's own call: the options
                raise PluginError(f"{where} rejected its options {sorted(options)}: {exc}. "
                                  "Check the option names in the scenario's "
                                  f"[{kind}] table against the plugin's documentation"
                                  ) from exc
            raise PluginError(f"{where} failed to build, a bug in that plugin: "
                              f"TypeError: {exc} (czsl --debug shows where)") from exc
        except Exception as exc:
            raise PluginError(f"{where} failed to build: {type(exc).__name__}: {exc}") from exc
        if result is None:
            raise PluginError(f"{where} is listed by czsl_components() but its "
                              f"czsl_make_{kind} hook returned None for it; this is a bug "
                              "in that plugin")
        return result


def _raised_in(exc: BaseException, function: Any) -> bool:
    """Whether ``exc`` came from the options: raised in ``function``'s own frame (by a
    statement of it, or by a call it made whose arguments did not fit the callee: Python
    raises that ``TypeError`` in the caller's frame, before entering the callee), or an
    unexpected keyword argument anywhere (options handed on by a helper)."""
    frames = [frame for frame, _ in traceback.walk_tb(exc.__traceback__)]
    code = getattr(function, "__code__", None)
    # a factory that hands its options on (make_plugin(**options)) from a helper
    return (bool(frames) and frames[-1].f_code is code) or "unexpected keyword argument" in str(exc)
