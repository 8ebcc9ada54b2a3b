"""Finding plugins and building components by name.

Plugins are found only through the ``czsl`` entry-point group (built-ins included:
they are listed in czsl's own ``pyproject.toml``). Each entry point names a module
whose ``@czsl.hookimpl`` functions implement :mod:`czsl.hookspecs`. A plugin that
cannot be used is a :class:`Problem`: a warning until a run asks for one of its
components. :mod:`czsl.plugin_check` looks for the mistakes that make a plugin vanish
without an error; :meth:`Plugins.options` tells the options a component takes
(:mod:`czsl.plugin_options`).

This module imports neither torch nor Avalanche; the factories it calls may.
"""

from __future__ import annotations

import difflib
import re
import time
import traceback
from importlib import metadata
from typing import Any, Callable

import pluggy

from czsl import hookspecs
from czsl.errors import CZSLError, OptionError, PluginError
from czsl.hookspecs import KINDS
from czsl.plugin_check import check
from czsl.plugin_options import ComponentOptions, read
from czsl.plugin_problems import (BUILT_IN, ENTRY_POINT_GROUP, Listed, Problem,
                                  component_clash, declared, dist_of, entry_point_clash,
                                  plugin_label)

__all__ = ["BUILT_IN", "ENTRY_POINT_GROUP", "ComponentOptions", "Listed", "Plugins",
           "Problem"]

#: a plugin slower than this to import is named by ``czsl plugins`` (seconds)
SLOW_IMPORT_S = 0.5


class Plugins:
    """The loaded plugins: list components and build them by name.

    A broken third-party plugin (it fails to import, implements a misspelled hook,
    declares components badly, or its name clashes with another plugin's) does not
    stop the others: it is left out and recorded in :attr:`problems`, and only a
    look-up of one of its components fails, with its message.

    :param entry_points: the entry points to load; all of group ``czsl`` by default.
    :param clock: seconds, to time each plugin's import (injectable for tests).
    :param slow_import_s: an import slower than this is noted in :attr:`notes`.
    """

    def __init__(self, entry_points: list[metadata.EntryPoint] | None = None, *,
                 clock: Callable[[], float] = time.perf_counter,
                 slow_import_s: float = SLOW_IMPORT_S) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.problems: list[Problem] = []
        #: warnings about plugins that work (e.g. slow to import)
        self.notes: list[str] = []
        #: entry-point name -> the module czsl loaded for it
        self.modules: dict[str, Any] = {}
        self._package: dict[str, tuple[str, str]] = {}
        self._clock, self._slow_import_s = clock, slow_import_s
        if entry_points is None:
            entry_points = list(metadata.entry_points(group=ENTRY_POINT_GROUP))
        by_name: dict[str, list[metadata.EntryPoint]] = {}
        for ep in entry_points:
            by_name.setdefault(ep.name, []).append(ep)
        for name in sorted(by_name):
            ep, problems = entry_point_clash(name, by_name[name])
            self.problems += problems
            if ep is not None:
                self._load(ep)
        self._check_hook_names()
        self.listed = self._collect_components()

    def _problem(self, plugin: str, package: str, message: str,
                 components: tuple[tuple[str, str], ...] = ()) -> None:
        self.problems.append(Problem(plugin, package, message, components))

    def _load(self, ep: metadata.EntryPoint) -> None:
        package = dist_of(ep)
        self._package[ep.name] = package
        where = f"plugin {ep.name!r} from package {package[0]} {package[1]}"
        started = self._clock()
        try:
            module = ep.load()
        except Exception as exc:
            self._problem(ep.name, self.package_of(ep.name), (
                f"{where} failed to import ({ep.value}): {type(exc).__name__}: {exc}. "
                f"Reinstall or fix that package, or uninstall it (pip uninstall "
                f"{package[0]})"))
            return
        spent = self._clock() - started
        if spent > self._slow_import_s:
            self.notes.append(
                f"{where} took {spent:.1f} s to import, and every czsl command (even 'czsl "
                "plugins') imports it; import torch, Avalanche and other heavy modules "
                "inside its functions, not at the top of the module")
        try:
            self.pm.register(module, name=ep.name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            self._problem(ep.name, self.package_of(ep.name), f"{where}: {exc}")
            return
        self.modules[ep.name] = module

    def _check_hook_names(self) -> None:
        """Leave out each plugin that implements a hook czsl does not have."""
        while True:
            try:
                self.pm.check_pending()
                return
            except pluggy.PluginValidationError as exc:
                name = self.pm.get_name(exc.plugin)
                self.pm.unregister(name=name)
                module = self.modules.pop(name)
                where = self.plugin_label(name)
                try:  # which components it would have provided, to fail their look-ups
                    components = declared(getattr(module, "czsl_components", list), where)
                except PluginError:
                    components = []
                self._problem(name, self.package_of(name), (
                    f"{where} implements a hook czsl does not have: {exc}. Fix the "
                    "function's name (the hooks are listed in czsl/hookspecs.py)"),
                    tuple((c.kind, c.name) for c in components))

    def package_of(self, plugin: str) -> str:
        """``"name version"`` of the distribution that installed ``plugin``."""
        name, version = self._package.get(plugin, ("?", "?"))
        return f"{name} {version}"

    def plugin_label(self, plugin: str) -> str:
        """How messages about a whole plugin name it (:func:`plugin_label`)."""
        return plugin_label(plugin, self.package_of(plugin))

    def _collect_components(self) -> list[Listed]:
        listed: dict[tuple[str, str], Listed] = {}
        for impl in self.pm.hook.czsl_components.get_hookimpls():
            where = self.plugin_label(impl.plugin_name)
            try:
                components = declared(impl.function, where)
            except PluginError as exc:
                self._problem(impl.plugin_name, self.package_of(impl.plugin_name), str(exc))
                continue
            for comp in components:
                key = (comp.kind, comp.name)
                name, version = self._package.get(impl.plugin_name, ("?", "?"))
                item = Listed(comp, impl.plugin_name, name, version)
                other = listed.get(key)
                if other is None:
                    listed[key] = item
                    continue
                kept, problems = component_clash(other, item)
                self.problems += problems
                if kept is None:
                    del listed[key]
                else:
                    listed[key] = kept
        return sorted(listed.values(), key=lambda item: (KINDS.index(item.component.kind),
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
        for problem in self.problems:
            if problem.concerns(kind, name):
                raise PluginError(f"{kind} {name!r} cannot be used: {problem.message}")
        names = self.names(kind)
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        found = [*(p.message for p in self.problems), *check(self)]
        found.sort(key=lambda line: repr(name) not in line)  # the likeliest cause first
        more = (f" 'czsl plugins' also reports: {found[0]}"
                + (f" (and {len(found) - 1} more)" if len(found) > 1 else "")) if found else ""
        raise PluginError(f"unknown {kind} {name!r}. Installed {kind}s: "
                          f"{', '.join(names) or '(none)'}.{hint} "
                          f"Run 'czsl plugins' to list every plugin.{more}")

    def factory(self, item: Listed) -> pluggy.HookImpl | None:
        """The ``czsl_make_<kind>`` implementation of ``item``'s plugin (``None`` where it
        has none)."""
        caller = getattr(self.pm.hook, f"czsl_make_{item.component.kind}")
        return next((impl for impl in caller.get_hookimpls()
                     if impl.plugin_name == item.plugin), None)

    def hook_args(self, kind: str, name: str) -> tuple[str, ...]:
        """The arguments the ``czsl_make_<kind>`` hook of ``name``'s plugin takes."""
        impl = self.factory(self.find(kind, name))
        return () if impl is None else tuple(impl.argnames)

    def options(self, kind: str, name: str) -> ComponentOptions:
        """The options component ``name`` of ``kind`` takes, with their defaults, but
        the arguments its hook supplies itself (:func:`czsl.plugin_options.read`): what
        ``czsl plugins`` lists, what an option name is checked against, and what
        ``czsl report`` and the HParams tab fill in.

        :raises PluginError: for an unknown name.
        """
        item = self.find(kind, name)
        impl = self.factory(item)
        return read(item.component, None if impl is None else impl.function)

    def make(self, kind: str, name: str, options: dict[str, Any], **args: Any) -> Any:
        """Build component ``name`` of ``kind`` with the plugin that declared it.

        Only that plugin's ``czsl_make_<kind>(name=name, options=options, **args)`` is
        called: a name is routed to the plugin whose ``czsl_components`` declared it, so
        no other plugin is asked and a factory needs no check of ``name`` unless its
        plugin declares several components of one kind. (A generator gets no add-on
        ``losses`` unless ``args`` has them.)

        :raises PluginError: if the name is unknown, an option name is not one the
            component takes (:meth:`check_options`, before the factory is called), the
            factory rejects its options (an unknown option: a ``TypeError`` raised by the
            factory's own call, or an :class:`czsl.errors.OptionError`), raises anything
            else while building (a bug of the plugin, named as such), or returns ``None``
            for a name it declared.
        """
        item = self.check_options(kind, name, options)
        where = item.label()
        if kind == "generator" and "losses" not in args:
            from czsl.generators import GeneratorLosses  # imports torch: only when needed

            args["losses"] = GeneratorLosses()
        impl = self.factory(item)
        if impl is None:
            raise PluginError(f"{where} is declared by czsl_components() but the plugin has "
                              f"no czsl_make_{kind} hook; add one marked @czsl.hookimpl")
        others = [p for p in self.pm.get_plugins() if self.pm.get_name(p) != item.plugin]
        caller = self.pm.subset_hook_caller(f"czsl_make_{kind}", remove_plugins=others)
        try:
            result = caller(name=name, options=dict(options), **args)
        except OptionError as exc:  # raised by czsl.options: name the plugin and the fix
            fix = "" if kind == "generator_loss" else f" or with --set {kind}.{exc.key}=VALUE"
            raise PluginError(f"{where}: option {exc}. Fix it in {_table(kind)}{fix}") from exc
        except CZSLError:  # already names the problem (e.g. a nested make_generator)
            raise
        except TypeError as exc:
            if _raised_in(exc, impl.function):  # the factory's own call: the options
                named = _UNEXPECTED.findall(str(exc))
                what = (f"does not take the option {', '.join(map(repr, named))}" if named
                        else "rejected its options")
                raise PluginError(f"{where} {what}: {exc}. {_fix(kind, name, len(named))}"
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

    def check_options(self, kind: str, name: str, options: dict[str, Any]) -> Listed:
        """Refuse option names that component ``name`` of ``kind`` does not take (as far
        as :meth:`options` can tell), all of them in one line.

        :returns: the component's listing.
        :raises PluginError: for an unknown name, or naming every unknown option, the
            options it takes and the fix.
        """
        item = self.find(kind, name)
        taken = self.options(kind, name)
        unknown = taken.unknown(options)
        if unknown:
            takes = sorted(taken.defaults or ())
            guesses = [f"{close[0]!r} for {key!r}" for key in unknown
                       for close in [difflib.get_close_matches(key, takes, n=1, cutoff=0.75)]
                       if close]
            raise PluginError(
                f"{item.label()} does not take the option"
                f"{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}"
                + (f" (did you mean {', '.join(guesses)}?)" if guesses else "")
                + f"; it takes {', '.join(takes) or 'no options'}. "
                + _fix(kind, name, len(unknown)))
        return item

    def check_scenario_options(self, scenario: Any) -> None:
        """Refuse every option of a scenario's plugin tables (and of its generator's
        ``losses``) that the chosen component does not take, before anything is built.

        :param scenario: a :class:`czsl.config.Scenario`.
        :raises PluginError: for an unknown component, or naming the table and every
            option of it the component does not take (:meth:`check_options`).
        """
        for kind in ("model", "regularizer", "replay", "generator"):
            cfg = getattr(scenario, kind)
            options = dict(cfg.options)
            losses = options.pop("losses", []) if kind == "generator" else []
            self.check_options(kind, cfg.name, options)
            # a malformed list is refused, with its own message, when the generator is built
            for spec in losses if isinstance(losses, list) else ():
                if isinstance(spec, dict) and isinstance(spec.get("name"), str):
                    self.check_options("generator_loss", spec["name"],
                                       {k: v for k, v in spec.items() if k != "name"})


_UNEXPECTED = re.compile(r"unexpected keyword argument '([^']+)'")


def _table(kind: str) -> str:
    """Where a component's options are written in a scenario."""
    return ("an entry of the scenario's [generator] losses" if kind == "generator_loss"
            else f"the scenario's [{kind}] table")


def _fix(kind: str, name: str, count: int = 1) -> str:
    """How to fix option names: where they are set, and how to replace the whole table."""
    them = "them" if count > 1 else "it"
    if kind == "generator_loss":
        return (f"Remove or fix {them} in {_table(kind)}, e.g. --set "
                f"\"generator.losses=[{{name='{name}'}}]\"")
    return (f"Remove or fix {them} in {_table(kind)} or its overrides (a swap such as --set "
            f"{kind}={name} keeps the options set for [{kind}]), or replace the whole "
            f"table: --set '{kind}={{name=\"{name}\", ...}}'")


def _raised_in(exc: BaseException, function: Any) -> bool:
    """Whether ``exc`` came from the options: raised in ``function``'s own frame (by a
    statement of it, or by a call it made whose arguments did not fit the callee: Python
    raises that ``TypeError`` in the caller's frame, before entering the callee), or an
    unexpected keyword argument anywhere (options handed on by a helper)."""
    frames = [frame for frame, _ in traceback.walk_tb(exc.__traceback__)]
    code = getattr(function, "__code__", None)
    # a factory that hands its options on (make_plugin(**options)) from a helper
    return (bool(frames) and frames[-1].f_code is code) or "unexpected keyword argument" in str(exc)
