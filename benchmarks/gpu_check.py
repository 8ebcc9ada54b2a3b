"""Check czsl on a GPU against the CPU in one command, and record it.

    python -m benchmarks.gpu_check --data-dir ../shared/data [--out benchmarks/gpu_check.md]

Run it on a machine with a CUDA device after a change to anything a GPU run goes
through (where tensors live, the metrics, a generator) and before quoting GPU figures;
it takes a few minutes on one GPU. Its parts, each a function of the device under test:

1. :func:`cuda_tests`: the tests that are skipped without CUDA (:data:`CUDA_TESTS`),
   by pytest in a subprocess; none may fail or be skipped.
2. :func:`cub_agreement`: a short CUB run (``scenarios/cub_czsl.toml``, :data:`CUB_SHORT`)
   on the device and the same run on the CPU; their summary metrics must agree within
   :data:`TOLERANCE`.
3. :func:`metrics_speed`: ``run_metrics`` on the device against the CPU, CUB- and
   SUN-sized (the runs and timing of :mod:`benchmarks.metrics_speed`).
4. :func:`fclswgan_full`: f-CLSWGAN's published schedule (``scenarios/cub_gzsl_fclswgan
   .toml``; its ``cpu_max_iterations`` caps only CPU fits), timed on the device.

The record (device, torch and CUDA versions, every figure, pass or fail) is written to
``--out``; the exit status is 0 if every part passed, else 1. Without CUDA it prints one
line, writes nothing and exits 2. ``--device-under-test cpu --quick`` runs every part on
the CPU against the CPU on tiny synthetic inputs: the test suite does, so that the
script cannot rot on machines without a GPU.
"""

from __future__ import annotations

import argparse
import datetime
import math
import platform
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import torch

from benchmarks._common import ROOT, cpu_model

#: the tests skipped without a CUDA device (tests/test_gpu_check.py finds them all)
CUDA_TESTS = ("tests/test_metrics.py::test_cuda_matches_cpu",)
#: a short CUB schedule: the first 10 of 20 tasks, 3 epochs each (~1 CPU minute)
CUB_SHORT = ["protocol.n_tasks=10", "train.epochs=3"]
#: ``--quick``: a small synthetic dataset instead of CUB, and short schedules
QUICK_DATA = ["data.dataset=synthetic", "data.synthesis.n_classes=20",
              "data.synthesis.n_unseen=5", "data.synthesis.samples_per_class=20",
              "train.epochs=1", "model.hidden_dims=[16]"]
QUICK_CUB = [*QUICK_DATA, "protocol.task_sizes=[5,5,5]"]
QUICK_GAN = [*QUICK_DATA, "generator.hidden=32", "generator.epochs=1",
             "generator.cls_epochs=1", "replay.replay_per_class=5"]
#: largest difference allowed between the device's and the CPU's summary metric, by unit.
#: The two runs differ only in float rounding: the model is built on the CPU and moved,
#: batches are drawn by CPU generators and nothing random is drawn on the device, but the
#: kernels sum in other orders. Rounding of ~1e-7 grows over thousands of Adam steps and
#: flips a few test predictions near a decision boundary; on CUB's grw split (~12 test
#: images per class) one flip moves a mean per-class accuracy by ~0.04 points. One point
#: (and 0.01 of forgetting, a fraction) leaves room for a few dozen flips per step, and is
#: an order below what a device bug (a mask or class set on the wrong side) moves.
TOLERANCE = {"percent": 1.0, "fraction": 0.01}
#: ``run_metrics`` on the device must agree with the CPU to this (benchmarks.metrics_speed)
METRICS_AGREE = 1e-4


def cuda_tests(device: torch.device, tests: tuple[str, ...] = CUDA_TESTS) -> dict:
    """Run ``tests`` with pytest in a subprocess; count them from its JUnit report.

    :returns: ``tests``, ``failures``, ``errors``, ``skipped``, ``seconds`` and ``ok``:
        none failed, and on a CUDA device none was skipped (on the CPU they skip).
    """
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "junit.xml"
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               f"--junitxml={report}", *tests], cwd=ROOT, capture_output=True,
                              text=True, check=False)
        if not report.is_file():
            return {"tests": 0, "failures": 0, "errors": 1, "skipped": 0, "seconds": 0.0,
                    "ok": False, "output": (proc.stdout + proc.stderr)[-2000:]}
        suite = ET.parse(report).getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
    ok = (proc.returncode == 0 and counts["tests"] > 0 and not counts["failures"]
          and not counts["errors"] and (device.type != "cuda" or not counts["skipped"]))
    return {**counts, "seconds": float(suite.get("time", 0)), "ok": ok,
            "output": "" if ok else (proc.stdout + proc.stderr)[-2000:]}


def _run(path: str, overrides: list[str], data_dir: Path | None) -> dict:
    """Run a scenario quietly in a throw-away folder: its results.json, with
    ``wall_s`` the seconds it took."""
    from czsl.config import load_scenario
    from czsl.run import run_scenario

    scenario = load_scenario(ROOT / path, overrides)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = run_scenario(scenario, data_dir=data_dir, runs_dir=Path(tmp), progress=False,
                              echo=lambda _: None)
        return {**result.results, "wall_s": time.perf_counter() - start}


def cub_agreement(device: torch.device, data_dir: Path | None, *, quick: bool = False,
                  reference: torch.device = torch.device("cpu")) -> dict:
    """The short CUB run on ``device`` and on ``reference``: every summary metric side by
    side, with its difference and :data:`TOLERANCE`.

    :returns: ``rows`` (``metric``, ``device``, ``reference``, ``diff``, ``tolerance``,
        ``ok``), ``device_s``, ``reference_s`` (wall seconds), ``overrides`` and ``ok``.
    """
    from czsl.metric_registry import PERCENT, SUMMARY, of_scope

    overrides = QUICK_CUB if quick else CUB_SHORT
    runs = [_run("scenarios/cub_czsl.toml", [*overrides, f"device={d.type}"], data_dir)
            for d in (device, reference)]
    rows = []
    for metric in of_scope(SUMMARY):
        a, b = (run["summary"][metric.name] for run in runs)
        tolerance = TOLERANCE["percent" if metric.unit == PERCENT else "fraction"]
        missing = [v is None or math.isnan(v) for v in (a, b)]
        diff = math.nan if any(missing) else abs(a - b)
        ok = all(missing) or diff <= tolerance
        rows.append({"metric": metric.name, "device": a, "reference": b, "diff": diff,
                     "tolerance": tolerance, "ok": ok})
    return {"rows": rows, "device_s": runs[0]["wall_s"], "reference_s": runs[1]["wall_s"],
            "overrides": overrides, "ok": all(r["ok"] for r in rows)}


def metrics_speed(device: torch.device, *, quick: bool = False, repeats: int = 5,
                  reference: torch.device = torch.device("cpu")) -> dict:
    """``run_metrics`` on :data:`benchmarks.metrics_speed.RUNS` (``quick``: a tiny run) on
    ``device`` and ``reference``: best-of-``repeats`` seconds each, after checking that
    the two agree to :data:`METRICS_AGREE`.

    :returns: ``rows`` (``name``, ``shape``, ``device``, ``reference`` seconds,
        ``agree``) and ``ok``.
    """
    from benchmarks import metrics_speed as ms
    from czsl.metrics import run_metrics

    runs = {"tiny": (3, 200, [5, 5, 5])} if quick else ms.RUNS
    rows = []
    for name, (n_steps, n_samples, task_sizes) in runs.items():
        logits, targets, class_to_task = ms.make_run(n_steps, n_samples, task_sizes)
        seconds = [min(ms.time_vectorised(logits, targets, class_to_task, repeats, d))
                   for d in (device, reference)]
        on = [run_metrics(logits.to(d), targets.to(d), class_to_task.to(d), per_class=False)
              .summary() for d in (device, reference)]
        agree = all((math.isnan(on[0][k]) and math.isnan(v)) or abs(on[0][k] - v)
                    <= METRICS_AGREE for k, v in on[1].items())
        rows.append({"name": name, "shape": f"{n_steps} x {n_samples} x {sum(task_sizes)}",
                     "device": seconds[0], "reference": seconds[1], "agree": agree})
    return {"rows": rows, "repeats": repeats, "ok": all(r["agree"] for r in rows)}


def fclswgan_full(device: torch.device, data_dir: Path | None, *, quick: bool = False) -> dict:
    """``scenarios/cub_gzsl_fclswgan.toml`` on ``device``, timed.

    :returns: ``wall_s``, ``gzsl`` (ZSL top-1, u, s, H, AUSUC), ``notes`` and ``ok``: on
        a GPU, no cap cut the schedule short (f-CLSWGAN's notes would say so).
    """
    overrides = QUICK_GAN if quick else []
    results = _run("scenarios/cub_gzsl_fclswgan.toml", [*overrides, f"device={device.type}"],
                   data_dir)
    notes = [n for n in results.get("notes", []) if n.startswith("f-CLSWGAN ran")]
    return {"wall_s": results["wall_s"], "gzsl": results.get("gzsl", {}), "notes": notes,
            "overrides": overrides, "ok": device.type != "cuda" or not notes}


def _environment(device: torch.device) -> dict:
    name = (torch.cuda.get_device_name(device) if device.type == "cuda"
            else f"{cpu_model()} (CPU)")
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "device": name, "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": cudnn, "python": platform.python_version(), "cpu": cpu_model(),
            "torch_threads": torch.get_num_threads()}


def _number(value, digits: int = 2) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:.{digits}f}"


def _verdict(ok: bool) -> str:
    return "pass" if ok else "**FAIL**"


def render(record: dict) -> str:
    """The markdown page of a check's ``record``."""
    env, dev = record["environment"], record["device_type"]
    tests, cub, speed, gan = (record[k] for k in ("tests", "cub", "metrics", "fclswgan"))
    lines = [
        "# GPU check", "",
        f"Written by `{record['command']}` ({env['date']}). Overall: "
        f"{_verdict(record['ok'])}.", "",
        f"- device under test: {dev} ({env['device']}); reference: cpu ({env['cpu']}, "
        f"{env['torch_threads']} torch threads)",
        f"- torch {env['torch']}, CUDA {env['cuda']}, cuDNN {env['cudnn']}, "
        f"Python {env['python']}",
        f"- seconds per part: CUDA tests {tests['part_s']:.0f}, CUB run {cub['part_s']:.0f}, "
        f"metrics {speed['part_s']:.0f}, f-CLSWGAN {gan['part_s']:.0f}", "",
        f"## CUDA tests: {_verdict(tests['ok'])}", "",
        f"{', '.join(CUDA_TESTS)}: {tests['tests']} run, {tests['failures']} failed, "
        f"{tests['errors']} errors, {tests['skipped']} skipped ({tests['seconds']:.1f} s).",
        "",
        f"## A short CUB run, {dev} against cpu: {_verdict(cub['ok'])}", "",
        f"`scenarios/cub_czsl.toml` with `{' '.join('--set ' + o for o in cub['overrides'])}`"
        f": {cub['device_s']:.1f} s on {dev}, {cub['reference_s']:.1f} s on cpu. Allowed: "
        f"{TOLERANCE['percent']} point on a percentage, {TOLERANCE['fraction']} on "
        "forgetting: the runs differ only in float rounding (kernels sum in other orders; "
        "nothing random is drawn on the device), which flips a few test predictions.", "",
        f"| metric | {dev} | cpu | difference | allowed | |", "|---|---|---|---|---|---|",
    ]
    lines += [f"| {r['metric']} | {_number(r['device'], 3)} | {_number(r['reference'], 3)} | "
              f"{_number(r['diff'], 4)} | {r['tolerance']} | {_verdict(r['ok'])} |"
              for r in cub["rows"]]
    lines += [
        "", f"## Metrics speed, {dev} against cpu: {_verdict(speed['ok'])}", "",
        f"`run_metrics(..., per_class=False)` with AUSUC at every step, then `summary()` "
        f"(the runs of `benchmarks/metrics_speed.py`); best of {speed['repeats']} timed calls "
        f"after a warm-up; the two devices agree to {METRICS_AGREE}.", "",
        f"| run | S x N x C | {dev} (s) | cpu (s) | speed-up | agree |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {r['name']} | {r['shape']} | {r['device']:.4f} | {r['reference']:.4f} | "
              f"{r['reference'] / r['device']:.1f}x | {'yes' if r['agree'] else '**no**'} |"
              for r in speed["rows"]]
    gzsl = gan["gzsl"]
    lines += [
        "", f"## f-CLSWGAN, full schedule on {dev}: {_verdict(gan['ok'])}", "",
        "`scenarios/cub_gzsl_fclswgan.toml`"
        + (f" with `{' '.join('--set ' + o for o in gan['overrides'])}`"
           if gan["overrides"] else "")
        + f": {gan['wall_s']:.1f} s. ZSL top-1 {_number(gzsl.get('zsl_top1'), 1)}, "
        f"u {_number(gzsl.get('u'), 1)} / s {_number(gzsl.get('s'), 1)} / "
        f"H {_number(gzsl.get('H'), 1)}, AUSUC {_number(gzsl.get('AUSUC'), 1)}.",
    ]
    lines += [""] + [f"Note: {n}" for n in gan["notes"]] if gan["notes"] else []
    return "\n".join(lines) + "\n"


def check(device: torch.device, data_dir: Path | None, *, quick: bool = False,
          command: str = "python -m benchmarks.gpu_check") -> dict:
    """Every part on ``device`` (each against the CPU): the record :func:`render` shows."""
    parts = {}
    for key, part in (("tests", lambda: cuda_tests(device)),
                      ("cub", lambda: cub_agreement(device, data_dir, quick=quick)),
                      ("metrics", lambda: metrics_speed(device, quick=quick,
                                                        repeats=2 if quick else 5)),
                      ("fclswgan", lambda: fclswgan_full(device, data_dir, quick=quick))):
        start = time.perf_counter()
        print(f"gpu_check: {key} ...", file=sys.stderr, flush=True)
        parts[key] = {**part(), "part_s": time.perf_counter() - start}
        print(f"gpu_check: {key}: {_verdict(parts[key]['ok'])} "
              f"({parts[key]['part_s']:.0f} s)", file=sys.stderr, flush=True)
    return {**parts, "device_type": device.type, "environment": _environment(device),
            "command": command, "ok": all(p["ok"] for p in parts.values())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path,
                        help="a folder CUB is read from (CUB_meta.npz, an xlsa17 folder, ...)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "gpu_check.md",
                        help="the record to write (default: benchmarks/gpu_check.md)")
    parser.add_argument("--device-under-test", default="cuda", choices=("cuda", "cpu"),
                        help="cpu: check the script itself on a machine without a GPU")
    parser.add_argument("--quick", action="store_true",
                        help="tiny synthetic inputs instead of CUB (no --data-dir needed)")
    args = parser.parse_args(argv)
    device = torch.device(args.device_under_test)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device is visible to torch (torch.cuda.is_available() is "
              "False); run it on a machine with a GPU. Nothing was written.", file=sys.stderr)
        return 2
    if not args.quick:
        from czsl.data import dataset_files

        if args.data_dir is None or not dataset_files("CUB", args.data_dir):
            print(f"gpu_check: --data-dir {args.data_dir} holds no CUB files; point it at "
                  "the folder with CUB_meta.npz (or an xlsa17 folder), or pass --quick. "
                  "Nothing was written.", file=sys.stderr)
            return 2
    command = "python -m benchmarks.gpu_check " + " ".join(argv if argv is not None
                                                            else sys.argv[1:])
    record = check(device, args.data_dir, quick=args.quick, command=command.strip())
    text = render(record)
    from czsl.runfolder import atomic_write_text

    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, text)
    print(text)
    print(f"gpu_check: {_verdict(record['ok'])}; wrote {args.out}", file=sys.stderr)
    return 0 if record["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
