"""What several benchmark scripts share: the CZSL table's cells, the ``--raw`` /
``--merge`` parts, and facts about the machine.

Imported as ``benchmarks._common`` by scripts run with ``python -m benchmarks.NAME`` from
the repository root.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
from pathlib import Path

from czsl.runfolder import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]

#: method label -> the ``--set`` overrides that swap it into a table scenario
METHODS = {
    "Sequential": ["regularizer=none"],
    "EWC-online": ["regularizer=ewc_online"],
    "MAS": ["regularizer=mas"],
    "A-GEM": ["regularizer=agem"],
    # ClassNorm's joint baseline: all data so far, softmax over all seen classes
    "Multi-task": ["replay=multitask", "train.loss_classes=seen"],
    # a diagnostic, not in the default grid: MAS with no penalty changes nothing but
    # the random stream (its importance pass draws batches; tested), so its runs are
    # more draws of Sequential's: the ordering checks pool them with Sequential's
    "MAS λ=0": ["regularizer=mas", "regularizer.lambda_reg=0"],
    # a diagnostic: MAS with the reference code's importance merge (gamma * old + new)
    "MAS γ=0.95": ["regularizer=mas", "regularizer.gamma=0.95"],
}
#: ClassNorm label -> the overrides that turn it on or off
CLASS_NORM = {"+ CN": ["model.class_norm=true", "model.proper_init=true"],
              "no CN": ["model.class_norm=false", "model.proper_init=false"]}
#: protocol -> the shipped scenario file's stem, ``{d}`` the dataset (``cub``, ``sun``)
SCENARIO = {"grw": "{d}_czsl", "classnorm": "{d}_czsl_classnorm"}


def threads_prefix() -> str:
    """``OMP_NUM_THREADS=N `` when it is set: the recorded command then says so."""
    n = os.environ.get("OMP_NUM_THREADS")
    return f"OMP_NUM_THREADS={shlex.quote(n)} " if n else ""


def recorded_command(script: str, args: list[str] | str) -> str:
    """The command line a report records: ``[OMP_NUM_THREADS=N ]python -m benchmarks.NAME
    ARGS``.

    :param script: the script's module name, e.g. ``"czsl_table"``.
    :param args: its arguments, a list (quoted here) or a string already quoted.
    """
    args = args if isinstance(args, str) else shlex.join(args)
    return f"{threads_prefix()}python -m benchmarks.{script}" + (f" {args}" if args else "")


def read_parts(paths) -> tuple[list[dict], list[str]]:
    """The runs and commands of the ``--raw`` files ``paths``, for ``--merge``."""
    records, commands = [], []
    for path in paths:
        saved = json.loads(Path(path).read_text())
        records += saved["runs"]
        commands.append(saved["command"])
    return records, commands


def save_part(path, command, runs) -> None:
    """Write the ``--raw`` file ``path`` whole: called after every run, since a long grid
    may be cut short."""
    atomic_write_text(path, json.dumps({"command": command, "runs": runs}, indent=1))


def publish(out, render, records, new, commands, command) -> int:
    """Render the parts read (``records``, ``commands``) and this run's ``new`` records
    (made by ``command``) with ``render``; print the text and write it whole to ``out``."""
    if new:
        commands = [*commands, command]
    text = render(records + new, commands)
    print(text)
    atomic_write_text(out, text)
    return 0


def load_avg() -> list[float]:
    """The 1, 5 and 15 minute load averages (NaN where the OS has none)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return [float("nan")] * 3


def cpu_model() -> str:
    """The CPU's model name, from /proc/cpuinfo where there is one."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
