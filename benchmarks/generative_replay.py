"""Generative replay and GRW on semi-synthetic CUB (``grw`` protocol), against Sequential.

    python -m benchmarks.generative_replay [--summary SUMMARY ...] [--out PAGE]
    python -m benchmarks.generative_replay --record      # the page from the pre-sweep record

Renders ``benchmarks/generative_replay.md`` from sweep summaries (:mod:`czsl.sweep.summary`):
by default the committed ``benchmarks/sweeps/generative_replay.json`` and
``benchmarks/sweeps/generative_replay_diagnostics.json``; a sweep folder works as well.
The runs come from ``czsl sweep``, one label of the grids' ``run`` axis per configuration
of :data:`RUNS` (tested)::

    czsl sweep run benchmarks/grids/generative_replay.toml --data-dir ../shared/data --jobs 1
    czsl sweep run benchmarks/grids/generative_replay_diagnostics.toml \
        --data-dir ../shared/data --jobs 1
    python -m benchmarks.generative_replay --summary sweeps/generative_replay \
        sweeps/generative_replay_diagnostics

Until those summaries are committed, the page is the one ``--record`` renders from
``benchmarks/generative_replay.json``: the runs of the benchmark's former runner
(``czsl run`` in a child process, with its CPU seconds), kept as they were made. The
page's prose is markdown in ``benchmarks/notes/generative_replay.md``, edited there.
Semi-synthetic data: the page says so.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from benchmarks._common import ROOT, load_summaries, notes, page_notes

#: the pre-sweep record (the former runner's) the committed page still renders from
RECORD = ROOT / "benchmarks" / "generative_replay.json"
OUT = ROOT / "benchmarks" / "generative_replay.md"
#: the committed sweep summaries the page renders from by default, once they exist
SUMMARIES = [ROOT / "benchmarks" / "sweeps" / "generative_replay.json",
             ROOT / "benchmarks" / "sweeps" / "generative_replay_diagnostics.json"]

#: the generative replay scenario's other settings before its mini-batch mix (2026-11-30)
BEFORE = ["replay.mix='concat'", "replay.generator_replay_per_class=25",
          "train.loss_classes='seen'", "generator.epochs=10"]
#: the walk with its reference number of points (the mini-batch size: 64)
WALK64 = ["generator.losses=[{name='random_walk', prototypes='real'}]"]
#: the CVAE's settings before fast_math (2026-12-01): 20 epochs, 64 walk points a step
SLOW = ["generator.fast_math=false", "generator.epochs=20", *WALK64]
#: the shipped scenario without GRW's walk (no add-on loss on the CVAE)
NO_WALK = ["generator.losses=[]"]
#: 5 replayed features per past class in the CVAE's own fit set (the scenario's former 5)
FIT5 = ["replay.generator_replay_per_class=5"]


def _merged(*overrides: list[str]) -> list[str]:
    """``overrides`` joined as ``--set`` applies them: a later value of a key replaces an
    earlier one (in the earlier one's place)."""
    out: dict[str, str] = {}
    for item in (o for group in overrides for o in group):
        out[item.partition("=")[0]] = item
    return list(out.values())


#: the grids' ``run`` label: (the page's row label, scenario, overrides on top of the
#: scenario as shipped now); ``sequential`` and ``generative_replay`` are the cells of
#: ``benchmarks/grids/generative_replay.toml`` (five seeds), the others those of
#: ``benchmarks/grids/generative_replay_diagnostics.toml`` (one): the grids build exactly
#: these (tested)
RUNS = {
    "sequential": ("Sequential + ClassNorm (`cub_czsl.toml`): the base of x Seq.", "cub_czsl",
                   []),
    "feature_replay": ("no generator: buffer of 5,000 real features (`cub_czsl.toml` + "
                       "`feature_replay`, seen-class softmax)", "cub_czsl",
                       ["replay=feature_replay", "train.loss_classes='seen'"]),
    "generative_replay": ("**CVAE generative replay with GRW's random walk, "
                          "`cub_czsl_generative_replay.toml` as shipped** (32 replayed "
                          "features joined to each mini-batch, softmax within each task; 18 "
                          "CVAE epochs per task with `fast_math`, the walk's 32 points a step "
                          "around the real class means, 2 replayed features per past class "
                          "in the CVAE's own fit set)", "cub_czsl_generative_replay", []),
    "generative_replay_fast_e20": ("↳ the same with 20 CVAE epochs and 64 walk points a "
                                   "step", "cub_czsl_generative_replay",
                                   ["generator.epochs=20", *WALK64]),
    "generative_replay_fast_n32_e20": ("↳ the same with 20 CVAE epochs",
                                       "cub_czsl_generative_replay", ["generator.epochs=20"]),
    "generative_replay_fast_e16": ("↳ the same with 16 CVAE epochs and 64 walk points a "
                                   "step", "cub_czsl_generative_replay",
                                   ["generator.epochs=16", *WALK64]),
    "generative_replay_fast_b128": ("↳ the same with 20 CVAE epochs, on mini-batches of 128 "
                                    "(the walk's 128 points a step)",
                                    "cub_czsl_generative_replay",
                                    ["generator.epochs=20", "generator.batch_size=128",
                                     *WALK64]),
    "generative_replay_slow": ("↳ the same without `fast_math`, with 20 CVAE epochs and 64 "
                               "walk points a step (the scenario before 2026-12-01)",
                               "cub_czsl_generative_replay", SLOW),
    "generative_replay_g1_e16": ("↳ the same (without `fast_math`) with 1 replayed feature "
                                 "per past class in the CVAE's fit set and 16 CVAE epochs",
                                 "cub_czsl_generative_replay",
                                 _merged(SLOW, ["replay.generator_replay_per_class=1",
                                                "generator.epochs=16"])),
    "generative_replay_rw": ("↳ the same (without `fast_math`, 20 epochs, 64 walk points) "
                             "with 5 replayed features per past class in the CVAE's fit set",
                             "cub_czsl_generative_replay", _merged(SLOW, FIT5)),
    "generative_replay_rw_e12": ("↳ the same with 5 per past class and 12 CVAE epochs",
                                 "cub_czsl_generative_replay",
                                 _merged(SLOW, FIT5, ["generator.epochs=12"])),
    "generative_replay_rw_e10": ("↳ the same with 5 per past class and 10 CVAE epochs",
                                 "cub_czsl_generative_replay",
                                 _merged(SLOW, FIT5, ["generator.epochs=10"])),
    "generative_replay_rw_h256_e16": ("↳ the same with 5 per past class, a CVAE of 256 hidden "
                                      "units and 16 epochs", "cub_czsl_generative_replay",
                                      _merged(SLOW, FIT5, ["generator.hidden=256",
                                                           "generator.epochs=16"])),
    "generative_replay_rw_h256_b128": ("↳ the same with 5 per past class, a CVAE of 256 "
                                       "hidden units on mini-batches of 128",
                                       "cub_czsl_generative_replay",
                                       _merged(SLOW, FIT5, ["generator.hidden=256",
                                                            "generator.batch_size=128"])),
    "generative_replay_no_walk": ("CVAE generative replay without the walk, 5 per past class "
                                  "in the CVAE's fit set, 20 epochs, no `fast_math` (the "
                                  "scenario as shipped before the walk)",
                                  "cub_czsl_generative_replay", _merged(SLOW, NO_WALK, FIT5)),
    "generative_replay_e10": ("↳ the same with 10 CVAE epochs per task",
                              "cub_czsl_generative_replay",
                              _merged(SLOW, NO_WALK, FIT5, ["generator.epochs=10"])),
    "generative_replay_mem64_e10": ("↳ the same with 64 replayed features per mini-batch "
                                    "and 10 CVAE epochs", "cub_czsl_generative_replay",
                                    _merged(SLOW, NO_WALK, FIT5, ["replay.batch_size_mem=64",
                                                                  "generator.epochs=10"])),
    "generative_replay_seen": ("↳ the same with 64 replayed features per mini-batch, one "
                               "softmax over all seen classes (`loss_classes = \"seen\"`)",
                               "cub_czsl_generative_replay",
                               _merged(SLOW, NO_WALK, FIT5, ["replay.batch_size_mem=64",
                                                             "train.loss_classes='seen'"])),
    "generative_replay_before": ("CVAE generative replay as the scenario was before "
                                 "(replay concatenated to the task and the CVAE's fit set, "
                                 "one softmax over all seen classes)",
                                 "cub_czsl_generative_replay", _merged(SLOW, NO_WALK, BEFORE)),
    "generative_replay_before_rw": ("↳ the same + random walk", "cub_czsl_generative_replay",
                                    _merged(SLOW, BEFORE)),
    "grw": ("GRW as its code runs it (`cub_czsl_grw.toml`): classifier on real features + "
            "5,000 real buffer; CVAE + random walk trained, never reaching the classifier",
            "cub_czsl_grw", []),
    "grw_classifier": ("GRW with the random walk reaching the classifier "
                       "(`cub_czsl_grw_classifier.toml`): the random-walk-trained "
                       "generator's features are replayed to the classifier too",
                       "cub_czsl_grw_classifier", []),
}


#: the row labels of the pre-sweep record where they differ from :data:`RUNS`' (its
#: Sequential was measured on two days; the second measure is not a grid cell)
RECORD_LABELS = {
    "sequential": "Sequential + ClassNorm (`cub_czsl.toml`), measured 2026-12-01 beside a "
                  "generative replay run: the base of x Seq.",
    "sequential_earlier": "↳ the same measured 2026-11-30 (the base of the ratios before)",
}
#: the page's prose, kept as markdown in ``benchmarks/notes/generative_replay.md``:
#: ``SEMI_SYNTHETIC``, ``HOW`` (where the runs and the page come from), ``COLUMNS`` (what
#: the columns hold), optionally ``FINDINGS`` (what the rows show); the ``RECORD_`` blocks
#: are the pre-sweep page's (its columns, findings and command)
PROSE = notes("generative_replay", ("SEMI_SYNTHETIC", "HOW", "COLUMNS", "RECORD_COLUMNS",
                                    "RECORD_FINDINGS", "RECORD_COMMAND"))
TITLE = "# Generative replay and GRW on CUB, `grw` protocol"


def _spread(values: list, digits: int = 1) -> str:
    """``mean`` of ``values``, ``± std`` where there are several; ``–`` where missing."""
    if any(v is None for v in values):
        return "–"
    mean = f"{statistics.mean(values):.{digits}f}"
    return mean if len(values) < 2 else f"{mean} ± {statistics.stdev(values):.{digits}f}"


def _metrics(summaries: list[dict]) -> str:
    """The accuracy and forgetting cells of a row: mean ± std over ``summaries``."""
    return (" | ".join(_spread([s[m] for s in summaries]) for m in ("mSA", "mUA", "mH", "mAUC"))
            + " | " + _spread([s.get("forgetting_final") for s in summaries], 3))


def render(summaries: list[dict]) -> str:
    """The page for the finished runs of the sweep summaries ``summaries``: one row per
    label of the grids' ``run`` axis and number of tasks, mean ± std over its seeds, wall
    seconds against Sequential's."""
    groups: dict[tuple[int, str], list[dict]] = {}
    for summary in summaries:
        for run in summary["runs"]:
            if run["status"] == "done":
                groups.setdefault((run["n_tasks"], run["labels"]["run"]), []).append(run)
    order = list(RUNS)
    lines = [TITLE, ""]
    if any(r.get("semi_synthetic") for runs in groups.values() for r in runs):
        lines += [PROSE["SEMI_SYNTHETIC"], ""]
    threads = sorted({r["threads"] for runs in groups.values() for r in runs})
    lines += [PROSE["HOW"], "", f"Torch threads per run: {' or '.join(map(str, threads))}. "
              + PROSE["COLUMNS"], "", *page_notes(summaries)]
    for n_tasks in sorted({n for n, _ in groups}, reverse=True):
        keys = sorted((k for n, k in groups if n == n_tasks),
                      key=lambda k: order.index(k) if k in order else len(order))
        base = groups.get((n_tasks, "sequential"))
        base_wall = statistics.mean(r["wall_time_s"] for r in base) if base else None
        lines += [f"## {n_tasks} tasks", "",
                  "| run | seeds | mSA | mUA | mH | mAUC | forgetting | wall s | x Seq. |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for key in keys:
            runs = sorted(groups[(n_tasks, key)], key=lambda r: r["seed"])
            wall = statistics.mean(r["wall_time_s"] for r in runs)
            lines.append(f"| {RUNS[key][0] if key in RUNS else key} | "
                         + ", ".join(str(r["seed"]) for r in runs) + " | "
                         + _metrics([r["summary"] for r in runs]) + f" | {wall:.0f} | "
                         + (f"{wall / base_wall:.1f}" if base_wall else "–") + " |")
        lines.append("")
    if PROSE.get("FINDINGS"):
        lines += [PROSE["FINDINGS"], ""]
    lines += ["Overrides of each run (`--set`, on top of its scenario; the seed's last):", ""]
    seen = set()
    for summary in summaries:
        for run in summary["runs"]:
            key = run["labels"]["run"]
            if key not in seen:
                seen.add(key)
                sets = [o for o in run["overrides"] if not o.startswith("seed=")]
                lines.append(f"* `{key}`: " + (", ".join(f"`{o}`" for o in sets) or "none"))
    return "\n".join(lines) + "\n"


def load_record(path: Path = RECORD) -> list[dict]:
    """The runs of the pre-sweep record."""
    return json.loads(path.read_text(encoding="utf-8"))["runs"]


def render_record(records: list[dict]) -> str:
    """The page of the pre-sweep record's runs ``records`` (the former runner's, with CPU
    seconds and the machine's load), as it was committed."""
    lines = [TITLE, "", PROSE["SEMI_SYNTHETIC"], "", PROSE["RECORD_COLUMNS"], ""]
    order = ["sequential", "sequential_earlier", *(k for k in RUNS if k != "sequential")]
    labels = {**{k: v[0] for k, v in RUNS.items()}, **RECORD_LABELS}
    for n_tasks in sorted({r["n_tasks"] for r in records}, reverse=True):
        groups: dict[str, list[dict]] = {}
        for r in records:
            if r["n_tasks"] == n_tasks:
                groups.setdefault(r["key"], []).append(r)
        keys = sorted(groups, key=lambda k: order.index(k) if k in order else len(order))
        base = statistics.mean(r["cpu_s"] for r in groups["sequential"]) \
            if "sequential" in groups else None
        lines += [f"## {n_tasks} tasks", "",
                  "| run | seeds | mSA | mUA | mH | mAUC | forgetting | CPU s | x Seq. | wall s "
                  "| load |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for key in keys:
            runs = sorted(groups[key], key=lambda r: r.get("seed", 0))
            cpu = statistics.mean(r["cpu_s"] for r in runs)
            ratio = f"{cpu / base:.1f}" if base else "–"
            loads = [x for r in runs for x in r.get("load") or []]
            lines.append(
                f"| {labels.get(key, key)} | "
                + ", ".join(str(r.get("seed", 0)) for r in runs) + " | "
                + _metrics([r["summary"] for r in runs]) + " | "
                + f"{_spread([r['cpu_s'] for r in runs], 0)} | {ratio} | "
                + f"{statistics.mean(r['wall_s'] for r in runs):.0f} | "
                + (f"{min(loads):.1f}–{max(loads):.1f} |" if loads else "– |"))
        lines.append("")
    lines += [PROSE["RECORD_FINDINGS"], "", "Overrides of each run (`--set`, on top of its "
              "scenario):", ""]
    seen = set()
    for r in records:
        if r["key"] in seen:
            continue
        seen.add(r["key"])
        sets = [o for o in r["overrides"] if not o.startswith("protocol.n_tasks=")]
        lines.append(f"* `{r['key']}`: " + (", ".join(f"`{o}`" for o in sets) or "none"))
    lines += ["", PROSE["RECORD_COMMAND"]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--summary", nargs="+", type=Path,
                        help="sweep summaries (summary.json files or sweep folders) to "
                             "render (default: the committed benchmarks/sweeps/"
                             "generative_replay.json and generative_replay_diagnostics.json)")
    source.add_argument("--record", action="store_true",
                        help="render the page from the pre-sweep record "
                             "benchmarks/generative_replay.json instead")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if args.record:
        text = render_record(load_record())
    else:
        paths = args.summary or SUMMARIES
        missing = [p for p in paths if not Path(p).exists()]
        if missing:
            raise SystemExit(
                f"error: {missing[0]} does not exist: run benchmarks/grids/"
                "generative_replay.toml and generative_replay_diagnostics.toml with czsl "
                "sweep run and commit their summaries there (--record renders the page "
                "from the pre-sweep record)")
        text = render(load_summaries(paths))
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
