"""Tf-GCZSL's own task-agnostic code on czsl's semi-synthetic CUB, on CPU, for parity.

    python -m benchmarks.authors.tfgczsl CHECKOUT [--data-dir ../shared/data]
        [--seeds 0 1] [--tasks 3] [--epochs 2] [--cls-epochs 1] [--cls-batch 256]
        [--der true] [--czsl]

``CHECKOUT`` is an export of github.com/Chandan-IITI/Tf-GCZSL (``git archive`` into a
temporary folder; nothing of it is copied into this repository). Its
``tfgczsl_task_agnostic/`` files are copied into a temporary folder and run there, with
only the run-time edits of :data:`EDITS` (each must match exactly as often as listed) and
one added empty file, ``tfgczsl/__init__.py``: the script ``tfgczsl.py`` shadows its
package ``tfgczsl/``, so the unedited code cannot import its own model.

The data: czsl's semi-synthetic CUB (the real metadata, features synthesised from the
attributes, feature seed 0) written as an xlsa17 folder (``czsl.data.write_xlsa17``), plus
the ``allclasses.txt`` their ``data_loader.py`` reads (its test/train class files are read
only for prints: written empty). Their ``data_loader.py`` then makes their per-task
files, with its own protocol: every task's images split 80/20 at random
(``data_loader.py:141-163``, unseeded there, seeded here), where czsl's ``grw`` protocol
splits all images 80/20 once (``split_seed`` 42, not stratified). czsl comes closest
with ``protocol.stratified = true`` (each class split 80/20, hence each task; the
reference's split of a task is not balanced per class); the two splits differ in which
images are test images, not in the tasks or the classes.

Their ``tfgczsl.py`` then trains the first ``--tasks`` tasks (unseen classes: all later
tasks of the 20) with ``--epochs`` VAE epochs per task and the warm-ups rescaled per step
as czsl's plugin does, the classifier ``--cls-epochs`` epochs of batch ``--cls-batch``,
and DER on or off (``--der``). Its per-task seen and unseen accuracies (the CSV it
writes) give mSA, mUA and mH (mean of the per-task H) over the tasks, in percent, as
czsl's ``grw`` metrics; CPU seconds are the child process's user + system time.
``--czsl`` also runs czsl's ``scenarios/cub_czsl_tfgczsl.toml`` on the same folder and
schedule (``protocol.n_tasks`` = ``--tasks``), one thread, each seed.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks.parity import ROOT, _child

FOLDER = "tfgczsl_task_agnostic"

#: (file, what, old text, new text, count): the only edits made to their code at run
#: time; ``old`` must occur exactly ``count`` times; ``{...}`` fields are filled in.
EDITS = [
    ("data_loader.py", "data folder", 'path = "../../../../Datasets/CUB_mat/"',
     'path = "{data}/"', 1),
    ("data_loader.py", "seeded split (unseeded in the reference)", "import math\n",
     "import math\nnp.random.seed({seed})\n", 1),
    *[("data_loader.py", "numpy >= 1.24: ragged per-task lists as object arrays",
       f"{name} = np.array({name})\n", f"{name} = np.array({name}, dtype=object)\n", 1)
      for name in ("trainDataX", "trainDataLabels", "trainDataAttrs", "testDataX",
                   "testDataLabels", "testDataAttrs")],
    ("tfgczsl.py", "seeds, one torch thread", "from tfgczsl.tfgczsl_model import TFGCZSL\n",
     "from tfgczsl.tfgczsl_model import TFGCZSL\n"
     "torch.manual_seed({seed}); np.random.seed({seed}); torch.set_num_threads(1)\n", 1),
    ("tfgczsl.py", "CPU", ".cuda()", "", 13),
    ("tfgczsl.py", "the first {tasks} tasks", "task_no = 20 ", "task_no = {tasks} ", 1),
    ("tfgczsl.py", "unseen accuracy at every task run (all later tasks of the 20 are "
     "unseen; the reference skips it at its last task only)", "if jj != task_no - 1:",
     "if jj != task_no_1 - 1:", 1),
    ("tfgczsl.py", "the same, for the joint accuracy", "if jj != task_no-1:",
     "if jj != task_no_1-1:", 1),
    ("tfgczsl.py", "DER", "use_der = False", "use_der = {der}", 1),
    ("tfgczsl.py", "classifier epochs", "classifier_epoch = 25", "classifier_epoch = {cls_epochs}", 1),
    ("tfgczsl.py", "classifier batch", "classifier_batch_size = 32",
     "classifier_batch_size = {cls_batch}", 1),
    ("tfgczsl/tfgczsl_model.py", "CPU", "torch.cuda.FloatTensor", "torch.FloatTensor", 4),
    ("tfgczsl/tfgczsl_model.py", "CPU", ".cuda()", "", 16),
    ("tfgczsl/tfgczsl_model.py", "CPU", "self.device = 'cuda'", "self.device = 'cpu'", 1),
    ("tfgczsl/tfgczsl_model.py", "{epochs} VAE epochs per task", "self.nepoch = 100",
     "self.nepoch = {epochs}", 1),
    ("tfgczsl/tfgczsl_model.py", "warm-ups rescaled to the epochs run, advancing every "
     "step (czsl's plugin: reference epoch 100 x the share of the task's steps done)",
     "                i += 1\n",
     "                i += 1\n                self.current_epoch = 100.0 * (epoch + i / "
     "len(dataset_vae)) / self.nepoch\n", 1),
    ("tfgczsl/er_memory.py", "CPU", "device='cuda'", "device='cpu'", 2),
]


def edit(checkout: Path, dest: Path, **fields) -> Path:
    """Their task-agnostic files from ``checkout`` into ``dest`` with :data:`EDITS`."""
    src = Path(checkout) / FOLDER
    if not (src / "tfgczsl.py").is_file():
        raise SystemExit(f"{src / 'tfgczsl.py'}: not found; CHECKOUT is an export of "
                         "github.com/Chandan-IITI/Tf-GCZSL")
    shutil.copytree(src, dest)
    texts = {}
    for file, what, old, new, count in EDITS:
        text = texts.setdefault(file, (dest / file).read_text(encoding="utf-8"))
        found = text.count(old)
        if found != count:
            raise SystemExit(f"{src / file}: expected {old!r} ({what}) {count} times, found "
                             f"it {found} times; the code changed, update EDITS")
        texts[file] = text.replace(old, new.format(**fields))
    for file, text in texts.items():
        (dest / file).write_text(text, encoding="utf-8")
    (dest / "tfgczsl" / "__init__.py").write_text("")  # the package, not the script
    return dest


def write_data(data_dir: Path, dest: Path) -> Path:
    """czsl's semi-synthetic CUB (feature seed 0) as an xlsa17 folder ``dest/data/CUB``
    with the class list their ``data_loader.py`` reads; returns that folder."""
    from czsl.data import load_dataset, write_xlsa17

    data = load_dataset("CUB", data_dir, features="semi-synthetic", seed=0)
    folder = write_xlsa17(data, dest / "data" / "CUB")
    (folder / "allclasses.txt").write_text(
        "".join(f"{name.split()[0]}\n" for name in data.class_names))
    for name in ("testclasses.txt", "trainvalclasses.txt"):  # read only for prints
        (folder / name).write_text("")
    return folder


def summarize(seen: list[float], unseen: list[float]) -> dict:
    """mSA, mUA, mH (mean of per-task H) in percent from per-task fractions."""
    h = [2 * s * u / (s + u) if s + u else 0.0 for s, u in zip(seen, unseen)]
    return {"mSA": 100 * statistics.mean(seen), "mUA": 100 * statistics.mean(unseen),
            "mH": 100 * statistics.mean(h),
            "steps": [{"SA": 100 * s, "UA": 100 * u} for s, u in zip(seen, unseen)]}


def run_authors(checkout: Path, folder: Path, work: Path, *, seed: int, tasks: int,
                epochs: int, cls_epochs: int, cls_batch: int, der: bool) -> dict:
    """Their data_loader.py then tfgczsl.py in child processes; figures and CPU seconds."""
    code = edit(checkout, work / f"tfgczsl-s{seed}", data=folder, seed=seed, tasks=tasks,
                epochs=epochs, cls_epochs=cls_epochs, cls_batch=cls_batch, der=der)
    _, cpu_data, _, _ = _child([sys.executable, "data_loader.py"], code)
    _, cpu, wall, load = _child([sys.executable, "tfgczsl.py"], code)
    with open(code / "results_tfgczsl_reservoir.csv", newline="") as file:
        rows = [[float(v) for v in row] for row in csv.reader(file) if row]
    seen, unseen = rows[1][:tasks], rows[2][:tasks]  # each row ends with its mean
    return {**summarize(seen, unseen), "cpu_s": cpu, "wall_s": wall,
            "cpu_data_s": cpu_data, "load": load}


def run_czsl(folder: Path, work: Path, *, seed: int, tasks: int, epochs: int,
             cls_epochs: int, cls_batch: int, der: bool) -> dict:
    """czsl's Tf-GCZSL scenario on the same xlsa17 folder and schedule."""
    name = f"tfgczsl-s{seed}"
    sets = [f"seed={seed}", f"name={name}", f"protocol.n_tasks={tasks}",
            f"replay.epochs={epochs}", f"train.epochs={cls_epochs}",
            f"train.batch_size={cls_batch}", f"replay.der_weight={1.0 if der else 0.0}",
            # the reference's values, whatever the scenario ships
            "replay.lr=0.00015", "replay.batch_size=50", "replay.mem_size=2000",
            "replay.mem_batch_size=100", "replay.seen_samples=200",
            "replay.unseen_samples=400", "train.lr=0.001", "train.weight_decay=0.001"]
    _, cpu, wall, load = _child([sys.executable, "-m", "czsl.cli", "run",
                                 str(ROOT / "scenarios" / "cub_czsl_tfgczsl.toml"), "--data-dir",
                                 str(folder.parents[1]), "--threads", "1", "--no-progress",
                                 "--runs-dir", str(work / "runs"),
                                 *[x for s in sets for x in ("--set", s)]], work)
    res = json.loads((work / "runs" / name / "results.json").read_text())
    summary = res["summary"]
    return {"mSA": summary["mSA"], "mUA": summary["mUA"], "mH": summary["mH"],
            "cpu_s": cpu, "wall_s": wall, "load": load, "dataset": res["dataset"]}


def main(argv=None) -> int:
    """Run their code (and czsl's, with ``--czsl``) for each seed; print JSON lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path)
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--tasks", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--cls-epochs", type=int, default=1)
    parser.add_argument("--cls-batch", type=int, default=256)
    parser.add_argument("--der", choices=("true", "false"), default="true")
    parser.add_argument("--czsl", action="store_true")
    args = parser.parse_args(argv)
    schedule = {"tasks": args.tasks, "epochs": args.epochs, "cls_epochs": args.cls_epochs,
                "cls_batch": args.cls_batch, "der": args.der == "true"}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        folder = write_data(args.data_dir, work / "xlsa17")
        for seed in args.seeds:
            record = run_authors(args.checkout.resolve(), folder, work, seed=seed, **schedule)
            print(json.dumps({"side": "authors", "seed": seed, **schedule, **record}),
                  flush=True)
            if args.czsl:
                record = run_czsl(folder, work, seed=seed, **schedule)
                print(json.dumps({"side": "czsl", "seed": seed, **schedule, **record}),
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
