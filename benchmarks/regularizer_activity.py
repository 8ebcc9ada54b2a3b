"""How much each regularizer acts on training, at its published defaults.

    python -m benchmarks.regularizer_activity [--data-dir ../shared/data]
        [--cells cub:grw:on sun:grw:off] [--methods EWC-online MAS A-GEM] [--seed 0]

A regularizer that forgets as much as Sequential may simply do little. For one run of
each regularizer in a cell of the CZSL table (``benchmarks/czsl_table.py``: same
scenarios, same overrides, from ``benchmarks/_common.py``), this measures on every
training step after the first task:

* EWC-online, MAS: the penalty added to the loss, as a fraction of the cross-entropy
  it is added to (a spy plugin reads ``strategy.loss`` before and after the
  regularizer's ``before_backward``: the spies are placed first and last in the
  learner's ``plugins`` built by :func:`czsl.build.build_run`);
* A-GEM: the share of steps whose gradient opposes the reference gradient of the
  memory and is therefore projected, and how much projection changes such a gradient
  (``|g' - g| / |g|``).

Writes ``benchmarks/regularizer_activity.md``; with ``../shared/data`` the runs are
semi-synthetic and the file says so.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import warnings
from pathlib import Path

import torch
from avalanche.core import SupervisedPlugin

from benchmarks._common import CLASS_NORM, METHODS, ROOT, SCENARIO, recorded_command
from czsl.build import build_run
from czsl.config import load_scenario
from czsl.runfolder import atomic_write_text

REGULARIZERS = ["EWC-online", "MAS", "A-GEM"]


def _grad(model) -> torch.Tensor:
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten()
                      for p in model.parameters()])


class Before(SupervisedPlugin):
    """Runs before the regularizer: the cross-entropy, and the gradient A-GEM will see."""

    def __init__(self, agem=None):
        super().__init__()
        self.agem, self.loss, self.grad, self.dots = agem, None, None, []

    def before_backward(self, strategy, **kwargs):
        self.loss = float(strategy.loss.detach())

    def after_backward(self, strategy, **kwargs):
        reference = getattr(self.agem, "reference_gradients", torch.empty(0))
        if strategy.clock.train_exp_counter > 0 and reference.numel():
            self.grad = _grad(strategy.model)
            self.dots.append(float(self.grad @ reference))


class After(SupervisedPlugin):
    """Runs after the regularizer: the penalty it added, the gradient it left."""

    def __init__(self, before):
        super().__init__()
        # underscored: Avalanche takes public attributes for callbacks and warns
        self._before, self.ratios, self.changes = before, [], []

    def before_backward(self, strategy, **kwargs):
        if strategy.clock.train_exp_counter > 0:
            loss = float(strategy.loss.detach())
            self.ratios.append((loss - self._before.loss) / self._before.loss)

    def after_backward(self, strategy, **kwargs):
        if self._before.grad is not None:
            if self._before.dots[-1] < 0:
                g = self._before.grad
                self.changes.append(float((_grad(strategy.model) - g).norm() / g.norm()))
            self._before.grad = None


def measure(scenario, data_dir) -> dict[str, float]:
    """Train ``scenario`` with the spies around its regularizer; their summary."""
    built = build_run(scenario, data_dir=data_dir, echo=lambda _: None)
    agem = next((p for p in built.extra if hasattr(p, "reference_gradients")), None)
    before = Before(agem)
    after = After(before)
    # around the regularizer and replay: Avalanche calls plugins in list order, as the
    # run does when it puts its loss logger first
    built.learner.plugins.insert(0, before)
    built.learner.plugins.append(after)
    for step in range(built.stream.n_tasks):
        built.start_task(step)
        built.learner.train_task(step)
    out = {"steps": len(after.ratios), "semi": built.dataset.source == "semi-synthetic"}
    if agem is not None:
        out["projected"] = sum(d < 0 for d in before.dots) / max(len(before.dots), 1)
        out["change"] = statistics.fmean(after.changes) if after.changes else 0.0
    else:
        out["ratio_mean"] = statistics.fmean(after.ratios)
        out["ratio_max"] = max(after.ratios)
    return out


def render(rows, command) -> str:
    """The markdown: a line per (cell, regularizer)."""
    lines = ["# How much each regularizer acts on training", ""]
    if any(r["semi"] for r in rows):
        lines += ["**SEMI-SYNTHETIC.** Real metadata with features synthesised from the "
                  "attributes (see benchmarks/czsl_table.md).", ""]
    lines += [f"Made by `{command}`. One run per row, at the ClassNorm paper's defaults "
              "(EWC-online λ 10, MAS λ 1e-4, A-GEM memory 10 / 5 per class, reference from "
              "128), every training step after the first task. *penalty / CE*: the "
              "regularizer's penalty as a fraction of the cross-entropy, mean and max over "
              "steps. *projected*: the share of A-GEM's steps whose gradient opposed the "
              "memory's and was projected; *|g' − g| / |g|*: the mean change projection "
              "made to those.", "",
              "| data | protocol | ClassNorm | seed | regularizer | steps | penalty / CE, "
              "mean | penalty / CE, max | projected | \\|g' − g\\| / \\|g\\| |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "projected" in r:
            cells = f"– | – | {100 * r['projected']:.1f} % | {r['change']:.3f}"
        else:
            cells = f"{r['ratio_mean']:.2e} | {r['ratio_max']:.2e} | – | –"
        lines.append(f"| {r['dataset']} | {r['protocol']} | {r['cn']} | {r['seed']} | "
                     f"{r['method']} | {r['steps']} | {cells} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--cells", nargs="+", default=["cub:grw:on", "sun:grw:off"],
                        metavar="DATASET:PROTOCOL:CLASSNORM",
                        help="table cells, e.g. cub:grw:on (ClassNorm on or off)")
    parser.add_argument("--methods", nargs="+", default=REGULARIZERS,
                        choices=[m for m in METHODS
                                 if m not in ("Sequential", "Multi-task")])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path,
                        default=ROOT / "benchmarks" / "regularizer_activity.md")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    cells = []
    for cell in args.cells:
        parts = cell.split(":")
        if (len(parts) != 3 or parts[0] not in ("cub", "sun") or parts[1] not in
                SCENARIO or parts[2] not in ("on", "off")):
            parser.error(f"--cells {cell!r}: expected DATASET:PROTOCOL:CLASSNORM with "
                         f"DATASET cub or sun, PROTOCOL one of {list(SCENARIO)}, "
                         "CLASSNORM on or off, e.g. cub:grw:on")
        cells.append(parts)
    command = recorded_command(
        "regularizer_activity", f"--data-dir {os.path.relpath(args.data_dir, ROOT)} --cells "
                                f"{' '.join(args.cells)} --methods "
                                f"{shlex.join(args.methods)} --seed {args.seed}")
    rows = []
    for dataset, protocol, cn in cells:
        cn_label = "+ CN" if cn == "on" else "no CN"
        for method in args.methods:
            scenario = load_scenario(
                ROOT / "scenarios" / f"{SCENARIO[protocol].format(d=dataset)}.toml",
                [*METHODS[method], *CLASS_NORM[cn_label], f"seed={args.seed}"])
            found = measure(scenario, args.data_dir)
            rows.append({"dataset": dataset.upper(), "protocol": protocol, "cn": cn_label,
                         "seed": args.seed, "method": method, **found})
            print(rows[-1], file=sys.stderr, flush=True)
    text = render(rows, command)
    print(text)
    atomic_write_text(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
