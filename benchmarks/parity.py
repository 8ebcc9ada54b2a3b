"""czsl beside the authors' own code on identical data: ClassNorm's static ZSL notebook
and GRW's continual code.

    python -m benchmarks.parity [--data-dir ../shared/data] [--classnorm CHECKOUT]
                                [--grw CHECKOUT] [--seeds 0 1 2] [--runs KEY ...] [--render]

Writes the semi-synthetic CUB (real metadata, features synthesised from the attributes,
feature seed 0) as a genuine xlsa17 folder (``czsl.data.write_xlsa17``: ``res101.mat`` +
``att_splits.mat``), runs czsl's configurations on it (``czsl run``, one torch thread),
and, given ``--classnorm`` (a checkout of github.com/universome/class-norm), runs the
code of the authors' ZSL notebook (``class-norm-for-czsl.ipynb``) on the same folder, with
only the run-time edits listed in :data:`NOTEBOOK_EDITS` (their code is read from the
checkout, never copied here). Given ``--grw`` (a checkout of github.com/wx-zhang/IGCZSL,
branch ``main``), it runs GRW's ``src/main.py`` on the same folder, the first
:data:`GRW_TASKS` tasks of its CUB stream at :data:`GRW_EPOCHS` epochs each, from a
temporary copy of its files with only the edits of :data:`GRW_EDITS` (it needs
scikit-learn, scipy, pyyaml and easydict, which czsl does not), beside czsl's GRW
scenario and Sequential on the same tasks. Every run is a child process; its CPU seconds (user +
system, from the operating system) and the machine's load average around it are
recorded. Every finished run is saved at once in the record ``benchmarks/parity.json``
(a run of the same key and seed replaces the old one; the authors' notebook is not a czsl
run, so a ``czsl sweep`` cannot hold these), and ``parity.md`` is rendered from the whole
record; ``--render`` only renders. The page's prose (what the rows show, what differs
between the GRW sides) is markdown in ``benchmarks/notes/parity.md``, edited there. The
table says SEMI-SYNTHETIC: its figures are not real-feature figures.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from benchmarks._common import notes
from czsl.runfolder import atomic_write_text

#: every run's figures and the commands that made them: what parity.md renders from
RECORD = ROOT / "benchmarks" / "parity.json"

#: The notebook of github.com/universome/class-norm whose ZSL code is run.
NOTEBOOK = "class-norm-for-czsl.ipynb"
#: (what, old text, new text): the only edits made to the notebook's code at run time.
NOTEBOOK_EDITS = [
    ("dataset", "DATASET = 'AWA1'", "DATASET = 'CUB'"),
    ("seed", "np.random.seed(1)", "np.random.seed({seed})"),
    ("seed, one torch thread", "torch.manual_seed(1)",
     "torch.manual_seed({seed}); torch.set_num_threads(1)"),
    ("CPU", "DEVICE = 'cuda'", "DEVICE = 'cpu'"),
    ("data folder", "DATA_DIR = f'./data/xlsa17/data/{DATASET}'",
     "DATA_DIR = f'{root}/data/{{DATASET}}'"),
]

#: key: (label, scenario file, overrides); every run also gets seed=S.
#: the notebook's settings as czsl scenario keys
REFERENCE = ["model.hidden_dims=[1024,1024]", "model.class_norm_layout='around_relu'",
             "model.class_norm_divisor='variance'", "train.epochs=50", "train.lr_step=25",
             "train.lr_gamma=0.1"]


def _but(key: str, value: str) -> list[str]:
    """:data:`REFERENCE` with ``key`` set to ``value``: one difference at a time."""
    return [o for o in REFERENCE if not o.startswith(key + "=")] + [f"{key}={value}"]


CZSL_RUNS = {
    "czsl_cub_gzsl": ("czsl `cub_gzsl.toml` before it took the notebook's settings (1 x "
                      "1024, ClassNorm once after the ReLU dividing by the std, 30 epochs, "
                      "fixed rate)", "cub_gzsl",
                      ["model.hidden_dims=[1024]", "model.class_norm_layout='after_relu'",
                       "model.class_norm_divisor='std'", "train.epochs=30",
                       "train.lr_step=0"]),
    "czsl_reference": ("czsl with the notebook's settings, as `scenarios/cub_gzsl.toml` now "
                       "(2 x 1024, `class_norm_layout = \"around_relu\"`, "
                       "`class_norm_divisor = \"variance\"`, 50 epochs, `lr_step = 25`)",
                       "cub_gzsl", REFERENCE),
    "czsl_reference_std": ("↳ the same, but dividing by the std", "cub_gzsl",
                           _but("model.class_norm_divisor", "'std'")),
    "czsl_reference_after_relu": ("↳ the same, but ClassNorm once after each ReLU",
                                  "cub_gzsl", _but("model.class_norm_layout", "'after_relu'")),
    "czsl_reference_no_schedule": ("↳ the same, but a fixed learning rate", "cub_gzsl",
                                   _but("train.lr_step", "0")),
    "czsl_2x1024_50ep": ("czsl, 2 x 1024 hidden, 50 epochs (BatchNorm after each ReLU, no "
                         "schedule)", "cub_gzsl",
                         ["model.hidden_dims=[1024,1024]", "train.epochs=50"]),
}
AUTHORS = "classnorm_notebook"
LABELS = {AUTHORS: "ClassNorm authors' ZSL notebook (2 x 1024, ClassNorm twice in the "
                   "second layer, divides by the variance, 50 epochs, StepLR at 25)",
          **{key: label for key, (label, _, _) in CZSL_RUNS.items()}}

#: The files of github.com/wx-zhang/IGCZSL (branch ``main``) that GRW's run needs.
GRW_FILES = ("src/main.py", "src/data.py", "src/rw_loss.py", "src/config.yaml")
#: The first tasks of GRW's CUB stream that both sides run, and the epochs of each.
GRW_TASKS, GRW_EPOCHS = 5, 5
#: (file, what, old text, new text, count): the only edits made to GRW's code at run
#: time; ``old`` must occur exactly ``count`` times, and every occurrence is replaced.
GRW_EDITS = [
    ("main.py", "CPU: no exit when there is no GPU", "if not torch.cuda.is_available():",
     "if False:", 1),
    ("main.py", "CPU: the two loss accumulators stay non-leaf copies, as `.cuda()` made them",
     "requires_grad=True).cuda()", "requires_grad=True).clone()", 2),
    ("main.py", "CPU", ".cuda()", "", 21),
    ("data.py", "CPU", ".cuda()", "", 4),
    ("rw_loss.py", "CPU", ".cuda()", "", 5),
    ("main.py", "torch 1.4's optimizer step (its `environment.yaml` pins pytorch=1.4.0): "
     "the later losses of a batch back-propagate through graphs built before the step, "
     "which torch >= 1.5 refuses; 1.4 updated the weights without counting a change, "
     "so those backward passes used the updated weights, and so do they here",
     "from data import DATA_LOADER as dataloader\n",
     "from data import DATA_LOADER as dataloader\n\n\n"
     "def _step_as_torch_1_4(optimizer):\n"
     "    params = [p for group in optimizer.param_groups for p in group['params']]\n"
     "    versions = [p._version for p in params]\n"
     "    optimizer.step()\n"
     "    torch._C._autograd._unsafe_set_version_counter(params, versions)\n", 1),
    ("main.py", "torch 1.4's optimizer step", "D_optimizer.step()",
     "_step_as_torch_1_4(D_optimizer)", 1),
    ("main.py", "torch 1.4's optimizer step", "G_optimizer.step()",
     "_step_as_torch_1_4(G_optimizer)", 2),
    ("main.py", "one torch thread", "torch.manual_seed(opt.seed)",
     "torch.manual_seed(opt.seed); torch.set_num_threads(1)", 1),
    ("main.py", "the first {tasks} tasks (its loop trains tasks 1 .. iter_task - 1)",
     "iter_task = opt.num_tasks", "iter_task = {tasks} + 1", 1),
]
#: GRW's own command line (its README's, with the epochs, seed and data folder set here);
#: ``--dataset CUB`` makes its ``main.py`` pick CUB's task sizes and best hyper-parameters.
GRW_ARGS = ["--dataset", "CUB", "--attribute_generation_method", "interpolation",
            "--batch_size", "128", "--buffer_size", "5000", "--load_best_hp",
            "--epochs", "{epochs}", "--seed", "{seed}", "--dataroot", "{root}/data",
            "--run_name", "parity"]
#: what GRW's code imports beyond torch and numpy (not czsl dependencies)
GRW_NEEDS = {"sklearn": "scikit-learn", "scipy": "scipy", "yaml": "pyyaml",
             "easydict": "easydict"}
GRW_AUTHORS = "grw_code"
#: key: (label, scenario file, overrides) of czsl's side of the GRW comparison; every run
#: also gets seed=S and the first GRW_TASKS tasks.
GRW_CZSL_RUNS = {
    "czsl_grw": ("czsl `cub_czsl_grw.toml` (GRW as its code runs it; generator 1 epoch "
                 "per task, as the scenario ships)", "cub_czsl_grw", []),
    "czsl_grw_gen5": ("↳ the same, generator 5 epochs per task (the authors' schedule)",
                      "cub_czsl_grw", ["generator.epochs=5"]),
    "czsl_sequential": ("czsl `cub_czsl.toml` (Sequential + ClassNorm, no replay)",
                        "cub_czsl", []),
}
GRW_LABELS = {GRW_AUTHORS: "GRW authors' code (`main.py`, interpolated attributes, CUB's "
                           "best hyper-parameters, batch 128, buffer 5,000)",
              **{key: label for key, (label, _, _) in GRW_CZSL_RUNS.items()}}

#: every run key, in the order of a run of them all
ALL_RUNS = [AUTHORS, *CZSL_RUNS, GRW_AUTHORS, *GRW_CZSL_RUNS]


def read_record(path: Path) -> tuple[list[dict], list[str]]:
    """The runs and commands saved in the record ``path`` (none if it does not exist)."""
    try:
        saved = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return [], []
    return saved["runs"], saved["commands"]


def save_record(path: Path, runs: list[dict], commands: list[str]) -> None:
    """Write the record ``path`` whole (after every run: a long batch may be cut short)."""
    atomic_write_text(path, json.dumps({"commands": commands, "runs": runs}, indent=1,
                                       ensure_ascii=False) + "\n")


def run_notebook(checkout: Path, root: Path, seed: int) -> None:
    """Execute the notebook's code cells with :data:`NOTEBOOK_EDITS` (this process)."""
    notebook = json.loads((checkout / NOTEBOOK).read_text(encoding="utf-8"))
    cells = ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]
    cells = [c for c in cells if not c.lstrip().startswith("%%bash")]  # the download cell
    for what, old, new in NOTEBOOK_EDITS:
        hits = [i for i, c in enumerate(cells) if old in c]
        if len(hits) != 1:
            raise SystemExit(f"{checkout / NOTEBOOK}: expected {old!r} ({what}) once, found it "
                             f"{len(hits)} times; the notebook changed, update NOTEBOOK_EDITS")
        cells[hits[0]] = cells[hits[0]].replace(old, new.format(seed=seed, root=root))
    scope = {"__name__": "__main__"}
    for cell in cells:
        exec(compile(cell, f"{NOTEBOOK} (edited)", "exec"), scope)  # noqa: S102


def _child(cmd: list[str], cwd: Path) -> tuple[str, float, float, tuple[float, float]]:
    """Run ``cmd``; its output, CPU seconds, wall seconds and load average before/after."""
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    # the repository on the child's path: this script imports benchmarks._common
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path})
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return proc.stdout, cpu, wall, (load, os.getloadavg()[0])


def run_authors(checkout: Path, root: Path, seed: int, work: Path) -> dict:
    """The notebook in a child process; u / s / H as it prints them."""
    out, cpu, wall, load = _child([sys.executable, __file__, "--notebook", str(checkout),
                                   str(root), str(seed)], work)
    found = dict(re.findall(r"^(ZSL-U|GZSL-U|GZSL-S|GZSL-H): ([\d.]+)$", out, re.M))
    return {"zsl": float(found["ZSL-U"]), "u": float(found["GZSL-U"]),
            "s": float(found["GZSL-S"]), "H": float(found["GZSL-H"]),
            "cpu_s": cpu, "wall_s": wall, "load": load}


def edit_grw(checkout: Path, dest: Path, tasks: int = GRW_TASKS) -> Path:
    """GRW's files from ``checkout`` into ``dest`` with :data:`GRW_EDITS` made; its src."""
    src = dest / "src"
    src.mkdir(parents=True)
    texts = {}
    for name in GRW_FILES:
        try:
            texts[Path(name).name] = (checkout / name).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SystemExit(f"{checkout / name}: not found; --grw takes a checkout of "
                             "github.com/wx-zhang/IGCZSL (branch main)") from None
    for file, what, old, new, count in GRW_EDITS:
        found = texts[file].count(old)
        if found != count:
            raise SystemExit(f"{checkout / 'src' / file}: expected {old!r} ({what}) {count} "
                             f"times, found it {found} times; the code changed, update "
                             "GRW_EDITS")
        texts[file] = texts[file].replace(old, new.format(tasks=tasks))
    for name, text in texts.items():
        (src / name).write_text(text, encoding="utf-8")
    return src


#: the line GRW's ``main.py`` prints after each task's last epoch (fractions, 4 decimals)
GRW_LINE = re.compile(r"^Best accuracy at task (\d+) at epoch \d+: unseen : ([\d.]+), "
                      r"seen : ([\d.]+), H : ([\d.]+)$", re.M)


def parse_grw(out: str) -> dict:
    """GRW's printed per-task accuracies, in %, and their means over the tasks (``mSA``,
    ``mUA``, ``mH``: the plain means of the per-task SA, UA and H, as its ``main.py``
    averages them into ``metrics.json`` and czsl's ``grw`` protocol does)."""
    steps = [(int(t), 100 * float(u), 100 * float(s), 100 * float(h))
             for t, u, s, h in GRW_LINE.findall(out)]
    if not steps or [t for t, *_ in steps] != list(range(1, len(steps) + 1)):
        raise SystemExit("GRW's output has no per-task accuracies of tasks 1, 2, ... "
                         f"(found tasks {[t for t, *_ in steps]}); its print changed, "
                         "update GRW_LINE")
    return {"mUA": statistics.mean(u for _, u, _, _ in steps),
            "mSA": statistics.mean(s for _, _, s, _ in steps),
            "mH": statistics.mean(h for *_, h in steps),
            "steps": [{"UA": u, "SA": s, "H": h} for _, u, s, h in steps]}


def run_grw(checkout: Path, root: Path, seed: int, work: Path) -> dict:
    """GRW's ``main.py``, edited, in a child process; its per-task figures and means."""
    missing = [pip for module, pip in GRW_NEEDS.items()
               if importlib.util.find_spec(module) is None]
    if missing:
        raise SystemExit(f"--grw: GRW's code needs {', '.join(missing)}, not installed (not "
                         f"czsl dependencies): pip install {' '.join(missing)}")
    src = edit_grw(checkout, work / f"igczsl-s{seed}")
    args = [a.format(epochs=GRW_EPOCHS, seed=seed, root=root) for a in GRW_ARGS]
    out, cpu, wall, load = _child([sys.executable, "main.py", *args], src)
    record = parse_grw(out)
    if len(record["steps"]) != GRW_TASKS:
        raise SystemExit(f"GRW's code reported {len(record['steps'])} tasks, not {GRW_TASKS}")
    return {**record, "cpu_s": cpu, "wall_s": wall, "load": load}


def run_czsl_grw(key: str, root: Path, seed: int, work: Path) -> dict:
    """czsl's side of the GRW comparison: the first GRW_TASKS tasks, ``czsl run``."""
    _, scenario, overrides = GRW_CZSL_RUNS[key]
    name = f"{key}-s{seed}"
    sets = [x for o in [*overrides, f"protocol.n_tasks={GRW_TASKS}",
                        f"train.epochs={GRW_EPOCHS}", f"seed={seed}", f"name={name}"]
            for x in ("--set", o)]
    _, cpu, wall, load = _child([sys.executable, "-m", "czsl.cli", "run",
                                 str(ROOT / "scenarios" / f"{scenario}.toml"), "--data-dir",
                                 str(root), "--threads", "1", "--no-progress", *sets], work)
    res = json.loads((work / "runs" / name / "results.json").read_text())
    summary = res["summary"]
    return {"mSA": summary["mSA"], "mUA": summary["mUA"], "mH": summary["mH"],
            "n_tasks": res["n_tasks"], "cpu_s": cpu, "wall_s": wall, "load": load,
            "dataset": res["dataset"]}


def run_czsl(key: str, root: Path, seed: int, work: Path) -> dict:
    """One czsl configuration through ``czsl run``, in a child process."""
    _, scenario, overrides = CZSL_RUNS[key]
    name = f"{key}-s{seed}"
    sets = [x for o in [*overrides, f"seed={seed}", f"name={name}"] for x in ("--set", o)]
    _, cpu, wall, load = _child([sys.executable, "-m", "czsl.cli", "run",
                                 str(ROOT / "scenarios" / f"{scenario}.toml"), "--data-dir",
                                 str(root), "--threads", "1", "--no-progress", *sets], work)
    res = json.loads((work / "runs" / name / "results.json").read_text())
    g = res["gzsl"]
    return {"zsl": g["zsl_top1"], "u": g["u"], "s": g["s"], "H": g["H"], "cpu_s": cpu,
            "wall_s": wall, "load": load, "dataset": res["dataset"]}


#: the page's prose, kept as markdown in ``benchmarks/notes/parity.md``: ``FINDINGS`` (what
#: the ClassNorm rows show), ``GRW_DIFFERENCES`` (what differs between the GRW sides) and
#: ``GRW_FINDINGS`` (what the GRW rows show)
PROSE = notes("parity", ("FINDINGS", "GRW_DIFFERENCES", "GRW_FINDINGS", "FIELD_INTRO",
                         "FIELD_FINDINGS"))


def _mean(values: list[float], digits: int = 1) -> str:
    if len(values) < 2:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


GRW_INTRO = f"""\
GRW (Zhang et al., ICCV 2023) as its code runs: `src/main.py` of wx-zhang/IGCZSL (branch
`main`), beside czsl on the same xlsa17 folder, on the schedule both can run here on
CPU: the first {GRW_TASKS} tasks of GRW's CUB stream (20 tasks of 10 classes in dataset
order, all images pooled and split 80/20 by scikit-learn's `train_test_split(test_size=0.2,
random_state=42)`, czsl's `grw` protocol), {GRW_EPOCHS} epochs per task. After each task
both score the whole test set among all 200 classes: SA / UA are the per-class mean
accuracies (%) on the classes seen so far / not yet seen, H their harmonic mean, and
mSA / mUA / mH the plain means of the per-task SA / UA / H over the {GRW_TASKS} tasks
(every task here has unseen classes): GRW's `main.py` averages its `seen_acc_history`,
`unseen_acc_history` and `harmonic_mean_history` the same way, and czsl's `grw` protocol
too (`czsl/metrics.py`). GRW's figures are parsed from the line it prints after each
task (`Best accuracy at task T ...`, 4 decimals of a fraction). Mean ± standard
deviation over the seeds; Δ: the difference of the means from the authors' code; CPU
s, wall s and load as above; × CPU: the row's CPU seconds over the authors'."""


def render_grw(records: list[dict]) -> list[str]:
    """The GRW section of ``parity.md``: its lines (none without GRW records)."""
    if not records:
        return []
    groups = {k: sorted((r for r in records if r["key"] == k), key=lambda r: r["seed"])
              for k in GRW_LABELS}
    reference = groups[GRW_AUTHORS]
    metrics = ("mSA", "mUA", "mH")
    ref = {m: statistics.mean(r[m] for r in reference) for m in (*metrics, "cpu_s")} \
        if reference else None
    lines = ["", f"## GRW: continual, `grw` protocol, first {GRW_TASKS} tasks x {GRW_EPOCHS} "
             "epochs", "", GRW_INTRO, "",
             "| run | seeds | mSA | mUA | mH | ΔmSA | ΔmUA | ΔmH | CPU s | × CPU | wall s | "
             "load |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, runs in groups.items():
        if not runs:
            continue
        delta = ["–"] * 4 if ref is None or key == GRW_AUTHORS else [
            *(f"{statistics.mean(r[m] for r in runs) - ref[m]:+.1f}" for m in metrics),
            f"{statistics.mean(r['cpu_s'] for r in runs) / ref['cpu_s']:.3f}"]
        loads = [x for r in runs for x in r["load"]]
        lines.append(
            f"| {GRW_LABELS[key]} | {', '.join(str(r['seed']) for r in runs)} | "
            + " | ".join(_mean([r[m] for r in runs]) for m in metrics)
            + f" | {' | '.join(delta[:3])} | {_mean([r['cpu_s'] for r in runs], 0)} | "
            f"{delta[3]} | {_mean([r['wall_s'] for r in runs], 0)} | "
            f"{min(loads):.1f}–{max(loads):.1f} |")
    if reference:
        lines += ["", "The authors' code, per task (SA / UA / H, %):", "",
                  "| seed | " + " | ".join(f"task {t + 1}" for t in range(GRW_TASKS)) + " |",
                  "|---|" + "---|" * GRW_TASKS]
        lines += [f"| {r['seed']} | " + " | ".join(
            f"{st['SA']:.1f} / {st['UA']:.1f} / {st['H']:.1f}" for st in r["steps"]) + " |"
            for r in reference]
    lines += ["", PROSE["GRW_FINDINGS"], "", PROSE["GRW_DIFFERENCES"]]
    lines += ["", "GRW's code ran as `python main.py "
              + " ".join(a.format(epochs=GRW_EPOCHS, seed="SEED", root="XLSA17")
                         for a in GRW_ARGS)
              + "` (its README's command with the epochs, seed and data folder set; "
              "`--dataset CUB` makes its `main.py` take CUB's task sizes and best "
              "hyper-parameters: creative weight 1, GRW creative weight 2, 5 walk steps, "
              "decay 0.7), from a copy of its `src/` files with these edits, made at run "
              "time (nothing of theirs is stored here):", ""]
    for file, what, old, new, count in GRW_EDITS:
        what, new = what.format(tasks=GRW_TASKS), new.format(tasks=GRW_TASKS)
        times = "" if count == 1 else f" (all {count})"
        if "\n" in new.strip("\n"):
            body = new[len(old):].strip("\n").split("\n")
            lines += [f"* `{file}`, {what}: after `{old.strip()}`, this helper:", "",
                      "  ```python", *(f"  {x}" if x else "" for x in body), "  ```"]
        else:
            lines.append(f"* `{file}`, {what}: `{old}`{times} → "
                         + (f"`{new}`" if new else "removed"))
    lines += ["", "The `.cuda()` edits leave the `device=\"cuda\"` of the learnable-dictionary "
              "branch alone: that branch does not run with interpolated attributes. "
              "All the random numbers GRW's training and test draw come from torch, seeded "
              "by its `--seed` (its split has a fixed `random_state`; the numpy shuffles of "
              "its `data.py` are in functions `main.py` does not call)."]
    return lines


#: the field table's methods compared with their authors' code: method -> (the runner in
#: ``benchmarks/authors/``, how the page names it). A runner prints one JSON line per run
#: (its side, seed, mSA / mUA / mH, CPU seconds); ``--field METHOD FILE COMMAND`` adds
#: those lines to the record, with the command that printed them.
FIELD = {"grw": ("benchmarks.authors.grw", "GRW complete (`grw`), its `beta` branch"),
         "dvgr": ("benchmarks.authors.dvgr", "DVGR-CZSL (`dvgr`)"),
         "tfgczsl": ("benchmarks.authors.tfgczsl", "Tf-GCZSL, task-agnostic (`tfgczsl`)"),
         "aczsl": ("benchmarks.authors.aczsl", "A-CZSL (`aczsl`)")}


def field_records(method: str, lines: list[str], command: str) -> list[dict]:
    """The records of a :data:`FIELD` runner's JSON lines."""
    if method not in FIELD:
        raise SystemExit(f"--field {method}: not one of {', '.join(FIELD)}")
    out = []
    for n, line in enumerate(x for x in lines if x.strip().startswith("{")):
        run = json.loads(line)
        side = run.get("side") or ("czsl" if str(run.get("key", "")).startswith("czsl")
                                   else "authors")
        missing = [k for k in ("seed", "mSA", "mUA", "mH", "cpu_s") if k not in run]
        if missing:
            raise SystemExit(f"--field {method}: JSON line {n + 1} lacks {missing}")
        variant = run.get("hallucination", "")
        out.append({"key": f"field:{method}:{side}:{variant}", "method": method, "side": side,
                    "variant": variant, "seed": run["seed"], "command": command,
                    **{k: run[k] for k in ("mSA", "mUA", "mH", "cpu_s")}})
    return out


def render_field(records: list[dict]) -> list[str]:
    """The field methods' section of ``parity.md`` (none without their records)."""
    if not records:
        return []
    lines = ["", "## The field table's methods beside their authors' code", "",
             PROSE["FIELD_INTRO"], "",
             "| method | variant | code | seeds | mSA | mUA | mH | CPU s | × CPU |",
             "|---|---|---|---|---|---|---|---|---|"]
    for method, (_, label) in FIELD.items():
        mine = [r for r in records if r["method"] == method]
        for variant in sorted({r["variant"] for r in mine}):
            sides = {side: sorted((r for r in mine if r["variant"] == variant
                                   and r["side"] == side), key=lambda r: r["seed"])
                     for side in ("authors", "czsl")}
            ref = statistics.mean(r["cpu_s"] for r in sides["authors"]) \
                if sides["authors"] else None
            for side, runs in sides.items():
                if not runs:
                    continue
                ratio = "–" if ref is None or side == "authors" else \
                    f"{statistics.mean(r['cpu_s'] for r in runs) / ref:.2f}"
                lines.append(f"| {label} | {variant or '–'} | "
                             f"{'the authors' if side == 'authors' else 'czsl'} | "
                             f"{', '.join(str(r['seed']) for r in runs)} | "
                             + " | ".join(_mean([r[m] for r in runs]) for m in
                                          ("mSA", "mUA", "mH"))
                             + f" | {_mean([r['cpu_s'] for r in runs], 0)} | {ratio} |")
    lines += ["", PROSE["FIELD_FINDINGS"], "", "Each row's runs were printed by:", ""]
    lines += [f"* `{c}`" for c in dict.fromkeys(r["command"] for r in records)]
    return lines


def render(records: list[dict], commands: list[str]) -> str:
    """The markdown of ``parity.md``."""
    field = [r for r in records if "method" in r]
    records = [r for r in records if "method" not in r]
    keys = [AUTHORS, *CZSL_RUNS,
            *sorted({r["key"] for r in records} - set(LABELS) - set(GRW_LABELS))]
    groups = {k: [r for r in records if r["key"] == k] for k in keys}
    reference = groups.get(AUTHORS) or []
    ref = {m: statistics.mean(r[m] for r in reference) for m in ("u", "s", "H")} \
        if reference else None
    lines = ["# Parity with the authors' code (CUB)", "",
             "**SEMI-SYNTHETIC.** Real CUB metadata (attributes, class names, proposed split, "
             "per-image labels) with features synthesised from the attributes at the real size "
             "(11,788 x 2048, feature seed 0), written once as a genuine xlsa17 folder "
             "(`czsl.data.write_xlsa17`) that both sides read. The figures are not real-feature "
             "figures; what they compare is the two codes on identical data.", "",
             "## ClassNorm: static ZSL", "",
             "GZSL u / s / H and ZSL top-1 are per-class mean accuracies (%), mean ± standard "
             "deviation over the seeds; Δ is the difference of the means from the authors' "
             "notebook. CPU s: user + system seconds of the run's whole process (reading the "
             "data included), one torch thread; load: the machine's 1-minute load average "
             "before / after the runs (other jobs shared its cores).", "",
             "| run | seeds | ZSL | u | s | H | Δu | Δs | ΔH | CPU s | wall s | load |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, runs in groups.items():
        if not runs:
            continue
        runs = sorted(runs, key=lambda r: r["seed"])
        delta = ["–"] * 3 if ref is None or key == AUTHORS else [
            f"{statistics.mean(r[m] for r in runs) - ref[m]:+.1f}" for m in ("u", "s", "H")]
        loads = [x for r in runs for x in r["load"]]
        lines.append(
            f"| {LABELS.get(key, key)} | {', '.join(str(r['seed']) for r in runs)} | "
            + " | ".join(_mean([r[m] for r in runs]) for m in ("zsl", "u", "s", "H"))
            + f" | {' | '.join(delta)} | {_mean([r['cpu_s'] for r in runs], 0)} | "
            f"{_mean([r['wall_s'] for r in runs], 0)} | {min(loads):.1f}–{max(loads):.1f} |")
    lines += ["", PROSE["FINDINGS"]]
    lines += ["", "The authors' code ran with these edits, made at run time to the code cells "
              f"of `{NOTEBOOK}` (nothing of theirs is stored here):", ""]
    lines += [f"* {what}: `{old}` → `{new.format(seed='SEED', root='XLSA17')}`"
              for what, old, new in NOTEBOOK_EDITS]
    lines += ["", "XLSA17 is the folder written here; SEED the row's seed. The download "
              "cell (`%%bash`) is skipped: the data are already there."]
    lines += render_grw([r for r in records if r["key"] in GRW_LABELS])
    lines += render_field(field)
    lines += ["", "Every run's figures are kept in `benchmarks/parity.json`, which the "
              "commands below added to; `python -m benchmarks.parity --render` renders this "
              "page from it.", "", "Commands (with `nice -n 10`, `OMP_NUM_THREADS=1`):", ""]
    lines += [f"* `{c}`" for c in commands]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--classnorm", type=Path, metavar="CHECKOUT",
                        help="a checkout of github.com/universome/class-norm")
    parser.add_argument("--grw", type=Path, metavar="CHECKOUT",
                        help="a checkout of github.com/wx-zhang/IGCZSL (branch main)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--runs", nargs="*", choices=ALL_RUNS,
                        help="runs to do (default: all)")
    parser.add_argument("--render", action="store_true",
                        help="run nothing: render the page from the record")
    parser.add_argument("--record", type=Path, default=RECORD,
                        help="the JSON record runs are added to and the page rendered from")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "parity.md")
    parser.add_argument("--field", nargs=3, metavar=("METHOD", "FILE", "COMMAND"),
                        help="add the JSON lines a benchmarks/authors runner printed (FILE) "
                             "with the COMMAND that printed them, then render")
    parser.add_argument("--notebook", nargs=3, metavar=("CHECKOUT", "ROOT", "SEED"),
                        help=argparse.SUPPRESS)  # the child process of one authors' run
    args = parser.parse_args(argv)
    if args.notebook:
        run_notebook(Path(args.notebook[0]), Path(args.notebook[1]), int(args.notebook[2]))
        return 0

    records, commands = read_record(args.record)
    if args.field:
        method, file, command = args.field
        added = field_records(method, Path(file).read_text().splitlines(), command)
        done = {(r["key"], r["seed"]) for r in added}
        records = [r for r in records if (r["key"], r["seed"]) not in done] + added
        save_record(args.record, records, commands)
        args.render = True
    keys = [] if args.render else list(args.runs if args.runs is not None else ALL_RUNS)
    for authors, checkout, flag in [(AUTHORS, args.classnorm, "--classnorm"),
                                    (GRW_AUTHORS, args.grw, "--grw")]:
        if authors in keys and checkout is None:
            if args.runs is not None:
                parser.error(f"--runs {authors} needs {flag} CHECKOUT")
            keys.remove(authors)
    command = (f"python -m benchmarks.parity --data-dir {os.path.relpath(args.data_dir, ROOT)}"
               + (" --classnorm CHECKOUT" if AUTHORS in keys else "")
               + (" --grw CHECKOUT" if GRW_AUTHORS in keys else "")
               + f" --seeds {' '.join(map(str, args.seeds))} --runs {' '.join(keys)}")
    if keys:
        commands = [*commands, command]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if keys:
            from czsl.data import load_dataset, write_xlsa17  # only when something runs

            data = load_dataset("CUB", args.data_dir, features="semi-synthetic", seed=0)
            write_xlsa17(data, work / "xlsa17" / "data" / "CUB")
        for key in keys:
            for seed in args.seeds:
                if key == AUTHORS:
                    record = run_authors(args.classnorm.resolve(), work / "xlsa17", seed, work)
                elif key == GRW_AUTHORS:
                    record = run_grw(args.grw.resolve(), work / "xlsa17", seed, work)
                elif key in GRW_CZSL_RUNS:
                    record = run_czsl_grw(key, work / "xlsa17", seed, work)
                else:
                    record = run_czsl(key, work / "xlsa17", seed, work)
                record.update(key=key, seed=seed)
                records = [r for r in records if (r["key"], r["seed"]) != (key, seed)]
                records.append(record)
                figures = ("u", "s", "H") if "H" in record else ("mUA", "mSA", "mH")
                print(f"{key} seed {seed}: "
                      + " ".join(f"{m} {record[m]:.1f}" for m in figures)
                      + f" CPU {record['cpu_s']:.0f} s", file=sys.stderr, flush=True)
                save_record(args.record, records, commands)
    text = render(records, commands)
    print(text)
    atomic_write_text(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
