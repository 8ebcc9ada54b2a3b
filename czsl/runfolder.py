"""A run's folder on disk: its layout, writing files into it whole, locking it, reading
a finished run. :class:`RunFolder` is the one owner of that folder; nothing else names
its files.

A run folder ``runs/<name>/`` holds

* ``scenario.toml`` — the scenario as resolved (protocol presets filled in), written
  when the run starts (:meth:`RunFolder.write_scenario`);
* ``results.json`` — every per-step figure and the run's summary, written once the run
  has finished (:meth:`RunFolder.write_results`; a crashed run leaves none), read back
  by :meth:`RunFolder.read_finished`, the one reader of a finished run (reports,
  sweeps, TensorBoard's hparams);
* TensorBoard event files (:mod:`czsl.board`) and, while the run is unfinished, its
  checkpoint folder (:mod:`czsl.checkpoint`).

An existing run folder is never reused: the name gets a ``-2``, ``-3``, ... suffix.
Every file is written to a temporary file beside it (``.NAME.*.tmp``) and moved into
place (:func:`atomic_write`, the one atomic write: checkpoints, sweep files and
``data/npz.py``'s archives use it too), so a reader sees it whole or not at all. The
folder is locked with ``flock`` (:func:`lock_fd`, which a sweep's claims use too).

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
import tomllib
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
#: The committed checkpoint, in the checkpoint folder.
CHECKPOINT_STATE = "state.pt"
#: The temporary files of :func:`atomic_write` (``.NAME.XXXX.tmp``), in any folder.
TEMP_GLOB = ".*.tmp"


class Damaged(CZSLError):
    """A file of a run or sweep folder is not what czsl wrote: truncated, edited, garbage.

    :param message: the one line.
    :param path: the file.
    :param problem: what is wrong, for a caller's own wording (the JSON error, or e.g.
        ``"it has no key 'summary'"``).
    :param not_json: whether the file is not JSON at all.
    """

    def __init__(self, message: str, path: Path | None = None, problem: str = "",
                 not_json: bool = False) -> None:
        super().__init__(message)
        self.path, self.problem, self.not_json = path, problem, not_json


class RunFolder:
    """One run's folder: where its files are, and writing, locking, tidying and reading
    it.

    :param path: the run folder (it need not exist yet).
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._results: Path | None = None

    @classmethod
    def given(cls, path: Path | str) -> RunFolder:
        """The run folder ``path``, or the one holding ``path`` if it is a file: a run's
        results file, read where it is under whatever name (a copied ``results.json``)."""
        path = Path(path)
        if not path.is_file():
            return cls(path)
        folder = cls(path.parent)
        folder._results = path
        return folder

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    @property
    def scenario_file(self) -> Path:
        """``scenario.toml``: the resolved scenario."""
        return self.path / SCENARIO_FILE

    @property
    def results_file(self) -> Path:
        """``results.json``: a finished run's figures."""
        return self._results or self.path / RESULTS_FILE

    @property
    def checkpoint_dir(self) -> Path:
        """The checkpoint folder of an unfinished run."""
        return self.path / CHECKPOINT_DIR

    @property
    def checkpoint_state(self) -> Path:
        """The committed checkpoint (it exists once a task has finished)."""
        return self.checkpoint_dir / CHECKPOINT_STATE

    def is_finished(self) -> bool:
        """Whether the run has finished (its ``results.json`` exists; not read)."""
        return self.results_file.is_file()

    def write_scenario(self, document: dict[str, Any]) -> Path:
        """Save the resolved scenario as ``scenario.toml`` and return its path.

        :param document: the resolved scenario (:meth:`czsl.config.Scenario.document`).
        """
        import tomli_w  # the one dependency beyond the standard library; see the module docstring

        atomic_write_text(self.scenario_file, tomli_w.dumps(document))
        return self.scenario_file

    def read_scenario(self) -> dict[str, Any]:
        """The resolved scenario in ``scenario.toml``, as a dict.

        :raises OSError: if it cannot be read (missing too).
        :raises tomllib.TOMLDecodeError: if it is not TOML.
        """
        return tomllib.loads(self.scenario_file.read_text(encoding="utf-8"))

    def write_results(self, results: dict[str, Any]) -> Path:
        """Write ``results.json`` atomically and return its path.

        :param results: the document (:func:`czsl.results.results_document` and what the
            run adds); passed through :func:`json_ready`.
        """
        write_json(self.results_file, json_ready(results), indent=2)
        return self.results_file

    def read_finished(self, needed: dict[str, tuple[str, ...]] | None = None
                      ) -> dict[str, Any] | None:
        """The finished run's ``results.json``, checked to be a run's results; ``None``
        if the run has not finished (there is none).

        Every results file has a ``summary`` table and a ``metrics`` table with a
        ``steps`` table; ``needed`` asks for more, checked first and in its order.

        :param needed: key -> the keys its table must have (``()``: any value).
        :raises Damaged: if it is not JSON, or not a run's results (truncated, edited);
            its ``problem`` says what is wrong.
        :raises CZSLError: if it cannot be read (no permission, an I/O error).
        """
        path = self.results_file
        document = read_json(path)
        if document is None:
            return None
        problem = _missing(document, needed or {})
        if problem is None:
            metrics = document.get("metrics")
            if not isinstance(document.get("summary"), dict):
                problem = "'summary' is not a table"
            elif not isinstance(metrics, dict) or not isinstance(metrics.get("steps"), dict):
                problem = "'metrics.steps' is not a table"
        if problem is not None:
            raise Damaged(f"{path} is damaged (not a run's results)", path, problem)
        return document

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold an exclusive lock on the folder (released when the process dies).

        :raises CZSLError: if another process holds it.
        """
        if fcntl is None:  # pragma: no cover - Windows
            yield
            return
        fd = os.open(self.path, os.O_RDONLY)
        try:
            if not lock_fd(fd):
                raise CZSLError(f"{self.path} is in use by another czsl process; wait for "
                                "it to end (or stop it) before resuming")
            yield
        finally:
            os.close(fd)

    def tidy(self) -> None:
        """Remove what a killed process left: the temporary files of
        :func:`atomic_write`, and the checkpoint of a run that has finished (one killed
        between writing ``results.json`` and removing its checkpoint). The caller holds
        :meth:`lock` (or the folder is its own)."""
        if self.is_finished():
            shutil.rmtree(self.checkpoint_dir, ignore_errors=True)
        for folder in (self.path, self.checkpoint_dir):
            for tmp in temp_files(folder):
                tmp.unlink(missing_ok=True)

    def tidy_if_idle(self) -> None:
        """:meth:`tidy` unless another process is running in the folder."""
        with contextlib.suppress(CZSLError, OSError), self.lock():
            self.tidy()


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


def write_json(path: Path, value: Any, indent: int = 2) -> None:
    """Write ``value`` as JSON (and a newline) to ``path`` whole or not at all
    (:func:`atomic_write`: no temporary file survives a failure).

    :raises OSError: if it cannot be written.
    """
    atomic_write_text(path, json.dumps(value, indent=indent) + "\n")


def read_json(path: Path) -> Any:
    """The JSON document in ``path``, or ``None`` if there is no such file.

    :raises Damaged: if it is not JSON (truncated, garbage); its ``problem`` is the
        parser's message.
    :raises CZSLError: if it cannot be read (no permission, an I/O error).
    """
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    except ValueError as exc:  # UnicodeDecodeError too
        raise Damaged(f"{path} is damaged (not JSON: {' '.join(str(exc).split())[:100]})",
                      path, str(exc), not_json=True) from None
    except OSError as exc:
        raise CZSLError(f"{path} cannot be read ({exc.strerror}): give your user read "
                        "permission, or check the disk; then run again") from None


def _missing(document: Any, needed: dict[str, tuple[str, ...]]) -> str | None:
    """What ``document`` lacks of ``needed`` (key -> the keys of its table), or ``None``."""
    for key, inner in needed.items():
        if not isinstance(document, dict) or key not in document:
            return f"it has no key {key!r}"
        if inner and not isinstance(document[key], dict):
            return f"'{key}' is not a table"
        missing = [k for k in inner if k not in document[key]]
        if missing:
            return f"'{key}' has no {missing[0]!r}"
    if not isinstance(document, dict):
        return "it is not a table"
    return None


def temp_files(folder: Path) -> list[Path]:
    """The temporary files of :func:`atomic_write` in ``folder`` (none if it is not one):
    those of a live writer, or left by a killed one."""
    return list(folder.glob(TEMP_GLOB)) if folder.is_dir() else []


def lock_fd(fd: int, shared: bool = False, wait: bool = False) -> bool:
    """``flock`` the open file or folder ``fd``: whether it is now locked. The lock goes
    with the descriptor (closing it, or the process dying, releases it).

    :param shared: a shared lock (a reader's look) instead of an exclusive one.
    :param wait: wait for the lock instead of giving up at once.
    """
    if fcntl is None:  # pragma: no cover - Windows: nothing is locked
        return True
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
                    | (0 if wait else fcntl.LOCK_NB))
        return True
    except BlockingIOError:
        return False


def write_scenario(run_dir: Path, document: dict[str, Any]) -> Path:
    """:meth:`RunFolder.write_scenario` of ``run_dir``."""
    return RunFolder(run_dir).write_scenario(document)


def write_results(run_dir: Path, results: dict[str, Any]) -> Path:
    """:meth:`RunFolder.write_results` of ``run_dir``."""
    return RunFolder(run_dir).write_results(results)


def tidy(run_dir: Path) -> None:
    """:meth:`RunFolder.tidy` of ``run_dir``."""
    RunFolder(run_dir).tidy()


def tidy_if_idle(run_dir: Path) -> None:
    """:meth:`RunFolder.tidy_if_idle` of ``run_dir``."""
    RunFolder(run_dir).tidy_if_idle()


def run_lock(run_dir: Path) -> contextlib.AbstractContextManager[None]:
    """:meth:`RunFolder.lock` of ``run_dir``."""
    return RunFolder(run_dir).lock()


__all__ = ["CHECKPOINT_DIR", "CHECKPOINT_STATE", "Damaged", "RESULTS_FILE", "RunFolder",
           "SCENARIO_FILE", "TEMP_GLOB", "atomic_write", "atomic_write_text",
           "check_writable", "json_ready", "lock_fd", "new_run_dir", "read_json",
           "run_lock", "storage_error", "temp_files", "tidy", "tidy_if_idle",
           "write_json", "write_results", "write_scenario"]
