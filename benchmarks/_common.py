"""What several benchmark scripts share: the CZSL table's cells, reading the sweep
summaries their pages render from, the prose their pages include, and facts about the
machine.

Imported as ``benchmarks._common`` by scripts run with ``python -m benchmarks.NAME`` from
the repository root.
"""

from __future__ import annotations

import os
import platform
import re
import shlex
from pathlib import Path

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


def load_summaries(paths) -> list[dict]:
    """The sweep summaries at ``paths`` (``summary.json`` files or sweep folders,
    :func:`czsl.sweep.summary.load_summary`), in order.

    :raises SystemExit: with one line naming a path that is neither.
    """
    from czsl.errors import CZSLError
    from czsl.sweep.summary import load_summary

    try:
        return [load_summary(Path(p)) for p in paths]
    except CZSLError as exc:
        raise SystemExit(f"error: {exc}") from None


def page_notes(summaries) -> list[str]:
    """The ``notes`` of ``summaries`` (where their runs come from) as page paragraphs,
    each once, each followed by a blank line."""
    seen: list[str] = []
    for summary in summaries:
        seen += [n for n in summary.get("notes", []) if n not in seen]
    return [line for note in seen for line in (note, "")]


#: the line that starts a block of a notes file: ``<!-- NAME -->``
NOTE_BLOCK = re.compile(r"<!-- ([A-Z][A-Z0-9_]*) -->")


def notes(name: str, needed: tuple[str, ...] = ()) -> dict[str, str]:
    """The prose blocks of ``benchmarks/notes/NAME.md`` (the page's findings and the like,
    kept as markdown rather than as Python strings): block name -> text. A block runs
    from its ``<!-- NAME -->`` line to the next such line, blank lines around it dropped;
    text above the first block is the file's own comment.

    :raises SystemExit: with one line where the file or a block of ``needed`` is missing.
    """
    path = ROOT / "benchmarks" / "notes" / f"{name}.md"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SystemExit(f"error: {path.relative_to(ROOT)} not found; it holds the prose "
                         f"benchmarks/{name}.py puts on its page") from None
    blocks: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        match = NOTE_BLOCK.fullmatch(line)
        if match:
            current = blocks.setdefault(match.group(1), [])
        elif current is not None:
            current.append(line)
    found = {key: "\n".join(lines).strip("\n") for key, lines in blocks.items()}
    missing = [key for key in needed if key not in found]
    if missing:
        raise SystemExit(f"error: {path.relative_to(ROOT)} has no block "
                         f"{', '.join(f'<!-- {k} -->' for k in missing)}; add it")
    return found


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
