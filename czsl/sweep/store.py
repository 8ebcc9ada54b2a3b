"""A sweep's folder on disk: its plan, its runs, their claims and recorded failures.

::

    sweeps/NAME/
      sweep.json            the plan: every run of the current grid (id, labels, overrides)
      summary.json          compact results of every run (written after each `sweep run`)
      runs/<id>/            the run folder (scenario.toml, results.json, events, labels.json)
      claims/<id>           exists while a process runs <id>; it holds an flock on it
      state/<id>.json       a run that failed or diverged, with its one-line error

A run is claimed with an exclusive create (``O_EXCL``) before it starts, and its
process keeps an ``flock`` on the claim while it runs: a claim whose lock is free
belongs to a process that died (a killed worker or driver) and is taken over. Stdlib
only: ``czsl sweep status`` and ``czsl sweep table`` read this without torch.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: claims without liveness checks
    fcntl = None

#: a run folder's checkpoint, as czsl.checkpoint lays it out (read here without torch)
CHECKPOINT_STATE = Path("checkpoint") / "state.pt"
#: a claim left empty this long belongs to a process that died while creating it
_EMPTY_CLAIM_S = 60.0
STATUSES = ("done", "running", "failed", "diverged", "resumable", "pending")


class SweepDir:
    """The folder of one sweep.

    :param root: ``sweeps/NAME``.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.runs = self.root / "runs"
        self.claims = self.root / "claims"
        self.state = self.root / "state"

    def run_dir(self, run_id: str) -> Path:
        """The run folder of ``run_id``."""
        return self.runs / run_id

    def status(self, run_id: str) -> str:
        """One of :data:`STATUSES` for ``run_id``."""
        if (self.run_dir(run_id) / "results.json").is_file():
            return "done"
        if is_claimed(self.claims / run_id):
            return "running"
        record = self.failure(run_id)
        if record is not None:
            return record["status"]
        if (self.run_dir(run_id) / CHECKPOINT_STATE).is_file():
            return "resumable"
        return "pending"

    def failure(self, run_id: str) -> dict[str, Any] | None:
        """The recorded failure of ``run_id`` (``status``, ``error``), or ``None``."""
        try:
            return json.loads((self.state / f"{run_id}.json").read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return None

    def record_failure(self, run_id: str, status: str, error: str) -> None:
        """Record that ``run_id`` ``"failed"`` or ``"diverged"`` with ``error``."""
        self.state.mkdir(parents=True, exist_ok=True)
        write_json(self.state / f"{run_id}.json", {"status": status, "error": error})

    def clear_failure(self, run_id: str) -> None:
        """Forget a recorded failure (the run has now finished)."""
        (self.state / f"{run_id}.json").unlink(missing_ok=True)

    def read_plan(self) -> dict[str, Any]:
        """The ``sweep.json`` written by the last ``czsl sweep run``."""
        from czsl.errors import CZSLError

        path = self.root / "sweep.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CZSLError(f"{self.root} is not a sweep folder (no sweep.json); give the "
                            "folder 'czsl sweep run' wrote (--out, default sweeps/NAME)"
                            ) from None
        except ValueError as exc:
            raise CZSLError(f"{path} is damaged ({exc}); run 'czsl sweep run' again to "
                            "rewrite it") from exc


def write_json(path: Path, value: Any) -> None:
    """Write ``value`` as JSON to ``path`` atomically (temporary file, then rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _lock(fd: int, shared: bool = False) -> bool:
    """Try to lock ``fd`` without waiting; whether it worked."""
    if fcntl is None:  # pragma: no cover
        return True
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _abandoned(path: Path, fd: int) -> bool:
    """Whether the claim open as ``fd`` (locked by us) was left by a dead process."""
    if os.fstat(fd).st_size == 0:  # its creator is between O_EXCL and writing, or died there
        return time.time() - os.fstat(fd).st_mtime > _EMPTY_CLAIM_S
    return True


def is_claimed(path: Path) -> bool:
    """Whether a live process holds the claim ``path``."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        return not _lock(fd, shared=True) or not _abandoned(path, fd)
    finally:
        os.close(fd)


def claim(path: Path) -> int | None:
    """Claim a run: the open, locked claim file's descriptor, or ``None`` if a live
    process holds it. Keep the descriptor open while the run runs; :func:`release` it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if not _take_over(path):
                return None
            continue
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)  # waits only for a checker's brief look
        os.write(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                                 "started": time.time()}).encode())
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
        if not _lock(fd) or not _abandoned(path, fd):
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
    """Give up a claim: remove the file while still holding its lock, then close it."""
    path.unlink(missing_ok=True)
    os.close(fd)


def claim_owner(path: Path) -> dict[str, Any] | None:
    """What a claim records (``host``, ``pid``, ``started``), or ``None``."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None


__all__ = ["CHECKPOINT_STATE", "STATUSES", "SweepDir", "claim", "claim_owner", "is_claimed",
           "release", "write_json"]
