"""DVGR-CZSL's own code beside czsl's ``dvgr`` scenario, on identical semi-synthetic CUB.

    python -m benchmarks.authors.dvgr --checkout CHECKOUT [--data-dir ../shared/data]
        [--seeds 0 1] [--tasks 3] [--epochs 5] [--classifier-epochs 2]
        [--classifier-per-class 150] [--lr 1e-4] [--classifier-lr 1e-4] [--czsl]

``CHECKOUT``: a folder holding the files of github.com/DVGR-CZSL/DVGR-CZSL (e.g. ``git
archive`` of the repository unpacked into a temporary folder); its code is read from
there, never copied into this repository. The runner

1. writes the semi-synthetic CUB (real metadata, features synthesised from the
   attributes, feature seed 0) as an xlsa17 folder (``czsl.data.write_xlsa17``, as
   ``benchmarks/parity.py`` does), reads it back and splits it with czsl's ``grw``
   protocol (pooled 80/20 split, seed 42, 20 tasks of 10 classes in dataset order), and
   writes the seven pickles the notebook's loader reads (``CUB.ipynb`` code cells 3-4:
   per task, the training features, labels and attribute rows and the test features,
   labels and attribute rows; every class's attributes), so both sides see the same
   images in the same tasks (the authors' own data split each task 80/20 unseeded);
2. turns the notebook's code cells into one script with only the run-time edits of
   :data:`EDITS` (the CPU, the data folder, the seeds and one torch thread, the first
   ``--tasks`` tasks of the 20, the epochs, learning rates and classifier features per
   class, each left as the code has it unless asked for) and runs it
   in a child process on the CPU;
3. reads the per-task accuracy lists it prints after each task and returns their means
   (mSA, mUA, mH, in %), with the child's CPU seconds (user + system).

With ``--czsl`` it also runs ``scenarios/cub_czsl_dvgr.toml`` on the same xlsa17 folder
and tasks with the same schedule (:func:`czsl_overrides`: the code's widths, 50 replayed
features per past class, 150 generated per class for the classifier, Adam 1e-4 for
both, the quirks on), so the two rows differ only by what the plugin's docstring lists.
Nothing is written to the repository; the figures are printed as one JSON line per run.
"""

from __future__ import annotations

import argparse
import json
import pickle
import re
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = "CUB.ipynb"
#: (what, old text, new text, count): the only edits made to the notebook's code at run
#: time; ``old`` must occur exactly ``count`` times (in all code cells together).
EDITS = [
    ("CPU", ".cuda()", "", 14),
    ("data folder", "path = 'FolderPath'", "path = {pickles!r}", 1),
    ("the first {tasks} of the 20 tasks (the unseen classes stay those of all 20)",
     "for i in range(total_tasks):", "for i in range(min(total_tasks, {tasks})):", 1),
    ("VAE epochs", "num_epochs = 101 #51", "num_epochs = {epochs}", 1),
    ("classifier epochs", "num_epochs = 25", "num_epochs = {classifier_epochs}", 1),
    ("generated features per class for the classifier", "num_samples = 150",
     "num_samples = {classifier_per_class}", 1),
    ("VAE learning rate (the code: 1e-4)", "Adam(self.net.parameters(), lr = 1e-4)",
     "Adam(self.net.parameters(), lr = {lr!r})", 1),
    ("classifier learning rate (the code: 1e-4)", "Adam(self.CLASS.parameters(), lr = 1e-4)",
     "Adam(self.CLASS.parameters(), lr = {classifier_lr!r})", 1),
]
#: prepended to the script: the code draws from torch, numpy and Python's random
#: generators and seeds none of them
PREAMBLE = ("import random as _r, numpy as _np, torch as _t\n"
            "_r.seed({seed}); _np.random.seed({seed}); _t.manual_seed({seed}); "
            "_t.set_num_threads(1)\n")
#: what the code prints after each task: the lists of per-task accuracies so far
PRINTED = re.compile(r"^self\.(seen_acc|unseen_acc|hm_acc): (\[.*\])$", re.M)
PICKLES = ("trainData", "trainLabels", "trainAttributes", "testData", "testLabels",
           "testAttributes", "dataAttributes")


def notebook_script(checkout: Path, **values) -> str:
    """The notebook's code cells as one script, with :data:`EDITS` (formatted with
    ``values``) made and :data:`PREAMBLE` prepended.

    :raises SystemExit: if an edit's text does not occur as often as recorded.
    """
    notebook = json.loads((checkout / NOTEBOOK).read_text(encoding="utf-8"))
    text = "\n\n".join("".join(c["source"]) for c in notebook["cells"]
                       if c["cell_type"] == "code")
    for what, old, _, count in EDITS:
        found = text.count(old)
        if found != count:
            raise SystemExit(f"{checkout / NOTEBOOK}: expected {old!r} ({what}) {count} "
                             f"times, found it {found} times; the notebook changed, update "
                             "EDITS")
    # one pass over the original text: an edit never rewrites another's result
    new = {old: replacement.format(**values) for _, old, replacement, _ in EDITS}
    text = re.sub("|".join(map(re.escape, new)), lambda m: new[m.group(0)], text)
    return PREAMBLE.format(**values) + text


def write_pickles(xlsa17: Path, dest: Path) -> tuple[tuple[int, ...], ...]:
    """The notebook's seven input pickles from the CUB xlsa17 folder, split into czsl's
    ``grw`` tasks; returns the tasks' class ids.

    Training data per task are arrays; test data and labels per task are Python lists,
    because the code joins tasks' test sets with ``+`` (cell 6, lines 92-96).
    """
    import numpy as np

    from czsl.config import ProtocolConfig
    from czsl.data import load_dataset
    from czsl.streams import split_tasks

    data = load_dataset("CUB", xlsa17)
    split = split_tasks(data, ProtocolConfig(name="grw"), seed=0)
    labels, feats = data.labels, data.features.astype(np.float32)
    attrs = data.attributes.astype(np.float32)
    out = {name: [] for name in PICKLES}
    for classes in split.tasks:
        for part, idx in (("train", split.train_idx), ("test", split.test_idx)):
            idx = idx[np.isin(labels[idx], classes)]
            x, y = feats[idx], labels[idx].astype(np.int64)
            if part == "train":
                out["trainData"].append(x)
                out["trainLabels"].append(y)
                out["trainAttributes"].append(attrs[y])
            else:
                out["testData"].append(list(x))
                out["testLabels"].append(y.tolist())
                out["testAttributes"].append(attrs[y])
    out["dataAttributes"] = attrs
    dest.mkdir(parents=True, exist_ok=True)
    for name, value in out.items():
        with open(dest / name, "wb") as f:
            pickle.dump(value, f)
    return split.tasks


def parse(out: str, tasks: int) -> dict:
    """The last printed per-task lists, in %, and their means."""
    last = {key: json.loads(value) for key, value in PRINTED.findall(out)}
    if set(last) != {"seen_acc", "unseen_acc", "hm_acc"} or len(last["seen_acc"]) != tasks:
        raise SystemExit(f"the code's output has no per-task accuracies of {tasks} tasks; "
                         "its prints changed, update PRINTED")
    steps = [{"SA": 100 * s, "UA": 100 * u, "H": 100 * h}
             for s, u, h in zip(last["seen_acc"], last["unseen_acc"], last["hm_acc"])]
    return {**{f"m{k}": statistics.mean(step[k] for step in steps) for k in ("SA", "UA", "H")},
            "steps": steps}


def run_authors(checkout: Path, work: Path, seed: int, tasks: int, epochs: int,
                classifier_epochs: int, classifier_per_class: int, lr: float,
                classifier_lr: float) -> dict:
    """The edited notebook in a child process: its mSA / mUA / mH and CPU seconds."""
    from benchmarks.parity import _child

    script = work / f"dvgr_cub_s{seed}.py"
    script.write_text(notebook_script(
        checkout, pickles=str(work / "pickles"), seed=seed, tasks=tasks, epochs=epochs,
        classifier_epochs=classifier_epochs, classifier_per_class=classifier_per_class,
        lr=lr, classifier_lr=classifier_lr),
        encoding="utf-8")
    out, cpu, wall, load = _child([sys.executable, "-W", "ignore", str(script)], work)
    return {**parse(out, tasks), "cpu_s": cpu, "wall_s": wall, "load": load}


def czsl_overrides(tasks: int, epochs: int, classifier_epochs: int,
                   classifier_per_class: int, lr: float, classifier_lr: float) -> list[str]:
    """``--set`` overrides that give ``cub_czsl_dvgr.toml`` the authors' networks and
    this runner's schedule."""
    return [f"protocol.n_tasks={tasks}", f"generator.epochs={epochs}",
            "generator.encoder_dims=[1000,500]", "generator.decoder_dims=[500,1000]",
            f"generator.lr={lr!r}", "generator.reshuffle=false",
            "generator.fixed_epsilon=true", "replay.replay_per_class=50",
            f"replay.classifier_per_class={classifier_per_class}",
            "model.hidden_dims=[2000,500]", "model.dropout=0.2",
            "model.dropout_when_testing=true", "model.standardize=true",
            f"train.lr={classifier_lr!r}",
            f"train.epochs={classifier_epochs}", "train.batch_size=64"]


def run_czsl(xlsa17: Path, work: Path, seed: int, overrides: list[str]) -> dict:
    """``cub_czsl_dvgr.toml`` with ``overrides`` in a child process (``czsl run``)."""
    from benchmarks.parity import _child

    name = f"czsl_dvgr-s{seed}"
    sets = [x for o in [*overrides, f"seed={seed}", f"name={name}"] for x in ("--set", o)]
    _, cpu, wall, load = _child([sys.executable, "-m", "czsl.cli", "run",
                                 str(ROOT / "scenarios" / "cub_czsl_dvgr.toml"), "--data-dir",
                                 str(xlsa17), "--threads", "1", "--no-progress", *sets], work)
    res = json.loads((work / "runs" / name / "results.json").read_text())
    steps = res["metrics"]["steps"]
    return {**{k: res["summary"][k] for k in ("mSA", "mUA", "mH")},
            "steps": [{"SA": s, "UA": u, "H": h}
                      for s, u, h in zip(steps["SA"], steps["UA"], steps["H"])],
            "cpu_s": cpu, "wall_s": wall, "load": load}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", type=Path, required=True,
                        help="a folder with the files of github.com/DVGR-CZSL/DVGR-CZSL")
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--tasks", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5, help="VAE epochs per task")
    parser.add_argument("--classifier-epochs", type=int, default=2)
    parser.add_argument("--classifier-per-class", type=int, default=150)
    parser.add_argument("--lr", type=float, default=1e-4, help="VAE learning rate")
    parser.add_argument("--classifier-lr", type=float, default=1e-4)
    parser.add_argument("--czsl", action="store_true",
                        help="also run czsl's dvgr scenario on the same schedule")
    parser.add_argument("--no-authors", action="store_true", help="skip the authors' code")
    args = parser.parse_args(argv)
    schedule = (args.tasks, args.epochs, args.classifier_epochs, args.classifier_per_class,
                args.lr, args.classifier_lr)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        from czsl.data import load_dataset, write_xlsa17

        data = load_dataset("CUB", args.data_dir, features="semi-synthetic", seed=0)
        xlsa17 = write_xlsa17(data, work / "xlsa17" / "data" / "CUB")
        write_pickles(xlsa17, work / "pickles")
        for seed in args.seeds:
            runs = [] if args.no_authors else [("dvgr_code", lambda s: run_authors(
                args.checkout.resolve(), work, s, *schedule))]
            if args.czsl:
                runs.append(("czsl_dvgr", lambda s: run_czsl(
                    xlsa17, work, s, czsl_overrides(*schedule))))
            for key, run in runs:
                record = {"key": key, "seed": seed, **run(seed)}
                print(json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
