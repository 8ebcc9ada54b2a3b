"""A sweep's table: mean ± sample std over seeds, from its compact summary.

The summary (:func:`czsl.sweep.summary.build_summary`, or a committed
``summary.json``) holds every run's labels, status and summary metrics; the same
summary renders the same table byte for byte, whether built from the run folders or
read back from JSON. Stdlib only.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import statistics
from typing import Any

from czsl.metric_registry import SUMMARY, of_scope

#: metric -> decimals shown: the run-level metrics of :mod:`czsl.metric_registry`.
METRICS: dict[str, int] = {m.name: m.digits for m in of_scope(SUMMARY)}


def _groups(summary: dict[str, Any], axes: list[str]) -> list[tuple[str, ...]]:
    return list(itertools.product(*(summary["axes"][a] for a in axes)))


def _runs_of(summary: dict[str, Any], rows: list[str], row: tuple[str, ...],
             columns: list[str], column: tuple[str, ...]) -> list[dict[str, Any]]:
    want = dict(zip(rows, row)) | dict(zip(columns, column))
    return [r for r in summary["runs"] if all(r["labels"][a] == v for a, v in want.items())]


def cell_stats(runs: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    """``mean``, ``std`` (sample; ``None`` for fewer than 2 values), ``n`` of
    ``metric`` over the finished ``runs``, and how many runs are ``failed``,
    ``diverged`` or ``missing`` (pending, running, or without the metric)."""
    values = [r["summary"][metric] for r in runs
              if r["status"] == "done" and r["summary"].get(metric) is not None]
    counts = {s: sum(r["status"] == s for r in runs) for s in ("failed", "diverged")}
    return {"mean": statistics.fmean(values) if values else None,
            "std": statistics.stdev(values) if len(values) > 1 else None,
            "n": len(values), **counts,
            "missing": len(runs) - len(values) - counts["failed"] - counts["diverged"]}


def _format(stats: dict[str, Any], digits: int) -> str:
    text = ("–" if stats["mean"] is None else
            f"{stats['mean']:.{digits}f}" + (
                f" ± {stats['std']:.{digits}f}" if stats["std"] is not None else "")
            + f" (n={stats['n']})")
    marks = [f"{stats[k]} {k}" for k in ("failed", "diverged", "missing") if stats[k]]
    if marks and stats["mean"] is None:
        return ", ".join(marks)
    return text + (f" [{', '.join(marks)}]" if marks else "")


def _layout(summary: dict[str, Any], metrics: list[str] | None):
    table = summary["table"]
    rows, columns = table["rows"], table["columns"]
    metrics = metrics or table["metrics"] or list(METRICS)
    return rows, columns, metrics


def _published(summary: dict[str, Any], rows: list[str], row: tuple[str, ...],
               metrics: list[str]) -> str:
    """The ``[table.published]`` figures of ``row``, in ``metrics``' order (``–``: none)."""
    labels = dict(zip(rows, row))
    for entry in summary["table"]["published"]["rows"]:
        if all(labels.get(a) == v for a, v in entry["match"].items()):
            shown = [f"{m} {entry[m]:.{METRICS[m]}f}" for m in metrics if m in entry]
            shown += [f"{m} {v:.{METRICS[m]}f}" for m, v in entry.items()
                      if m not in metrics and m != "match"]
            return " / ".join(shown)
    return "–"


def _cpu(runs: list[dict[str, Any]]) -> str:
    values = [r["cpu_s"] for r in runs if r["status"] == "done"
              and isinstance(r.get("cpu_s"), (int, float))]
    return f"{statistics.fmean(values):.0f}" if values else "–"


def render_markdown(summary: dict[str, Any], metrics: list[str] | None = None) -> str:
    """The sweep's table as Markdown, with its provenance above it.

    A row whose runs read unseen classes' attributes while training is marked ``(tr)``
    (semantic-transductive: not comparable with inductive rows). With
    ``[table.published]`` a column shows those figures beside each row they match; where
    runs recorded their CPU seconds, a last column gives their mean per run.
    """
    rows, columns, metrics = _layout(summary, metrics)
    runs = summary["runs"]
    datasets = sorted({r["dataset"] for r in runs if r.get("dataset")})
    threads = sorted({r["threads"] for r in runs})
    lines = [f"Sweep `{summary['name']}`: {len(runs)} runs, mean ± sample std over seeds "
             f"{summary['seeds']} (n = runs with a value); failed, diverged and missing "
             "runs are counted in brackets.",
             f"Data: {', '.join(datasets) or 'not yet known'}; torch threads per run: "
             f"{', '.join(map(str, threads))}."]
    if any(r.get("semi_synthetic") for r in runs):
        lines.append("SEMI-SYNTHETIC features (real metadata, features synthesised from the "
                     "attributes): not comparable with published real-feature numbers.")
    if any(r.get("semantic_transductive") for r in runs):
        lines.append("(tr): semantic-transductive rows, whose training read the attributes of "
                     "classes not seen yet.")
    published = summary["table"].get("published")
    cpu = any(isinstance(r.get("cpu_s"), (int, float)) for r in runs)
    head = list(rows) + [" ".join([*col, m]) for col in _groups(summary, columns)
                         for m in metrics]
    head += [published["title"]] if published else []
    head += ["CPU s/run"] if cpu else []
    lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in _groups(summary, rows):
        cells = list(row)
        mine = _runs_of(summary, rows, row, [], ())
        if rows and any(r.get("semantic_transductive") for r in mine if r["status"] == "done"):
            cells[-1] += " (tr)"
        for col in _groups(summary, columns):
            chosen = _runs_of(summary, rows, row, columns, col)
            cells += [_format(cell_stats(chosen, m), METRICS[m]) for m in metrics]
        cells += [_published(summary, rows, row, metrics)] if published else []
        cells += [_cpu(mine)] if cpu else []
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render_csv(summary: dict[str, Any], metrics: list[str] | None = None) -> str:
    """The same cells as CSV, one line per (row, column group, metric), full precision."""
    rows, columns, metrics = _layout(summary, metrics)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*rows, *columns, "metric", "mean", "std", "n", "failed", "diverged",
                     "missing", "semi_synthetic"])
    for row in _groups(summary, rows):
        for col in _groups(summary, columns):
            chosen = _runs_of(summary, rows, row, columns, col)
            semi = any(r.get("semi_synthetic") for r in chosen)
            for metric in metrics:
                s = cell_stats(chosen, metric)
                writer.writerow([*row, *col, metric, _num(s["mean"]), _num(s["std"]), s["n"],
                                 s["failed"], s["diverged"], s["missing"], semi])
    return out.getvalue()


def _num(value: float | None) -> str:
    return "" if value is None or math.isnan(value) else repr(value)


__all__ = ["METRICS", "cell_stats", "render_csv", "render_markdown"]
