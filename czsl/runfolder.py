"""A run's folder on disk: creating it, writing files into it whole, locking it.

A run folder ``runs/<name>/`` holds

* ``scenario.toml`` — the scenario as resolved (protocol presets filled in), written
  when the run starts (:func:`write_scenario`);
* ``results.json`` — every per-step figure and the run's summary, written once the run
  has finished (:func:`write_results`; a crashed run leaves none);
* TensorBoard event files (:mod:`czsl.board`) and, while the run is unfinished, its
  checkpoint (:mod:`czsl.checkpoint`).

An existing run folder is never reused: the name gets a ``-2``, ``-3``, ... suffix.
Every file is written to a temporary file beside it and moved into place
(:func:`atomic_write`), so a reader sees it whole or not at all; ``data/npz.py`` writes
its archives the same way.

This module needs only the standard library when it is imported (``tomli_w``, a small
pure-Python writer, is imported by :func:`write_scenario` alone), so anything may use
it without pulling in torch, numpy or TensorBoard.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from czsl.errors import CZSLError, StorageError

try:  # POSIX; elsewhere runs are not locked
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

#: The resolved scenario, in a run folder.
SCENARIO_FILE = "scenario.toml"
#: A finished run's figures, in a run folder.
RESULTS_FILE = "results.json"
#: An unfinished run's checkpoint folder, in a run folder (:mod:`czsl.checkpoint`).
CHECKPOINT_DIR = "checkpoint"


#: errno -> (what is wrong with the folder, what to do); the storage faults a user fixes
_FAULTS = {
    errno.EROFS: ("is on a read-only file system", "choose a writable folder"),
    errno.EACCES: ("cannot be written (no permission)",
                   "give your user write permission to it, or choose another folder"),
    errno.ENOTDIR: ("cannot be a folder: a file is in its place or above it",
                    "move the file away, or choose another folder"),
    errno.ENOSPC: ("is on a full disk", "free some space"),
    errno.EDQUOT: ("is over its disk quota", "free some space"),
    errno.EIO: ("cannot be written (an input/output error: the disk or its connection may "
                "be failing)", "check the disk, or choose another folder"),
}
_FAULTS[errno.EPERM] = _FAULTS[errno.EACCES]
_FAULTS[errno.EEXIST] = _FAULTS[errno.ENOTDIR]


def storage_error(folder: Path, exc: OSError, then: str) -> StorageError | None:
    """One line for a storage fault met while writing in ``folder``, or ``None`` when
    ``exc`` is not one (a bug, to be raised as it is).

    :param folder: the folder czsl was writing in.
    :param exc: the error.
    :param then: what to do once it is fixed, e.g. ``"then run again"``.
    """
    fault = _FAULTS.get(exc.errno)
    if fault is None:
        return None
    what, fix = fault
    return StorageError(f"{folder} {what} ({exc.strerror}): {fix}, {then}")


def check_writable(folder: Path, then: str = "then run again") -> None:
    """Write (then remove) a probe file in ``folder``, or in the nearest folder above it
    that exists (where it would be created), so that a storage fault stops a run before
    its data are read. Creates nothing.

    :param folder: the folder a run writes to.
    :param then: what to do once the fault is fixed.
    :raises StorageError: naming the folder and the fix.
    """
    base = folder
    while not base.exists() and base != base.parent:
        base = base.parent
    try:
        if not base.is_dir():  # a file where the folder, or one above it, should be
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        fd, probe = tempfile.mkstemp(dir=base, prefix=".czsl-probe.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        error = storage_error(folder, exc, then)
        if error is None:
            raise
        raise error from exc


def new_run_dir(runs_dir: Path, name: str) -> Path:
    """Create and return a fresh folder ``runs_dir/name`` (suffixed if it exists).

    :param runs_dir: where run folders go (created if missing).
    :param name: the run's name.
    :raises CZSLError: when 10,000 runs of that name exist already.
    """
    runs_dir.mkdir(parents=True, exist_ok=True)
    for i in range(1, 10_000):
        path = runs_dir / (name if i == 1 else f"{name}-{i}")
        try:
            path.mkdir()
        except FileExistsError:
            if path.is_dir():  # finish the clean-up of a run killed at its end
                tidy_if_idle(path)
            continue
        return path
    raise CZSLError(f"{runs_dir} has 10,000 runs named {name!r}; choose another --name")


def atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    """Call ``write(binary file)`` on a temporary file, then move it to ``path``.

    The temporary file sits beside ``path`` (so the move is a rename) and is removed if
    ``write`` raises; ``path`` is then left as it was.

    :param path: the file to create or replace; its folder must exist.
    :param write: writes the content to the open binary file it is given.
    :raises OSError: when the folder cannot be written (``write``'s own errors pass
        through too).
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            # mkstemp makes the file 0600; a run's files get the mode of any new file
            os.fchmod(fh.fileno(), 0o666 & ~_umask())
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable (POSIX)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _umask() -> int:
    """The process's umask (reading it means setting it: set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` so that it is whole or absent."""
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def json_ready(value: Any) -> Any:
    """Make ``value`` JSON-ready, recursively: NaN becomes ``None``, dict keys strings.

    Anything with a ``tolist()`` method (a torch tensor, a numpy array or scalar) is
    converted with it first; that duck typing keeps this module free of torch and numpy.

    :param value: nested dicts, lists, tuples, numbers, strings, tensors or arrays.
    :return: the same structure in plain Python types.
    """
    if not isinstance(value, (str, bytes)) and callable(getattr(value, "tolist", None)):
        value = value.tolist()
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


def write_scenario(run_dir: Path, document: dict[str, Any]) -> Path:
    """Save the resolved scenario as ``scenario.toml`` and return its path.

    :param run_dir: the run folder.
    :param document: the resolved scenario (:func:`czsl.config.scenario_to_dict`).
    """
    import tomli_w  # the one dependency beyond the standard library; see the module docstring

    path = run_dir / SCENARIO_FILE
    atomic_write_text(path, tomli_w.dumps(document))
    return path


def write_results(run_dir: Path, results: dict[str, Any]) -> Path:
    """Write ``results.json`` atomically and return its path.

    :param run_dir: the run folder.
    :param results: the document (:func:`czsl.results.results_document` and what the
        run adds); passed through :func:`json_ready`.
    """
    path = run_dir / RESULTS_FILE
    atomic_write_text(path, json.dumps(json_ready(results), indent=2) + "\n")
    return path


def tidy(run_dir: Path) -> None:
    """Remove what a killed process left in ``run_dir``: the temporary files of
    :func:`atomic_write`, and the checkpoint of a run that has finished (one killed
    between writing ``results.json`` and removing its checkpoint). The caller holds
    :func:`run_lock` (or the folder is its own).

    :param run_dir: the run folder.
    """
    checkpoint = run_dir / CHECKPOINT_DIR
    if (run_dir / RESULTS_FILE).is_file():
        shutil.rmtree(checkpoint, ignore_errors=True)
    for folder in (run_dir, checkpoint):
        for tmp in folder.glob(".*.tmp") if folder.is_dir() else ():
            tmp.unlink(missing_ok=True)


def tidy_if_idle(run_dir: Path) -> None:
    """:func:`tidy` ``run_dir`` unless another process is running in it."""
    with contextlib.suppress(CZSLError, OSError), run_lock(run_dir):
        tidy(run_dir)


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``run_dir`` (released when the process dies).

    :param run_dir: the run folder.
    :raises CZSLError: if another process holds it.
    """
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    fd = os.open(run_dir, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CZSLError(f"{run_dir} is in use by another czsl process; wait for it to "
                            "end (or stop it) before resuming") from None
        yield
    finally:
        os.close(fd)


__all__ = ["CHECKPOINT_DIR", "RESULTS_FILE", "SCENARIO_FILE", "atomic_write", "atomic_write_text",
           "check_writable", "json_ready", "new_run_dir", "run_lock", "storage_error",
           "tidy", "tidy_if_idle", "write_results", "write_scenario"]
