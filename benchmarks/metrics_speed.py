"""Time czsl.metrics.run_metrics against the loop oracle of tests/test_metrics.py.

Two synthetic runs with the shapes of the ClassNorm CZSL protocol: CUB-sized (10 steps,
2,400 test samples, 200 classes, 10 tasks of 20) and SUN-sized (15 steps, 2,900 test
samples, 717 classes, tasks of 47, 47, 47 and 12 x 48). Both sides compute the full
metric set (per-step SA/UA/H/JA, AUSUC at every step, accuracy matrix, forgetting,
summary) in the same process; the results are compared before any time is reported.

    python -m benchmarks.metrics_speed --wait-idle 300  # CPU -> benchmarks/metrics_speed.md
    python -m benchmarks.metrics_speed --device cuda    # adds / replaces the cuda section

The markdown table is printed and written to ``--out``; a section per device is kept,
so a GPU figure can be added to the CPU one later.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import time
from pathlib import Path

import torch

from benchmarks._common import ROOT, cpu_model
from czsl.metrics import run_metrics

#: name -> (steps, test samples, task sizes)
RUNS = {
    "CUB-sized": (10, 2400, [20] * 10),
    "SUN-sized": (15, 2900, [47, 47, 47] + [48] * 12),
}


def load_oracle():
    """``oracle_run`` of ``tests/test_metrics.py`` (a package, importable from the
    repository root), so there is one oracle."""
    from tests.test_metrics import oracle_run
    return oracle_run


def make_run(n_steps: int, n_samples: int, task_sizes: list[int], seed: int = 0):
    """Synthetic logits history: a random class order (as in ClassNorm), a signal on the
    true class that fades for unseen classes, and a bias towards seen classes."""
    gen = torch.Generator().manual_seed(seed)
    n_classes = sum(task_sizes)
    order = torch.randperm(n_classes, generator=gen)
    class_to_task = torch.empty(n_classes, dtype=torch.long)
    class_to_task[order] = torch.repeat_interleave(torch.arange(len(task_sizes)),
                                                   torch.tensor(task_sizes))
    targets = torch.randint(0, n_classes, (n_samples,), generator=gen)
    logits = torch.randn(n_steps, n_samples, n_classes, generator=gen)
    steps = torch.arange(n_steps)[:, None]
    seen = class_to_task[None, :] <= steps                                    # [S, C]
    logits += 1.0 * seen[:, None, :]
    signal = torch.where(seen[:, targets], 2.5, 1.5)                          # [S, N]
    logits[:, torch.arange(n_samples), targets] += signal
    return logits, targets, class_to_task


def busy_cpus(seconds: float = 2.0) -> float:
    """CPUs' worth of work done by other processes over ``seconds`` (Linux; NaN where
    /proc/stat is missing): timings are only comparable on an otherwise idle machine."""
    def read() -> tuple[int, int]:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
        return sum(fields), fields[3] + fields[4]  # total, idle + iowait

    try:
        total0, idle0 = read()
        time.sleep(seconds)
        total1, idle1 = read()
    except OSError:
        return float("nan")
    return (1 - (idle1 - idle0) / max(total1 - total0, 1)) * (os.cpu_count() or 1)


def wait_until_idle(timeout: float) -> float:
    """Poll :func:`busy_cpus` until under 0.1 CPU or ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        busy = busy_cpus()
        if not busy >= 0.1 or time.monotonic() > deadline:
            return busy


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_vectorised(logits, targets, class_to_task, repeats: int, device) -> list[float]:
    logits, targets = logits.to(device), targets.to(device)
    class_to_task = class_to_task.to(device)
    times = []
    for i in range(repeats + 1):  # the first call warms up (allocator, kernels)
        sync(device)
        start = time.perf_counter()
        result = run_metrics(logits, targets, class_to_task, per_class=False)
        result.summary()  # includes the final device -> host copy
        sync(device)
        if i:
            times.append(time.perf_counter() - start)
    return times


def check_agreement(fast, slow) -> None:
    """Fail loudly if the vectorised metrics and the oracle disagree."""
    for key, value in slow["summary"].items():
        got = fast.summary()[key]
        same = (math.isnan(got) and math.isnan(value)) or abs(got - value) <= 1e-4
        if not same:
            raise SystemExit(f"mismatch on {key}: vectorised {got} vs oracle {value}")


def render_section(device: torch.device, rows: list[dict], repeats: int,
                   oracle_repeats: int, load_before: float) -> str:
    threads = torch.get_num_threads()
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"{cpu_model()}, {os.cpu_count()} cores")
    lines = [
        f"## {device.type}",
        "",
        f"- date: {datetime.date.today().isoformat()}; torch {torch.__version__}; "
        f"Python {platform.python_version()}; device {device.type} ({where}); "
        f"torch threads {threads}; other processes kept {load_before:.2f} of "
        f"{os.cpu_count()} CPUs busy just before the run",
        f"- `run_metrics(..., per_class=False)` with AUSUC at every step, then "
        f"`summary()`; best of {repeats} timed calls after one warm-up. Loop oracle "
        f"(`oracle_run` in tests/test_metrics.py, pure Python on CPU): best of "
        f"{oracle_repeats} call(s). Best-of (not median) because other jobs may share "
        f"the machine; results agreed to 1e-4 before any time was reported.",
        "",
        "| run | S x N x C | vectorised (s) | loop oracle (s) | speed-up |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(f"| {row['name']} | {row['shape']} | {row['fast']:.4f} | "
                     f"{row['slow']:.2f} | {row['slow'] / row['fast']:.0f}x |")
    return "\n".join(lines) + "\n"


def write_markdown(path: Path, section: str, device_type: str) -> str:
    """Replace this device's section in ``path`` (keeping the others) and return all."""
    header = ("# czsl.metrics speed\n\n"
              "Written by `python -m benchmarks.metrics_speed` (rerun it to refresh a section).\n")
    sections = {}
    if path.exists():
        for chunk in path.read_text().split("\n## ")[1:]:
            sections[chunk.split("\n", 1)[0].strip()] = "## " + chunk.rstrip("\n") + "\n"
    sections[device_type] = section
    ordered = [sections[k] for k in sorted(sections, key=lambda k: (k != "cpu", k))]
    text = header + "\n" + "\n".join(ordered)
    path.write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    parser.add_argument("--repeats", type=int, default=7, help="timed vectorised calls")
    parser.add_argument("--oracle-repeats", type=int, default=2, help="timed oracle calls")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                        help="first wait up to this long for the other CPU load to vanish")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "metrics_speed.md")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    oracle_run = load_oracle()
    load_before = wait_until_idle(args.wait_idle)

    rows = []
    for name, (n_steps, n_samples, task_sizes) in RUNS.items():
        logits, targets, class_to_task = make_run(n_steps, n_samples, task_sizes)
        fast_times = time_vectorised(logits, targets, class_to_task, args.repeats, device)
        slow_times = []
        for _ in range(args.oracle_repeats):
            start = time.perf_counter()
            slow = oracle_run(logits, targets, class_to_task, per_class=False)
            slow_times.append(time.perf_counter() - start)
        check_agreement(run_metrics(logits.to(device), targets.to(device),
                                    class_to_task.to(device), per_class=False), slow)
        rows.append({"name": name, "shape": f"{n_steps} x {n_samples} x {sum(task_sizes)}",
                     "fast": min(fast_times), "slow": min(slow_times)})
        print(f"{name}: vectorised {rows[-1]['fast']:.4f} s, oracle {rows[-1]['slow']:.2f} s",
              flush=True)

    section = render_section(device, rows, args.repeats, args.oracle_repeats, load_before)
    write_markdown(args.out, section, device.type)
    print()
    print(section)


if __name__ == "__main__":
    main()
