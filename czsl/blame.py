"""Naming the plugin that failed: who raised, and what the run folder keeps.

When training or testing raises, :func:`plugin_failure` walks the traceback for the
innermost frame that runs a method of an object a plugin built (the model, a
regularizer's or a replay's Avalanche plugin) and turns the exception into a
:class:`czsl.errors.PluginError` naming that plugin and its package, unless czsl's own
code runs further in (then it is czsl's error, or a plugin misusing czsl, and keeps its
traceback). :func:`unpicklable_error` names the component whose state cannot be
checkpointed, when the run is built and after each task.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any, Sequence

from czsl.checkpoint import Unpicklable
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
    (_, _, item), frame = culprit
    where = f"{type(frame.f_locals['self']).__name__}.{frame.f_code.co_name}"
    return PluginError(
        f"{item.label()} failed during task {step}, in {where}: {type(exc).__name__}: {exc}. "
        f"{what_is_kept(run_dir, step)} (czsl --debug shows the traceback.)")


def unpicklable_error(exc: Unpicklable, extra_plugins: list[Any],
                      owners: dict[int, tuple[str, str, Listed]], refs: dict[str, Any],
                      when: str, kept: str, generators: Sequence[Any] = ()) -> Exception:
    """The error for learner or generator state that :mod:`czsl.checkpoint` cannot
    pickle (:func:`czsl.checkpoint.dump_learner_state`,
    :func:`czsl.checkpoint.dump_generator_states`), naming the component whose fix it is.

    The scenario's generator (a :class:`czsl.generators.CheckedGenerator`), or another
    plugin's object a plugin holds, is that component's to fix, so it is named instead
    of the plugin holding it; so is an add-on generator loss the generator holds.

    :param exc: what :mod:`czsl.checkpoint` raised.
    :param extra_plugins: the learner's ``extra_plugins`` (``exc.path[1]`` indexes them
        where ``exc.path[0]`` is ``"plugins"``).
    :param owners: ``id()`` of each object a plugin built -> ``(kind, name, listing)``.
    :param refs: the references the checkpoint pickles with (to look deeper).
    :param when: e.g. ``"after task 2"``.
    :param kept: what the run folder keeps, and what to do (see :func:`what_is_kept`).
    :param generators: the run's generators (``exc.path[1]`` indexes them where
        ``exc.path[0]`` is ``"generators"``).
    :return: a :class:`PluginError`, or a ``RuntimeError`` when the state is czsl's own
        (a bug).
    """
    from czsl.checkpoint import find_unpicklable, object_state, picklable
    from czsl.generators import CheckedGenerator, GeneratorLosses

    path = exc.path  # ("plugins", index, attribute, ...), ("generators", index, ...), ...
    if path[0] == "generators":
        value = generators[path[1]]
        # only to say where it is held: the replay's plugins hold it by reference
        holder, attribute = _holder(value, extra_plugins)
        owner = owners.get(id(holder))
        if id(value.generator) not in owners:
            return RuntimeError(f"cannot checkpoint the run's {path}: {exc.cause}")
    else:
        holder = extra_plugins[path[1]] if path[0] == "plugins" else None
        owner = None if holder is None else owners.get(id(holder))
        if owner is None:
            return RuntimeError(f"cannot checkpoint the learner's {path}: {exc.cause}")
        state = object_state(holder)
        attribute = path[2] if len(path) > 2 else None
        value = state.get(attribute) if attribute and isinstance(state, dict) else None
    inner = value.generator if isinstance(value, CheckedGenerator) else value
    if value is not None and id(inner) in owners and inner is not holder:
        # another component's object: that component's fix (e.g. a GAN's spectral_norm)
        kind, name, item = owners[id(inner)]
        deeper = find_unpicklable(inner, refs)
        losses = getattr(inner, deeper[0], None) if deeper else None
        if isinstance(losses, GeneratorLosses):  # an add-on loss's object: its plugin's fix
            for where, loss in losses.losses:
                if not picklable(loss, refs):
                    return PluginError(
                        f"{where}, held by {kind} {name!r}, cannot be checkpointed {when}: "
                        f"the {type(loss).__name__} its czsl_make_generator_loss returned "
                        f"cannot be pickled ({type(exc.cause).__name__}: {exc.cause}). "
                        "Return an instance of a class defined at module level (not a "
                        "lambda or a local function or class), with __getstate__/"
                        f"__setstate__ that leave out what pickle refuses. {kept}")
        what = f"its attribute {deeper[0]!r}" if deeper else "its state"
        held = "" if owner is None else f", held by {owner[0]} {owner[1]!r}" + (
            f" as {attribute!r}" if attribute else "")
        obj = inner
    else:
        item = owner[2]
        what = f"its attribute {path[2]!r}" if len(path) > 2 else "its state"
        held, obj = "", holder
    return PluginError(
        f"{item.label(held)} cannot be checkpointed {when}: {what} cannot be pickled "
        f"({type(exc.cause).__name__}: {exc.cause}). czsl pickles the state of every "
        f"plugin's objects after each task (see czsl.hookspecs); {type(obj).__name__} "
        f"needs __getstate__/__setstate__ that leave it out (or rebuild it). {kept}")


def _holder(value: Any, extra_plugins: list[Any]) -> tuple[Any, str | None]:
    """The plugin with an attribute that is ``value``, and the attribute's name (for an
    error message only); ``(None, None)`` if none has one."""
    from czsl.checkpoint import object_state

    for plugin in extra_plugins:
        state = object_state(plugin)
        for name, item in (state.items() if isinstance(state, dict) else ()):
            if item is value:
                return plugin, name
    return None, None
