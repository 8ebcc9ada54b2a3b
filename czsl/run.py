"""One scenario, end to end: data -> stream -> plugins -> learner -> metrics -> results.

:func:`run_scenario` is what ``czsl run`` calls; tests and benchmarks call it too.
"""

from __future__ import annotations

import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from avalanche.core import SupervisedPlugin
from tqdm import tqdm

import czsl
from czsl import metrics
from czsl.config import Scenario, scenario_to_dict
from czsl.data import load_dataset
from czsl.errors import CZSLError, PluginError
from czsl.learner import ZSLLearner
from czsl.logging import LossLogger, RunLogger, json_ready, new_run_dir
from czsl.plugins import Plugins
from czsl.streams import CZSLStream, build_stream


@dataclass
class RunResult:
    """What a finished run produced.

    :param run_dir: the run's folder.
    :param results: the content of its ``results.json``.
    """

    run_dir: Path
    results: dict[str, Any]


def resolve_device(name: str) -> torch.device:
    """``"cpu"`` or ``"cuda"``, checking that CUDA is really there."""
    if name == "cuda" and not torch.cuda.is_available():
        raise CZSLError("--device cuda was asked for but torch sees no CUDA GPU "
                        f"(torch {torch.__version__}); use --device cpu, or install a "
                        "CUDA build of torch on a machine with a GPU")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _check_model(model: Any, name: str, plugins: Plugins) -> torch.nn.Module:
    """The model hook's result must keep the contract in :mod:`czsl.hookspecs`."""
    item = plugins.find("model", name)
    if not isinstance(model, torch.nn.Module) or not callable(
            getattr(model, "set_visible_classes", None)):
        raise PluginError(f"model {name!r} (plugin {item.plugin!r} from {item.package}) "
                          f"returned {type(model).__name__}; czsl_make_model must return a "
                          "torch.nn.Module with set_visible_classes(mask)")
    return model


def _check_avalanche_plugins(result: Any, kind: str, name: str,
                             plugins: Plugins) -> list[SupervisedPlugin]:
    """Regularizer / replay hooks must return a list of Avalanche plugins."""
    item = plugins.find(kind, name)
    if not isinstance(result, (list, tuple)) or not all(
            isinstance(p, SupervisedPlugin) for p in result):
        raise PluginError(f"{kind} {name!r} (plugin {item.plugin!r} from {item.package}) "
                          f"returned {result!r}; czsl_make_{kind} must return a list of "
                          "avalanche.core.SupervisedPlugin")
    return list(result)


def make_optimizer(scenario: Scenario, params) -> torch.optim.Optimizer:
    """The optimizer named by ``[train]``."""
    cfg = scenario.train
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def run_scenario(scenario: Scenario, *, data_dir: Path | None = None,
                 runs_dir: Path = Path("runs"), progress: bool = True,
                 echo: Callable[[str], None] = print) -> RunResult:
    """Run a scenario and write its run folder.

    :param scenario: the scenario.
    :param data_dir: the folder with the dataset's files (not needed for synthetic).
    :param runs_dir: where run folders are created.
    :param progress: show a progress bar on stderr.
    :param echo: where to print notes.
    :raises CZSLError: for bad data, plugin names, options or devices.
    """
    started = time.perf_counter()
    device = resolve_device(scenario.device)
    plugins = Plugins()
    dataset = load_dataset(scenario.data.dataset, data_dir, features=scenario.data.features,
                           seed=scenario.seed, options=scenario.data.synthesis)
    seed_everything(scenario.seed)
    stream = build_stream(dataset, scenario.protocol, scenario.seed)
    for note in stream.notes:
        echo(f"note: {note}")

    model = _check_model(plugins.make("model", scenario.model.name, scenario.model.options,
                                      n_features=dataset.n_features,
                                      attributes=stream.attributes),
                         scenario.model.name, plugins).to(device)
    extra: list[SupervisedPlugin] = []
    for kind in ("regularizer", "replay"):
        cfg = getattr(scenario, kind)
        extra += _check_avalanche_plugins(
            plugins.make(kind, cfg.name, cfg.options, stream=stream), kind, cfg.name, plugins)

    run_dir = new_run_dir(runs_dir, scenario.name)
    logger = RunLogger(run_dir)
    document = scenario_to_dict(scenario)
    document["protocol"] = {**document["protocol"], **_resolved(stream)}
    logger.write_scenario(document)
    learner = ZSLLearner(
        model=model, stream=stream, optimizer=make_optimizer(scenario, model.parameters()),
        loss_classes=scenario.train.loss_classes, train_mb_size=scenario.train.batch_size,
        train_epochs=scenario.train.epochs, eval_mb_size=scenario.train.eval_batch_size,
        device=device, plugins=[*extra, LossLogger(logger)])

    history = []
    bar = tqdm(range(stream.n_tasks), desc=f"{scenario.name}: tasks", unit="task",
               disable=not progress, file=sys.stderr)
    try:
        for step in bar:
            learner.train_task(step)
            logits = learner.test_logits()  # [N_test, C]
            history.append(logits)
            now = metrics.step_metrics(logits, stream.test_y.to(device),
                                       stream.class_to_task.to(device), step,
                                       per_class=stream.per_class)
            logger.log_step(step, now)
            bar.set_postfix(SA=f"{float(now['SA']):.1f}", UA=f"{float(now['UA']):.1f}",
                            H=f"{float(now['H']):.1f}")
        results = _results(scenario, dataset.source, stream, torch.stack(history), device)
        results["wall_time_s"] = time.perf_counter() - started
        results = json_ready(results)
        logger.write_results(results)
    finally:
        bar.close()
        logger.close()
    return RunResult(run_dir, results)


def _resolved(stream: CZSLStream) -> dict[str, Any]:
    """The protocol choices filled in from presets, for scenario.toml."""
    p = stream.protocol
    return {"task_sizes": list(p.task_sizes), "class_order": p.class_order,
            "accuracy": p.accuracy}


def _results(scenario: Scenario, source: str, stream: CZSLStream,
             history: torch.Tensor, device: torch.device) -> dict[str, Any]:
    """The content of results.json."""
    targets = stream.test_y.to(device)
    class_to_task = stream.class_to_task.to(device)
    run = metrics.run_metrics(history, targets, class_to_task, per_class=stream.per_class)
    out: dict[str, Any] = {
        "czsl_version": czsl.__version__,
        "name": scenario.name,
        "seed": scenario.seed,
        "dataset": stream.dataset_label,
        "features": source,
        "semi_synthetic": source == "semi-synthetic",
        "protocol": {"name": stream.protocol.name, **_resolved(stream)},
        "model": scenario.model.name,
        "regularizer": scenario.regularizer.name,
        "replay": scenario.replay.name,
        "n_tasks": stream.n_tasks,
        "n_test": int(targets.shape[0]),
        "notes": list(stream.notes),
        "summary": run.summary(),
        "metrics": run.to_dict(),
    }
    if stream.protocol.name == "static":
        out["gzsl"] = {k: float(v) for k, v in metrics.gzsl_metrics(
            history[-1], targets, stream.seen_mask(0).to(device),
            per_class=stream.per_class).items()}
    return out


def format_results(result: RunResult) -> str:
    """The table ``czsl run`` prints: per-step SA / UA / H, then the run's summary."""
    res = result.results
    steps = res["metrics"]["steps"]
    conv = res["protocol"]["accuracy"].replace("_", "-")

    def pct(value):
        return "   -" if value is None else f"{value:5.1f}"

    lines = [f"{res['name']}: {res['dataset']}, protocol {res['protocol']['name']}, "
             f"{res['n_tasks']} task(s), {conv} accuracy (%)",
             " step   SA     UA     H      JA",
             *(f" {t:4d} {pct(steps['SA'][t])}  {pct(steps['UA'][t])}  {pct(steps['H'][t])}  "
               f"{pct(steps['JA'][t])}" for t in range(len(steps["SA"])))]
    s = res["summary"]
    lines.append(" ".join(f"{k} {pct(s.get(k))}" for k in ("mSA", "mUA", "mH", "mJA", "mAUC")))
    if s.get("forgetting_final") is not None:
        lines.append(f"forgetting (fraction): final step {s['forgetting_final']:.3f}, "
                     f"mean over steps {s['forgetting_mean']:.3f}")
    if "gzsl" in res:
        g = res["gzsl"]
        lines.append(f"static GZSL: ZSL top-1 {g['zsl_top1']:.1f}  u {g['u']:.1f}  "
                     f"s {g['s']:.1f}  H {g['H']:.1f}  AUSUC {g['AUSUC']:.1f}")
    if res["semi_synthetic"]:
        lines.append("these figures are from SEMI-SYNTHETIC features (real metadata, "
                     "features synthesised from the attributes), not real image features")
    lines.append(f"results: {result.run_dir / 'results.json'} "
                 f"(TensorBoard: tensorboard --logdir {result.run_dir.parent})")
    return "\n".join(lines)
