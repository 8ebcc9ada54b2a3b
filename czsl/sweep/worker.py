"""One sweep run, in whatever process a backend gives it (a pool worker, a Ray task).

:func:`execute` takes a plain dict (picklable, no tensors: workers load the data
themselves) and returns a plain dict. It claims the run, pins torch to the run's
thread count before torch is imported, then starts, resumes or skips the run, and
records a failure or divergence in the sweep's folder so a rerun of the sweep knows.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

from czsl.errors import StorageError
from czsl.runfolder import RunFolder
from czsl.sweep.store import SweepDir, claim, failure_kind, release, write_json


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "(no message)"
    return f"{type(exc).__name__}: {text}"


def _pin_threads(threads: int) -> None:
    """``threads`` torch / OpenMP threads in this process (before torch starts its
    pool where possible; ``set_num_threads`` for a worker that already imported it)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    import torch

    torch.set_num_threads(threads)


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process so far, all its threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def execute(spec: dict[str, Any]) -> dict[str, Any]:
    """Run, resume or skip one run of a sweep.

    :param spec: ``root`` (the sweep folder), ``id``, ``document`` (the resolved
        scenario), ``data_dir`` (str or ``None``), ``threads``, ``labels``, ``seed``,
        ``overrides``, ``data`` (the data fingerprint).
    :returns: ``id``, ``status`` (``"done"``, ``"skipped"`` if finished before,
        ``"busy"`` if another process holds it, ``"failed"``, ``"diverged"``), ``error``
        (one line, or ``None``), ``kind`` (``"storage"`` for a failure on a storage
        fault, which a plain rerun retries; else ``None``), ``resumed``, ``seconds``,
        ``summary`` (or ``None``).
    """
    started = time.perf_counter()
    store = SweepDir(Path(spec["root"]))
    run_id = spec["id"]
    out = {"id": run_id, "status": "busy", "error": None, "kind": None, "resumed": False,
           "summary": None, "pid": os.getpid()}
    claim_path = store.claims / run_id
    try:
        fd = claim(claim_path)
    except StorageError as exc:  # nothing of the run can be written: it stays pending
        return {**out, "status": "failed", "error": _one_line(exc), "kind": "storage",
                "seconds": time.perf_counter() - started}
    if fd is None:
        return {**out, "seconds": time.perf_counter() - started}
    try:
        run_dir = store.run_dir(run_id)
        if RunFolder(run_dir).is_finished():
            return {**out, "status": "skipped", "seconds": time.perf_counter() - started}
        _pin_threads(spec["threads"])
        # Avalanche warns at import that GEM's optional QP solver is missing; czsl has no GEM
        warnings.filterwarnings("ignore", "no QP solver found")
        from czsl.checkpoint import has_checkpoint
        from czsl.config import scenario_from_document
        from czsl.errors import DivergenceError
        from czsl.run import resume_run, run_scenario

        data_dir = None if spec["data_dir"] is None else Path(spec["data_dir"])
        notes: list[str] = []
        cpu_before = _cpu_seconds()
        try:
            if has_checkpoint(run_dir):
                out["resumed"] = True
                result = resume_run(run_dir, data_dir=data_dir, progress=False,
                                    echo=notes.append)
            else:
                # a start that never finished a task left only logs: start clean
                shutil.rmtree(run_dir, ignore_errors=True)
                run_dir.mkdir(parents=True)
                write_json(run_dir / "labels.json", {
                    "labels": spec["labels"], "seed": spec["seed"],
                    "threads": spec["threads"], "overrides": spec["overrides"],
                    "data": spec["data"]})
                result = run_scenario(scenario_from_document(spec["document"]),
                                      data_dir=data_dir, progress=False,
                                      echo=notes.append, run_dir=run_dir)
        except DivergenceError as exc:
            out.update(status="diverged", error=_one_line(exc))
        except Exception as exc:  # a plugin's or czsl's: recorded, the sweep goes on
            out.update(status="failed", error=_one_line(exc), kind=failure_kind(exc))
        else:
            out.update(status="done", summary=result.results["summary"])
        try:
            store.add_usage(run_id, _cpu_seconds() - cpu_before)
        except StorageError:  # the figure is lost, the run is not
            pass
        try:
            if out["error"] is None:
                store.clear_failure(run_id)
            else:
                store.record_failure(run_id, out["status"], out["error"], out["kind"])
        except StorageError as exc:  # unrecorded, the run reads as not failed: rerun
            if out["error"] is not None:
                out.update(error=f"{out['error']} (not recorded: {exc})", kind="storage")
        return {**out, "seconds": time.perf_counter() - started}
    finally:
        release(claim_path, fd)


def probe(path: str, token: str) -> dict[str, Any]:
    """Whether this worker reads ``token`` from ``path`` (the sweep folder's probe
    file): a sweep folder every worker writes to must be on a filesystem they share."""
    import socket

    try:
        seen = json.loads(Path(path).read_text(encoding="utf-8")).get("token")
    except (OSError, ValueError):
        seen = None
    return {"host": socket.gethostname(), "ok": seen == token}


__all__ = ["execute", "probe"]
