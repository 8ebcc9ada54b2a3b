"""Wall time, peak memory and overheads of full continual runs (issue 8, "Performance").

What it measures, each figure written to ``--out`` as markdown:

* **End-to-end runs** of ``scenarios/cub_czsl.toml`` (GRW protocol, 20 tasks, ClassNorm
  attribute embedder, no regularizer) and ``scenarios/sun_czsl.toml`` (15 tasks): the wall
  time of :func:`czsl.run.run_scenario` (data to ``results.json``), the peak resident
  memory (``ru_maxrss``) and the import time of torch, Avalanche and czsl, each run in a
  fresh child process. The run's time is broken down into data loading, setup (model and
  plugins), training, testing, metrics, each observer of the run (divergence check,
  TensorBoard, progress bar, checkpoint) and the results, as the run itself reports them
  in :attr:`czsl.run.RunResult.timings` (see :data:`PARTS`); *other* is the rest of the
  wall time, so the parts add up to it.
* **Avalanche's overhead**: the same training steps (same model, tasks, optimizer, batch
  size, epochs and masked loss) done by ``ZSLLearner.train_task`` and by a plain torch
  loop, task by task in turns in one process, as a ratio (target: at most 1.5x).
* **Regularizer overhead**: the training time of EWC-online, MAS and A-GEM over
  sequential fine-tuning on CUB, interleaved the same way, as ratios.
* **Start-up** of ``czsl --help`` and ``czsl plugins`` (best of several; target under 1 s)
  and the **load time** of the CUB ``.npz`` (target under 2 s): ``czsl.data.read_npz`` of a
  full-size features archive written by ``write_npz`` to a temporary folder.
* **A profile** (cProfile) of the CUB run: the top functions and where the time goes.

    python -m benchmarks.speed --threads 1     # -> benchmarks/speed.md (~8 min, 2 CPUs)
    python -m benchmarks.speed --quick --threads 1 --out quick.md   # smoke test, synthetic
    python -m benchmarks.speed --device cuda   # on a GPU; the markdown names it

(from the repository root: ``benchmarks`` is a package).

``--data-dir`` (default ``../shared/data``) holds ``CUB_meta.npz`` / ``SUN_meta.npz``:
the runs then use **semi-synthetic** features (real metadata, features synthesised from
the attributes at the real size), and the markdown says so. ``--quick`` replaces CUB and
SUN by the built-in synthetic scenario with one epoch, and needs no data.

Absolute times depend on whatever else the machine runs: the load average before and
after every measured part is written beside it, and the verdicts on Avalanche's
overhead rest on ratios of times taken in turns in one process.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import re
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

from benchmarks._common import ROOT, cpu_model, load_avg

#: Key of :attr:`czsl.run.RunResult.timings` -> the part of a run it holds, in the order
#: of the report. The loss logger (one TensorBoard scalar per iteration) is an Avalanche
#: plugin of the learner, so its time is in training; metrics computed for an observer
#: are in metrics, not in that observer.
PARTS = {
    "data": "data loading (read, split into tasks)",
    "setup": "setup (model, plugins, learner)",
    "training": "training (Avalanche loop, plugins, per-iteration loss logging)",
    "testing": "testing (czsl.predict over the test set)",
    "metrics": "metrics (for the TensorBoard step and the progress bar)",
    "divergence check": "divergence check (observer)",
    "tensorboard": "TensorBoard step logging: scalars, figures (observer)",
    "progress": "progress bar (observer, disabled here)",
    "checkpoint": "checkpointing (observer)",
    "results": "results (results.json, TensorBoard hparams)",
}
#: The wall time no part of :data:`PARTS` holds.
OTHER = ("other (run folder, scenario.toml, TensorBoard writer opened and closed, "
         "checkpoint removed)")


def breakdown(timings: dict[str, float], wall: float) -> dict[str, float]:
    """A run's seconds per part: each :data:`PARTS` key (0 where the run had none), any
    further key of ``timings`` (a new observer) as it is, and ``"other"``, the rest of
    ``wall``, so the parts add up to ``wall``."""
    parts = {key: float(timings.get(key, 0.0)) for key in PARTS}
    parts.update({key: float(v) for key, v in timings.items() if key not in PARTS})
    parts["other"] = wall - sum(parts.values())
    return parts


def part_label(key: str) -> str:
    """The report's label of a :func:`breakdown` key."""
    return PARTS.get(key, OTHER if key == "other" else f"{key} (observer)")


#: The regularizers compared with sequential fine-tuning (``none``) on CUB.
REGULARIZERS = ["none", "ewc_online", "mas", "agem"]

#: Profile groups: label -> (file, function) pairs whose cumulative times add up; a file
#: ending in ``/`` is a package (any of its modules; for names unique in czsl, so a
#: module split leaves the group whole).
PROFILE_GROUPS = {
    "model forward (AttributeModel.forward, training and testing)":
        [("czsl/models.py", "forward")],
    "  of which the attribute embedder over the visible classes (prototypes)":
        [("czsl/models.py", "prototypes")],
    "backward (torch autograd)": [("torch/autograd/__init__.py", "backward")],
    "optimizer step (torch Adam / SGD)": [("torch/optim/adam.py", "step"),
                                          ("torch/optim/sgd.py", "step")],
    "masked loss (MaskedCrossEntropy.forward)": [("czsl/learner.py", "forward")],
    "batch fetching: per-sample __getitem__ + collate (DataLoader)":
        [("torch/utils/data/dataloader.py", "_next_data")],
    "TensorBoard figures (czsl.figures: Heatmap, SeenUnseenCurve)":
        [("czsl/figures.py", "pixels")],
    "log_step in all (figures, scalars, event files)": [("czsl/", "log_step")],
    "checkpoints (czsl.checkpoint: learner state pickled, files written)":
        [("czsl/checkpoint.py", "dump_learner_state"),
         ("czsl/checkpoint.py", "save_checkpoint")],
    "metrics (run_metrics, seen_unseen_curve)": [("czsl/metrics.py", "run_metrics"),
                                                 ("czsl/metrics.py", "seen_unseen_curve")],
    "data loading (load_dataset, build_stream)": [("czsl/data/__init__.py", "load_dataset"),
                                                  ("czsl/streams.py", "build_stream")],
}

#: What a top profile entry is, by (file suffix or builtin text, function); first match.
MEANINGS = [
    (("", "run_backward"), "autograd backward pass of the model and loss"),
    (("", "_nn.linear"), "Linear layers: the attribute embedder (and image embedder, if any)"),
    (("", "batch_norm"), "ClassNorm / batch-norm layers of the attribute embedder"),
    (("czsl/models.py", "forward"), "scaled cosine logits; invisible classes set to minus "
                                    "infinity (tensor indexing is counted here)"),
    (("czsl/models.py", "prototypes"), "embeds the visible classes' attributes (masked "
                                       "gather counted here)"),
    (("torch/optim/adam.py", ""), "Adam update, a Python loop over the parameters"),
    (("", "method 'sqrt'"), "Adam update (per-parameter kernels)"),
    (("", "method 'lerp_'"), "Adam update (per-parameter kernels)"),
    (("", "method 'addcdiv_'"), "Adam update (per-parameter kernels)"),
    (("", "method 'addcmul_'"), "Adam update (per-parameter kernels)"),
    (("", "method 'mul_'"), "Adam update (per-parameter kernels)"),
    (("", "method 'add_'"), "Adam update / gradient accumulation"),
    (("", "method 'add'"), "Adam update (per-parameter kernels)"),
    (("", "posix.fsync"), "durable writes: checkpoints, results.json, scenario.toml"),
    (("czsl/data/synthetic.py", "synthesise_features"), "semi-synthetic feature synthesis "
                                                        "(data loading)"),
    (("torch/utils/data/dataset.py", ""), "per-sample TensorDataset access (one call per "
                                          "image and batch)"),
    (("avalanche/benchmarks/utils", ""), "Avalanche dataset: per-sample access through its "
                                         "dataset layers"),
    (("torch/utils/data/_utils/collate.py", ""), "collating single samples into a batch"),
    (("avalanche/", ""), "Avalanche template / plugin dispatch"),
    (("matplotlib", ""), "TensorBoard figures drawn with matplotlib"),
    (("ImagingEncoder", ""), "PNG encoding of the TensorBoard figures"),
    (("", "ft2font"), "TensorBoard figures: text rendering"),
    (("czsl/metrics.py", ""), "czsl metrics"),
    (("", "torch.stack"), "stacking samples / logits (collate, metrics)"),
    (("", "cross_entropy"), "the masked cross-entropy"),
    (("", "masked_fill"), "the masked cross-entropy's task mask"),
    (("", "torch.relu"), "ReLU of the attribute embedder"),
    (("", "vector_norm"), "L2 normalisation of features and prototypes"),
    (("torch/nn/functional.py", "normalize"), "L2 normalisation of features and prototypes"),
    (("copy.py", "deepcopy"), "deep copies (matplotlib artists, Avalanche datasets)"),
    (("", "isinstance"), "type checks (Avalanche datasets, collate, matplotlib)"),
    (("", "pickle"), "pickling checkpoint state"),
    (("", "posix.replace"), "atomic renames of written files"),
]


# --------------------------------------------------------------------------- helpers

def peak_rss_mib() -> float:
    """This process's peak resident set size so far, in MiB (Linux: KiB; macOS: bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2 ** 20 if sys.platform == "darwin" else 2 ** 10)


def rel(path: Path) -> str:
    """``path`` relative to the repository root where it lies below it, else as given."""
    path = Path(path)
    if path.resolve().is_relative_to(ROOT):
        return path.resolve().relative_to(ROOT).as_posix()
    return str(path)


# --------------------------------------------------------------------- child processes

def timed_imports() -> dict[str, float]:
    """Import torch, then Avalanche's templates, then czsl's run module; seconds each."""
    import warnings
    warnings.filterwarnings("ignore")  # Avalanche: "no QP solver found" and friends
    out = {}
    start = time.perf_counter()
    import torch  # noqa: F401
    out["torch"] = time.perf_counter() - start
    start = time.perf_counter()
    import avalanche.training.templates  # noqa: F401
    out["avalanche"] = time.perf_counter() - start
    start = time.perf_counter()
    import czsl.run  # noqa: F401
    out["czsl"] = time.perf_counter() - start
    return out


def child_setup(job: dict) -> tuple[dict, Any]:
    """Common start of a child: imports timed, threads set, device checked."""
    imports = timed_imports()
    import torch
    default_threads = torch.get_num_threads()
    if job.get("threads"):
        torch.set_num_threads(int(job["threads"]))
    device = torch.device(job["device"])
    facts = {"imports_s": imports, "rss_after_imports_mib": peak_rss_mib(),
             "torch": torch.__version__, "threads": torch.get_num_threads(),
             "default_threads": default_threads,
             "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                             else cpu_model())}
    return facts, device


def scenario_of(job: dict, extra: list[str] = ()):
    from czsl.config import load_scenario
    return load_scenario(ROOT / job["scenario"],
                         [*job["overrides"], f"device={job['device']}", *extra])


def child_run(job: dict) -> dict:
    """One end-to-end run: wall time, its parts (:func:`breakdown`), peak memory."""
    facts, device = child_setup(job)
    import torch
    from czsl.run import run_scenario

    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    scenario = scenario_of(job)
    load_start = load_avg()
    with tempfile.TemporaryDirectory() as runs:
        sync()
        start = time.perf_counter()
        result = run_scenario(scenario, data_dir=job["data_dir"] and Path(job["data_dir"]),
                              runs_dir=Path(runs), progress=False, echo=lambda _: None)
        sync()
        wall = time.perf_counter() - start
    res = result.results
    return {**facts, "wall_s": wall, "parts": breakdown(result.timings, wall),
            "peak_rss_mib": peak_rss_mib(),
            "cuda_peak_mib": (torch.cuda.max_memory_allocated(device) / 2 ** 20
                              if device.type == "cuda" else None),
            "dataset": res["dataset"], "n_tasks": res["n_tasks"], "n_test": res["n_test"],
            "mH": res["summary"].get("mH"), "load_start": load_start, "load_end": load_avg()}


def train_tensors(stream, step: int, device):
    """Task ``step``'s training features and labels, read once from the Avalanche stream."""
    from torch.utils.data import DataLoader
    data = stream.benchmark.train_stream[step].dataset
    x, y, *_ = next(iter(DataLoader(data, batch_size=len(data), shuffle=False)))
    return x.to(device), y.to(device)


def plain_task(model, optimizer, criterion, x, y, mask, *, epochs: int, batch_size: int,
               loader: bool) -> int:
    """Train on one task with a plain torch loop; return the number of iterations.

    :param loader: batches from ``DataLoader(TensorDataset(x, y), shuffle=True)`` (per
        sample access and collate, as most torch code does) instead of slicing the tensors
        with a shuffled index.
    """
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    model.train()
    model.set_visible_classes(mask)
    device = next(model.parameters()).device
    iterations = 0
    for _ in range(epochs):
        if loader:
            batches = ((xb.to(device), yb.to(device)) for xb, yb in DataLoader(
                TensorDataset(x.cpu(), y.cpu()), batch_size=batch_size, shuffle=True))
        else:
            order = torch.randperm(y.shape[0], device=y.device)
            batches = ((x[idx], y[idx]) for idx in order.split(batch_size))
        for xb, yb in batches:
            optimizer.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            optimizer.step()
            iterations += 1
    return iterations


def meaning(label: str) -> str:
    """What the profile entry ``label`` (``path:line(function)``) is, from
    :data:`MEANINGS`; ``""`` if none of them matches."""
    for (where, func), text in MEANINGS:
        if where in label and func in label:
            return text
    return ""


def in_group(path: str, func: str, keys: list[tuple[str, str]]) -> bool:
    """Whether cProfile's ``(path, func)`` is one of a :data:`PROFILE_GROUPS` group's
    ``(file, function)`` keys (a file ending in ``/``: any module of that package)."""
    path = path.replace(os.sep, "/")
    return any(fn == func and (f"/{where}" in path if where.endswith("/")
                               else path.endswith(where)) for where, fn in keys)


def profile_summary(profiler, top: int) -> dict:
    """Top entries by own time, and the :data:`PROFILE_GROUPS`, from a cProfile run."""
    import pstats
    stats = pstats.Stats(profiler).stats
    total = max((ct for (_, _, fn), (_, _, _, ct, _) in stats.items()
                 if fn == "run_scenario"), default=0.0)

    def name(key) -> str:
        path, line, func = key
        if path == "~":  # a builtin: the function says what it is
            return func
        path = path.replace(os.sep, "/")
        if "site-packages/" in path:
            path = path.split("site-packages/", 1)[1]
        elif Path(path).is_relative_to(ROOT):
            path = Path(path).relative_to(ROOT).as_posix()
        else:  # the standard library
            path = re.sub(r"^.*/lib/python[0-9.]+/", "", path)
        return f"{path}:{line}({func})"

    entries = sorted(stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    rows = [{"function": name(k), "calls": v[1], "own_s": v[2], "cum_s": v[3],
             "meaning": meaning(name(k))} for k, v in entries]
    groups = {}
    for label, keys in PROFILE_GROUPS.items():
        groups[label] = sum(ct for (path, _, fn), (_, _, _, ct, _) in stats.items()
                            if in_group(path, fn, keys))
    own = defaultdict(float)
    for (path, _, _), (_, _, tt, _, _) in stats.items():
        path = path.replace(os.sep, "/")
        kind = ("avalanche" if "/avalanche/" in path else "czsl" if "/czsl/" in path
                else "matplotlib" if "/matplotlib/" in path else None)
        if kind:
            own[kind] += tt
    return {"total_s": total, "top": rows, "groups": groups, "own_s": dict(own)}


def child_training(job: dict) -> dict:
    """Avalanche vs plain torch, and the regularizers, trained task by task in turns; then
    the thread check and the profile."""
    facts, device = child_setup(job)
    import copy

    import torch
    from czsl.build import build_run, make_optimizer
    from czsl.learner import MaskedCrossEntropy
    from czsl.run import run_scenario

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    data_dir = job["data_dir"] and Path(job["data_dir"])
    quiet = lambda _: None  # noqa: E731
    runs, plain = {}, {}  # regularizer -> BuiltRun (its learner: no loss logger)
    for reg in job["regularizers"]:
        runs[reg] = build_run(scenario_of(job, [f"regularizer={reg}"]), data_dir=data_dir,
                              echo=quiet)
    base = runs[job["regularizers"][0]]
    for variant in ("plain torch, sliced batches", "plain torch, DataLoader"):
        model = copy.deepcopy(base.model)  # the same initial weights
        plain[variant] = (model, make_optimizer(base.scenario.train, model.parameters()))
    cfg, stream = base.scenario.train, base.stream
    criterion = MaskedCrossEntropy(base.view, cfg.loss_classes).to(device)
    n_tasks = stream.n_tasks if job["tasks"] is None else min(job["tasks"], stream.n_tasks)

    variants = [*(f"avalanche:{reg}" for reg in runs), *plain]
    seconds = defaultdict(float)
    iterations = defaultdict(int)
    load_start = load_avg()
    for step in range(n_tasks):
        x, y = train_tensors(stream, step, device)
        mask = stream.seen_mask(step).to(device)
        for built in runs.values():  # the views (and base.view, the criterion's) at step
            built.start_task(step)
        shift = step % len(variants)  # turns rotate, so no variant always goes first
        for variant in variants[shift:] + variants[:shift]:
            sync()
            start = time.perf_counter()
            if variant.startswith("avalanche:"):
                learner = runs[variant.split(":", 1)[1]].learner
                before = learner.clock.train_iterations
                learner.train_task(step)
                done = learner.clock.train_iterations - before
            else:
                model, optimizer = plain[variant]
                done = plain_task(model, optimizer, criterion, x, y, mask, epochs=cfg.epochs,
                                  batch_size=cfg.batch_size, loader="DataLoader" in variant)
            sync()
            seconds[variant] += time.perf_counter() - start
            iterations[variant] += done
        print(f"speed:   training, task {step + 1}/{n_tasks} done", file=sys.stderr, flush=True)
    load_end = load_avg()
    out = {**facts, "train_s": dict(seconds), "iterations": dict(iterations),
           "n_tasks": n_tasks, "load_start": load_start, "load_end": load_end,
           "dataset": stream.dataset_label}

    # torch's default intra-op threads against one thread, on one epoch of task 0
    threads = torch.get_num_threads()
    if job["thread_check"] and facts["default_threads"] > 1 and device.type == "cpu":
        x, y = train_tensors(stream, 0, device)
        mask = stream.seen_mask(0).to(device)
        model, optimizer = plain["plain torch, sliced batches"]
        times = defaultdict(list)
        for _ in range(job["thread_repeats"]):
            for n in (1, facts["default_threads"]):
                torch.set_num_threads(n)
                start = time.perf_counter()
                plain_task(model, optimizer, criterion, x, y, mask, epochs=1,
                           batch_size=cfg.batch_size, loader=False)
                times[n].append(time.perf_counter() - start)
        torch.set_num_threads(threads)
        out["thread_check"] = {"1": min(times[1]),
                               str(facts["default_threads"]): min(times[facts["default_threads"]]),
                               "load": load_avg(), "repeats": job["thread_repeats"]}
    del runs, plain, base

    if job["profile"]:
        import cProfile
        profiler = cProfile.Profile()
        with tempfile.TemporaryDirectory() as runs:
            load_p = load_avg()
            profiler.enable()
            run_scenario(scenario_of(job), data_dir=data_dir, runs_dir=Path(runs),
                         progress=False, echo=quiet)
            profiler.disable()
        out["profile"] = {**profile_summary(profiler, job["profile_top"]),
                          "load_start": load_p, "load_end": load_avg()}
    return out


def child_main(kind: str, job: dict, result: Path) -> None:
    """Run one measurement in this (fresh) process and write its JSON to ``result``."""
    out = {"run": child_run, "training": child_training}[kind](job)
    result.write_text(json.dumps(out))


def run_child(kind: str, job: dict, what: str) -> dict:
    """Run :func:`child_main` in a fresh interpreter; its stderr passes through."""
    print(f"speed: {what} ...", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "benchmarks.speed", "--child", kind,
                               "--job", json.dumps(job), "--result", str(result)],
                              cwd=ROOT, stdout=subprocess.DEVNULL)
        if proc.returncode != 0 or not result.is_file():
            raise SystemExit(f"speed.py: the child measuring {what} failed "
                             f"(exit status {proc.returncode}); its error is above")
        out = json.loads(result.read_text())
    print(f"speed: {what}: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    return out


# ------------------------------------------------------------- measured in the parent

def best_of(command: list[str], repeats: int) -> float:
    """Best wall time of ``repeats`` runs of ``command`` (output discarded)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=True)
        times.append(time.perf_counter() - start)
    return min(times)


def czsl_command() -> list[str]:
    """The installed ``czsl`` console script beside this interpreter, else ``-m czsl.cli``."""
    script = Path(sys.executable).parent / "czsl"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "czsl.cli"]


def heavy_imports_of(argv: list[str]) -> str:
    """Which of torch / avalanche ``czsl <argv>`` imports (run in a fresh interpreter)."""
    code = ("import contextlib, io, sys\nfrom czsl.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n        main(" + repr(argv) + ")\n    except SystemExit:\n        pass\n"
            "print(','.join(m for m in ('torch', 'avalanche') if m in sys.modules) or 'none')")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    return proc.stdout.strip().splitlines()[-1] if proc.returncode == 0 else "?"


def measure_startup(repeats: int) -> list[dict]:
    """``czsl --help`` and ``czsl plugins`` against a bare interpreter."""
    rows = []
    load_start = load_avg()
    for label, command, argv in [
            ("python -c pass (interpreter alone, for scale)", [sys.executable, "-c", "pass"],
             None),
            ("czsl --help", [*czsl_command(), "--help"], ["--help"]),
            ("czsl plugins", [*czsl_command(), "plugins"], ["plugins"])]:
        rows.append({"label": label, "best_s": best_of(command, repeats),
                     "imports": heavy_imports_of(argv) if argv else "-"})
    for row in rows:
        row["load"] = [load_start, load_avg()]
    return rows


def measure_npz(datasets: list[tuple[str, Callable]], repeats: int) -> list[dict]:
    """For each ``(label, make)``: the time of ``make()`` (how czsl gets the data here) and
    of ``read_npz`` on the same dataset written to a temporary ``.npz`` by ``write_npz``."""
    from czsl.data import read_npz, write_npz
    rows = []
    for label, make in datasets:
        load_start = load_avg()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            dataset = make()
            times.append(time.perf_counter() - start)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{dataset.name}.npz"
            write_npz(dataset, path)
            size = path.stat().st_size
            reads = []
            for _ in range(repeats):
                start = time.perf_counter()
                again = read_npz(path)
                reads.append(time.perf_counter() - start)
        assert again.features.shape == dataset.features.shape
        rows.append({"label": label, "dataset": dataset.label, "make_s": min(times),
                     "read_s": min(reads), "size_mib": size / 2 ** 20,
                     "shape": f"{dataset.features.shape[0]:,} x {dataset.features.shape[1]}",
                     "load": [load_start, load_avg()]})
    return rows


# ------------------------------------------------------------------------- markdown

def fmt_load(pair) -> str:
    """``1.9 -> 2.1`` (1-minute load averages at start and end)."""
    return f"{pair[0][0]:.1f} -> {pair[1][0]:.1f}"


def pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f}" if whole > 0 else "-"


def render(facts: dict) -> str:
    """The markdown report of every measurement in ``facts``."""
    runs, training, startup, npz = (facts["runs"], facts["training"], facts["startup"],
                                    facts["npz"])
    first = runs[0]
    quick, device = facts["quick"], facts["device"]
    semi = any("semi-synthetic" in r["dataset"] for r in runs)
    lines = ["# czsl speed" + (" (QUICK smoke test: synthetic data, 1 epoch; not the real "
                               "figures)" if quick else ""), "",
             "Written by `python -m benchmarks.speed` (see `benchmarks/speed.py`'s docstring "
             "for what each figure is). "
             f"Command: `{facts['command']}`.", ""]
    if semi:
        lines += ["**Semi-synthetic features.** The CUB / SUN runs use the real metadata "
                  "(attributes, class names, splits, per-image labels) with image features "
                  "synthesised from the attributes at the real size (CUB 11,788 x 2048, SUN "
                  "14,340 x 2048), because the real xlsa17 `res101.mat` is not available "
                  "here. Sizes, and so times and memory, are those of the real benchmarks; "
                  "accuracies are not.", ""]
    lines += [f"**Shared, loaded machine.** Another long benchmark ran on this machine the "
              f"whole time, so absolute times are inflated and noisy. The 1-minute load "
              f"average ({facts['cpus']} CPUs) was {facts['load_start'][0]:.2f} at the start "
              f"and {facts['load_end'][0]:.2f} at the end (5 / 15 min: "
              f"{facts['load_start'][1]:.2f} / {facts['load_start'][2]:.2f} -> "
              f"{facts['load_end'][1]:.2f} / {facts['load_end'][2]:.2f}); each table gives the "
              "1-minute load average at the start and end of its measurement. The verdict on "
              "Avalanche's overhead, and the regularizer figures, are ratios of times taken "
              "task by task in turns in one process, so the load slows both sides alike.", "",
              f"Setup: torch {first['torch']}, avalanche-lib {facts['avalanche']}, czsl "
              f"{facts['czsl']}, Python {platform.python_version()}; device {device} "
              f"({first['device_name']}); {facts['cpus']} CPUs; torch threads "
              f"{first['threads']} (torch's default here: {first['default_threads']}).", ""]

    ratio = (training["train_s"]["avalanche:none"]
             / training["train_s"]["plain torch, sliced batches"])
    cub_npz = npz[0]
    help_row = next(r for r in startup if r["label"] == "czsl --help")
    plugins_row = next(r for r in startup if r["label"] == "czsl plugins")

    def verdict(ok: bool) -> str:
        return "met" if ok else "**missed**"

    lines += ["## Targets", "",
              "| target | measured | verdict | load avg |", "|---|---|---|---|",
              f"| Avalanche overhead over a plain torch loop, {training['dataset']} training "
              f"<= 1.5x | {ratio:.2f}x | {verdict(ratio <= 1.5)} (ratio) | "
              f"{fmt_load([training['load_start'], training['load_end']])} |",
              f"| `czsl --help` < 1 s | {help_row['best_s']:.2f} s | "
              f"{verdict(help_row['best_s'] < 1)} (absolute) | {fmt_load(help_row['load'])} |",
              f"| `czsl plugins` < 1 s | {plugins_row['best_s']:.2f} s | "
              f"{verdict(plugins_row['best_s'] < 1)} (absolute) | "
              f"{fmt_load(plugins_row['load'])} |",
              f"| read_npz of the {cub_npz['dataset']} features .npz < 2 s | "
              f"{cub_npz['read_s']:.2f} s | {verdict(cub_npz['read_s'] < 2)} (absolute) | "
              f"{fmt_load(cub_npz['load'])} |", ""]

    lines += ["## End-to-end runs", "",
              "Each run in a fresh child process: `run_scenario` from the scenario to "
              "`results.json` (TensorBoard events, checkpoints after every task), no progress "
              "bar. Peak memory is the child's `ru_maxrss` at the end (and right after the "
              "imports, for scale). Imports are timed before the run and not part of it.", "",
              "| run | scenario | tasks | wall (s) | peak RSS (MiB) | RSS after imports "
              "(MiB) | imports torch / avalanche / czsl (s) | mH | load avg |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        imp = r["imports_s"]
        cuda = (f" (+ {r['cuda_peak_mib']:.0f} MiB GPU)" if r.get("cuda_peak_mib") is not None
                else "")
        lines.append(f"| {r['dataset']} | `{r['scenario']}` | {r['n_tasks']} | "
                     f"{r['wall_s']:.1f} | {r['peak_rss_mib']:.0f}{cuda} | "
                     f"{r['rss_after_imports_mib']:.0f} | {imp['torch']:.2f} / "
                     f"{imp['avalanche']:.2f} / {imp['czsl']:.2f} | "
                     f"{'-' if r['mH'] is None else format(r['mH'], '.1f')} | "
                     f"{fmt_load([r['load_start'], r['load_end']])} |")
    lines += ["", "### Where the time of a run goes", "",
              "The parts the run itself reports (`RunResult.timings`: data and setup from "
              "`czsl.build.build_run`, then training, testing, each observer after every "
              "task, and the results; `PARTS` in `benchmarks/speed.py` says which holds "
              "what); *other* is the wall time none of them holds. Training includes "
              "Avalanche's loop and data loader, the plugins and the per-iteration loss "
              "logging (`LossLogger`, an Avalanche plugin of the learner); the metrics an "
              "observer asks for are counted under metrics, not under that observer."
              + (" On a GPU, kernels still running when a part ends are counted in the part "
                 "that next waits for them (the divergence check's read of the logits)."
                 if device == "cuda" else ""), "",
              "| part | " + " | ".join(f"{r['dataset']} (s) | %" for r in runs) + " |",
              "|---|" + "---|---|" * len(runs)]
    keys = list(dict.fromkeys(key for r in runs for key in r["parts"] if key != "other"))
    for key in [*keys, "other"]:
        lines.append(f"| {part_label(key)} | " + " | ".join(
            f"{r['parts'].get(key, 0.0):.2f} | {pct(r['parts'].get(key, 0.0), r['wall_s'])}"
            for r in runs) + " |")

    ts, its = training["train_s"], training["iterations"]
    plain_s = ts["plain torch, sliced batches"]
    lines += ["", f"## Avalanche vs a plain torch loop ({training['dataset']}, training)", "",
              f"The {training['n_tasks']} tasks trained task by task in turns in one process "
              "(the order rotates each task), each from the same initial model built by "
              "`czsl.build.build_run` (the `attribute_embedder` plugin), with the scenario's "
              "Adam (lr, weight decay), batch size, epochs and `MaskedCrossEntropy`, and "
              "`set_visible_classes(stream.seen_mask(step))` per task. The Avalanche side is "
              "the learner `build_run` builds, `ZSLLearner.train_task` after "
              "`BuiltRun.start_task`, with the regularizer's and replay's plugins only (none "
              "here; no loss logging, which `run_scenario` adds); the plain loops "
              "index the task's tensors with a shuffled permutation, or go through "
              "`DataLoader(TensorDataset)` as most torch code does.", "",
              "| loop | training (s) | iterations | ratio to plain (sliced) |",
              "|---|---|---|---|",
              f"| Avalanche `ZSLLearner.train_task` | {ts['avalanche:none']:.2f} | "
              f"{its['avalanche:none']} | {ratio:.2f} |"]
    for variant in ("plain torch, sliced batches", "plain torch, DataLoader"):
        lines.append(f"| {variant} | {ts[variant]:.2f} | {its[variant]} | "
                     f"{ts[variant] / plain_s:.2f} |")
    lines += ["", f"Load average: {fmt_load([training['load_start'], training['load_end']])}.",
              "", f"## Regularizer overhead ({training['dataset']}, training)", "",
              "Avalanche learners of the same scenario with `--set regularizer=NAME`, trained "
              "in the same turns as above (so `none` is the Avalanche row above). Training "
              "time includes each plugin's work between tasks (EWC's Fisher, MAS's "
              "importances, A-GEM's memory).", "",
              "| regularizer | training (s) | iterations | ratio to sequential (none) |",
              "|---|---|---|---|"]
    for reg in REGULARIZERS:
        key = f"avalanche:{reg}"
        if key in ts:
            lines.append(f"| {reg} | {ts[key]:.2f} | {its[key]} | "
                         f"{ts[key] / ts['avalanche:none']:.2f} |")
    if "thread_check" in training:
        tc = training["thread_check"]
        n = next(k for k in tc if k not in ("1", "load", "repeats"))
        lines += ["", "## Threads", "",
                  f"One epoch of task 0 in the plain loop, best of {tc['repeats']}, with "
                  f"torch's default {n} intra-op threads and with 1 (load average "
                  f"{tc['load'][0]:.1f}): "
                  f"{tc[n]:.3f} s vs {tc['1']:.3f} s, {tc[n] / tc['1']:.2f}x. On a machine "
                  "whose cores are busy with other work, torch's threads wait for each other "
                  "at every operation, so a run there is faster with `--threads 1` (this "
                  "script) or `torch.set_num_threads(1)`."]

    lines += ["", "## Start-up and data loading", "",
              "| command | best (s) | imports torch / avalanche | load avg |",
              "|---|---|---|---|"]
    for r in startup:
        lines.append(f"| `{r['label']}` | {r['best_s']:.3f} | {r['imports']} | "
                     f"{fmt_load(r['load'])} |")
    lines += ["", f"Best of {facts['startup_repeats']} runs each, in fresh interpreters.", "",
              "| data | features | how czsl gets them here (s) | read_npz of them (s) | "
              ".npz size (MiB) | load avg |", "|---|---|---|---|---|---|"]
    for r in npz:
        lines.append(f"| {r['dataset']} | {r['shape']} | {r['make_s']:.2f} ({r['label']}) | "
                     f"{r['read_s']:.2f} | {r['size_mib']:.0f} | {fmt_load(r['load'])} |")
    lines += ["", "The real xlsa17 `res101.mat` is not available here, so the realistic case, "
              "reading full-size features from disk, is timed on the same dataset written "
              "by `czsl.data.write_npz` to a temporary folder and read back with "
              "`czsl.data.read_npz` (best of "
              f"{facts['npz_repeats']}; the file was just written, so it is read from the "
              "page cache, not the disk)."]
    lines += memory_section()
    lines += render_profile(training.get("profile"), runs, training)
    return "\n".join(lines) + "\n"


def memory_section() -> list[str]:
    """"Memory against the number of tasks": where it is measured. This script measures
    no memory against the number of tasks; ``benchmarks/memory_scale.py`` does, on its
    own page, so its figures live in one place and go stale in none."""
    return ["", "## Memory against the number of tasks", "",
            "Measured by `benchmarks/memory_scale.py` on its own page, "
            "`benchmarks/memory_scale.md` (one epoch per task, `--threads 1`): peak RSS of a "
            "fresh child process and the checkpoint's size after every task, runs of more "
            "and more tasks. A run keeps each step's figures, not its test logits, and "
            "scores the logits in chunks of `train.eval_batch_size` samples, so neither "
            "grows by a step's logits (test samples x classes) per task."]


def render_profile(profile: dict | None, runs: list[dict], training: dict) -> list[str]:
    """The profile section: top entries, groups, what they mean, and the avoidable costs
    (with the unprofiled figures of the timed runs and loops beside the profiled ones)."""
    if not profile:
        return []
    run = runs[0]
    total = profile["total_s"]
    g = profile["groups"]
    share = {k: 100 * v / total for k, v in g.items()} if total > 0 else {k: 0 for k in g}
    keys = list(PROFILE_GROUPS)
    lines = ["", f"## Profile ({run['dataset']} run, cProfile)", "",
             f"`run_scenario` of `{run['scenario']}` under cProfile in the training child "
             f"(imports done before): {total:.1f} s (load average "
             f"{fmt_load([profile['load_start'], profile['load_end']])}). cProfile adds a "
             "cost per Python call, so Python-heavy code (matplotlib, per-sample dataset "
             "access) weighs more here than in the timed run above; torch kernels do not.",
             "", "Top entries by own time:", "",
             "| function | calls | own (s) | own % | cumulative (s) | what it is |",
             "|---|---|---|---|---|---|"]
    for row in profile["top"]:
        lines.append(f"| `{row['function']}` | {row['calls']} | {row['own_s']:.2f} | "
                     f"{pct(row['own_s'], total)} | {row['cum_s']:.2f} | {row['meaning']} |")
    lines += ["", "Groups (cumulative time; a group's time includes what it calls, so "
              "groups overlap: the forward pass runs in training and in evaluation):", "",
              "| group | cumulative (s) | % of run |", "|---|---|---|"]
    for label in keys:
        lines.append(f"| {label} | {g[label]:.2f} | {share[label]:.1f} |")
    own = profile["own_s"]
    lines += ["", f"Own time of the Python functions of Avalanche {own.get('avalanche', 0):.2f} s "
              f"({pct(own.get('avalanche', 0), total)} %), of czsl {own.get('czsl', 0):.2f} s "
              f"({pct(own.get('czsl', 0), total)} %; includes tensor operations czsl invokes "
              "by indexing or operators, which cProfile does not list separately), of "
              f"matplotlib {own.get('matplotlib', 0):.2f} s "
              f"({pct(own.get('matplotlib', 0), total)} %).",
              ""]
    compute = sum(share[k] for k in (keys[0], keys[2], keys[3]))
    ts = training["train_s"]
    avalanche, sliced = ts["avalanche:none"], ts["plain torch, sliced batches"]
    loader = ts["plain torch, DataLoader"]
    lines += [
        "**Where the time goes.** "
        f"The model's arithmetic takes {compute:.0f} % of the run"
        f"{' and dominates it' if compute >= 50 else ''}: the forward pass "
        f"{share[keys[0]]:.0f} % (of "
        f"which {share[keys[1]]:.0f} % is the attribute embedder, which ClassNorm's model "
        "runs over the attributes of every visible class at every mini-batch, since its "
        f"gradients train it), the backward pass {share[keys[2]]:.0f} % and the Adam step "
        f"{share[keys[3]]:.0f} %, all in torch kernels, which Avalanche does not touch "
        "and which grow with the number of visible classes (so "
        "SUN's later tasks cost more per mini-batch than CUB's). Of the rest, "
        f"`log_step` (the TensorBoard observer) takes {share[keys[7]]:.0f} %, of which the "
        "three "
        f"figures it draws per step take {share[keys[6]]:.0f} % (the accuracy and "
        "forgetting heatmaps and the seen-unseen curve); fetching batches through "
        f"Avalanche's dataset, one `__getitem__` per image plus collation, "
        f"{share[keys[5]]:.0f} %; checkpoints (pickling and fsync after every task) "
        f"{share[keys[8]]:.0f} %; the metrics {share[keys[9]]:.0f} %; and loading and "
        f"splitting the data {share[keys[10]]:.0f} %.",
        "",
        "**Avoidable costs** (shares of the profiled run, then of the unprofiled runs and "
        "loops above):",
        "",
        f"* TensorBoard figures: {share[keys[6]]:.0f} % of the profiled run "
        "(`log_step` -> `Heatmap.pixels`, `SeenUnseenCurve.pixels`: three figures "
        "drawn over a kept matplotlib frame and PNG-encoded after every task). "
        "Unprofiled, the TensorBoard observer (scalars and figures of each step) is "
        + ", ".join(f"{pct(r['parts']['tensorboard'], r['wall_s'])} % of the {r['dataset']} "
                    "run" for r in runs)
        + ".",
        f"* Per-sample batch fetching: {share[keys[5]]:.0f} % of the profiled run "
        "(Avalanche's data loader calls `__getitem__` once per image through its dataset "
        "layers over the `TensorDataset` that `czsl/streams.py` `build_stream` wraps, then "
        "collates; in training, and in `czsl.predict`'s `DataLoader` over the test features). "
        "Unprofiled, the Avalanche "
        f"training loop is {100 * (avalanche / sliced - 1):.0f} % slower than the plain "
        "loop that slices the task's tensors, and a plain `DataLoader` loop "
        f"{100 * (loader / sliced - 1):.0f} %; a batch sampler that indexes the tensors "
        "once per mini-batch would save at most that.",
        f"* Checkpoints: {share[keys[8]]:.0f} % of the profiled run (the checkpoint "
        "observer, `czsl.checkpoint`: pickling the learner's state and fsync of every file "
        "after each task); unprofiled "
        + ", ".join(f"{pct(r['parts']['checkpoint'], r['wall_s'])} % of the {r['dataset']} "
                    "run" for r in runs)
        + "; the price of resumable, crash-safe runs."]
    return lines


# --------------------------------------------------------------------- logging only

#: The heading of the section :func:`logging_only` writes (and replaces).
LOGGING_HEADING = "## Logging: the TensorBoard observer's share of a CUB run"


def logging_only(args, argv: list[str] | None, data_dir: Path) -> int:
    """``--logging-only``: the CUB run with its default epochs and with 1 epoch, each in a
    fresh child, the TensorBoard observer's seconds from :attr:`RunResult.timings`;
    the section :data:`LOGGING_HEADING` of ``--out`` is replaced (appended if absent)."""
    from datetime import datetime, timezone

    from czsl.runfolder import atomic_write_text

    common = {"data_dir": str(data_dir), "tasks": None, "device": args.device,
              "threads": args.threads, "scenario": "scenarios/cub_czsl.toml"}
    runs = []
    for label, overrides in (("default epochs", []), ("1 epoch", ["train.epochs=1"])):
        result = run_child("run", {**common, "overrides": overrides},
                           f"end-to-end run of scenarios/cub_czsl.toml, {label}")
        runs.append({**result, "label": label})
    shown = [a if a != str(args.out) else rel(args.out) for a in (argv or sys.argv[1:])]
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [LOGGING_HEADING, "",
             f"Rerun alone on {when} with `{recorded_command_of(shown)}` (the rest of the "
             "page is from the last full run): `scenarios/cub_czsl.toml` "
             f"({runs[0]['dataset']}, {runs[0]['n_tasks']} tasks), each run in a fresh "
             "child, the TensorBoard observer's time (each step's scalars, the three "
             "figures and their PNGs, the flush) as the run reports it in "
             "`RunResult.timings['tensorboard']`. Target: at most 10 % of the run. The "
             "logging shares above (end-to-end runs, profile) are from before the figures "
             "were drawn over a kept frame (issue 17).", "",
             "| run | wall (s) | TensorBoard observer (s) | % | training (s) | load avg |",
             "|---|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r['label']} | {r['wall_s']:.1f} | {r['parts']['tensorboard']:.2f} | "
                     f"{pct(r['parts']['tensorboard'], r['wall_s'])} | "
                     f"{r['parts']['training']:.1f} | "
                     f"{fmt_load([r['load_start'], r['load_end']])} |")
    section = "\n".join(lines) + "\n"
    page = args.out.read_text() if args.out.is_file() else ""
    atomic_write_text(args.out, replace_section(page, LOGGING_HEADING, section))
    print(section)
    return 0


def replace_section(page: str, heading: str, section: str) -> str:
    """``page`` with its section ``heading`` (up to the next ``## `` heading) replaced by
    ``section``, or with ``section`` appended where it has none."""
    if heading not in page:
        return page.rstrip("\n") + "\n\n" + section
    head, rest = page.split(heading, 1)
    after = rest.find("\n## ")
    return head + section + ("" if after < 0 else "\n" + rest[after + 1:])


def recorded_command_of(shown: list[str]) -> str:
    """The command line a page records for these arguments."""
    return shlex.join(["python", "-m", "benchmarks.speed", *shown])


# ------------------------------------------------------------------------------ main

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: the built-in synthetic scenario, 1 epoch, fewer "
                             "repeats (no data needed)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "speed.md",
                        help="the markdown to write (default: benchmarks/speed.md)")
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data",
                        help="folder with CUB_meta.npz / SUN_meta.npz (default: ../shared/data)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads in the measured processes (default: "
                             "torch's own choice)")
    parser.add_argument("--logging-only", action="store_true",
                        help="rerun only the CUB end-to-end run, with its default epochs and "
                             "with 1 epoch, and replace the page's section on logging "
                             "(the rest of --out is kept as it is)")
    parser.add_argument("--child", choices=("run", "training"), help=argparse.SUPPRESS)
    parser.add_argument("--job", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_main(args.child, json.loads(args.job), args.result)
        return 0

    from importlib import metadata

    import czsl
    from czsl.data import load_dataset, make_synthetic

    began = time.perf_counter()
    load_start = load_avg()
    data_dir = args.data_dir.resolve()
    if args.logging_only:
        return logging_only(args, argv, data_dir)
    if args.quick:
        measured = [("scenarios/synthetic.toml", ["train.epochs=1"])]
        common = {"data_dir": None, "tasks": None}
        npz_sets = [("make_synthetic", lambda: make_synthetic(seed=0))]
        repeats, npz_repeats, top, thread_repeats = 2, 2, 12, 1
    else:
        for name in ("CUB", "SUN"):
            if not (data_dir / f"{name}_meta.npz").is_file() and not (
                    data_dir / f"{name}.npz").is_file() and not (data_dir / name).is_dir():
                raise SystemExit(f"benchmarks.speed: no {name} data in {data_dir}; pass --data-dir "
                                 "(a folder with CUB_meta.npz / SUN_meta.npz), or --quick")
        measured = [("scenarios/cub_czsl.toml", []), ("scenarios/sun_czsl.toml", [])]
        common = {"data_dir": str(data_dir), "tasks": None}
        npz_sets = [(f"load_dataset: {name} metadata + synthesis",
                     functools.partial(load_dataset, name, data_dir))
                    for name in ("CUB", "SUN")]
        repeats, npz_repeats, top, thread_repeats = 5, 3, 15, 3
    common.update(device=args.device, threads=args.threads)

    runs = []
    for scenario, overrides in measured:
        job = {**common, "scenario": scenario, "overrides": overrides}
        result = run_child("run", job, f"end-to-end run of {scenario}")
        runs.append({**result, "scenario": scenario})
    scenario, overrides = measured[0]
    training = run_child("training", {**common, "scenario": scenario, "overrides": overrides,
                                      "regularizers": REGULARIZERS, "thread_check": True,
                                      "thread_repeats": thread_repeats,
                                      "profile": True, "profile_top": top},
                         f"training comparison and profile on {scenario}")
    print("speed: start-up and .npz reading ...", file=sys.stderr, flush=True)
    startup = measure_startup(repeats)
    npz = measure_npz(npz_sets, npz_repeats)

    shown = [a if a != str(args.out) else rel(args.out) for a in (argv or sys.argv[1:])]
    facts = {"quick": args.quick, "device": args.device, "runs": runs, "training": training,
             "startup": startup, "npz": npz, "startup_repeats": repeats,
             "npz_repeats": npz_repeats, "cpus": os.cpu_count(),
             "avalanche": metadata.version("avalanche-lib"), "czsl": czsl.__version__,
             "command": shlex.join(["python", "-m", "benchmarks.speed", *shown]),
             "load_start": load_start, "load_end": load_avg()}
    text = render(facts)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from czsl.runfolder import atomic_write_text  # the parent imports czsl lazily

    atomic_write_text(args.out, text)
    print(text)
    print(f"speed: wrote {args.out} in {time.perf_counter() - began:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
