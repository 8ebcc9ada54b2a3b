"""Everything a run writes: its folder, TensorBoard events, the scenario, results.json.

This is the only module that writes TensorBoard events or results files. A run folder
``runs/<name>/`` holds

* ``scenario.toml`` — the scenario as resolved (protocol presets filled in);
* ``results.json`` — every per-step figure and the run's summary, written atomically
  once the run has finished (a crashed run leaves none);
* TensorBoard event files (``tensorboard --logdir runs/``).

An existing run folder is never reused: the name gets a ``-2``, ``-3``, ... suffix.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import tomli_w
import torch
from avalanche.core import SupervisedPlugin
from torch.utils.tensorboard import SummaryWriter

from czsl.errors import CZSLError


def new_run_dir(runs_dir: Path, name: str) -> Path:
    """Create and return a fresh folder ``runs_dir/name`` (suffixed if it exists)."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    for i in range(1, 10_000):
        path = runs_dir / (name if i == 1 else f"{name}-{i}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise CZSLError(f"{runs_dir} has 10,000 runs named {name!r}; choose another --name")


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file, so it is whole or absent."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def json_ready(value: Any) -> Any:
    """Tensors to lists, NaN to None, recursively."""
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


class RunLogger:
    """Writes one run's folder.

    :param run_dir: the run's folder (from :func:`new_run_dir`).
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.writer = SummaryWriter(log_dir=str(run_dir))

    def write_scenario(self, document: dict[str, Any]) -> None:
        """Save the resolved scenario as ``scenario.toml``."""
        atomic_write_text(self.run_dir / "scenario.toml", tomli_w.dumps(document))

    def log_step(self, step: int, metrics: dict[str, torch.Tensor]) -> None:
        """Per-step scalars: SA, UA, H, JA, AUSUC and each task's accuracy."""
        for key in ("SA", "UA", "H", "JA", "AUSUC"):
            value = float(metrics[key])
            if not math.isnan(value):
                self.writer.add_scalar(f"step/{key}", value, step)
        task_acc = metrics["task_acc"].tolist()
        self.writer.add_scalars("task_accuracy", {
            f"task_{k:02d}": acc for k, acc in enumerate(task_acc) if not math.isnan(acc)}, step)
        self.writer.flush()

    def log_loss(self, iteration: int, loss: float) -> None:
        """The training loss of one mini-batch."""
        self.writer.add_scalar("train/loss", loss, iteration)

    def write_results(self, results: dict[str, Any]) -> Path:
        """Write ``results.json`` atomically and return its path."""
        path = self.run_dir / "results.json"
        atomic_write_text(path, json.dumps(json_ready(results), indent=2) + "\n")
        return path

    def close(self) -> None:
        """Flush and close the event file."""
        self.writer.close()


class LossLogger(SupervisedPlugin):
    """Avalanche plugin: sends every training mini-batch's loss to a :class:`RunLogger`."""

    def __init__(self, logger: RunLogger) -> None:
        super().__init__()
        self.logger = logger
        self.iteration = 0

    def after_training_iteration(self, strategy, *args, **kwargs):
        self.logger.log_loss(self.iteration, float(strategy.loss.detach()))
        self.iteration += 1
