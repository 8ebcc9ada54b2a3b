"""GRW's own code (github.com/wx-zhang/IGCZSL, branch ``beta``) beside czsl's ``grw``
plugin, on identical data and schedule.

    python -m benchmarks.authors.grw CHECKOUT [--data-dir ../shared/data] [--tasks 3]
        [--epochs 1] [--seeds 0 1] [--hallucination interpolation dictionary]
        [--batch-size 64] [--czsl]

``CHECKOUT``: a copy of the branch's files (``git archive beta | tar -x -C DIR``). The
semi-synthetic CUB (``czsl.data.write_xlsa17``, feature seed 0, as
:mod:`benchmarks.parity`) is written as an xlsa17 folder; GRW's ``src/main.py`` runs on it
from a temporary copy with only the edits of :data:`BETA_EDITS` (CPU, no wandb, the first
``--tasks`` tasks), ``--epochs`` epochs per task, its CUB best hyper-parameters
(``best_param/CUB_{interpolation,learnable}.yaml``), one torch thread. Its per-task
accuracies are parsed with :func:`benchmarks.parity.parse_grw` (mSA / mUA / mH: means of
the per-task figures, as its ``metrics.json``); CPU seconds come from the operating
system. With ``--czsl`` the same tasks, epochs, batch size and seeds run through czsl's
``scenarios/cub_czsl_grw_full.toml`` (``czsl run``; ``replay.hallucination`` set to the
same variant, with GRW's generated prototypes, ``replay.prototypes = "generated"``).
GRW's code needs scikit-learn, scipy, pyyaml and omegaconf (not czsl dependencies; put
them on ``PYTHONPATH``, e.g. ``pip install --target DIR omegaconf``). One JSON line per
run is printed; nothing is written in the repository.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
import tempfile
from pathlib import Path

from benchmarks.parity import ROOT, _child, parse_grw

#: The files of the ``beta`` branch that GRW's run needs.
BETA_FILES = ("src/main.py", "src/data.py", "src/rw_loss.py", "src/model.py",
              "src/utils.py", "src/args.py", "src/rw_config.yaml", "src/best_param")
#: (file, what, old text, new text, count): the only edits made to GRW's code at run
#: time; ``old`` must occur exactly ``count`` times, and every occurrence is replaced.
BETA_EDITS = [
    ("main.py", "wandb is not installed (logging only; off by default)", "import wandb\n",
     "wandb = None\n", 1),
    ("main.py", "CPU: no exit when there is no GPU", "if not torch.cuda.is_available():",
     "if False:", 1),
    ("main.py", "CPU", ".cuda()", "", 19),
    ("main.py", "CPU", 'device="cuda"', 'device="cpu"', 3),
    ("main.py", "the first {tasks} tasks (its loop trains tasks 1 .. iter_task - 1)",
     "iter_task = opt.num_tasks\n", "iter_task = {tasks} + 1\n", 1),
    ("data.py", "CPU", ".cuda()", "", 4),
    ("rw_loss.py", "CPU", ".cuda()", "", 5),
    ("utils.py", "CPU", ".cuda()", "", 4),
]
#: what GRW's beta code imports beyond torch and numpy (not czsl dependencies)
NEEDS = {"sklearn": "scikit-learn", "scipy": "scipy", "yaml": "pyyaml",
         "omegaconf": "omegaconf"}
#: czsl's name of each hallucination -> GRW's ``--attribute_generation_method``
METHODS = {"interpolation": "interpolation", "dictionary": "learnable"}


def edit(checkout: Path, dest: Path, tasks: int) -> Path:
    """GRW's files from ``checkout`` into ``dest`` with :data:`BETA_EDITS` made; its src."""
    src = dest / "src"
    src.mkdir(parents=True)
    for name in BETA_FILES:
        path = checkout / name
        if not path.exists():
            raise SystemExit(f"{path}: not found; CHECKOUT is a copy of the beta branch of "
                             "github.com/wx-zhang/IGCZSL (git archive beta | tar -x)")
        if path.is_dir():
            shutil.copytree(path, src / path.name)
        else:
            shutil.copy(path, src / path.name)
    for file, what, old, new, count in BETA_EDITS:
        text = (src / file).read_text(encoding="utf-8")
        found = text.count(old)
        if found != count:
            raise SystemExit(f"{checkout / 'src' / file}: expected {old!r} ({what}) {count} "
                             f"times, found it {found} times; the code changed, update "
                             "BETA_EDITS")
        (src / file).write_text(text.replace(old, new.format(tasks=tasks)), encoding="utf-8")
    return src


def run_authors(checkout: Path, root: Path, seed: int, work: Path, *, hallucination: str,
                tasks: int, epochs: int, batch_size: int) -> dict:
    """GRW's ``main.py``, edited, in a child process: per-task figures, means, CPU s."""
    missing = [pip for module, pip in NEEDS.items()
               if importlib.util.find_spec(module) is None]
    if missing:
        raise SystemExit(f"GRW's code needs {', '.join(missing)} (not czsl dependencies): "
                         f"pip install {' '.join(missing)}")
    src = edit(checkout, work / f"igczsl-{hallucination}-s{seed}", tasks)
    args = ["--dataset", "CUB", "--attribute_generation_method", METHODS[hallucination],
            "--batch_size", str(batch_size), "--buffer_size", "5000", "--epochs",
            str(epochs), "--seed", str(seed), "--dataroot", f"{root}/data", "--run_name",
            "parity"]
    out, cpu, wall, load = _child([sys.executable, "main.py", *args], src)
    record = parse_grw(out)
    if len(record["steps"]) != tasks:
        raise SystemExit(f"GRW's code reported {len(record['steps'])} tasks, not {tasks}")
    return {**record, "cpu_s": cpu, "wall_s": wall, "load": load}


def run_czsl(root: Path, seed: int, work: Path, *, hallucination: str, tasks: int,
             epochs: int, batch_size: int,
             scenario: str = "cub_czsl_grw_full") -> dict:
    """czsl's ``grw`` on the same tasks and schedule, ``czsl run`` in a child process."""
    name = f"{scenario}-{hallucination}-s{seed}"
    sets = [x for o in [f"protocol.n_tasks={tasks}", f"train.epochs={epochs}",
                        f"train.batch_size={batch_size}", f"seed={seed}", f"name={name}",
                        f"replay.hallucination='{hallucination}'",
                        "replay.prototypes='generated'"]
            for x in ("--set", o)]
    _, cpu, wall, load = _child([sys.executable, "-m", "czsl.cli", "run",
                                 str(ROOT / "scenarios" / f"{scenario}.toml"), "--data-dir",
                                 str(root), "--threads", "1", "--no-progress", *sets], work)
    res = json.loads((work / "runs" / name / "results.json").read_text())
    return {**{k: res["summary"][k] for k in ("mSA", "mUA", "mH")},
            "cpu_s": cpu, "wall_s": wall, "load": load}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="a copy of GRW's beta branch")
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--tasks", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64,
                        help="64: beta's default (its class means broadcast into a [B, B, "
                             "C, D] tensor, so memory grows with B^2)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--hallucination", nargs="+", choices=sorted(METHODS),
                        default=["interpolation"])
    parser.add_argument("--czsl", action="store_true", help="also run czsl's grw")
    parser.add_argument("--no-authors", action="store_true", help="czsl's side only")
    args = parser.parse_args(argv)
    schedule = dict(tasks=args.tasks, epochs=args.epochs, batch_size=args.batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        from czsl.data import load_dataset, write_xlsa17

        data = load_dataset("CUB", args.data_dir, features="semi-synthetic", seed=0)
        write_xlsa17(data, work / "xlsa17" / "data" / "CUB")
        for hallucination in args.hallucination:
            for seed in args.seeds:
                sides = ([] if args.no_authors else ["authors"]) + (
                    ["czsl"] if args.czsl else [])
                for side in sides:
                    if side == "authors":
                        record = run_authors(args.checkout.resolve(), work / "xlsa17", seed,
                                             work, hallucination=hallucination, **schedule)
                    else:
                        record = run_czsl(work / "xlsa17", seed, work,
                                          hallucination=hallucination, **schedule)
                    print(json.dumps({"side": side, "hallucination": hallucination,
                                      "seed": seed, **schedule, **record}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
