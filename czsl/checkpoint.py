"""Checkpoints: a run's full state after every finished task, so that it can be resumed.

After task ``t`` has been trained and tested, the run folder holds::

    runs/NAME/checkpoint/state.pt

written to a temporary file, flushed to disk and moved into place with ``os.replace``,
so it is whole or absent: it is the commit point. Its size does not grow with the test
logits: a run scores each step when it ends and keeps only what the run's metrics need
(:func:`czsl.metrics.step_record`: ``O(T)`` numbers per step). ``state.pt`` holds

* the record of every finished step (:func:`czsl.metrics.step_record`);
* the run's identity: the scenario document of ``scenario.toml``, the data folder, a
  fingerprint of the data (features, labels, attributes, tasks), the plugin classes;
* the learner's state (:meth:`czsl.learner.ZSLLearner.state_dict`): the model's and the
  optimizer's ``state_dict``, Avalanche's clock, and the state of every regularizer,
  replay and logging plugin;
* the state of each generator the replay built (:attr:`czsl.build.BuiltRun.generators`,
  :func:`dump_generator_states`), on its own: a replay plugin holding one saves a
  reference to it, so after a resume it holds the generator the rebuilt run built, with
  the saved state restored into it;
* the random number generators (Python, numpy, torch, CUDA), captured at the end of
  the task, so the next task draws the same batches and memory samples as it would have
  in an uninterrupted run;
* the training time so far.

A finished run keeps no checkpoint: once ``results.json`` is written the folder is
removed. A process killed between the two leaves both; the next czsl process that
resumes the folder, or starts a run of the same name beside it, removes the checkpoint
(:func:`czsl.runfolder.tidy`), as it removes the temporary files of killed writes. ``runs/NAME/`` is locked (``flock``, :func:`czsl.runfolder.run_lock`) while a
process runs in it, so a run is never resumed twice at once; the lock dies with its
process, even on SIGKILL.

**Plugin state is pickled, plugins are rebuilt.** On resume every component is built
again from ``scenario.toml`` exactly as when the run started, then each plugin's
attributes are restored from its pickled state (the standard pickle protocol:
``__getstate__()``, restored with ``__setstate__`` or by updating ``__dict__``). Plugins
therefore need not know about checkpoints. Two things make generic pickling work:

* references from a plugin's state to the run's live objects (the learner, the model, its
  parameters, buffers and submodules, the optimizer, the stream, the generators the
  replay built: :func:`czsl.build.checkpoint_refs`) are saved as references (pickle's
  *persistent ids*) and bound to the rebuilt objects on resume, instead of being copied;
* a generator made by ``iter(obj)`` that has not started yet (A-GEM's memory iterator is
  one at the end of every task) is saved as ``iter(obj)``. A generator that has started
  cannot be saved: such a plugin must define ``__getstate__``/``__setstate__`` (see
  :mod:`czsl.hookspecs`).

**Why not Avalanche's checkpointing** (``avalanche.checkpointing.save_checkpoint`` /
``maybe_load_checkpoint``, which pickle the whole strategy with dill): with
avalanche-lib 0.6.0 it fails on czsl's learner with every regularizer (dill cannot
pickle a ``typing_extensions`` sentinel the template holds); the learner's logging
plugin holds a TensorBoard writer (open files, a thread); plugin classes built inside
factory functions (czsl's MAS and multi-task plugins) cannot be pickled by reference;
A-GEM holds a generator; and a pickled strategy would copy the whole benchmark (every
feature of the dataset) into every checkpoint. Saving each piece's state and rebuilding
the pieces from the scenario avoids all five.

Checkpoints are pickles: load only run folders you trust (your own).
"""

from __future__ import annotations

import hashlib
import inspect
import io
import pickle
import random
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from czsl import __version__
from czsl.errors import CZSLError
from czsl.runfolder import (CHECKPOINT_DIR, CHECKPOINT_STATE, RESULTS_FILE, SCENARIO_FILE,
                            RunFolder, atomic_write)

#: The file that commits a checkpoint (:attr:`czsl.runfolder.RunFolder.checkpoint_state`).
STATE_FILE = CHECKPOINT_STATE
#: Version of the checkpoint layout; a checkpoint of another version is refused.
#: 2: loggers are not part of the learner's plugin state; 3: step records, no logits;
#: 4: the generators are saved as references, their state on its own, and the czsl
#: version that wrote the checkpoint is recorded.
FORMAT = 4


class Unpicklable(Exception):
    """A part of the learner's state cannot be pickled.

    :param path: where: ``("plugins", i, attribute)``, ``("clock", attribute)``, ...
    :param cause: the pickling error.
    """

    def __init__(self, path: tuple[Any, ...], cause: BaseException) -> None:
        super().__init__(f"{path}: {cause}")
        self.path = path
        self.cause = cause


@dataclass
class Checkpoint:
    """One checkpoint, as read from ``state.pt``.

    :param step: the last finished task.
    :param n_tasks: tasks in the run.
    :param scenario: the scenario document written to ``scenario.toml``.
    :param data_dir: the data folder the run read (absolute), or ``None``.
    :param fingerprint: :func:`fingerprint` of the data.
    :param plugin_classes: qualified class names of the learner's plugins, in order.
    :param elapsed_s: training time up to this checkpoint, over every session.
    :param learner: the learner's state, each part still pickled (see :func:`load_learner_state`).
    :param rng: :func:`rng_state` at the end of task ``step``.
    :param records: :func:`czsl.metrics.step_record` of tasks ``0 .. step`` (on the CPU).
    :param generators: the state of each generator the replay built, still pickled
        (see :func:`dump_generator_states`).
    """

    step: int
    n_tasks: int
    scenario: dict[str, Any]
    data_dir: str | None
    fingerprint: str
    plugin_classes: list[str]
    elapsed_s: float
    learner: dict[str, Any]
    rng: dict[str, Any]
    records: list[dict[str, torch.Tensor]]
    generators: list[bytes]


# ------------------------------------------------------------------ object state


def object_state(obj: Any) -> Any:
    """What pickle would save of ``obj``: its ``__getstate__()`` (by default its attributes)."""
    return obj.__getstate__()


def restore_object_state(obj: Any, state: Any) -> None:
    """Give ``obj`` the state :func:`object_state` returned, as unpickling would."""
    setstate = getattr(obj, "__setstate__", None)
    if setstate is not None:
        setstate(state)
    elif state:
        obj.__dict__.update(state)


# ------------------------------------------------------------------ pickling with refs


def _expand_refs(refs: Mapping[str, Any]) -> dict[str, Any]:
    """``refs`` plus, for each torch module in it, its submodules, parameters and buffers."""
    out = dict(refs)
    for name, obj in refs.items():
        if isinstance(obj, torch.nn.Module):
            for kind, items in (("module", obj.named_modules()),
                                ("param", obj.named_parameters()),
                                ("buffer", obj.named_buffers())):
                for sub, value in items:
                    if sub:
                        out.setdefault(f"{name}.{kind}:{sub}", value)
    return out


def _reduce_generator(gen: Any) -> tuple[Any, ...]:
    """An unstarted ``iter(obj)`` generator pickles as ``iter(obj)``; nothing else can."""
    owner = gen.gi_frame.f_locals.get("self") if gen.gi_frame is not None else None
    fresh = (inspect.getgeneratorstate(gen) == inspect.GEN_CREATED and owner is not None
             and getattr(getattr(type(owner), "__iter__", None), "__code__", None)
             is gen.gi_code)
    if not fresh:
        raise pickle.PicklingError(
            f"generator {gen.gi_code.co_qualname} has started (or is not iter(obj)); only "
            "an unstarted iterator made by iter(obj) can be saved")
    return iter, (owner,)


class _Pickler(pickle.Pickler):
    """Saves the run's live objects as references and unstarted iterators as ``iter(obj)``."""

    def __init__(self, file: Any, refs: dict[str, Any]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._ids = {id(obj): name for name, obj in refs.items()}

    def persistent_id(self, obj: Any) -> str | None:
        return self._ids.get(id(obj))

    def reducer_override(self, obj: Any) -> Any:
        if inspect.isgenerator(obj):
            return _reduce_generator(obj)
        return NotImplemented


class _Unpickler(pickle.Unpickler):
    """Binds the references :class:`_Pickler` saved to the rebuilt run's objects."""

    def __init__(self, file: Any, refs: dict[str, Any]) -> None:
        super().__init__(file)
        self._refs = refs

    def persistent_load(self, pid: str) -> Any:
        if pid not in self._refs:
            raise pickle.UnpicklingError(f"the checkpoint refers to {pid!r}, which the "
                                         "rebuilt run does not have")
        return self._refs[pid]


def _dumps(value: Any, refs: dict[str, Any], path: tuple[Any, ...]) -> bytes:
    """Pickle ``value``; on failure, find the attribute or key that cannot be pickled."""
    buf = io.BytesIO()
    try:
        _Pickler(buf, refs).dump(value)
    except Exception as exc:  # pickle raises PicklingError, TypeError, AttributeError...
        if isinstance(value, dict):
            for key, item in value.items():
                _dumps(item, refs, path + (key,))  # raises with the deeper path
        raise Unpicklable(path, exc) from exc
    return buf.getvalue()


def _loads(blob: bytes, refs: dict[str, Any]) -> Any:
    return _Unpickler(io.BytesIO(blob), refs).load()


def dump_learner_state(state: Mapping[str, Any], refs: Mapping[str, Any]) -> dict[str, Any]:
    """Pickle each part of a learner's state (each plugin's on its own).

    :param state: :meth:`czsl.learner.ZSLLearner.state_dict`.
    :param refs: the run's live objects by name (see the module docstring).
    :raises Unpicklable: naming the part that cannot be pickled.
    """
    refs = _expand_refs(refs)
    out: dict[str, Any] = {}
    for key, value in state.items():
        if key == "plugins":
            out[key] = [_dumps(v, refs, (key, i)) for i, v in enumerate(value)]
        else:
            out[key] = _dumps(value, refs, (key,))
    return out


def dump_generator_states(generators: Sequence[Any], refs: Mapping[str, Any]) -> list[bytes]:
    """Pickle the state of each generator the replay built
    (:class:`czsl.generators.CheckedGenerator`: the generator plugin's object and its
    losses), each on its own; the generators themselves are in ``refs``, so a plugin's
    state refers to them (:func:`czsl.build.checkpoint_refs`).

    :raises Unpicklable: at ``("generators", i, attribute, ...)``.
    """
    refs = _expand_refs(refs)
    return [_dumps(object_state(g), refs, ("generators", i)) for i, g in enumerate(generators)]


def load_generator_states(blobs: Sequence[bytes], refs: Mapping[str, Any]) -> list[Any]:
    """Undo :func:`dump_generator_states`: the states, to restore into the rebuilt
    generators (:meth:`czsl.build.BuiltRun.restore_generators`)."""
    refs = _expand_refs(refs)
    return [_loads(blob, refs) for blob in blobs]


def find_unpicklable(obj: Any, refs: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """Where in ``obj``'s pickling state pickling fails (e.g. ``("net",)``), ``()`` if
    its state is not a dict, or ``None`` if it pickles.

    :param refs: the run's live objects by name, saved as references (as in
        :func:`dump_learner_state`).
    """
    try:
        _dumps(object_state(obj), _expand_refs(refs), ())
    except Unpicklable as exc:
        return exc.path
    return None


def picklable(obj: Any, refs: Mapping[str, Any]) -> bool:
    """Whether ``obj`` itself pickles (its class by reference included), with ``refs``
    saved as references as in :func:`dump_learner_state`."""
    try:
        _dumps(obj, _expand_refs(refs), ())
    except Unpicklable:
        return False
    return True


def load_learner_state(blobs: Mapping[str, Any], refs: Mapping[str, Any]) -> dict[str, Any]:
    """Undo :func:`dump_learner_state`, binding references to ``refs``."""
    refs = _expand_refs(refs)
    return {key: ([_loads(b, refs) for b in value] if key == "plugins"
                  else _loads(value, refs)) for key, value in blobs.items()}


# ------------------------------------------------------------------ RNG, data fingerprint


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and CUDA): every generator :func:`rng_state` saves."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """The state of every global random number generator a run draws from."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def fingerprint(*parts: Any) -> str:
    """A hash of arrays (numpy or torch) and plain values, to recognise the same data."""
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        if isinstance(part, torch.Tensor):
            part = part.detach().cpu().numpy()
        if isinstance(part, np.ndarray):
            part = np.ascontiguousarray(part)
            digest.update(f"{part.dtype}{part.shape}".encode())
            digest.update(memoryview(part).cast("B"))
        else:
            digest.update(repr(part).encode())
    return digest.hexdigest()


# ------------------------------------------------------------------ files


def save_checkpoint(run_dir: Path, checkpoint: Checkpoint) -> None:
    """Commit ``state.pt`` (the step records are moved to the CPU).

    :param run_dir: the run folder.
    :param checkpoint: the state; ``learner`` as :func:`dump_learner_state` returns it.
    """
    folder = RunFolder(run_dir).checkpoint_dir
    folder.mkdir(exist_ok=True)
    records = [{k: v.detach().cpu() for k, v in r.items()} for r in checkpoint.records]
    document = {"format": FORMAT, "czsl": __version__, **vars(checkpoint),
                "records": records}
    atomic_write(folder / STATE_FILE,
                  lambda fh: pickle.dump(document, fh, protocol=pickle.HIGHEST_PROTOCOL))


def has_checkpoint(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a committed checkpoint."""
    return RunFolder(run_dir).checkpoint_state.is_file()


def remove_checkpoint(run_dir: Path) -> None:
    """Delete the checkpoint of a finished run."""
    shutil.rmtree(RunFolder(run_dir).checkpoint_dir, ignore_errors=True)


def load_checkpoint(run_dir: Path) -> Checkpoint:
    """Read the checkpoint of an unfinished run, checking that it can be resumed.

    :raises CZSLError: if ``run_dir`` is not a run folder, has finished, has no
        checkpoint, or its checkpoint is unreadable.
    """
    folder = RunFolder(run_dir)
    fresh = f"start it again with: czsl run {folder.scenario_file}"
    again = f"to run its scenario again: czsl run {folder.scenario_file}"
    if not run_dir.is_dir():
        raise CZSLError(f"--resume {run_dir}: no such run folder; give a folder under "
                        "runs/ that 'czsl run' created")
    if not folder.scenario_file.is_file():
        raise CZSLError(f"--resume {run_dir}: not a czsl run folder (it has no "
                        f"{SCENARIO_FILE}); give a folder that 'czsl run' created")
    if folder.is_finished():
        raise CZSLError(f"--resume {run_dir}: that run has finished ({RESULTS_FILE} "
                        f"exists); there is nothing to resume; {again}")
    state = folder.checkpoint_state
    if not state.is_file():
        raise CZSLError(f"--resume {run_dir}: the run stopped before its first task "
                        f"finished, so it has no checkpoint to resume from; {fresh}")
    try:
        with state.open("rb") as fh:
            document = pickle.load(fh)
        version = document.pop("format")
        writer = document.pop("czsl", None)
    except Exception as exc:
        raise CZSLError(f"--resume {run_dir}: {state} is unreadable "
                        f"({type(exc).__name__}: {exc}); {fresh}") from exc
    if version != FORMAT:
        # formats before 4 recorded no version: every one was written by czsl 0.1.0
        writer = (f"czsl {writer}" if writer else
                  "czsl 0.1.0 from before checkpoint format 4")
        raise CZSLError(f"--resume {run_dir}: {state} has checkpoint format {version}, "
                        f"written by {writer}; this czsl ({__version__}) reads format "
                        f"{FORMAT}: finish the run with the czsl that wrote it, or {fresh}")
    return Checkpoint(**document)


__all__ = ["CHECKPOINT_DIR", "Checkpoint", "FORMAT", "STATE_FILE", "Unpicklable",
           "dump_generator_states", "dump_learner_state", "fingerprint", "has_checkpoint",
           "load_checkpoint", "load_generator_states", "load_learner_state",
           "object_state", "remove_checkpoint", "restore_object_state",
           "rng_state", "save_checkpoint", "set_rng_state"]
