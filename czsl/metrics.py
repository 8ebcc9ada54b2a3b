"""Continual and generalized zero-shot metrics, as pure functions over logit tensors.

Every function takes logits over **all** ``C`` classes of the dataset and predicts
generalized-style: the predicted class is the argmax over all ``C`` classes, whatever the
model was trained on so far (the GZSL search space of the ClassNorm and GRW code). Ties
follow ``torch.argmax``: the lowest class index among the maximal logits wins, on every
device.

Setting
-------
``class_to_task[c]`` is the task (``0..T-1``) in which class ``c`` is trained, or ``-1``
for a class no step ever trains (SUN in the GRW protocol reaches 705 of its 717
classes). Step ``t`` of a run means "evaluated after training task ``t``", so at step
``t`` the seen classes are those with ``0 <= class_to_task <= t`` and every other class
(later tasks and ``-1``) is unseen.

Two accuracy conventions, one code path
---------------------------------------
Each test sample ``i`` of a group (seen, unseen, task ``k``, all) gets a weight ``w_i``,
and an accuracy is ``100 * sum_i w_i * [pred_i == y_i]``:

* ``per_class=False`` (per-sample; ClassNorm's CZSL metrics, ``compute_acc_for_classes``):
  ``w_i = 1 / n_group``, the number of the group's test samples;
* ``per_class=True`` (mean of per-class accuracies; xlsa17 GZSL and GRW's
  ``compute_D_acc``): ``w_i = 1 / (n_{y_i} * K_group)``, with ``n_c`` the test samples of
  class ``c`` and ``K_group`` the group's classes that have test samples.

The same weights drive the AUSUC sweep, so a per-class AUSUC is exact too. Classes
without test samples count in neither convention; a group without test samples has an
undefined (NaN) accuracy.

Per-step metrics (percent, 0-100)
---------------------------------
* ``SA(t)``, ``UA(t)``: accuracy on the test samples of seen / unseen classes, argmax over
  all classes (ClassNorm ``compute_seen_classes_acc_history`` /
  ``compute_unseen_classes_acc_history`` with ``restrict_space=False``; "S" and "U" of
  Xian et al., 2018, "Zero-shot learning - the good, the bad and the ugly").
* ``H(t) = 2 SA UA / (SA + UA)``, and 0 when both are 0 (GRW ``main.py`` does the same;
  ClassNorm adds 1e-8 to the denominator instead). NaN when ``SA`` or ``UA`` is.
* ``JA(t)``: joint accuracy, all test samples, argmax over all classes (the ClassNorm
  paper's "joint accuracy"; its repository has no code for it).
* ``AUSUC(t)``: area under the seen-unseen accuracy curve (Chao et al., 2016, "An
  empirical study and analysis of generalized zero-shot learning ..."). A calibration
  bias ``lam`` is added to every unseen logit; sample ``i`` then falls on the seen side
  iff its gap ``g_i = max_seen_logit_i - max_unseen_logit_i`` exceeds ``lam``, and is
  classified by the argmax within that side. Sweeping ``lam`` from ``-inf`` to ``+inf``
  moves samples to the unseen side in increasing order of ``g``; the curve
  ``(UA(lam), SA(lam))`` only changes when ``lam`` passes a gap, so its exact vertices are
  the ``N + 1`` positions between consecutive sorted gaps (ClassNorm's fast
  ``compute_ausuc``). AUSUC is the trapezoid area under those vertices times 100. Equal
  gaps cross together: the vertices inside a run of ties are dropped, because no bias
  separates the tied samples. (ClassNorm keeps them, so its area depends on how
  ``np.argsort`` happens to order tied gaps; it also omits the all-unseen end vertex,
  which adds no area. With distinct gaps both give the same number.)

  Degenerate cases follow ClassNorm's ``compute_ausuc``: with **no seen classes** the
  curve is taken as ``(0, 1), (U, 1), (U, 0)``, so ``AUSUC = 100 * U``; with **no unseen
  classes** it is ``(0, S), (1, S), (1, 0)``, so ``AUSUC = 100 * S`` (``U``/``S`` are the
  accuracies with the argmax restricted to that side, i.e. over all classes here). When
  a side has classes but none of them has test samples, ClassNorm divides by zero; we
  return NaN.
* ``task_acc[k]`` (a row of the accuracy matrix ``a[t, k]``): accuracy on task ``k``'s test
  samples, argmax over all classes (ClassNorm ``compute_individual_accs_matrix`` with its
  default ``restrict_space=False``). NaN for a task without test samples.

Run-level metrics
-----------------
* ``mSA``, ``mUA``, ``mH``, ``mAUC``: means over the steps that have at least one unseen
  class with test samples (the steps where ``UA`` is defined). In ClassNorm that is steps
  ``0..T-2`` (its ``compute_harmonic_mean_accuracy`` pairs the logits after task ``t``
  for ``t = 0..T-2``); in GRW every evaluated step (it trains only ``T-1`` tasks).
  ClassNorm's ``compute_joined_ausuc_history`` would also score the before-training
  logits with no seen classes, but it is broken (indexes a float) and we have no
  before-training step; our mAUC averages AUSUC over the same steps as mH. (Likewise
  ClassNorm's printed "unseen accuracy" averages ``logits_history[:-1]``, which includes
  the before-training entry; our mUA does not.)
* ``mJA``: mean of ``JA`` over all steps (ClassNorm paper).
* Forgetting (Chaudhry et al., 2018, "Riemannian walk ..."; ClassNorm
  ``compute_forgetting_measure``), a **fraction** (percent / 100), at step ``i >= 1``::

      F_i = mean_{j < i} ( max_{k < i} a[k, j] - a[i, j] ) / 100

  The max runs over *all* earlier steps, also those before task ``j`` was trained (its
  zero-shot accuracy then), exactly as in ClassNorm. ClassNorm keeps ``T + 1`` logits
  (``logits_history[0]`` is before any training) and ``LLLTrainer.compute_forgetting``
  builds ``a`` from ``logits_history[1:]``, so its row ``i`` is "after task ``i``": our step
  ``i``. ``forgetting_final`` is ``F_{S-1}``, ``forgetting_mean`` the mean of ``F_1..F_{S-1}``
  and ``task_forgetting[j]`` the inner term at the final step. This is not Avalanche's
  forgetting (accuracy right after learning minus final accuracy).

Static GZSL (:func:`gzsl_metrics`, one step and a seen mask): ``zsl_top1`` (unseen test
samples, argmax among the unseen classes only), ``u``, ``s``, ``H`` and ``AUSUC`` (Xian et
al., 2018; per-class by default, as xlsa17 results are reported).

Implementation notes: everything stays on the logits' device; the only host read is
the number of tasks (``class_to_task.max() + 1``), a shape. No loops over samples,
classes or thresholds; all steps of a run are evaluated in one batch. Accumulations are
in float64, so results do not depend on the device or on sample order beyond rounding
(a device without float64, such as Apple MPS, is not supported). Logits must be finite
(NaN or infinite logits give undefined results); targets must lie in ``[0, C)``.

Every figure of a step follows from four numbers per test sample (its best seen and
best unseen logit and their classes), so a run scores its test set in chunks of
samples as the model produces them (:class:`StepScorer`) and never holds the ``[N, C]``
logits: a step's memory is ``O(B * C + N + C)`` for chunks of ``B`` samples, and its
figures are bit for bit those of the whole logits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

__all__ = [
    "RunMetrics",
    "StepScorer",
    "curve_from_scores",
    "forgetting_measure",
    "gzsl_from_scores",
    "gzsl_metrics",
    "metrics_from_steps",
    "record_from_scores",
    "run_metrics",
    "seen_unseen_curve",
    "step_metrics",
    "step_record",
]

_STEP_KEYS = ("SA", "UA", "H", "JA", "AUSUC")


def _check_inputs(logits: torch.Tensor, targets: torch.Tensor, n_classes: int) -> None:
    """Raise ``ValueError`` on shapes or dtypes that cannot be right (no data is read)."""
    if not logits.is_floating_point():
        raise ValueError(f"logits must be a floating-point tensor, got {logits.dtype}")
    if targets.ndim != 1 or targets.shape[0] != logits.shape[-2]:
        raise ValueError(f"targets must have shape [N] = [{logits.shape[-2]}], "
                         f"got {tuple(targets.shape)}")
    if targets.is_floating_point() or targets.dtype == torch.bool:
        raise ValueError(f"targets must be an integer tensor, got {targets.dtype}")
    if logits.shape[-1] != n_classes:
        raise ValueError(f"logits have {logits.shape[-1]} classes but the class mask / "
                         f"class_to_task has {n_classes}")
    if logits.shape[-2] == 0:
        raise ValueError("no test samples: every metric would be undefined")


def _harmonic(seen: torch.Tensor, unseen: torch.Tensor) -> torch.Tensor:
    """``2 s u / (s + u)``, 0 when ``s + u == 0``, NaN when either is NaN."""
    total = seen + unseen
    return torch.where(total == 0, torch.zeros_like(total), 2 * seen * unseen / total)


def _sides(logits: torch.Tensor, seen: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The per-sample reductions every metric is computed from.

    Each sample's best class within the seen and within the unseen side (``torch.max``
    returns the first, i.e. lowest-index, maximum on ties). The other side is hidden by
    adding ``-inf`` (adding 0 keeps a finite logit exact); one buffer serves both sides.
    Every output row depends on its own logits row only, so the reductions of a test set
    fed in chunks of samples, concatenated, are those of the whole set (:class:`StepScorer`).

    :param logits: ``[S, N, C]`` (or ``[1, N, C]``, broadcast against ``seen``).
    :param seen: ``[S, C]`` bool, which classes are seen at each step.
    :return: ``max_s, arg_s, max_u, arg_u``, each ``[S, N]``.
    """
    logits = logits.detach()  # metrics never need a graph (and out= refuses one)
    hide_unseen = torch.zeros(seen.shape, dtype=logits.dtype, device=logits.device)
    hide_unseen.masked_fill_(~seen, float("-inf"))                                # [S, C]
    hide_seen = torch.zeros_like(hide_unseen).masked_fill_(seen, float("-inf"))   # [S, C]
    masked = logits + hide_unseen[:, None, :]                                     # [S, N, C]
    max_s, arg_s = masked.max(dim=-1)                                             # [S, N]
    torch.add(logits, hide_seen[:, None, :], out=masked)
    max_u, arg_u = masked.max(dim=-1)                                             # [S, N]
    return max_s, arg_s, max_u, arg_u


def _evaluate(logits: torch.Tensor, targets: torch.Tensor, seen: torch.Tensor,
              per_class: bool) -> dict[str, torch.Tensor]:
    """All per-step quantities for a batch of steps.

    :param logits: ``[S, N, C]`` logits of ``S`` steps on the same ``N`` test samples.
    :param targets: ``[N]`` class ids in ``[0, C)``, on the logits' device.
    :param seen: ``[S, C]`` bool, which classes are seen at each step.
    :param per_class: accuracy convention (module docstring).
    :return: see :func:`_evaluate_sides`.
    """
    return _evaluate_sides(_sides(logits, seen), targets, seen, per_class)


def _evaluate_sides(sides: tuple[torch.Tensor, ...], targets: torch.Tensor,
                    seen: torch.Tensor, per_class: bool) -> dict[str, torch.Tensor]:
    """All per-step quantities from the per-sample reductions of :func:`_sides`.

    :param sides: ``max_s, arg_s, max_u, arg_u``, each ``[S, N]``.
    :param targets: ``[N]`` class ids in ``[0, C)``, on the same device.
    :param seen: ``[S, C]`` bool, which classes are seen at each step.
    :param per_class: accuracy convention (module docstring).
    :return: ``[S]`` float64 tensors ``SA, UA, H, JA, AUSUC, zsl`` (percent; ``zsl`` is the
        unseen accuracy with the argmax restricted to unseen classes), the per-class
        statistics ``class_hits`` ``[S, C]`` (weighted correct counts) and ``class_mass``
        ``[C]`` (weighted sample counts) from which any group accuracy follows, and
        ``curve``: the AUSUC sweep's ``(unseen_acc, seen_acc, exists)``, each ``[S, N+1]``
        (fractions; ``exists`` marks the vertices a calibration bias can reach).
    """
    max_s, arg_s, max_u, arg_u = sides
    n_steps, n_classes = seen.shape
    n = targets.shape[0]
    device, f64 = targets.device, torch.float64

    # Per-class sample counts and the convention's class weights. (index_add_ sums 0/1
    # values, which is exact in float64 in any order, so it is deterministic on GPU too.)
    counts = torch.zeros(n_classes, dtype=f64, device=device).index_add_(
        0, targets, torch.ones(n, dtype=f64, device=device))                      # [C]
    if per_class:
        class_w = torch.where(counts > 0, 1.0 / counts.clamp_min(1), torch.zeros_like(counts))
    else:
        class_w = torch.ones_like(counts)
    class_mass = counts * class_w          # [C]: n_c (per sample) or 1 if n_c > 0 (per class)
    sample_w = class_w[targets]            # [N]

    # Argmax over all classes, rebuilt from the two sides: the larger side wins, a tie
    # between the sides goes to the lower class index (torch.argmax semantics).
    pred = torch.where(max_s > max_u, arg_s,
                       torch.where(max_u > max_s, arg_u, torch.minimum(arg_s, arg_u)))
    correct = (pred == targets).to(f64)                                           # [S, N]

    class_hits = torch.zeros(n_steps, n_classes, dtype=f64, device=device).index_add_(
        1, targets, correct) * class_w                                            # [S, C]
    seen_f = seen.to(f64)
    mass_s = seen_f @ class_mass                                                  # [S]
    mass_u = (1 - seen_f) @ class_mass                                            # [S]
    sa = 100 * (class_hits * seen_f).sum(-1) / mass_s
    ua = 100 * (class_hits * (1 - seen_f)).sum(-1) / mass_u
    ja = 100 * class_hits.sum(-1) / class_mass.sum()

    # AUSUC: each sample's contribution to the seen / unseen accuracy when it falls on
    # its own side and is classified within that side.
    seen_sample = seen[:, targets]                                                # [S, N]
    hit_s = (seen_sample & (arg_s == targets)).to(f64) * sample_w / mass_s[:, None]
    hit_u = (~seen_sample & (arg_u == targets)).to(f64) * sample_w / mass_u[:, None]
    gap = max_s.to(f64) - max_u.to(f64)                                           # [S, N]
    gap_sorted, order = gap.sort(dim=-1, stable=True)
    hit_s, hit_u = hit_s.gather(-1, order), hit_u.gather(-1, order)
    zero = torch.zeros(n_steps, 1, dtype=f64, device=device)
    # Vertex k (k = 0..N): the k smallest gaps are on the unseen side.
    unseen_acc = torch.cat([zero, hit_u.cumsum(-1)], dim=-1)                      # [S, N+1]
    seen_acc = torch.cat([hit_s.flip(-1).cumsum(-1).flip(-1), zero], dim=-1)     # [S, N+1]
    # Vertex k exists only if a bias separates sample k-1 from sample k; a vertex inside
    # a run of equal gaps is replaced by the run's end, adding zero-width segments.
    edge = torch.ones(n_steps, 1, dtype=torch.bool, device=device)
    exists = torch.cat([edge, gap_sorted[:, :-1] < gap_sorted[:, 1:], edge], dim=-1)
    vertex = torch.arange(n + 1, device=device).expand(n_steps, -1)
    vertex = torch.where(exists, vertex, n).flip(-1).cummin(-1).values.flip(-1)
    area = torch.trapezoid(seen_acc.gather(-1, vertex), unseen_acc.gather(-1, vertex), dim=-1)
    only_seen_acc, only_unseen_acc = seen_acc[:, 0], unseen_acc[:, -1]
    ausuc = torch.where(~seen.any(-1), only_unseen_acc,          # ClassNorm: no seen classes
                        torch.where(seen.all(-1), only_seen_acc,  # ClassNorm: no unseen ones
                                    area)) * 100

    return {"SA": sa, "UA": ua, "H": _harmonic(sa, ua), "JA": ja, "AUSUC": ausuc,
            "zsl": 100 * only_unseen_acc,
            "class_hits": class_hits, "class_mass": class_mass,
            "curve": (unseen_acc, seen_acc, exists)}


def _seen_at(class_to_task: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """``[S, C]`` bool: class ``c`` is seen at step ``steps[s]`` (``0 <= task <= step``)."""
    return (class_to_task[None, :] >= 0) & (class_to_task[None, :] <= steps[:, None])


def _task_acc(result: dict[str, torch.Tensor], class_to_task: torch.Tensor,
              n_tasks: int) -> torch.Tensor:
    """``[S, T]`` accuracy on each task's test samples (percent, NaN without samples)."""
    tasks = torch.arange(n_tasks, device=class_to_task.device)
    member = (class_to_task[:, None] == tasks).to(torch.float64)                  # [C, T]
    return 100 * (result["class_hits"] @ member) / (result["class_mass"] @ member)


def _prepare(logits: torch.Tensor, targets: torch.Tensor,
             class_to_task: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Validate, move ``targets``/``class_to_task`` to the logits' device, count tasks."""
    if class_to_task.ndim != 1 or class_to_task.is_floating_point():
        raise ValueError("class_to_task must be a 1-d integer tensor [C]")
    _check_inputs(logits, targets, class_to_task.shape[0])
    device = logits.device
    class_to_task = class_to_task.to(device=device, dtype=torch.long)
    # The one host read: the number of tasks is an output shape.
    n_tasks = int(class_to_task.max()) + 1 if class_to_task.numel() else 0
    return targets.to(device=device, dtype=torch.long), class_to_task, n_tasks


def step_metrics(logits: torch.Tensor, targets: torch.Tensor, class_to_task: torch.Tensor,
                 step: int, *, per_class: bool) -> dict[str, torch.Tensor]:
    """Metrics of one CZSL step (after training task ``step``).

    :param logits: ``[N, C]`` logits of the whole test set over all classes.
    :param targets: ``[N]`` integer class ids in ``[0, C)``.
    :param class_to_task: ``[C]`` integer task of each class, ``-1`` for never trained.
    :param step: the step ``t``; seen classes are those with ``0 <= task <= t``.
    :param per_class: ``True``: mean of per-class accuracies; ``False``: per-sample.
    :return: 0-d float64 tensors ``SA``, ``UA``, ``H``, ``JA``, ``AUSUC`` (percent, NaN when
        undefined) and ``task_acc`` ``[T]`` (percent, NaN for a task without test samples),
        all on the logits' device.
    :raises ValueError: on inconsistent shapes or ``step < 0``.
    """
    if logits.ndim != 2:
        raise ValueError(f"logits must be [N, C], got shape {tuple(logits.shape)}")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    targets, class_to_task, n_tasks = _prepare(logits, targets, class_to_task)
    steps = torch.tensor([step], device=logits.device)
    result = _evaluate(logits[None], targets, _seen_at(class_to_task, steps), per_class)
    out = {key: result[key][0] for key in _STEP_KEYS}
    out["task_acc"] = _task_acc(result, class_to_task, n_tasks)[0]
    return out


def forgetting_measure(acc_matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forgetting (Chaudhry et al., 2018) of an accuracy matrix, as fractions.

    ``F_i = mean_{j < i} (max_{k < i} a[k, j] - a[i, j]) / 100`` for ``i >= 1``; NaN entries
    of ``a`` (tasks without test samples) are left out of the max and of the mean.

    :param acc_matrix: ``[S, T]`` accuracy (percent) on task ``j`` after step ``i``.
    :return: ``(per_step, per_task)``: ``[S]`` ``F_i`` (NaN at step 0 and where no task
        ``j < i`` has a value) and ``[T]`` the final step's inner term
        ``(max_{k < S-1} a[k, j] - a[S-1, j]) / 100`` (NaN for ``j >= S - 1``).
    """
    n_steps, n_tasks = acc_matrix.shape
    device, a = acc_matrix.device, acc_matrix.to(torch.float64)
    filled = torch.where(torch.isnan(a), float("-inf"), a)
    best = filled.cummax(dim=0).values                                 # [S, T] max over k <= i
    best_before = torch.cat([torch.full_like(best[:1], float("-inf")), best[:-1]])  # k < i
    drop = best_before - a
    earlier_task = (torch.arange(n_tasks, device=device)[None, :]
                    < torch.arange(n_steps, device=device)[:, None])  # [S, T]: j < i
    drop = torch.where(earlier_task & torch.isfinite(drop), drop, float("nan")) / 100
    return torch.nanmean(drop, dim=1), drop[-1]


@dataclass(frozen=True, eq=False)
class RunMetrics:
    """Metrics of a whole CZSL run (see the module docstring for every definition).

    :param steps: ``"SA"``, ``"UA"``, ``"H"``, ``"JA"``, ``"AUSUC"`` (percent) and
        ``"forgetting"`` (fraction, NaN at step 0), each ``[S]``.
    :param acc_matrix: ``[S, T]`` accuracy (percent) on task ``j``'s test samples after
        step ``i``.
    :param task_forgetting: ``[T]`` forgetting of each task at the final step (fraction,
        NaN for tasks not trained before the final step or without test samples).
    :param per_class: the accuracy convention the numbers were computed with.
    """

    steps: dict[str, torch.Tensor]
    acc_matrix: torch.Tensor
    task_forgetting: torch.Tensor
    per_class: bool = field(default=False)

    def summary(self) -> dict[str, float]:
        """Run-level numbers as Python floats (NaN where undefined).

        ``mSA``, ``mUA``, ``mH``, ``mAUC`` average the steps where ``UA`` is defined (an
        unseen class has test samples); ``mJA`` averages all steps; NaN step values are
        skipped. ``forgetting_final`` is the last step's forgetting, ``forgetting_mean``
        the mean over steps ``1..S-1``.
        """
        zero_shot_step = ~torch.isnan(self.steps["UA"])

        def mean(values: torch.Tensor, where: torch.Tensor | None = None) -> float:
            if where is not None:
                values = torch.where(where, values, float("nan"))
            return float(torch.nanmean(values))

        return {
            "mSA": mean(self.steps["SA"], zero_shot_step),
            "mUA": mean(self.steps["UA"], zero_shot_step),
            "mH": mean(self.steps["H"], zero_shot_step),
            "mJA": mean(self.steps["JA"]),
            "mAUC": mean(self.steps["AUSUC"], zero_shot_step),
            "forgetting_final": float(self.steps["forgetting"][-1]),
            "forgetting_mean": mean(self.steps["forgetting"]),
        }

    def to_dict(self) -> dict:
        """JSON-ready copy: plain lists and floats, NaN as ``None``, with conventions."""
        return {
            "summary": _nan_to_none(self.summary()),
            "steps": {key: _nan_to_none(value.tolist()) for key, value in self.steps.items()},
            "acc_matrix": _nan_to_none(self.acc_matrix.tolist()),
            "task_forgetting": _nan_to_none(self.task_forgetting.tolist()),
            "conventions": {
                "accuracy": ("per-class: mean over classes with test samples of per-class "
                             "accuracy" if self.per_class else
                             "per-sample: fraction of test samples classified correctly"),
                "prediction": "argmax over all classes (generalized); ties -> lowest index",
                "step": "step t = evaluated after training task t; seen = tasks 0..t",
                "units": "accuracies, H, JA, AUSUC, acc_matrix in percent; "
                         "forgetting as a fraction",
                "mSA/mUA/mH/mAUC": "mean over steps with at least one unseen class "
                                   "with test samples",
                "mJA": "mean over all steps",
                "forgetting": "Chaudhry et al. 2018 / ClassNorm: mean over tasks j<i of "
                              "max_{k<i} a[k,j] - a[i,j]; final = last step, mean = over "
                              "steps 1..S-1",
                "AUSUC": "exact seen-unseen curve over every calibration gap, trapezoid "
                         "x 100; no seen (unseen) classes -> 100 x unseen (seen) accuracy",
                "undefined": "NaN (null in JSON), left out of every mean",
            },
            "per_class": self.per_class,
        }


def _nan_to_none(value):
    """Replace float NaN by ``None`` in nested lists / dicts of floats."""
    if isinstance(value, dict):
        return {key: _nan_to_none(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(item) for item in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def run_metrics(logits_history: torch.Tensor, targets: torch.Tensor,
                class_to_task: torch.Tensor, *, per_class: bool) -> RunMetrics:
    """Metrics of a CZSL run from the logits after every step.

    :param logits_history: ``[S, N, C]``; ``logits_history[t]`` are the logits of the whole
        test set after training task ``t`` (no before-training entry).
    :param targets: ``[N]`` integer class ids in ``[0, C)``.
    :param class_to_task: ``[C]`` integer task of each class, ``-1`` for never trained.
    :param per_class: ``True``: mean of per-class accuracies; ``False``: per-sample
        (ClassNorm's CZSL convention).
    :return: a :class:`RunMetrics` whose tensors are on the logits' device.
    :raises ValueError: on inconsistent shapes or an empty history.
    """
    if logits_history.ndim != 3 or logits_history.shape[0] == 0:
        raise ValueError(f"logits_history must be [S, N, C] with S >= 1, "
                         f"got shape {tuple(logits_history.shape)}")
    targets, class_to_task, n_tasks = _prepare(logits_history, targets, class_to_task)
    steps = torch.arange(logits_history.shape[0], device=logits_history.device)
    result = _evaluate(logits_history, targets, _seen_at(class_to_task, steps), per_class)
    acc_matrix = _task_acc(result, class_to_task, n_tasks)
    per_step, per_task = forgetting_measure(acc_matrix)
    per_step_metrics = {key: result[key] for key in _STEP_KEYS}
    per_step_metrics["forgetting"] = per_step
    return RunMetrics(steps=per_step_metrics, acc_matrix=acc_matrix,
                      task_forgetting=per_task, per_class=per_class)


class StepScorer:
    """One step's test logits, reduced chunk by chunk to what every metric needs.

    Call it with the logits of consecutive test samples, in order (``scorer(chunk)``,
    ``[B, C]`` each); it keeps each sample's best seen and best unseen logit and class
    (:func:`_sides`) and whether every logit was finite, and drops the chunk. Scoring a
    test set of ``N`` samples in chunks of ``B`` then needs ``O(S * (B * C + N) + C)``
    memory instead of the ``[N, C]`` logits, and every figure computed from it
    (:func:`record_from_scores`, :func:`gzsl_from_scores`, :func:`curve_from_scores`)
    is identical to the one computed from the whole logits: the reductions are row by
    row, and everything after them is the same code on the same ``[N]`` vectors.

    :param seen: ``[S, C]`` (or ``[C]``) bool on the logits' device: the seen classes of
        each split the step is scored under (row 0: the step's own; a static run adds
        its fixed split).
    """

    def __init__(self, seen: torch.Tensor) -> None:
        if seen.ndim == 1:
            seen = seen[None]
        if seen.ndim != 2:
            raise ValueError("seen must be a [S, C] or [C] bool tensor")
        self.seen = seen.to(torch.bool)
        self._parts: list[tuple[torch.Tensor, ...]] = []
        self._finite: torch.Tensor | None = None
        self._joined: tuple[torch.Tensor, ...] | None = None

    def __call__(self, logits: torch.Tensor) -> None:
        """Add the logits ``[B, C]`` of the next ``B`` test samples."""
        if logits.ndim != 2:
            raise ValueError(f"logits must be [B, C], got shape {tuple(logits.shape)}")
        if logits.shape[1] != self.seen.shape[1]:
            raise ValueError(f"logits have {logits.shape[1]} classes but the seen mask "
                             f"has {self.seen.shape[1]}")
        if not logits.is_floating_point():
            raise ValueError(f"logits must be a floating-point tensor, got {logits.dtype}")
        logits = logits.detach()
        self._parts.append(_sides(logits[None], self.seen.to(logits.device)))
        finite = torch.isfinite(logits).all()  # stays on the device: no host read
        self._finite = finite if self._finite is None else self._finite & finite
        self._joined = None

    @property
    def n_samples(self) -> int:
        """Test samples added so far."""
        return sum(part[0].shape[1] for part in self._parts)

    @property
    def finite(self) -> bool:
        """Every logit added was finite (one host read)."""
        return self._finite is None or bool(self._finite)

    def evaluate(self, targets: torch.Tensor, row: int, per_class: bool
                 ) -> dict[str, torch.Tensor]:
        """:func:`_evaluate` of split ``row`` (its outputs have one step, ``[1, ...]``).

        :param targets: ``[N]`` integer class ids of the samples added, in order.
        :param row: which seen mask (row of ``seen``).
        :param per_class: accuracy convention (module docstring).
        """
        if not self._parts:
            raise ValueError("no test samples: every metric would be undefined")
        if targets.ndim != 1 or targets.shape[0] != self.n_samples:
            raise ValueError(f"targets must have shape [N] = [{self.n_samples}], "
                             f"got {tuple(targets.shape)}")
        if targets.is_floating_point() or targets.dtype == torch.bool:
            raise ValueError(f"targets must be an integer tensor, got {targets.dtype}")
        if self._joined is None:
            self._joined = tuple(torch.cat(parts, dim=-1) for parts in zip(*self._parts))
        sides = tuple(part[row:row + 1] for part in self._joined)        # [1, N] each
        seen = self.seen[row:row + 1].to(sides[0].device)
        return _evaluate_sides(sides, targets.to(device=sides[0].device, dtype=torch.long),
                               seen, per_class)


def step_record(logits: torch.Tensor, targets: torch.Tensor, class_to_task: torch.Tensor,
                step: int, *, per_class: bool) -> dict[str, torch.Tensor]:
    """What a run keeps of step ``step``: the numbers :func:`metrics_from_steps` needs.

    A run scores each step when it ends and drops its logits, so its memory and its
    checkpoint hold ``O(S * T)`` numbers, not ``S`` times ``[N, C]`` logits. The row of
    step ``step`` is computed exactly as :func:`run_metrics` computes it within the whole
    history (the same operations on the same row), so the results are identical. A run
    scores its test set in chunks instead (:class:`StepScorer`,
    :func:`record_from_scores`), with the same result.

    :param logits: ``[N, C]`` logits of the whole test set after task ``step``.
    :param targets: ``[N]`` integer class ids in ``[0, C)``.
    :param class_to_task: ``[C]`` integer task of each class, ``-1`` for never trained.
    :param step: the step (task just trained).
    :param per_class: the accuracy convention.
    :return: ``SA``, ``UA``, ``H``, ``JA``, ``AUSUC`` (each ``[1]``, float64) and
        ``acc_row`` (``[1, T]``: accuracy on each task's test samples).
    """
    targets, class_to_task, _ = _prepare(logits[None], targets, class_to_task)
    steps = torch.tensor([step], device=logits.device)
    scorer = StepScorer(_seen_at(class_to_task, steps))
    scorer(logits)
    return record_from_scores(scorer, targets, class_to_task, per_class=per_class)


def record_from_scores(scores: StepScorer, targets: torch.Tensor,
                       class_to_task: torch.Tensor, *, per_class: bool,
                       row: int = 0) -> dict[str, torch.Tensor]:
    """:func:`step_record` of a step scored in chunks.

    :param scores: the step's scorer, every test sample added; row ``row`` of its seen
        masks is the step's (``0 <= class_to_task <= step``).
    :param targets: ``[N]`` integer class ids in ``[0, C)``.
    :param class_to_task: ``[C]`` integer task of each class, ``-1`` for never trained.
    :param per_class: the accuracy convention.
    :param row: which of the scorer's seen masks is the step's.
    """
    result = scores.evaluate(targets, row, per_class)
    class_to_task = class_to_task.to(device=result["class_mass"].device, dtype=torch.long)
    n_tasks = int(class_to_task.max()) + 1 if class_to_task.numel() else 0
    return {**{key: result[key] for key in _STEP_KEYS},
            "acc_row": _task_acc(result, class_to_task, n_tasks)}


def metrics_from_steps(records: list[dict[str, torch.Tensor]], *,
                       per_class: bool) -> RunMetrics:
    """:func:`run_metrics` from the :func:`step_record` of every step, in order.

    :param records: one record per step, step 0 first.
    :param per_class: the accuracy convention the records were computed with.
    :raises ValueError: on an empty list.
    """
    if not records:
        raise ValueError("metrics_from_steps needs the record of at least one step")
    acc_matrix = torch.cat([r["acc_row"] for r in records])
    per_step, per_task = forgetting_measure(acc_matrix)
    steps = {key: torch.cat([r[key] for r in records]) for key in _STEP_KEYS}
    steps["forgetting"] = per_step
    return RunMetrics(steps=steps, acc_matrix=acc_matrix, task_forgetting=per_task,
                      per_class=per_class)


def _evaluate_one(logits: torch.Tensor, targets: torch.Tensor, seen_mask: torch.Tensor,
                  per_class: bool) -> dict[str, torch.Tensor]:
    """:func:`_evaluate` for one ``[N, C]`` logits matrix and one ``[C]`` seen mask."""
    if logits.ndim != 2:
        raise ValueError(f"logits must be [N, C], got shape {tuple(logits.shape)}")
    if seen_mask.ndim != 1:
        raise ValueError("seen_mask must be a 1-d bool tensor [C]")
    _check_inputs(logits, targets, seen_mask.shape[0])
    device = logits.device
    seen = seen_mask.to(device=device, dtype=torch.bool)[None]
    return _evaluate(logits[None], targets.to(device=device, dtype=torch.long), seen,
                     per_class)


def gzsl_metrics(logits: torch.Tensor, targets: torch.Tensor, seen_mask: torch.Tensor, *,
                 per_class: bool = True) -> dict[str, torch.Tensor]:
    """Static GZSL metrics (Xian et al., 2018) with a fixed seen / unseen class split.

    :param logits: ``[N, C]`` logits over all classes.
    :param targets: ``[N]`` integer class ids in ``[0, C)``.
    :param seen_mask: ``[C]`` bool, ``True`` for seen (training) classes.
    :param per_class: ``True`` (default, the xlsa17 convention): mean of per-class
        accuracies; ``False``: per-sample.
    :return: 0-d float64 tensors (percent): ``zsl_top1`` (unseen test samples, argmax among
        unseen classes only), ``u`` and ``s`` (argmax over all classes), ``H``, ``AUSUC``.
    :raises ValueError: on inconsistent shapes.
    """
    return _gzsl(_evaluate_one(logits, targets, seen_mask, per_class))


def gzsl_from_scores(scores: StepScorer, targets: torch.Tensor, *, per_class: bool = True,
                     row: int = 0) -> dict[str, torch.Tensor]:
    """:func:`gzsl_metrics` of logits scored in chunks, with the split of row ``row`` of
    the scorer's seen masks."""
    return _gzsl(scores.evaluate(targets, row, per_class))


def _gzsl(result: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {"zsl_top1": result["zsl"][0], "u": result["UA"][0], "s": result["SA"][0],
            "H": result["H"][0], "AUSUC": result["AUSUC"][0]}


def seen_unseen_curve(logits: torch.Tensor, targets: torch.Tensor, seen_mask: torch.Tensor, *,
                      per_class: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The seen-unseen accuracy curve whose area is ``AUSUC`` (Chao et al., 2016).

    The vertices of the exact sweep described in the module docstring (one per
    calibration gap, ties merged), from "every sample on the seen side" (unseen accuracy
    0) to "every sample on the unseen side" (seen accuracy 0). In the degenerate cases
    the curve is ClassNorm's convention, so that the area still equals ``AUSUC``: no seen
    classes gives ``(0, 100), (U, 100), (U, 0)``, no unseen classes
    ``(0, S), (100, S), (100, 0)``. A side that has classes but no test samples has NaN
    accuracies along the curve (``AUSUC`` is NaN then too).

    ``torch.trapezoid(seen_acc, unseen_acc) / 100`` equals the ``AUSUC`` that
    :func:`step_metrics` and :func:`gzsl_metrics` report for the same seen classes.

    :param logits: ``[N, C]`` logits over all classes.
    :param targets: ``[N]`` integer class ids in ``[0, C)``.
    :param seen_mask: ``[C]`` bool, ``True`` for seen classes (at step ``t`` of a CZSL run:
        the classes of tasks ``0..t``).
    :param per_class: accuracy convention (module docstring).
    :return: ``(unseen_acc, seen_acc)``, two ``[K]`` float64 tensors in percent on the
        logits' device, ``unseen_acc`` non-decreasing and ``seen_acc`` non-increasing.
    :raises ValueError: on inconsistent shapes.
    """
    seen = seen_mask.to(device=logits.device, dtype=torch.bool)
    return _curve(_evaluate_one(logits, targets, seen_mask, per_class), seen)


def curve_from_scores(scores: StepScorer, targets: torch.Tensor, *, per_class: bool,
                      row: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`seen_unseen_curve` of logits scored in chunks, with the seen classes of row
    ``row`` of the scorer's seen masks."""
    return _curve(scores.evaluate(targets, row, per_class), scores.seen[row])


def _curve(result: dict[str, torch.Tensor], seen: torch.Tensor
           ) -> tuple[torch.Tensor, torch.Tensor]:
    unseen_acc, seen_acc, exists = (part[0] for part in result["curve"])  # [N+1] each
    if not seen.any():
        u = 100 * unseen_acc[-1]
        return torch.stack([u.new_zeros(()), u, u]), u.new_tensor([100.0, 100.0, 0.0])
    if seen.all():
        s = 100 * seen_acc[0]
        return s.new_tensor([0.0, 100.0, 100.0]), torch.stack([s, s, s.new_zeros(())])
    return 100 * unseen_acc[exists], 100 * seen_acc[exists]
