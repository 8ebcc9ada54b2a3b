"""``czsl report``: finished runs side by side, as a table and as a figure.

Everything comes from each run's ``results.json`` (written by :mod:`czsl.run` through
:mod:`czsl.runfolder`); nothing is recomputed, and neither torch nor Avalanche is
imported, so a report is quick. The figure (:func:`czsl.figures.runs_figure`) needs
matplotlib, imported only to draw it. The metric rows are the registry's summary
metrics (:mod:`czsl.metric_registry`).

* :func:`format_table`: one column per run: dataset (marked *semi-synthetic* where the
  run's features were synthesised from real metadata), protocol, number of tasks,
  accuracy convention (per-class or per-sample), model, regularizer,
  replay, seed, then every setting that differs between the runs (from each run's
  ``scenario.toml``, component options included with their defaults filled in:
  ``model.class_norm``; :mod:`czsl.settings`), mSA / mUA / mH / mJA / mAUC (percent),
  forgetting at the final step and averaged over steps (fraction, lower is better),
  wall time.
* :func:`plot_runs`: a PNG with two panels, one line per run: forgetting after each
  step (from step 1; a run that forgets nothing stays at 0) and H after each step (the
  harmonic mean of seen and unseen accuracy; undefined at a step without unseen
  classes, usually the last).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from czsl import metric_registry as registry
from czsl import settings as czsl_settings
from czsl.errors import CZSLError
from czsl.runfolder import RESULTS_FILE, Damaged, RunFolder

#: The table's metric rows: every summary metric of the registry.
METRIC_ROWS = registry.of_scope(registry.SUMMARY)
#: The rows a run of the static protocol adds: its headline GZSL metrics.
GZSL_ROWS = registry.of_scope(registry.GZSL, headline=True)

SEMI_SYNTHETIC_NOTE = ("semi-synthetic: real class metadata, features synthesised from "
                       "the attributes; not comparable with results on real image features")


@dataclass(frozen=True)
class Run:
    """One finished run, as read from its folder.

    :param label: the name it is shown under (its folder's name, or the path given
        when two runs share a name).
    :param path: its folder.
    :param results: the content of its ``results.json``.
    :param settings: its ``scenario.toml`` flattened (:func:`czsl.settings.flatten`);
        empty when the folder has none.
    """

    label: str
    path: Path
    results: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)


def read_results(run_dir: Path) -> dict[str, Any]:
    """The ``results.json`` of a run folder, checked for what a report needs.

    :param run_dir: a run folder (a path to its ``results.json`` is accepted too).
    :raises CZSLError: when the folder or its ``results.json`` is missing, is not valid
        JSON, or lacks the keys czsl writes.
    """
    folder = RunFolder.given(run_dir)
    path = folder.results_file
    if not run_dir.exists():
        raise CZSLError(f"run folder {run_dir} does not exist; give a folder that "
                        "'czsl run' made, such as runs/synthetic")
    needed = {"dataset": (), "protocol": ("name",), "model": (), "regularizer": (),
              "replay": (), "seed": (), "summary": registry.names(METRIC_ROWS),
              "metrics": ("steps",)}
    try:
        results = folder.read_finished(needed)
    except Damaged as exc:
        if exc.not_json:
            raise CZSLError(f"{path} is not valid JSON ({exc.problem}); it may have been "
                            "edited or truncated") from exc
        raise CZSLError(f"{path} is not a czsl results file: {exc.problem}") from exc
    if results is None:
        raise CZSLError(f"{run_dir} has no {RESULTS_FILE}: not a run folder, or a run that "
                        f"has not finished ({RESULTS_FILE} is written at the end)")
    steps = results["metrics"]["steps"]
    for key in ("H", "forgetting"):
        if not isinstance(steps.get(key), list):
            raise CZSLError(f"{path} is not a czsl results file: metrics.steps has no "
                            f"list {key!r}")
    return results


def load_runs(paths: Iterable[Path]) -> list[Run]:
    """Read several run folders; labels are folder names, or paths where names clash.

    :param paths: run folders.
    :raises CZSLError: as :func:`read_results`, or when no folder is given.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise CZSLError("no run folder given; usage: czsl report RUN [RUN ...]")
    results = [read_results(p) for p in paths]
    names = [(p.parent.name if p.is_file() else p.name) or str(p) for p in paths]
    if len(set(names)) < len(names):
        names = [str(p) for p in paths]
    settings = _settings([RunFolder.given(p) for p in paths])
    # a run without generative replay has a [generator] table it never used
    settings = [one if res.get("generator") else
                {k: v for k, v in one.items() if k.split(".")[0] != "generator"}
                for one, res in zip(settings, results)]
    return [Run(name, path, res, one)
            for name, path, res, one in zip(names, paths, results, settings)]


def _settings(folders: list[RunFolder]) -> list[dict[str, Any]]:
    """Each ``scenario.toml`` flattened, options at their defaults filled in where the
    plugins can be loaded ({} for a missing or unreadable file: its run still reports)."""
    documents = []
    for folder in folders:
        try:
            documents.append(folder.read_scenario())
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
            documents.append(None)
    # loading the plugins may import torch: only when there is a scenario
    defaults = czsl_settings.plugin_defaults() if any(documents) else None
    return [czsl_settings.flatten(d, defaults) if d else {} for d in documents]


def _wall_time(seconds: Any) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def format_table(runs: list[Run]) -> str:
    """The side-by-side table: one row per quantity, one column per run.

    :param runs: from :func:`load_runs`.
    :return: the table as text (no trailing newline).
    """
    rows: list[tuple[str, list[str]]] = [("run", [r.label for r in runs])]

    def row(label: str, cell) -> None:
        rows.append((label, [cell(r.results) for r in runs]))

    # czsl's dataset label already says "(semi-synthetic)"; add it only where missing
    row("dataset", lambda res: res["dataset"] + (
        " (semi-synthetic)" if res.get("semi_synthetic")
        and "semi-synthetic" not in res["dataset"] else ""))
    row("protocol", lambda res: res["protocol"]["name"])
    row("tasks", lambda res: str(res.get("n_tasks", "?")))
    row("accuracy", lambda res: str(res["protocol"].get("accuracy", "?")).replace("_", "-"))
    for key in ("model", "regularizer", "replay", "seed"):
        row(key, lambda res, key=key: str(res[key]))
    if any(r.results.get("generator") for r in runs):  # runs with generative replay
        row("generator", lambda res: str(res.get("generator") or "-"))
    # the settings told apart above are not repeated; seed is in results.json already
    shown = {"model", "regularizer", "replay", "seed", "generator"}
    have = [r.settings for r in runs if r.settings]
    if len(have) > 1:
        for name in czsl_settings.differing(have):
            if name not in shown:
                rows.append((name, ["?" if not r.settings else
                                    str(r.settings.get(name, "-")) for r in runs]))
    if any(r.results.get("semantic_transductive") for r in runs):
        row("semantic-transductive", lambda res: "YES" if res.get("semantic_transductive")
            else "no")
    for metric in METRIC_ROWS:
        row(metric.label + metric.unit_suffix,
            lambda res, m=metric: m.format(res["summary"].get(m.name)))
    if any("gzsl" in r.results for r in runs):
        for metric in GZSL_ROWS:
            row(metric.label + metric.unit_suffix,
                lambda res, m=metric: m.format(res.get("gzsl", {}).get(m.name)))
    row("wall time", lambda res: _wall_time(res.get("wall_time_s")))

    first = max(len(label) for label, _ in rows)
    widths = [max(len(cells[i]) for _, cells in rows) for i in range(len(runs))]
    lines = ["  ".join([label.ljust(first), *(c.rjust(w) for c, w in zip(cells, widths))])
             for label, cells in rows]
    lines.insert(1, "-" * len(lines[0]))
    if any(r.results.get("semi_synthetic") for r in runs):
        lines.append(SEMI_SYNTHETIC_NOTE)
    return "\n".join(lines)


def plot_runs(runs: list[Run], out: Path) -> Path:
    """Write a PNG: forgetting per step (left) and H per step (right), a line per run.

    :param runs: from :func:`load_runs`.
    :param out: the PNG to write (its folder must exist).
    :return: ``out``.
    :raises CZSLError: when ``out`` cannot be written.
    """
    from czsl.figures import runs_figure

    if not out.parent.is_dir():
        raise CZSLError(f"cannot write the report figure {out}: folder {out.parent} does "
                        "not exist")
    fig = runs_figure([(run.label + (" (semi-synthetic)" if run.results.get("semi_synthetic")
                                     else ""), run.results["metrics"]["steps"])
                       for run in runs])
    try:
        fig.savefig(out, format="png")
    except OSError as exc:
        raise CZSLError(f"cannot write the report figure {out}: {exc}") from exc
    return out
