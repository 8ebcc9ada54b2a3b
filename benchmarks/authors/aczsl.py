"""A-CZSL's own code (``CZSLwithCVAE/CZSL_CVAE``) beside czsl's ``aczsl`` scenario, on
identical semi-synthetic CUB.

    python -m benchmarks.authors.aczsl --checkout CHECKOUT [--data-dir ../shared/data]
        [--seeds 0 1] [--tasks 3] [--epochs 2] [--class-epochs 2] [--czsl]

``CHECKOUT`` is a folder holding their files (``git archive`` of the repository into a
temporary folder; their code is never copied into this repository). Writes the
semi-synthetic CUB (real metadata, features synthesised from the attributes, feature
seed 0) as an xlsa17 folder, as ``benchmarks/parity.py`` does, reads it back, and builds
from it the seven pickles their ``main.py`` loads (``data/CUB/README.MD``: the layout of
Tf-GCZSL's ``data_loader.py``: per task, its train features, labels and per-sample
attributes, its test features and labels, and the class attributes). The train/test
split is czsl's ``grw`` split of the same data (one seeded 80/20 split of all images,
classes in dataset order, 10 per task), not their per-task unseeded 80/20 split, so that
both sides train and test on the same images.

Their ``main.py`` runs from a temporary copy of their files with only the edits of
:data:`EDITS` (data paths, the schedule, seeds, one thread, the first ``--tasks``
tasks), on the CPU (their code falls back to it, ``main.py:40``), in a child process.
Their per-task seen and unseen accuracies (the L2-normalised test features, as they
print them) give mSA, mUA and mH as plain means over the tasks, as czsl's ``grw``
protocol averages them. With ``--czsl`` the same seeds also run
``scenarios/cub_czsl_aczsl.toml`` on the same folder and schedule (``protocol.n_tasks``,
``replay.epochs``, ``train.epochs``, and their 50 replayed and 200 classifier features
per class). Prints one JSON line per run. The figures are SEMI-SYNTHETIC.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: their files that ``main.py`` needs
FILES = ("main.py", "a_vae.py", "classi.py", "utils.py", "networks/network.py",
         "networks/dis.py", "networks/Classifier.py")
#: the pickles their ``main.py`` loads, in the order of its path variables
PICKLES = (("train_data_path", "trainData"), ("train_label_path", "trainLabels"),
           ("train_attr_path", "trainAttributes"), ("test_data_path", "testData"),
           ("test_label_path", "testLabels"), ("attributes_path", "dataAttributes"))
#: (file, what, old text, new text): the only edits made to their code at run time; each
#: old text must occur exactly once
EDITS = [
    ("main.py", "data paths (undefined in their code: a NameError at main.py:68)",
     "trainData1 = dataprocess(train_data_path)",
     "{paths}\ntrainData1 = dataprocess(train_data_path)"),
    ("main.py", "the network's epochs", "args.num_epochs = 100", "args.num_epochs = {epochs}"),
    ("main.py", "the classifier's epochs", "args.class_epochs = 30",
     "args.class_epochs = {class_epochs}"),
    ("main.py", "seeds (theirs are unseeded) and one torch thread",
     "print('device', device)",
     "print('device', device); random.seed({seed}); np.random.seed({seed}); "
     "torch.manual_seed({seed}); torch.set_num_threads(1)"),
    ("main.py", "the first {tasks} tasks (their final summary needs all 20)",
     "for t in range(args.num_tasks):", "for t in range({tasks}):"),
    ("main.py", "stop after the task loop", "#compute average harmonic mean",
     "raise SystemExit(0)\n#compute average harmonic mean"),
]
#: what their ``main.py`` prints after each task (lists of fractions so far)
LISTS = {"seen": r"^seen_acc: (\[.*\])$", "unseen": r"^unseen_acc (\[.*\])$",
         "H": r"^HM acc: (\[.*\])$"}


def write_pickles(dataset, folder: Path) -> Path:
    """The seven pickles of their loader for ``dataset`` under czsl's ``grw`` split."""
    import numpy as np

    from czsl.config import ProtocolConfig
    from czsl.streams import split_tasks

    split = split_tasks(dataset, ProtocolConfig(name="grw"), seed=0)
    labels, feats = dataset.labels, dataset.features
    attrs = np.asarray(dataset.attributes, dtype=np.float32)
    train_task = split.class_to_task[labels[split.train_idx]]
    test_task = split.class_to_task[labels[split.test_idx]]
    out = {name: np.empty(len(split.tasks), dtype=object) for _, name in PICKLES[:5]}
    for t in range(len(split.tasks)):
        tr = split.train_idx[train_task == t]
        te = np.sort(split.test_idx[test_task == t])
        out["trainData"][t] = feats[tr].astype(np.float32)
        out["trainLabels"][t] = labels[tr].astype(np.int64)
        out["trainAttributes"][t] = attrs[labels[tr]]
        out["testData"][t] = feats[te].astype(np.float32)
        out["testLabels"][t] = labels[te].astype(np.int64)
    folder.mkdir(parents=True, exist_ok=True)
    for name, value in [*out.items(), ("dataAttributes", attrs)]:
        with open(folder / name, "wb") as f:
            np.save(f, value, allow_pickle=True)
    return folder


def edit(checkout: Path, dest: Path, pickles: Path, *, seed: int, tasks: int, epochs: int,
         class_epochs: int) -> Path:
    """Their files from ``checkout`` into ``dest`` with :data:`EDITS` made; ``dest``."""
    paths = "; ".join(f"{var} = {str(pickles / name)!r}" for var, name in PICKLES)
    values = dict(paths=paths, seed=seed, tasks=tasks, epochs=epochs,
                  class_epochs=class_epochs)
    texts = {}
    for name in FILES:
        try:
            texts[name] = (checkout / name).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SystemExit(f"{checkout / name}: not found; --checkout takes a checkout of "
                             "github.com/CZSLwithCVAE/CZSL_CVAE") from None
    for file, what, old, new in EDITS:
        found = texts[file].count(old)
        if found != 1:
            raise SystemExit(f"{checkout / file}: expected {old!r} ({what.format(**values)}) "
                             f"once, found it {found} times; the code changed, update EDITS")
        texts[file] = texts[file].replace(old, new.format(**values))
    for name, text in texts.items():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).write_text(text, encoding="utf-8")
    return dest


def parse(out: str, tasks: int) -> dict:
    """Their last printed per-task lists, in %, and their means."""
    found = {}
    for key, pattern in LISTS.items():
        hits = re.findall(pattern, out, re.M)
        if not hits:
            raise SystemExit(f"their output has no {pattern!r} line; its print changed")
        found[key] = [100 * v for v in ast.literal_eval(hits[-1])]
    if any(len(v) != tasks for v in found.values()):
        raise SystemExit(f"their output has {[len(v) for v in found.values()]} tasks, "
                         f"not {tasks}")
    return {"mSA": statistics.mean(found["seen"]), "mUA": statistics.mean(found["unseen"]),
            "mH": statistics.mean(found["H"]),
            "steps": {"SA": found["seen"], "UA": found["unseen"], "H": found["H"]}}


def run_authors(checkout: Path, pickles: Path, work: Path, *, seed: int, tasks: int,
                epochs: int, class_epochs: int) -> dict:
    """Their ``main.py``, edited, in a child process: mSA / mUA / mH and CPU seconds."""
    import numpy as np

    from benchmarks.parity import _child

    with open(pickles / "trainLabels", "rb") as f:
        sizes = [len(y) for y in np.load(f, allow_pickle=True)]
    for t in range(tasks):  # their dataloader crashes on the empty last batch it builds
        if (sizes[t] + 50 * 10 * t) % 59 == 0:  # real + 50 replayed per past class
            raise SystemExit(f"task {t}: {sizes[t]} train images plus the replay are a "
                             "multiple of 59: their utils.dataloader would crash")
    src = edit(checkout, work / f"aczsl-authors-s{seed}", pickles, seed=seed, tasks=tasks,
               epochs=epochs, class_epochs=class_epochs)
    out, cpu, wall, load = _child([sys.executable, "main.py"], src)
    return {"side": "authors", "seed": seed, **parse(out, tasks), "cpu_s": cpu,
            "wall_s": wall, "load": load}


def czsl_overrides(*, seed: int, tasks: int, epochs: int, class_epochs: int) -> list[str]:
    """The ``--set`` values that put czsl's scenario on the authors' run's schedule."""
    return [f"seed={seed}", f"name=aczsl-czsl-s{seed}", f"protocol.n_tasks={tasks}",
            f"replay.epochs={epochs}", f"train.epochs={class_epochs}",
            "replay.replay_per_class=50", "replay.classifier_per_class=200"]


def run_czsl(root: Path, work: Path, *, seed: int, tasks: int, epochs: int,
             class_epochs: int) -> dict:
    """``scenarios/cub_czsl_aczsl.toml`` on the same data and schedule, ``czsl run``."""
    from benchmarks.parity import _child

    sets = [x for o in czsl_overrides(seed=seed, tasks=tasks, epochs=epochs,
                                      class_epochs=class_epochs) for x in ("--set", o)]
    _, cpu, wall, load = _child([sys.executable, "-m", "czsl.cli", "run",
                                 str(ROOT / "scenarios" / "cub_czsl_aczsl.toml"),
                                 "--data-dir", str(root), "--threads", "1", "--no-progress",
                                 *sets], work)
    res = json.loads((work / "runs" / f"aczsl-czsl-s{seed}" / "results.json").read_text())
    steps = res["metrics"]["steps"]
    return {"side": "czsl", "seed": seed, **{k: res["summary"][k] for k in
                                             ("mSA", "mUA", "mH")},
            "steps": {k: steps[k] for k in ("SA", "UA", "H")}, "cpu_s": cpu,
            "wall_s": wall, "load": load}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", type=Path, required=True,
                        help="their files (git archive of CZSLwithCVAE/CZSL_CVAE)")
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--tasks", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2, help="the network's (theirs: 100)")
    parser.add_argument("--class-epochs", type=int, default=2,
                        help="the classifier's (theirs: 30)")
    parser.add_argument("--czsl", action="store_true", help="also run czsl's scenario")
    parser.add_argument("--no-authors", action="store_true", help="run czsl's side only")
    args = parser.parse_args(argv)
    schedule = dict(tasks=args.tasks, epochs=args.epochs, class_epochs=args.class_epochs)
    with tempfile.TemporaryDirectory() as tmp:
        from czsl.data import load_dataset, write_xlsa17  # only when something runs

        work = Path(tmp)
        data = load_dataset("CUB", args.data_dir, features="semi-synthetic", seed=0)
        write_xlsa17(data, work / "xlsa17" / "data" / "CUB")
        pickles = write_pickles(load_dataset("CUB", work / "xlsa17"), work / "pickles")
        for seed in args.seeds:
            runs = [] if args.no_authors else [run_authors(
                args.checkout.resolve(), pickles, work, seed=seed, **schedule)]
            if args.czsl:
                runs.append(run_czsl(work / "xlsa17", work, seed=seed, **schedule))
            for record in runs:
                print(json.dumps({**record, **schedule}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
