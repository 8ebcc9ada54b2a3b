"""The continual ZSL table: {Sequential, EWC-online, MAS, A-GEM, Multi-task} x ClassNorm on/off.

    python -m benchmarks.czsl_table [--summary SUMMARY ...] [--out benchmarks/czsl_table.md]

Renders ``benchmarks/czsl_table.md`` from sweep summaries (:mod:`czsl.sweep.summary`):
by default the committed ``benchmarks/sweeps/czsl_table.json`` and
``benchmarks/sweeps/czsl_table_diagnostics.json``; a sweep folder works as well. The runs
come from ``czsl sweep``::

    czsl sweep run benchmarks/grids/czsl_table.toml --data-dir ../shared/data
    czsl sweep run benchmarks/grids/czsl_table_diagnostics.toml --data-dir ../shared/data
    python -m benchmarks.czsl_table --summary sweeps/czsl_table sweeps/czsl_table_diagnostics

Each cell of the grids runs the shipped scenario (``scenarios/<dataset>_czsl.toml``, with
``protocol.name=classnorm`` for the ClassNorm protocol) with the method swapped in by
``--set`` overrides, for every seed; the page shows mean ± std over seeds, ordering
checks and the published figures. With ``../shared/data`` (metadata only) the runs are
semi-synthetic and the page says so; pointed at a real xlsa17 folder the same commands
measure real features. ``czsl sweep table`` renders the plain table of one summary. The
page's prose is markdown in ``benchmarks/notes/czsl_table.md``, edited there.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
from pathlib import Path

from benchmarks._common import METHODS, ROOT, load_summaries, notes, page_notes
from czsl.metric_registry import SUMMARY, by_unit_then_name, of_scope
from czsl.sweep.table import cell_stats

DEFAULT_METHODS = ["Sequential", "EWC-online", "MAS", "A-GEM", "Multi-task"]
#: the ordering checks' columns: forgetting against Sequential's
REGULARIZER_COLUMNS = ["EWC-online", "MAS", "MAS γ=0.95", "A-GEM"]
#: ClassNorm's cap on joint training (configs/joint.yml), iterations per task
MULTITASK_CAP = {"cub": 200, "sun": 150}
#: The table's metric columns: the registry's headline summary metrics.
METRICS = by_unit_then_name(of_scope(SUMMARY, headline=True))

#: the page's prose, kept as markdown in ``benchmarks/notes/czsl_table.md``:
#: ``SEMI_SYNTHETIC`` (the warning on semi-synthetic runs), ``HOW`` (where the runs and the
#: page come from), ``ORDERING`` and ``ORDERING_AFTER`` (before and after the ordering
#: checks), ``PUBLISHED`` (the published figures and how those protocols differ)
PROSE = notes("czsl_table", ("SEMI_SYNTHETIC", "HOW", "ORDERING", "ORDERING_AFTER",
                             "PUBLISHED"))


#: the committed records the page renders from by default
SUMMARIES = [ROOT / "benchmarks" / "sweeps" / "czsl_table.json",
             ROOT / "benchmarks" / "sweeps" / "czsl_table_diagnostics.json"]


def _cell(values, digits):
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def _stats_cell(runs, metric, digits):
    """A metric's cell: :func:`czsl.sweep.table.cell_stats`, as mean ± std."""
    s = cell_stats(runs, metric)
    if s["mean"] is None:
        return "–"
    return f"{s['mean']:.{digits}f}" + (f" ± {s['std']:.{digits}f}" if s["std"] is not None
                                        else "")


def group_runs(summaries) -> dict[tuple, list]:
    """The finished runs of ``summaries`` by (dataset as the run reports it, protocol,
    method, ClassNorm); the protocol is ``–`` where a grid has no protocol axis."""
    groups: dict[tuple, list] = {}
    for summary in summaries:
        for run in summary["runs"]:
            if run["status"] != "done":
                continue
            labels = run["labels"]
            key = (run["dataset"], labels.get("protocol", "–"), labels["method"],
                   labels["class_norm"])
            groups.setdefault(key, []).append(run)
    return groups


def render(summaries) -> str:
    """The page: one row per (data, protocol, method, ClassNorm), mean ± std over the
    seeds of the finished runs of ``summaries`` (sweep summaries), ordering checks and
    the published figures."""
    groups = group_runs(summaries)
    runs_done = [r for runs in groups.values() for r in runs]
    order = {m: i for i, m in enumerate(METHODS)}
    rows = []
    for key in sorted(groups, key=lambda k: (k[0], k[1], order[k[2]], k[3] != "+ CN")):
        runs = groups[key]
        cells = [_stats_cell(runs, m.name, m.digits) for m in METRICS]
        seeds = ",".join(str(r["seed"]) for r in sorted(runs, key=lambda r: r["seed"]))
        rows.append(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {seeds} | "
                    + " | ".join(cells)
                    + f" | {_cell([r['wall_time_s'] for r in runs], 0)} |")
    threads: dict[int, int] = {}
    for run in runs_done:
        threads[run["threads"]] = threads.get(run["threads"], 0) + 1
    thread_note = ", ".join(f"{n} runs with {t} torch thread{'s' * (t > 1)}"
                            for t, n in sorted(threads.items(), reverse=True))
    lines = ["# Continual ZSL table: regularizers x ClassNorm", ""]
    if any(r.get("semi_synthetic") for r in runs_done):
        lines += [PROSE["SEMI_SYNTHETIC"], ""]
    lines += [PROSE["HOW"] + " Mean ± std over the "
              "seeds listed (a single value where there is one seed). Accuracies in %, "
              "forgetting as a fraction (final step). Wall time per run, on a 2-core "
              f"{platform.machine()} CPU shared with other jobs ({thread_note}; on a busy "
              "machine 1 thread is the faster, see speed.md), so wall times compare only "
              "roughly.", "", *page_notes(summaries),
              "| data | protocol | method | ClassNorm | seeds | "
              + "".join(f"{m.column} | " for m in METRICS) + "wall s |",
              "|" + "---|" * (6 + len(METRICS)), *rows, "",
              *ordering(groups), "", PROSE["PUBLISHED"], ""]
    return "\n".join(lines)


def ordering(groups) -> list[str]:
    """The ordering checks of the issue, computed from the table's groups: is Multi-task
    the best mH, and does each regularizer forget at most as much as Sequential?

    Sequential's reference forgetting pools its own runs with the ``MAS λ=0`` placebo's
    where there are any: with its importance pass kept off the random stream the placebo
    trains bit for bit as Sequential does (``tests/test_regularizers.py``), so its runs
    are more draws of the same distribution."""
    def stats(values):
        return (statistics.fmean(values),
                statistics.stdev(values) if len(values) > 1 else float("nan"))

    def forgetting(runs):
        return [r["summary"]["forgetting_final"] for r in runs or []]

    lines = ["## Ordering checks", "",
             PROSE["ORDERING"], "",
             "| data | protocol | ClassNorm | seeds | Multi-task best mH | Sequential "
             "reference | " + " | ".join(REGULARIZER_COLUMNS) + " |",
             "|---|---|---|---|---|---|" + "---|" * len(REGULARIZER_COLUMNS)]
    settings = sorted({(k[0], k[1], k[3]) for k in groups}, key=lambda k: (k[0], k[1],
                                                                          k[2] != "+ CN"))
    for data, protocol, cn in settings:
        runs = {m: groups.get((data, protocol, m, cn)) for m in METHODS}
        if runs["Sequential"] is None:
            continue
        best = [m for m in DEFAULT_METHODS if runs[m]]
        top = max(best, key=lambda m: stats([r["summary"]["mH"] for r in runs[m]])[0])
        top_cell = (f"{'yes' if top == 'Multi-task' else 'no: ' + top} "
                    f"({stats([r['summary']['mH'] for r in runs[top]])[0]:.1f})"
                    if runs["Multi-task"] else "–")
        reference = forgetting(runs["Sequential"]) + forgetting(runs["MAS λ=0"])
        ref_mean, ref_std = stats(reference)
        placebo = len(forgetting(runs["MAS λ=0"]))
        ref_cell = (f"{ref_mean:.3f}" + (f" ± {ref_std:.3f}" if ref_std == ref_std else "")
                    + f" ({len(runs['Sequential'])} run{'s' * (len(runs['Sequential']) > 1)}"
                    + (f" + {placebo} placebo)" if placebo else ")"))
        cells = []
        for method in REGULARIZER_COLUMNS:
            if not runs[method]:
                cells.append("–")
                continue
            value, std = stats(forgetting(runs[method]))
            spread = max(std, ref_std)
            diff = value - ref_mean
            mark = ("" if spread != spread else  # one seed: no spread to compare with
                    " (noise)" if abs(diff) < spread else
                    " (less)" if diff < 0 else " (MORE)")
            cells.append(f"{diff:+.3f}" + (f" ± {spread:.3f}" if spread == spread else "")
                         + mark)
        seeds = len(runs["Sequential"])
        lines.append(f"| {data} | {protocol} | {cn} | {seeds} | {top_cell} | {ref_cell} | "
                     + " | ".join(cells) + " |")
    lines += ["", PROSE["ORDERING_AFTER"]]
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--summary", nargs="+", type=Path, default=SUMMARIES,
                        help="sweep summaries (summary.json files or sweep folders) to "
                             "render (default: the committed benchmarks/sweeps/ records)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "czsl_table.md")
    args = parser.parse_args(argv)
    text = render(load_summaries(args.summary))
    print(text)
    args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
