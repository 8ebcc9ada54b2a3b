"""Generative ZSL and generative replay on CUB / SUN, beside the published figures.

    python -m benchmarks.generators [--summary SUMMARY] [--out benchmarks/generators.md]

Renders ``benchmarks/generators.md`` from a sweep summary (:mod:`czsl.sweep.summary`): by
default the committed ``benchmarks/sweeps/generators.json``; a sweep folder works as
well. The runs come from ``czsl sweep``::

    czsl sweep run benchmarks/grids/generators.toml --data-dir ../shared/data
    python -m benchmarks.generators --summary sweeps/generators

They are static generative GZSL (``scenarios/{cub,sun}_gzsl_fclswgan.toml``, with the
f-CLSWGAN generator and with the VZSL CVAE) and continual ZSL with generative replay
(``scenarios/{cub,sun}_czsl_generative_replay.toml``), one per label of the grid's
``run`` axis (:data:`RUNS`). With ``../shared/data`` (metadata only) the features are
semi-synthetic and the page says so; pointed at a real xlsa17 folder the same commands
measure real features. The page's prose is markdown in ``benchmarks/notes/generators.md``,
edited there.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks._common import ROOT, load_summaries, notes, page_notes

#: the grid's ``run`` label: (scenario file, overrides, generator label); the grid
#: ``benchmarks/grids/generators.toml`` builds exactly these (tested)
RUNS = {
    "cub_gzsl_fclswgan": ("cub_gzsl_fclswgan", [], "f-CLSWGAN"),
    "cub_gzsl_cvae": ("cub_gzsl_fclswgan", ['generator={name="cvae"}'], "CVAE (VZSL)"),
    "sun_gzsl_fclswgan": ("sun_gzsl_fclswgan", [], "f-CLSWGAN"),
    "sun_gzsl_cvae": ("sun_gzsl_fclswgan", ['generator={name="cvae"}'], "CVAE (VZSL)"),
    "cub_czsl_cvae": ("cub_czsl_generative_replay", [], "CVAE (VZSL)"),
    "sun_czsl_cvae": ("sun_czsl_generative_replay", [], "CVAE (VZSL)"),
    # diagnostics: a longer-trained generator, and replay of real features instead
    "cub_czsl_cvae_50ep": ("cub_czsl_generative_replay", ["generator.epochs=50"],
                           "CVAE (VZSL), 50 epochs per task"),
    "cub_czsl_feature_replay": ("cub_czsl_generative_replay",
                                ['replay={name="feature_replay", mem_size=5000}'],
                                "no generator: buffer of 5,000 real features (GRW's)"),
}

PUBLISHED_STATIC = {
    "CUB": "f-CLSWGAN (Xian et al., CVPR 2018): ZSL 57.3, u 43.7 / s 57.7 / H 49.7; "
           "GMN (Sariyildiz & Cinbis, CVPR 2019): ZSL 64.3, u 56.1 / s 54.3 / H 55.2",
    "SUN": "f-CLSWGAN: ZSL 60.8, u 42.6 / s 36.6 / H 39.4; GMN: ZSL 63.6, u 53.2 / s 33.0 / "
           "H 40.7",
}
PUBLISHED_CONTINUAL = {
    "CUB": "GRW (Zhang et al., ICCV 2023, Table 1; inductive, real-feature replay buffer): "
           "mSA 42.4 / mUA 23.6 / mH 28.8; Tf-GCZSL (semantic-transductive): 46.3 / 30.8 / "
           "35.3; DVGR (transductive): 44.9 / 14.6 / 21.7",
    "SUN": "GRW: 36.5 / 21.8 / 27.1; Tf-GCZSL (transductive): 15.3 / 30.7 / 18.7; DVGR "
           "(transductive): 22.4 / 10.7 / 14.5",
}

#: the page's prose, kept as markdown in ``benchmarks/notes/generators.md``: ``HOW`` (where
#: the runs and the page come from), ``BASELINES`` (where the baselines are) and
#: ``DIFFERENCES`` (how these runs differ from the published ones)
PROSE = notes("generators", ("HOW", "BASELINES", "DIFFERENCES"))


_THREADS = {1: "one", 2: "two"}


def _f(value, digits=1):
    return "–" if value is None else f"{value:.{digits}f}"


SUMMARY = ROOT / "benchmarks" / "sweeps" / "generators.json"


def records_of(summary) -> list[dict]:
    """The finished runs of a sweep summary as the page's rows, in the grid's order."""
    out = []
    for run in summary["runs"]:
        if run["status"] != "done":
            continue
        key = run["labels"]["run"]
        out.append({"key": key, "generator": RUNS[key][2] if key in RUNS else key,
                    "dataset": run["dataset"],
                    "kind": "static" if run["n_tasks"] == 1 else "continual",
                    "threads": run["threads"], "seed": run["seed"],
                    "wall_s": run["wall_time_s"], "summary": run["summary"],
                    "gzsl": run.get("gzsl")})
    return out


def render(summary) -> str:
    """The markdown page for the finished runs of the sweep summary ``summary``."""
    records = records_of(summary)
    keys = list(RUNS)
    records = sorted(records, key=lambda r: (r["dataset"], keys.index(r["key"])
                                             if r["key"] in keys else len(keys)))
    seeds = sorted({r["seed"] for r in records})
    threads = sorted({r["threads"] for r in records})
    lines = ["# Generative ZSL and generative replay (semi-synthetic CUB / SUN)", "",
             PROSE["HOW"], "", *page_notes([summary])]
    lines += [f"All runs: seed {', '.join(map(str, seeds))}, "
              f"{' or '.join(_THREADS.get(t, str(t)) for t in threads)} torch thread"
              f"{'s' * (threads != [1])} each, on 2 CPU cores shared with other "
              "jobs (wall times are "
              "inflated by that load).", "", "## Static generative GZSL (xlsa17 proposed "
              "split, one task)", "",
              "| dataset | generator | ZSL top-1 | u | s | H | AUSUC | wall s | published "
              "(real features) |", "|---|---|---|---|---|---|---|---|---|"]
    static = [r for r in records if r["kind"] == "static"]
    continual = [r for r in records if r["kind"] == "continual"]
    shown: set = set()

    def published(table, record):
        """The published figures, on the first row of each dataset only."""
        data = record["dataset"].split()[0]
        if (id(table), data) in shown:
            return "(as above)"
        shown.add((id(table), data))
        return table.get(data, "–")

    for r in static:
        g = r["gzsl"]
        lines.append(f"| {r['dataset']} | {r['generator']} | {_f(g['zsl_top1'])} | "
                     f"{_f(g['u'])} | {_f(g['s'])} | {_f(g['H'])} | {_f(g['AUSUC'])} | "
                     f"{r['wall_s']:.0f} | {published(PUBLISHED_STATIC, r)} |")
    lines += ["", "## Continual ZSL with generative replay (`grw` protocol)", "",
              "| dataset | generator | mSA | mUA | mH | mJA | mAUC | forgetting (final) | "
              "wall s | published (real features) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in continual:
        s = r["summary"]
        lines.append(f"| {r['dataset']} | {r['generator']} | {_f(s['mSA'])} | "
                     f"{_f(s['mUA'])} | {_f(s['mH'])} | {_f(s['mJA'])} | {_f(s['mAUC'])} | "
                     f"{_f(s['forgetting_final'], 3)} | {r['wall_s']:.0f} | "
                     f"{published(PUBLISHED_CONTINUAL, r)} |")
    lines += ["", PROSE["BASELINES"], "", PROSE["DIFFERENCES"], ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--summary", type=Path, default=SUMMARY,
                        help="the sweep's summary.json or folder (default: the committed "
                             "benchmarks/sweeps/generators.json)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "generators.md")
    args = parser.parse_args(argv)
    [summary] = load_summaries([args.summary])
    text = render(summary)
    print(text)
    args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
