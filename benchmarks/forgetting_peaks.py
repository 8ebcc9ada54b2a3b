"""Where a method's forgetting comes from: how high each task peaks, and where it ends.

    python -m benchmarks.forgetting_peaks [--data-dir ../shared/data] [--dataset sun]
        [--protocol grw] [--class-norm off] [--methods Sequential EWC-online] [--seeds 0 1 2]

Final forgetting (Chaudhry et al., 2018) is the mean drop of each earlier task's
accuracy from its best value before the last step. A method can therefore forget more
and still end no lower, by reaching higher peaks. This runs cells of the CZSL table
(``benchmarks/czsl_table.py``: same scenarios, same method overrides) and splits their
forgetting into its parts, per seed: each earlier task's accuracy right after it was
trained, its best value before the last step, its final value, and how many steps after
its own it peaked. Each command measures one cell and rewrites that cell's section of
``benchmarks/forgetting_peaks.md``, keeping the others; with ``../shared/data`` the runs
are semi-synthetic and the section says so.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import warnings
from pathlib import Path

import torch

from benchmarks._common import CLASS_NORM, METHODS, ROOT, SCENARIO, recorded_command
from czsl.config import load_scenario
from czsl.runfolder import atomic_write_text
from czsl.run import run_scenario

PARTS = ["own", "peak", "final", "forgetting", "lag"]


def peak_parts(acc_matrix) -> dict[str, float]:
    """The parts of final forgetting of an ``[S, T]`` accuracy matrix (percent).

    Over the tasks ``j < S - 1`` with a final and an earlier value (NaN: no test samples): ``own`` mean ``a[j, j]``;
    ``peak`` mean ``max_{k < S-1} a[k, j]``; ``final`` mean ``a[S-1, j]``;
    ``forgetting`` ``(peak - final) / 100``, the final forgetting of
    :func:`czsl.metrics.forgetting_measure`; ``lag`` the mean number of steps between
    task ``j`` and the step where it peaked (negative: it peaked zero-shot, before it
    was trained).
    """
    a = torch.as_tensor(acc_matrix, dtype=torch.float64)
    last = a.shape[0] - 1
    earlier = torch.arange(min(last, a.shape[1]))
    peak, when = torch.nan_to_num(a[:last, earlier], nan=float("-inf")).max(dim=0)
    keep = torch.isfinite(peak) & torch.isfinite(a[last, earlier])  # as forgetting_measure
    tasks, peak, when = earlier[keep], peak[keep], when[keep]
    final = a[last, tasks]
    return {"own": float(a[tasks, tasks].nanmean()), "peak": float(peak.mean()),
            "final": float(final.mean()), "forgetting": float((peak - final).mean() / 100),
            "lag": float((when - tasks).double().mean())}


HEADER = """\
# Where forgetting comes from: peaks and final accuracy

Accuracy (%) of each earlier task's test samples, argmax over all classes, averaged over
the tasks before the last: *own* right after the task was trained, *peak* its best value
before the last step, *final* after the last step; *forgetting* = (peak − final) / 100,
the CZSL table's final forgetting; *lag*: steps from the task to its peak. One section
per table cell, each written by the command it names.
"""


def section(cell, rows, command, semi_synthetic) -> str:
    """One cell's markdown section: a line per run, the mean per method, and each
    method's mean difference from the first."""
    lines = [f"## {cell}", ""]
    if semi_synthetic:
        lines += ["**SEMI-SYNTHETIC.** Real metadata with features synthesised from the "
                  "attributes (see benchmarks/czsl_table.md).", ""]
    lines += [f"Made by `{command}`.", "",
              "| method | seed | own | peak | final | forgetting | lag |",
              "|---|---|---|---|---|---|---|"]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    mean = {m: {p: statistics.fmean(r[p] for r in rows if r["method"] == m) for p in PARTS}
            for m in methods}

    def cells(values):
        return " | ".join(f"{values[p]:.3f}" if p == "forgetting" else f"{values[p]:.1f}"
                          for p in PARTS)

    for method in methods:
        runs = [r for r in rows if r["method"] == method]
        lines += [f"| {method} | {r['seed']} | {cells(r)} |" for r in runs]
        if len(runs) > 1:
            lines.append(f"| **{method}** | mean | {cells(mean[method])} |")
    first = mean[methods[0]]
    lines += [""] + [
        f"{m} − {methods[0]}, means over seeds: own {mean[m]['own'] - first['own']:+.1f}, "
        f"peak {mean[m]['peak'] - first['peak']:+.1f}, final "
        f"{mean[m]['final'] - first['final']:+.1f}, forgetting "
        f"{mean[m]['forgetting'] - first['forgetting']:+.3f}." for m in methods[1:]]
    return "\n".join(lines) + "\n"


def with_section(text, cell, new) -> str:
    """The file ``text`` with the section of ``cell`` replaced by ``new`` (added if it
    has none); sections stay in order of their headings."""
    sections = {}
    for chunk in ("\n" + text).split("\n## ")[1:]:
        sections[chunk.split("\n", 1)[0]] = "## " + chunk.rstrip("\n") + "\n"
    sections[cell] = new
    return HEADER + "".join("\n" + sections[k] for k in sorted(sections))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--dataset", default="sun", choices=["cub", "sun"])
    parser.add_argument("--protocol", default="grw", choices=list(SCENARIO))
    parser.add_argument("--class-norm", default="off", choices=["on", "off"])
    parser.add_argument("--methods", nargs="+", default=["Sequential", "EWC-online"],
                        choices=list(METHODS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "forgetting_peaks.md")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    cn = CLASS_NORM["+ CN" if args.class_norm == "on" else "no CN"]
    name = SCENARIO[args.protocol].format(d=args.dataset)
    command = recorded_command(
        "forgetting_peaks", f"--data-dir {os.path.relpath(args.data_dir, ROOT)} --dataset "
                            f"{args.dataset} --protocol {args.protocol} --class-norm "
                            f"{args.class_norm} --methods {' '.join(args.methods)} --seeds "
                            f"{' '.join(map(str, args.seeds))}")
    rows, semi = [], False
    with tempfile.TemporaryDirectory() as runs:
        for method in args.methods:
            for seed in args.seeds:
                scenario = load_scenario(ROOT / "scenarios" / f"{name}.toml",
                                         [*METHODS[method], *cn, f"seed={seed}"])
                res = run_scenario(scenario, data_dir=args.data_dir, runs_dir=Path(runs),
                                   progress=False, echo=lambda _: None).results
                semi = semi or bool(res["semi_synthetic"])
                parts = peak_parts([[float("nan") if v is None else v for v in row]
                                    for row in res["metrics"]["acc_matrix"]])
                rows.append({"method": method, "seed": seed, **parts})
                print(f"{method} seed {seed}: {parts}", file=sys.stderr, flush=True)
    cell = (f"{args.dataset.upper()}, {args.protocol} protocol, ClassNorm "
            f"{args.class_norm}")
    new = section(cell, rows, command, semi)
    print(new)
    old = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
    atomic_write_text(args.out, with_section(old, cell, new))
    return 0


if __name__ == "__main__":
    sys.exit(main())
