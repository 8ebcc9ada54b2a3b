"""A sweep's compact summary: every run's labels, overrides, status and figures in one
JSON document, from which its tables re-render exactly.

``czsl sweep run`` writes it to ``sweeps/NAME/summary.json`` after every sweep; it can be
committed without the run folders (a benchmark's record) and read back by
``czsl sweep table summary.json``. Stdlib only. Its fields:

* ``format`` (1), ``name``, ``axes`` (axis -> labels, in grid order), ``seeds``,
  ``table`` (``rows``, ``columns``, ``metrics``);
* ``runs``: one entry per run of the grid, in grid order: ``id``, ``labels`` (axis ->
  label), ``seed``, ``threads``, ``overrides`` (every ``--set``, in order), ``status``
  (:data:`czsl.sweep.store.STATUSES`), ``error`` (one line, failed / diverged / damaged
  runs), and
  for finished runs ``summary`` (results.json's), ``steps`` (its per-step figures) and
  ``dataset``, ``features``, ``semi_synthetic``, ``n_tasks``, ``wall_time_s``,
  ``gzsl`` (the static protocol's figures, else ``None``), ``semantic_transductive``
  (whether training read unseen classes' attributes) and ``cpu_s`` (CPU seconds, user +
  system, of its sessions; ``None`` for runs made before czsl kept it);
* optionally ``notes``: paragraphs about where the runs come from (a summary converted
  from runs made before ``czsl sweep``, say); ``czsl sweep run`` writes none.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from czsl.errors import CZSLError
from czsl.sweep.store import STATUSES, Damaged, SweepDir, write_json

FORMAT = 1
#: the results.json fields a summary keeps per run, besides its summary metrics
_KEPT = ("dataset", "features", "semi_synthetic", "n_tasks", "wall_time_s", "gzsl",
         "semantic_transductive")


def build_summary(store: SweepDir, plan: dict[str, Any]) -> dict[str, Any]:
    """The summary of the runs of ``plan`` (``sweep.json``) as they are in ``store``."""
    runs = []
    for planned in plan["runs"]:
        status = store.status(planned["id"])
        entry = {key: planned[key] for key in ("id", "labels", "seed", "threads",
                                                "overrides")}
        entry.update(status=status, error=None, summary={}, steps={})
        if status == "done":
            results = store.results(planned["id"])
            entry.update({key: results.get(key) for key in _KEPT})
            entry.update(summary=results["summary"], steps=results["metrics"]["steps"],
                         cpu_s=(store.usage(planned["id"]) or {}).get("cpu_s"))
        elif status in ("failed", "diverged"):
            entry["error"] = (store.failure(planned["id"]) or {}).get("error")
        elif status == "damaged":
            entry["error"] = f"{_damage(store, planned['id'])}; 'czsl sweep run' runs it again"
        runs.append(entry)
    return {"format": FORMAT, "name": plan["name"], "axes": plan["axes"],
            "seeds": plan["seeds"], "table": plan["table"], "runs": runs}


def _damage(store: SweepDir, run_id: str) -> str:
    try:
        store.results(run_id)
    except Damaged as exc:
        return str(exc)
    return "no longer damaged"


def write_summary(store: SweepDir) -> Path:
    """Write ``summary.json`` of the sweep in ``store`` (atomically); its path."""
    path = store.root / "summary.json"
    write_json(path, build_summary(store, store.read_plan()))
    return path


def load_summary(path: Path) -> dict[str, Any]:
    """The summary of a sweep folder (built from its runs) or of a ``summary.json``.

    :raises CZSLError: if ``path`` is neither.
    """
    path = Path(path)
    if path.is_dir() and (path / "sweep.json").is_file():
        store = SweepDir(path)
        return build_summary(store, store.read_plan())
    file = path / "summary.json" if path.is_dir() else path
    try:
        summary = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CZSLError(f"{path} is neither a sweep folder (with sweep.json) nor a sweep's "
                        "summary.json; give the folder 'czsl sweep run' wrote") from None
    except (ValueError, OSError) as exc:
        why = f"not valid JSON: {exc}" if isinstance(exc, ValueError) else exc.strerror
        raise CZSLError(f"{file} cannot be read as a sweep's summary ({why})") from None
    if not isinstance(summary, dict) or summary.get("format") != FORMAT:
        found = summary.get("format") if isinstance(summary, dict) else None
        raise CZSLError(f"{file} has summary format {found!r}; this czsl reads format "
                        f"{FORMAT}")
    if not _is_summary(summary):
        raise CZSLError(f"{file} is damaged (not a sweep's summary); write it again with "
                        "'czsl sweep run', or restore it")
    return summary


def _is_summary(summary: dict[str, Any]) -> bool:
    """Whether ``summary`` has the fields its table is rendered from."""
    keys = {"id": str, "labels": dict, "seed": int, "threads": int, "status": str,
            "summary": dict}
    table = summary.get("table")
    return (isinstance(summary.get("name"), str) and isinstance(summary.get("axes"), dict)
            and all(isinstance(v, list) for v in summary["axes"].values())
            and isinstance(summary.get("seeds"), list) and isinstance(table, dict)
            and all(isinstance(table.get(k), list) for k in ("rows", "columns", "metrics"))
            and isinstance(summary.get("runs"), list)
            and all(isinstance(r, dict) and all(isinstance(r.get(k), t)
                                                for k, t in keys.items())
                    for r in summary["runs"]))


def counts(summary: dict[str, Any]) -> dict[str, int]:
    """How many runs of ``summary`` have each status."""
    return {s: sum(r["status"] == s for r in summary["runs"]) for s in STATUSES}


__all__ = ["FORMAT", "build_summary", "counts", "load_summary", "write_summary"]
