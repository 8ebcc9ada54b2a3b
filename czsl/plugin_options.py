"""What a component takes: its options and their defaults, told without building it.

:meth:`czsl.plugins.Plugins.options` is the one answer, used by ``czsl plugins``, by the
refusal of unknown option names before a run is built
(:meth:`czsl.plugins.Plugins.check_options`), and by the settings that ``czsl report``
and the HParams tab fill in (:mod:`czsl.settings`). This module reads the factory;
nothing here imports torch or Avalanche, and nothing of the plugin is run.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from dataclasses import dataclass
from typing import Any, Mapping

from czsl import hookspecs

#: the default of an option that has none: the scenario must set it
REQUIRED = inspect.Parameter.empty
#: how a default of ``None`` is shown: the option is not set and the plugin decides
#: (MAS ``gamma``: its rule is off; A-GEM ``samples_per_class``: by dataset)
UNSET = "unset"

#: what czsl's factory hooks are called with (:mod:`czsl.hookspecs`): never an option
HOOK_ARGUMENTS = frozenset(
    name for kind in hookspecs.KINDS
    for name in inspect.signature(getattr(hookspecs, f"czsl_make_{kind}")).parameters)


@dataclass(frozen=True)
class ComponentOptions:
    """The options a component takes.

    :param defaults: option -> default (:data:`REQUIRED` for one without), in the
        factory's order; ``None`` where they cannot be told (the factory's source cannot
        be read, or it does not hand its options on as ``f(**options)``).
    :param any_keyword: the factory also takes any other keyword (``**kwargs``).
    """

    defaults: Mapping[str, Any] | None
    any_keyword: bool = False

    def unknown(self, names: Any) -> list[str]:
        """Those of ``names`` the component does not take, sorted; empty where that
        cannot be told (no ``defaults``, or ``any_keyword``)."""
        if self.defaults is None or self.any_keyword:
            return []
        return sorted(set(names) - set(self.defaults))

    def filled(self) -> dict[str, Any]:
        """The options that have a default, with it (``None`` shown as :data:`UNSET`):
        what a scenario that leaves them out runs with."""
        return {name: UNSET if value is None else value
                for name, value in (self.defaults or {}).items() if value is not REQUIRED}

    def format(self) -> str:
        """``"ewc_lambda=10.0, gamma=0.99"`` as ``czsl plugins`` prints it; ``(required)``
        marks an option without a default, :data:`UNSET` one that defaults to ``None``."""
        if self.defaults is None:
            return "(see the plugin's documentation)"
        if not self.defaults:
            return "(none)"

        def shown(value: Any) -> str:
            return ("(required)" if value is REQUIRED else UNSET if value is None
                    else repr(value))

        return ", ".join(f"{name}={shown(value)}" for name, value in self.defaults.items())


def read(component: hookspecs.Component, factory: Any) -> ComponentOptions:
    """The options of ``component``, built by the hook implementation ``factory`` (or
    ``None`` where its plugin has none).

    ``Component.options``, when the plugin sets it, is the answer. Otherwise the
    factory's source is read (never run): the callable it hands ``**options`` to
    (``make_plugin(**options)``, ``CVAE(n_features, n_attributes, **options)``) is
    looked up in the plugin's module, and its parameters are the options, but those the
    hook supplies itself: the arguments that call passes besides ``**options``
    (``n_features``, A-GEM's ``dataset=stream.dataset_name``) and any named as an
    argument of a factory hook (:data:`HOOK_ARGUMENTS`). Reading the callee's signature,
    not the hook's (which takes ``options`` as one dict), works for every factory
    written the documented way, without importing torch.
    """
    if component.options is not None:
        return ComponentOptions(dict(component.options))
    found = None if factory is None else _options_call(factory)
    if found is None:
        return ComponentOptions(None)
    call, target = found
    try:
        params = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        return ComponentOptions(None)
    passed = {kw.arg for kw in call.keywords if kw.arg is not None}
    if any(isinstance(arg, ast.Starred) for arg in call.args):  # how many: not told
        positional = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                         and p.default is p.empty for p in params)
    else:
        positional = len(call.args)
    defaults = {p.name: p.default for i, p in enumerate(params)
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                and not (p.kind is p.POSITIONAL_OR_KEYWORD and i < positional)
                and p.name not in passed and p.name not in HOOK_ARGUMENTS}
    return ComponentOptions(defaults, any(p.kind is p.VAR_KEYWORD for p in params))


def _options_call(factory: Any) -> tuple[ast.Call, Any] | None:
    """The call in ``factory``'s source that hands on ``**options``, and the
    module-level callable it calls; ``None`` where there is none."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(factory)))
    except (OSError, TypeError, SyntaxError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and any(
                kw.arg is None and isinstance(kw.value, ast.Name) and kw.value.id == "options"
                for kw in node.keywords):
            target = factory.__globals__.get(node.func.id)
            return None if target is None else (node, target)
    return None
