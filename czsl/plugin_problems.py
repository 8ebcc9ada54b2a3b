"""Plugins czsl cannot use, and why: name clashes and bad declarations.

A :class:`Problem` is a warning for every command that does not need the plugin and the
error of a look-up that asks for one of its components (see :class:`czsl.plugins.Plugins`).
Each message names the package(s) and the fix in one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from typing import Any, Callable

from czsl.errors import PluginError, brief
from czsl.hookspecs import KINDS, Component

#: the distribution of the built-in plugins
BUILT_IN = "czsl"
#: the entry-point group czsl loads plugins from
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

    def label(self, detail: str = "", kind: str | None = None) -> str:
        """How every message names the component: ``regularizer 'mas' (plugin 'mas'
        from czsl 0.1.0)``.

        :param detail: added inside the parentheses, e.g. ``", held by replay 'r'"``.
        :param kind: how the kind reads, if not as its name (a built generator loss's
            errors say ``generator loss``).
        """
        return (f"{kind or self.component.kind} {self.component.name!r} (plugin "
                f"{self.plugin!r} from {self.package} {self.version}{detail})")

    def plugin_label(self) -> str:
        """How messages about its whole plugin name it (:func:`plugin_label`)."""
        return plugin_label(self.plugin, f"{self.package} {self.version}")


def plugin_label(plugin: str, package: str) -> str:
    """How every message about a whole plugin names it: ``plugin 'x' (czsl-x 0.1)`` (a
    component is named by :meth:`Listed.label`).

    :param plugin: the entry-point name.
    :param package: ``"name version"`` of the distribution that installed it.
    """
    return f"plugin {plugin!r} ({package})"


@dataclass(frozen=True)
class Problem:
    """A plugin (or some of its components) that czsl cannot use.

    It is a warning for everything that does not need it, and the error of any
    look-up that asks for one of its components.

    :param plugin: the entry-point name.
    :param package: ``"name version"`` of the distribution that installed it.
    :param message: one line: what is wrong and how to fix it.
    :param components: ``(kind, name)`` of the components it makes unusable; empty
        when they are unknown (the plugin did not import or did not say).
    """

    plugin: str
    package: str
    message: str
    components: tuple[tuple[str, str], ...] = ()

    def concerns(self, kind: str, name: str) -> bool:
        """Whether a look-up of ``name`` may want this plugin: one of its components, or
        (components unknown) a name equal to the plugin's, the usual convention."""
        return (kind, name) in self.components or (not self.components and
                                                   name == self.plugin)


def entry_point_clash(name: str, eps: list[metadata.EntryPoint]
                      ) -> tuple[metadata.EntryPoint | None, list[Problem]]:
    """The entry point to load among those named ``name`` (the built-in if one is; none
    if several third-party packages claim the name), and the problems of the others."""
    if len(eps) == 1:
        return eps[0], []
    built_in = [ep for ep in eps if dist_of(ep)[0] == BUILT_IN]
    others = [ep for ep in eps if ep not in built_in]
    if built_in:
        problems = []
        for ep in others:
            dist = dist_of(ep)[0]
            package = " ".join(dist_of(ep))
            problems.append(Problem(name, package, (
                f"package {package} registers a czsl plugin named {name!r}, the name of a "
                "built-in czsl plugin, so czsl ignores it; rename that entry point (the "
                f"key before '=' under [project.entry-points.czsl] in {dist}'s "
                f"pyproject.toml, e.g. '{dist.replace('-', '_')}_{name}') and reinstall it")))
        return built_in[0], problems
    packages = [" ".join(dist_of(ep)) for ep in others]
    message = (f"packages {' and '.join(packages)} both register a czsl plugin named "
               f"{name!r}, so czsl loads neither; rename the entry point (under "
               "[project.entry-points.czsl] in its pyproject.toml) in one of them, or "
               f"uninstall one (pip uninstall {' / '.join(p.split()[0] for p in packages)})")
    return None, [Problem(name, package, message) for package in packages]


def component_clash(other: Listed, item: Listed) -> tuple[Listed | None, list[Problem]]:
    """Two plugins declare the same component: the built-in's stays, two third-party
    ones are both left out. Returns the one kept (or ``None``) and the problems."""
    first, second = sorted((other, item), key=lambda i: i.package != BUILT_IN)
    comp = item.component
    key = (comp.kind, comp.name)
    this = f"the {comp.kind} {comp.name!r}"
    if first.package == BUILT_IN:  # the built-in stays; the other is renamed
        message = (f"{second.plugin_label()} declares {this}, a built-in name, so czsl "
                   f"ignores its {comp.kind}; rename it in that plugin's czsl_components() "
                   "(and in your scenarios)")
        return first, [Problem(second.plugin, f"{second.package} {second.version}",
                               message, (key,))]
    message = (f"{first.plugin_label()} and {second.plugin_label()} both declare {this}, "
               "so czsl uses neither; rename it in one of them or uninstall one (pip "
               f"uninstall {first.package} / {second.package})")
    return None, [Problem(c.plugin, f"{c.package} {c.version}", message, (key,))
                  for c in (first, second)]


def dist_of(ep: metadata.EntryPoint) -> tuple[str, str]:
    """``(name, version)`` of the distribution that installed ``ep``."""
    return (ep.dist.name, ep.dist.version) if ep.dist is not None else ("?", "?")


def declared(function: Callable[[], Any], where: str) -> list[Component]:
    """What a ``czsl_components`` implementation returns, checked.

    :raises PluginError: if it raises or returns anything but components of known kinds.
    """
    try:
        components = function()
    except Exception as exc:
        raise PluginError(f"{where}: czsl_components() raised "
                          f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(components, (list, tuple)) or not all(
            isinstance(c, Component) for c in components):
        raise PluginError(f"{where}: czsl_components() must return a list of "
                          f"czsl.Component, got {brief(components)}")
    for comp in components:
        if comp.kind not in KINDS:
            raise PluginError(f"{where}: component {comp.name!r} has kind "
                              f"{comp.kind!r}; kinds are {list(KINDS)}")
    return list(components)
