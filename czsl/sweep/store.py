"""A sweep's folder on disk: its plan, its runs, their claims and recorded failures.

::

    sweeps/NAME/
      sweep.json            the plan: every run of the current grid (id, labels, overrides)
      summary.json          compact results of every run (written after each `sweep run`)
      runs/<id>/            the run folder (scenario.toml, results.json, events, labels.json)
      claims/<id>           exists while a process runs <id>; it holds an flock on it
      state/<id>.json       a run that failed or diverged, with its one-line error and
                            its kind ("storage": a full disk, no permission, an I/O error)
      usage/<id>.json       the CPU seconds (user + system) its sessions took, summed

A run whose ``results.json`` is damaged (not a run's results: truncated, edited; read by
:meth:`czsl.runfolder.RunFolder.read_finished`) reads as ``"damaged"``; a damaged
failure record is ignored (the run reads as it would without it). ``czsl sweep run``
repairs both (:meth:`SweepDir.repair`) and runs such a run
again, from its checkpoint if it has one. Every file is written whole or not at all
(:func:`czsl.runfolder.atomic_write`); a temporary file that a killed process left
is removed by the next ``run`` or ``status`` (:meth:`SweepDir.tidy`).

A run is claimed with an exclusive create (``O_EXCL``) before it starts, and its
process keeps an ``flock`` on the claim while it runs (:func:`czsl.runfolder.lock_fd`,
which locks run folders too): a claim whose lock is free
belongs to a process that died (a killed worker or driver) and is taken over. Stdlib
only: ``czsl sweep status`` and ``czsl sweep table`` read this without torch.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from czsl.errors import CZSLError, StorageError
from czsl.runfolder import (CHECKPOINT_DIR, CHECKPOINT_STATE as _STATE, Damaged, RunFolder,
                            lock_fd, read_json, storage_error, temp_files)
from czsl.runfolder import write_json as _write_json

#: a run folder's checkpoint, relative to it (:class:`czsl.runfolder.RunFolder`)
CHECKPOINT_STATE = Path(CHECKPOINT_DIR) / _STATE
#: a claim left empty this long belongs to a process that died while creating it
_EMPTY_CLAIM_S = 60.0
#: a temporary file of the sweep's own writes left this long belongs to a killed process
_STALE_TMP_S = 60.0
STATUSES = ("done", "running", "failed", "diverged", "resumable", "pending", "damaged")
#: the errors of a storage fault: a run that failed on one is retried by a plain rerun
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM,
                            errno.EROFS, errno.EIO})
#: what to do once the sweep folder's storage fault is fixed
THEN = "then run the sweep again (finished runs are kept)"


def failure_kind(exc: BaseException) -> str | None:
    """``"storage"`` if ``exc``, or an error that caused it, is a storage fault (a full
    disk, no permission, a read-only file system, an I/O error), else ``None``."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, StorageError) or (isinstance(exc, OSError)
                                             and exc.errno in STORAGE_ERRNOS):
            return "storage"
        exc = exc.__cause__ or exc.__context__
    return None


@contextlib.contextmanager
def storage_faults(folder: Path, then: str = THEN) -> Iterator[None]:
    """Turn a storage fault met while writing in ``folder`` into one line
    (:func:`czsl.runfolder.storage_error`); other errors pass through."""
    try:
        yield
    except OSError as exc:
        error = storage_error(folder, exc, then)
        if error is None:
            raise
        raise error from exc


class SweepDir:
    """The folder of one sweep.

    :param root: ``sweeps/NAME``.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.runs = self.root / "runs"
        self.claims = self.root / "claims"
        self.state = self.root / "state"
        self.usage_dir = self.root / "usage"

    def run_dir(self, run_id: str) -> Path:
        """The run folder of ``run_id``."""
        return self.runs / run_id

    def status(self, run_id: str) -> str:
        """One of :data:`STATUSES` for ``run_id``."""
        try:
            if self.results(run_id) is not None:
                return "done"
        except Damaged:
            return "damaged"
        if is_claimed(self.claims / run_id):
            return "running"
        record = self.failure(run_id)
        if record is not None:
            return record["status"]
        if RunFolder(self.run_dir(run_id)).checkpoint_state.is_file():
            return "resumable"
        return "pending"

    def results(self, run_id: str) -> dict[str, Any] | None:
        """The ``results.json`` of ``run_id``, or ``None`` if it has none.

        :raises Damaged: if it is not a run's results (truncated, edited).
        """
        return RunFolder(self.run_dir(run_id)).read_finished()

    def failure(self, run_id: str) -> dict[str, Any] | None:
        """The recorded failure of ``run_id`` (``status``, ``error``, ``kind``), or
        ``None``: none, or a damaged record (:meth:`damaged_records` names it)."""
        try:
            return self._failure(run_id)
        except Damaged:
            return None

    def _failure(self, run_id: str) -> dict[str, Any] | None:
        path = self.state / f"{run_id}.json"
        record = read_json(path)
        if record is None:
            return None
        if not (isinstance(record, dict) and record.get("status") in ("failed", "diverged")
                and isinstance(record.get("error"), str)
                and isinstance(record.get("kind"), (str, type(None)))):
            raise Damaged(f"{path} is damaged (not a failure record)")
        return {"kind": None, **record}

    def record_failure(self, run_id: str, status: str, error: str,
                       kind: str | None = None) -> None:
        """Record that ``run_id`` ``"failed"`` or ``"diverged"`` with ``error``, and the
        failure's ``kind`` (``"storage"``: retried by a plain rerun; else ``None``).

        :raises StorageError: if the record cannot be written.
        """
        with storage_faults(self.state):
            self.state.mkdir(parents=True, exist_ok=True)
            write_json(self.state / f"{run_id}.json",
                       {"status": status, "error": error, "kind": kind})

    def clear_failure(self, run_id: str) -> None:
        """Forget a recorded failure (the run has now finished).

        :raises StorageError: if it cannot be removed.
        """
        with storage_faults(self.state):
            (self.state / f"{run_id}.json").unlink(missing_ok=True)

    def usage(self, run_id: str) -> dict[str, Any] | None:
        """``{"cpu_s": seconds}`` that ``run_id``'s sessions took, or ``None`` if none was
        recorded (a run made before czsl kept it) or the record is damaged."""
        try:
            record = read_json(self.usage_dir / f"{run_id}.json")
        except Damaged:
            return None
        ok = isinstance(record, dict) and isinstance(record.get("cpu_s"), (int, float))
        return record if ok else None

    def add_usage(self, run_id: str, cpu_s: float) -> None:
        """Add ``cpu_s`` CPU seconds of one session of ``run_id`` to its record.

        :raises StorageError: if the record cannot be written.
        """
        before = (self.usage(run_id) or {}).get("cpu_s", 0.0)
        with storage_faults(self.usage_dir):
            self.usage_dir.mkdir(parents=True, exist_ok=True)
            write_json(self.usage_dir / f"{run_id}.json", {"cpu_s": before + cpu_s})

    def damaged_records(self, run_ids: Iterable[str]) -> list[Damaged]:
        """The damaged failure records of ``run_ids`` (a damaged ``results.json`` shows
        in :meth:`status`)."""
        found = []
        for run_id in run_ids:
            try:
                self._failure(run_id)
            except Damaged as exc:
                found.append(exc)
        return found

    def repair(self, run_ids: Iterable[str], echo: Callable[[str], None]) -> None:
        """Remove the damaged files of ``run_ids`` (a damaged ``results.json``: the run
        runs again, from its checkpoint if it has one) and stale temporary files; a
        note for each damaged file.

        :raises StorageError: if they cannot be removed.
        """
        self.tidy()
        with storage_faults(self.root):
            for run_id in run_ids:
                for read, path, then in (
                        (self.results, RunFolder(self.run_dir(run_id)).results_file,
                         "the run runs again (from its checkpoint, if it has one)"),
                        (self._failure, self.state / f"{run_id}.json",
                         "the run counts as not failed")):
                    try:
                        read(run_id)
                    except Damaged as exc:
                        path.unlink(missing_ok=True)
                        echo(f"note: {exc}; removed it: {then}")

    def tidy(self) -> None:
        """Remove the temporary files that a killed process left of the sweep's own
        writes (``sweep.json``, ``summary.json``, ``state/``): those older than a
        minute (a live writer's are younger). Quietly does nothing on a read-only
        folder (``status`` of a copied sweep)."""
        now = time.time()
        for folder in (self.root, self.state, self.usage_dir):
            for tmp in temp_files(folder):
                with contextlib.suppress(OSError):
                    if now - tmp.stat().st_mtime > _STALE_TMP_S:
                        tmp.unlink()

    def read_plan(self) -> dict[str, Any]:
        """The ``sweep.json`` written by the last ``czsl sweep run``.

        :raises CZSLError: if there is none or it is damaged.
        """
        path = self.root / "sweep.json"
        fix = "run 'czsl sweep run' with the sweep's grid again to rewrite it"
        try:
            plan = read_json(path)
        except Damaged as exc:
            raise Damaged(f"{exc}; {fix}") from None
        if plan is None:
            raise CZSLError(f"{self.root} is not a sweep folder (no sweep.json); give the "
                            "folder 'czsl sweep run' wrote (--out, default sweeps/NAME)")
        if not _is_plan(plan):
            raise Damaged(f"{path} is damaged (not a sweep's plan); {fix}")
        return plan


def _is_plan(plan: Any) -> bool:
    """Whether ``plan`` has the structure of a ``sweep.json``."""
    keys = ("id", "labels", "seed", "threads", "overrides")
    return (isinstance(plan, dict) and isinstance(plan.get("name"), str)
            and isinstance(plan.get("axes"), dict) and isinstance(plan.get("seeds"), list)
            and isinstance(plan.get("table"), dict) and isinstance(plan.get("runs"), list)
            and all(isinstance(r, dict) and all(k in r for k in keys) for r in plan["runs"]))


def write_json(path: Path, value: Any) -> None:
    """Write ``value`` as JSON to ``path`` whole or not at all
    (:func:`czsl.runfolder.write_json`, indented by one: no temporary file survives a
    failure).

    :raises OSError: if it cannot be written.
    """
    _write_json(path, value, indent=1)


def _abandoned(path: Path, fd: int) -> bool:
    """Whether the claim open as ``fd`` (locked by us) was left by a dead process."""
    if os.fstat(fd).st_size == 0:  # its creator is between O_EXCL and writing, or died there
        return time.time() - os.fstat(fd).st_mtime > _EMPTY_CLAIM_S
    return True


def is_claimed(path: Path) -> bool:
    """Whether a live process holds the claim ``path``."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return False
    try:
        return not lock_fd(fd, shared=True) or not _abandoned(path, fd)
    finally:
        os.close(fd)


def claim(path: Path) -> int | None:
    """Claim a run: the open, locked claim file's descriptor, or ``None`` if a live
    process holds it. Keep the descriptor open while the run runs; :func:`release` it.

    :raises StorageError: if the claim cannot be written (a full disk, no permission).
    """
    with storage_faults(path.parent):
        return _claim(path)


def _claim(path: Path) -> int | None:
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if not _take_over(path):
                return None
            continue
        try:
            lock_fd(fd, wait=True)  # waits only for a checker's brief look
            os.write(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                                     "started": time.time()}).encode())
        except OSError:
            release(path, fd)
            raise
        return fd
    return None


def _take_over(path: Path) -> bool:
    """Remove the claim ``path`` if its process died; whether it may be claimed anew.

    The stale file is unlinked while its lock is held, after checking that ``path``
    still names it, so two drivers taking over at once cannot remove each other's new
    claim: the second finds a different file (or none) at ``path``.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return True
    try:
        if not lock_fd(fd) or not _abandoned(path, fd):
            return False
        try:
            if os.stat(path).st_ino != os.fstat(fd).st_ino:
                return True  # already replaced: the O_EXCL create decides
        except FileNotFoundError:
            return True
        path.unlink()
        return True
    finally:
        os.close(fd)


def release(path: Path, fd: int) -> None:
    """Give up a claim: remove the file while still holding its lock, then close it.
    A file that cannot be removed (no permission) is left: its lock is free, so the
    next claim takes it over."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass
    finally:
        os.close(fd)


def claim_owner(path: Path) -> dict[str, Any] | None:
    """What a claim records (``host``, ``pid``, ``started``), or ``None``."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None


__all__ = ["CHECKPOINT_STATE", "STORAGE_ERRNOS", "STATUSES", "Damaged", "SweepDir", "claim",
           "claim_owner", "failure_kind", "is_claimed", "release", "storage_faults",
           "write_json"]
