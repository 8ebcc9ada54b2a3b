"""Naming the plugin that failed: who raised, and what the run folder keeps.

When training or testing raises, :func:`plugin_failure` walks the traceback for the
innermost frame that runs a method of an object a plugin built (the model, a
regularizer's or a replay's Avalanche plugin) and turns the exception into a
:class:`czsl.errors.PluginError` naming that plugin and its package, unless czsl's own
code runs further in (then it is czsl's error, or a plugin misusing czsl, and keeps its
traceback).
"""

from __future__ import annotations

import traceback
from pathlib import Path

from czsl.errors import PluginError
from czsl.plugins import Listed


def what_is_kept(run_dir: Path, step: int) -> str:
    """What a failure during task ``step`` leaves in ``run_dir``, and what to do."""
    if step == 0:
        return f"No task had finished, so {run_dir} was removed."
    done = "task 0 is" if step == 1 else f"tasks 0-{step - 1} are"
    return (f"In {run_dir}, {done} saved: once the plugin is fixed, continue with: "
            f"czsl run --resume {run_dir}")


def plugin_failure(exc: Exception, owners: dict[int, tuple[str, str, Listed]], step: int,
                    run_dir: Path) -> PluginError | None:
    """A :class:`PluginError` naming the plugin that raised ``exc``, or ``None``.

    The culprit is the innermost frame of the traceback that runs a method of an object
    a plugin built (the model, a regularizer or replay plugin), unless czsl's own code
    runs further in: then the error is czsl's (or a plugin misusing it) and is not
    dressed up as a plugin failure.
    """
    culprit = None
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        owner = owners.get(id(frame.f_locals.get("self")))
        if owner is not None:
            culprit = owner, frame
        elif frame.f_globals.get("__name__", "").split(".")[0] == "czsl":
            culprit = None
    if culprit is None:
        return None
    (kind, name, item), frame = culprit
    where = f"{type(frame.f_locals['self']).__name__}.{frame.f_code.co_name}"
    return PluginError(
        f"{kind} {name!r} (plugin {item.plugin!r} from {item.package} {item.version}) failed "
        f"during task {step}, in {where}: {type(exc).__name__}: {exc}. "
        f"{what_is_kept(run_dir, step)} (czsl --debug shows the traceback.)")
