"""Tests of czsl.metrics against slow, obvious loop implementations.

The ``oracle_*`` functions below loop over samples, classes, steps and thresholds in
plain Python. ``benchmarks/metrics_speed.py`` imports them from this file, so there is
one oracle. The exact AUSUC sweep of the oracle is itself checked against a brute-force
calibration sweep (a bias added to the unseen logits, argmax over all classes).
"""

from __future__ import annotations

import json
import math
import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from czsl.metrics import (
    RunMetrics,
    forgetting_measure,
    gzsl_metrics,
    run_metrics,
    step_metrics,
)

NAN = float("nan")

# --------------------------------------------------------------------------------------
# Oracles: plain Python over lists.
# --------------------------------------------------------------------------------------


def oracle_argmax(row, classes):
    """The first class of ``classes`` (ascending ids) with the largest logit."""
    best = None
    for c in classes:
        if best is None or row[c] > row[best]:
            best = c
    return best


def oracle_weights(targets, group, per_class):
    """Weight of every test sample in the accuracy of the classes in ``group``."""
    members = [i for i, y in enumerate(targets) if y in group]
    if per_class:
        per_class_count = {}
        for i in members:
            per_class_count[targets[i]] = per_class_count.get(targets[i], 0) + 1
        return {i: 1.0 / (per_class_count[targets[i]] * len(per_class_count))
                for i in members}
    return {i: 1.0 / len(members) for i in members}


def oracle_accuracy(preds, targets, group, per_class):
    """Percent accuracy of ``preds`` on the test samples whose class is in ``group``."""
    if per_class:
        hits, counts = {}, {}
        for p, y in zip(preds, targets):
            if y in group:
                counts[y] = counts.get(y, 0) + 1
                hits[y] = hits.get(y, 0) + (p == y)
        if not counts:
            return NAN
        return 100.0 * sum(hits[c] / counts[c] for c in counts) / len(counts)
    n = correct = 0
    for p, y in zip(preds, targets):
        if y in group:
            n += 1
            correct += p == y
    return 100.0 * correct / n if n else NAN


def oracle_harmonic(s, u):
    if math.isnan(s) or math.isnan(u):
        return NAN
    return 0.0 if s + u == 0 else 2 * s * u / (s + u)


def oracle_trapezoid(points):
    area = 0.0
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        area += (x1 - x0) * (y0 + y1) / 2
    return area


def _degenerate_ausuc(rows, targets, seen, unseen, per_class):
    """ClassNorm's convention when one side has no classes (None if both have some)."""
    if not seen:
        preds = [oracle_argmax(r, sorted(unseen)) for r in rows]
        return oracle_accuracy(preds, targets, unseen, per_class)
    if not unseen:
        preds = [oracle_argmax(r, sorted(seen)) for r in rows]
        return oracle_accuracy(preds, targets, seen, per_class)
    return None


def oracle_ausuc_sweep(rows, targets, seen, unseen, per_class):
    """Exact AUSUC: move samples to the unseen side in order of their gap, equal gaps
    together, and take the trapezoid area of the (unseen acc, seen acc) vertices."""
    degenerate = _degenerate_ausuc(rows, targets, seen, unseen, per_class)
    if degenerate is not None:
        return degenerate
    w_seen = oracle_weights(targets, seen, per_class)
    w_unseen = oracle_weights(targets, unseen, per_class)
    if not w_seen or not w_unseen:
        return NAN
    seen_classes, unseen_classes = sorted(seen), sorted(unseen)
    items = []
    for i, row in enumerate(rows):
        best_seen = oracle_argmax(row, seen_classes)
        best_unseen = oracle_argmax(row, unseen_classes)
        gap = row[best_seen] - row[best_unseen]
        seen_hit = w_seen.get(i, 0.0) if best_seen == targets[i] else 0.0
        unseen_hit = w_unseen.get(i, 0.0) if best_unseen == targets[i] else 0.0
        items.append((gap, seen_hit, unseen_hit))
    items.sort(key=lambda item: item[0])
    x, y = 0.0, sum(item[1] for item in items)
    points = [(x, y)]
    i = 0
    while i < len(items):
        j = i
        while j < len(items) and items[j][0] == items[i][0]:
            x += items[j][2]
            y -= items[j][1]
            j += 1
        points.append((x, y))
        i = j
    return 100.0 * oracle_trapezoid(points)


def oracle_ausuc_bruteforce(rows, targets, seen, unseen, per_class):
    """AUSUC by adding a bias to the unseen logits at every midpoint between distinct
    sorted gaps and beyond both ends, then argmax over all classes (small inputs only)."""
    degenerate = _degenerate_ausuc(rows, targets, seen, unseen, per_class)
    if degenerate is not None:
        return degenerate
    all_classes = list(range(len(rows[0])))
    gaps = sorted({max(r[c] for c in seen) - max(r[c] for c in unseen) for r in rows})
    biases = ([gaps[0] - 1.0] + [(a + b) / 2 for a, b in zip(gaps, gaps[1:])]
              + [gaps[-1] + 1.0])
    points = []
    for bias in biases:
        preds = []
        for row in rows:
            shifted = [v + bias if c in unseen else v for c, v in enumerate(row)]
            preds.append(oracle_argmax(shifted, all_classes))
        u = oracle_accuracy(preds, targets, unseen, per_class) / 100
        s = oracle_accuracy(preds, targets, seen, per_class) / 100
        points.append((u, s))
    return 100.0 * oracle_trapezoid(points)


def oracle_step(rows, targets, class_to_task, step, per_class):
    """All per-step metrics of one step; ``rows`` is a list of logit lists."""
    n_classes = len(class_to_task)
    n_tasks = max(class_to_task) + 1
    seen = {c for c in range(n_classes) if 0 <= class_to_task[c] <= step}
    unseen = set(range(n_classes)) - seen
    preds = [oracle_argmax(row, list(range(n_classes))) for row in rows]
    sa = oracle_accuracy(preds, targets, seen, per_class)
    ua = oracle_accuracy(preds, targets, unseen, per_class)
    task_acc = []
    for k in range(n_tasks):
        task_classes = {c for c in range(n_classes) if class_to_task[c] == k}
        task_acc.append(oracle_accuracy(preds, targets, task_classes, per_class))
    return {
        "SA": sa, "UA": ua, "H": oracle_harmonic(sa, ua),
        "JA": oracle_accuracy(preds, targets, set(range(n_classes)), per_class),
        "AUSUC": oracle_ausuc_sweep(rows, targets, seen, unseen, per_class),
        "task_acc": task_acc,
    }


def _nanmean(values):
    values = [v for v in values if not math.isnan(v)]
    return sum(values) / len(values) if values else NAN


def oracle_forgetting(acc):
    """Per-step and final per-task forgetting (fractions) of a list-of-lists matrix."""
    n_steps, n_tasks = len(acc), len(acc[0])
    per_step = [NAN]
    for i in range(1, n_steps):
        drops = []
        for j in range(min(i, n_tasks)):
            earlier = [acc[k][j] for k in range(i) if not math.isnan(acc[k][j])]
            if earlier and not math.isnan(acc[i][j]):
                drops.append((max(earlier) - acc[i][j]) / 100)
        per_step.append(_nanmean(drops))
    last = n_steps - 1
    per_task = []
    for j in range(n_tasks):
        earlier = [acc[k][j] for k in range(last) if not math.isnan(acc[k][j])]
        if j < last and earlier and not math.isnan(acc[last][j]):
            per_task.append((max(earlier) - acc[last][j]) / 100)
        else:
            per_task.append(NAN)
    return per_step, per_task


def oracle_run(logits_history, targets, class_to_task, per_class):
    """Everything :func:`run_metrics` computes, from tensors, by loops."""
    targets = targets.tolist()
    class_to_task = class_to_task.tolist()
    n_classes = len(class_to_task)
    steps = []
    for t in range(logits_history.shape[0]):
        steps.append(oracle_step(logits_history[t].tolist(), targets, class_to_task, t,
                                 per_class))
    acc = [s["task_acc"] for s in steps]
    per_step, per_task = oracle_forgetting(acc)
    present = set(targets)
    zero_shot = [any(c in present and not 0 <= class_to_task[c] <= t
                     for c in range(n_classes)) for t in range(len(steps))]

    def mean_over_zero_shot(key):
        return _nanmean([s[key] for s, z in zip(steps, zero_shot) if z])

    summary = {
        "mSA": mean_over_zero_shot("SA"), "mUA": mean_over_zero_shot("UA"),
        "mH": mean_over_zero_shot("H"), "mJA": _nanmean([s["JA"] for s in steps]),
        "mAUC": mean_over_zero_shot("AUSUC"),
        "forgetting_final": per_step[-1], "forgetting_mean": _nanmean(per_step),
    }
    return {"steps": steps, "acc_matrix": acc, "forgetting": per_step,
            "task_forgetting": per_task, "summary": summary}


def oracle_gzsl(rows, targets, seen_mask, per_class):
    n_classes = len(seen_mask)
    seen = {c for c in range(n_classes) if seen_mask[c]}
    unseen = set(range(n_classes)) - seen
    preds = [oracle_argmax(row, list(range(n_classes))) for row in rows]
    zsl_preds = [oracle_argmax(row, sorted(unseen)) if unseen else None for row in rows]
    u = oracle_accuracy(preds, targets, unseen, per_class)
    s = oracle_accuracy(preds, targets, seen, per_class)
    return {"zsl_top1": oracle_accuracy(zsl_preds, targets, unseen, per_class),
            "u": u, "s": s, "H": oracle_harmonic(s, u),
            "AUSUC": oracle_ausuc_sweep(rows, targets, seen, unseen, per_class)}


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def assert_close(actual, expected, tol=1e-6, what=""):
    """Compare a float / tensor / list with NaN == NaN."""
    if isinstance(actual, torch.Tensor):
        actual = actual.tolist()
    if isinstance(actual, list):
        assert len(actual) == len(expected), what
        for k, (a, e) in enumerate(zip(actual, expected)):
            assert_close(a, e, tol, f"{what}[{k}]")
        return
    if math.isnan(expected):
        assert math.isnan(actual), f"{what}: expected NaN, got {actual}"
    else:
        assert abs(actual - expected) <= tol, f"{what}: {actual} != {expected}"


def random_case(seed, n_steps, n_samples, n_tasks, *, never_trained=0, grid=0.5,
                empty_classes=1):
    """A random run with ties, a one-class task, classes without test samples and
    optionally never-trained classes (task -1)."""
    gen = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    sizes = [1] + [rng.randint(2, 4) for _ in range(n_tasks - 1)]  # task 0 has one class
    class_to_task = [t for t, size in enumerate(sizes) for _ in range(size)]
    class_to_task += [-1] * never_trained
    rng.shuffle(class_to_task)
    n_classes = len(class_to_task)
    # Classes without test samples: never the one-class task's class.
    lonely = class_to_task.index(0)
    empty = set(rng.sample([c for c in range(n_classes) if c != lonely], empty_classes))
    allowed = [c for c in range(n_classes) if c not in empty]
    targets = torch.tensor([lonely] + [rng.choice(allowed) for _ in range(n_samples - 1)])
    # Coarse grid -> many equal logits (argmax ties) and equal gaps (AUSUC ties).
    logits = torch.randint(0, 6, (n_steps, n_samples, n_classes), generator=gen) * grid
    logits[:, torch.arange(n_samples), targets] += grid * torch.randint(
        0, 3, (n_steps, n_samples), generator=gen)
    return logits.float(), targets, torch.tensor(class_to_task)


def check_run_against_oracle(logits, targets, class_to_task, per_class):
    fast = run_metrics(logits, targets, class_to_task, per_class=per_class)
    slow = oracle_run(logits, targets, class_to_task, per_class)
    for key in ("SA", "UA", "H", "JA", "AUSUC"):
        assert_close(fast.steps[key], [s[key] for s in slow["steps"]], what=key)
    assert_close(fast.steps["forgetting"], slow["forgetting"], what="forgetting")
    assert_close(fast.acc_matrix, slow["acc_matrix"], what="acc_matrix")
    assert_close(fast.task_forgetting, slow["task_forgetting"], what="task_forgetting")
    summary = fast.summary()
    assert set(summary) == set(slow["summary"])
    for key, value in slow["summary"].items():
        assert_close(summary[key], value, what=key)
    return fast


# --------------------------------------------------------------------------------------
# Hand-computed cases
# --------------------------------------------------------------------------------------

# 4 samples, 3 classes; classes 0, 1 in task 0, class 2 in task 1.
#   sample  target  logits     argmax (all)         seen side       unseen side  gap
#   s0      0       [3, 1, 2]  0  correct           0 correct       2            3-2 = 1
#   s1      0       [1, 2, 0]  1  wrong             1 wrong         2            2-0 = 2
#   s2      1       [0, 2, 2]  1  correct (tie 1~2, 1 correct       2            2-2 = 0
#                              lowest index wins)
#   s3      2       [2, 0, 1]  0  wrong             0               2 correct    2-1 = 1
HAND_LOGITS = torch.tensor([[3.0, 1, 2], [1, 2, 0], [0, 2, 2], [2, 0, 1]])
HAND_TARGETS = torch.tensor([0, 0, 1, 2])
HAND_TASKS = torch.tensor([0, 0, 1])


def test_hand_step_per_sample():
    m = step_metrics(HAND_LOGITS, HAND_TARGETS, HAND_TASKS, 0, per_class=False)
    # seen samples s0 s1 s2: 2 of 3 right; unseen s3 wrong; all: 2 of 4.
    assert_close(m["SA"], 200 / 3)
    assert_close(m["UA"], 0.0)
    assert_close(m["H"], 0.0)
    assert_close(m["JA"], 50.0)
    # Seen-side hits s0, s2 (1/3 each), unseen-side hit s3 (1). Sorted gaps:
    # s2 (0), {s0, s3} (1, tied), s1 (2). Vertices (unseen acc, seen acc):
    # (0, 2/3) -> s2 crosses -> (0, 1/3) -> s0 and s3 cross together -> (1, 0) -> (1, 0).
    # Area = 1 * (1/3 + 0) / 2 = 1/6.  (Splitting the tie would give 0 or 1/3.)
    assert_close(m["AUSUC"], 100 / 6)
    assert_close(m["task_acc"], [200 / 3, 0.0])


def test_hand_step_per_class():
    m = step_metrics(HAND_LOGITS, HAND_TARGETS, HAND_TASKS, 0, per_class=True)
    # class 0: 1/2, class 1: 1/1 -> SA = 75; class 2: 0/1 -> UA = 0;
    # JA = (1/2 + 1 + 0) / 3 = 50.
    assert_close(m["SA"], 75.0)
    assert_close(m["UA"], 0.0)
    assert_close(m["JA"], 50.0)
    # Seen weights: s0, s1 1/4 each, s2 1/2 -> seen-side acc = 1/4 + 1/2 = 3/4.
    # Vertices: (0, 3/4) -> (0, 1/4) -> (1, 0) -> (1, 0); area = (1/4) / 2 = 1/8.
    assert_close(m["AUSUC"], 12.5)
    assert_close(m["task_acc"], [75.0, 0.0])


def test_hand_step_without_unseen_classes():
    # Step 1: all classes seen. Per sample 2/4 = 50; per class (1/2 + 1 + 0)/3 = 50.
    for per_class, sa in ((False, 50.0), (True, 50.0)):
        m = step_metrics(HAND_LOGITS, HAND_TARGETS, HAND_TASKS, 1, per_class=per_class)
        assert_close(m["SA"], sa)
        assert math.isnan(m["UA"]) and math.isnan(m["H"])
        assert_close(m["AUSUC"], sa)  # ClassNorm: no unseen classes -> AUSUC = S


def test_hand_gzsl():
    m = gzsl_metrics(HAND_LOGITS, HAND_TARGETS, torch.tensor([True, True, False]))
    # Only s3 is unseen; within the unseen classes {2} it is right.
    assert_close(m["zsl_top1"], 100.0)
    assert_close(m["u"], 0.0)
    assert_close(m["s"], 75.0)  # per-class by default
    assert_close(m["H"], 0.0)
    assert_close(m["AUSUC"], 12.5)


def test_hand_run():
    history = torch.stack([HAND_LOGITS, HAND_LOGITS])
    r = run_metrics(history, HAND_TARGETS, HAND_TASKS, per_class=True)
    assert_close(r.acc_matrix, [[75.0, 0.0], [75.0, 0.0]])
    assert_close(r.steps["forgetting"], [NAN, 0.0])
    assert_close(r.task_forgetting, [0.0, NAN])
    s = r.summary()
    # Only step 0 has unseen classes: mSA/mUA/mH/mAUC from step 0, mJA from both.
    assert s == pytest.approx({"mSA": 75.0, "mUA": 0.0, "mH": 0.0, "mJA": 50.0,
                               "mAUC": 12.5, "forgetting_final": 0.0,
                               "forgetting_mean": 0.0})


def test_hand_forgetting():
    acc = torch.tensor([[50.0, 0, 0], [20, 80, 10], [40, 60, 70]])
    per_step, per_task = forgetting_measure(acc)
    # F_1 = 50 - 20 = 30 -> 0.30; F_2 = mean(max(50, 20) - 40, max(0, 80) - 60) = 15.
    assert_close(per_step, [NAN, 0.30, 0.15])
    assert_close(per_task, [0.10, 0.20, NAN])
    # The max runs over all earlier steps, also before the task was trained:
    # task 1's zero-shot 90 at step 0 counts, so F_2 = mean(10, 90 - 60) = 20.
    acc[0, 1] = 90
    assert_close(forgetting_measure(acc)[0], [NAN, 0.30, 0.20])


# --------------------------------------------------------------------------------------
# Random cases against the oracles
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("per_class", [False, True])
@pytest.mark.parametrize("seed, n_steps, n_samples, n_tasks, never_trained", [
    (0, 3, 40, 3, 0),    # S = T: last step has no unseen classes
    (1, 4, 57, 4, 2),    # never-trained classes: unseen at every step
    (2, 2, 23, 4, 0),    # stopped early: S < T
    (3, 5, 64, 3, 1),    # S > T: extra steps after the last task
    (4, 1, 31, 2, 0),    # one step: no forgetting at all
])
def test_run_matches_oracle(per_class, seed, n_steps, n_samples, n_tasks, never_trained):
    logits, targets, class_to_task = random_case(seed, n_steps, n_samples, n_tasks,
                                                 never_trained=never_trained)
    fast = check_run_against_oracle(logits, targets, class_to_task, per_class)
    assert fast.acc_matrix.shape == (n_steps, n_tasks)


@pytest.mark.parametrize("per_class", [False, True])
def test_continuous_logits_match_oracle(per_class):
    gen = torch.Generator().manual_seed(7)
    class_to_task = torch.tensor([2, 0, 1, 1, 0, 2, 2, 1, -1, 0])
    targets = torch.randint(0, 10, (90,), generator=gen)
    logits = torch.randn(3, 90, 10, generator=gen)
    check_run_against_oracle(logits, targets, class_to_task, per_class)


@pytest.mark.parametrize("per_class", [False, True])
def test_step_metrics_equal_run_rows(per_class):
    logits, targets, class_to_task = random_case(11, 4, 50, 4, never_trained=1)
    run = run_metrics(logits, targets, class_to_task, per_class=per_class)
    for t in range(4):
        one = step_metrics(logits[t], targets, class_to_task, t, per_class=per_class)
        for key in ("SA", "UA", "H", "JA", "AUSUC"):
            assert one[key].ndim == 0
            assert_close(one[key], run.steps[key][t].item(), tol=1e-12, what=key)
        assert_close(one["task_acc"], run.acc_matrix[t].tolist(), tol=1e-12)


@pytest.mark.parametrize("per_class", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_gzsl_matches_oracle(per_class, seed):
    logits, targets, _ = random_case(20 + seed, 1, 45, 3)
    gen = torch.Generator().manual_seed(seed)
    seen_mask = torch.rand(logits.shape[-1], generator=gen) < 0.6
    seen_mask[0], seen_mask[1] = True, False
    fast = gzsl_metrics(logits[0], targets, seen_mask, per_class=per_class)
    slow = oracle_gzsl(logits[0].tolist(), targets.tolist(), seen_mask.tolist(), per_class)
    assert set(fast) == set(slow)
    for key in slow:
        assert fast[key].ndim == 0
        assert_close(fast[key], slow[key], what=key)


@pytest.mark.parametrize("per_class", [False, True])
@pytest.mark.parametrize("seed, grid", [(0, 0.5), (1, 0.5), (2, 1.0), (3, 0.0), (4, None)])
def test_ausuc_matches_bruteforce_sweep(per_class, seed, grid):
    """Both the vectorised AUSUC and the oracle's sweep equal a brute-force calibration
    sweep; grid=None uses continuous logits, grid=0 makes every gap equal."""
    gen = torch.Generator().manual_seed(seed)
    n, c = 37, 7
    targets = torch.randint(0, c, (n,), generator=gen)
    if grid is None:
        logits = torch.randn(n, c, generator=gen)
    else:
        logits = torch.randint(0, 4, (n, c), generator=gen) * grid
        logits[torch.arange(n), targets] += grid
    seen_mask = torch.tensor([True, False, True, True, False, False, True])
    seen = {i for i in range(c) if seen_mask[i]}
    unseen = set(range(c)) - seen
    rows, ys = logits.double().tolist(), targets.tolist()
    brute = oracle_ausuc_bruteforce(rows, ys, seen, unseen, per_class)
    assert_close(oracle_ausuc_sweep(rows, ys, seen, unseen, per_class), brute, tol=1e-9)
    fast = gzsl_metrics(logits, targets, seen_mask, per_class=per_class)["AUSUC"]
    assert_close(fast, brute, tol=1e-4)
    assert 0.0 <= fast <= 100.0


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(2, 14),
    c=st.integers(2, 5),
    data=st.data(),
    per_class=st.booleans(),
)
def test_ausuc_property_bruteforce_and_order(n, c, data, per_class):
    """Property: on small integer logits (many ties) AUSUC equals the brute-force sweep,
    lies in [0, 100] and does not depend on the order of the samples."""
    values = data.draw(st.lists(st.lists(st.integers(-2, 2), min_size=c, max_size=c),
                                min_size=n, max_size=n))
    ys = data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n))
    seen_list = data.draw(st.lists(st.booleans(), min_size=c, max_size=c))
    logits, targets = torch.tensor(values, dtype=torch.float32), torch.tensor(ys)
    seen_mask = torch.tensor(seen_list)
    seen = {i for i in range(c) if seen_list[i]}
    unseen = set(range(c)) - seen
    rows = [[float(v) for v in row] for row in values]
    expected = oracle_ausuc_bruteforce(rows, ys, seen, unseen, per_class)
    fast = gzsl_metrics(logits, targets, seen_mask, per_class=per_class)["AUSUC"]
    assert_close(fast, expected, tol=1e-4)
    if not math.isnan(expected):
        assert -1e-9 <= fast <= 100 + 1e-9
    perm = torch.tensor(data.draw(st.permutations(range(n))))
    shuffled = gzsl_metrics(logits[perm], targets[perm], seen_mask, per_class=per_class)
    assert_close(shuffled["AUSUC"], fast.item(), tol=1e-9)


# --------------------------------------------------------------------------------------
# Degenerate inputs
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("per_class", [False, True])
def test_ausuc_degenerate_sides(per_class):
    logits, targets, _ = random_case(5, 1, 40, 3, grid=0.25)
    c = logits.shape[-1]
    everything = gzsl_metrics(logits[0], targets, torch.ones(c, dtype=torch.bool),
                              per_class=per_class)
    nothing = gzsl_metrics(logits[0], targets, torch.zeros(c, dtype=torch.bool),
                           per_class=per_class)
    joint = run_metrics(logits, targets, torch.zeros(c, dtype=torch.long),
                        per_class=per_class).steps["JA"][0]
    # ClassNorm: no unseen classes -> AUSUC = 100 x seen acc; no seen -> unseen acc.
    assert_close(everything["AUSUC"], everything["s"].item())
    assert_close(everything["AUSUC"], joint.item())
    assert math.isnan(everything["u"]) and math.isnan(everything["zsl_top1"])
    assert_close(nothing["AUSUC"], nothing["u"].item())
    assert_close(nothing["zsl_top1"], joint.item())
    assert math.isnan(nothing["s"])


def test_side_without_test_samples_is_nan():
    # Class 2 (unseen) exists but has no test samples: UA, H and AUSUC are undefined.
    logits = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 1, 0]])
    m = gzsl_metrics(logits, torch.tensor([0, 1, 1]), torch.tensor([True, True, False]))
    assert_close(m["s"], 100.0)
    for key in ("u", "H", "AUSUC", "zsl_top1"):
        assert math.isnan(m[key]), key


def test_task_without_test_samples_and_run_summary():
    # Task 1 (class 2) has no test samples: its acc_matrix column is NaN and it is left
    # out of the forgetting mean; class 3 (task -1) keeps every step zero-shot.
    logits = torch.tensor([[[2.0, 0, 0, 1], [0, 2, 0, 1], [0, 0, 0, 2]],
                           [[0.0, 2, 0, 1], [0, 2, 0, 1], [0, 0, 0, 2]]])
    targets = torch.tensor([0, 1, 3])
    class_to_task = torch.tensor([0, 0, 1, -1])
    r = check_run_against_oracle(logits, targets, class_to_task, per_class=False)
    assert torch.isnan(r.acc_matrix[:, 1]).all()
    # Step 1: task 0 drops from 100 to 50 -> forgetting 0.5.
    assert_close(r.steps["forgetting"], [NAN, 0.5])
    # Both steps have an unseen class with test samples (class 3): mUA over 2 steps.
    assert r.summary()["mUA"] == pytest.approx(100.0)
    assert r.summary()["mSA"] == pytest.approx((100.0 + 50.0) / 2)


# --------------------------------------------------------------------------------------
# Invariances, devices, output formats
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("per_class", [False, True])
def test_sample_order_and_duplication_invariance(per_class):
    """Shuffling the test set, or concatenating it with itself, changes nothing."""
    logits, targets, class_to_task = random_case(9, 3, 60, 3, never_trained=1)
    base = run_metrics(logits, targets, class_to_task, per_class=per_class)
    perm = torch.randperm(60, generator=torch.Generator().manual_seed(0))
    shuffled = run_metrics(logits[:, perm], targets[perm], class_to_task,
                           per_class=per_class)
    doubled = run_metrics(torch.cat([logits, logits], 1), torch.cat([targets, targets]),
                          class_to_task, per_class=per_class)
    for other in (shuffled, doubled):
        for key, value in base.steps.items():
            assert_close(other.steps[key], value.tolist(), tol=1e-9, what=key)
        assert_close(other.acc_matrix, base.acc_matrix.tolist(), tol=1e-9)


def test_low_precision_and_double_logits_agree():
    """Small integers are exact in every float dtype, so results must be identical."""
    logits, targets, class_to_task = random_case(13, 3, 50, 3)
    ref = run_metrics(logits, targets, class_to_task, per_class=True)
    for dtype in (torch.float16, torch.bfloat16, torch.float64):
        other = run_metrics(logits.to(dtype), targets, class_to_task, per_class=True)
        for key, value in ref.steps.items():
            assert_close(other.steps[key], value.tolist(), tol=1e-12, what=f"{dtype} {key}")


def test_logits_that_require_grad():
    logits, targets, class_to_task = random_case(29, 2, 30, 2)
    ref = run_metrics(logits, targets, class_to_task, per_class=True)
    tracked = run_metrics(logits.clone().requires_grad_(), targets, class_to_task,
                          per_class=True)
    assert not tracked.steps["AUSUC"].requires_grad
    assert_close(tracked.steps["AUSUC"], ref.steps["AUSUC"].tolist(), tol=0)


def test_no_host_reads_during_computation(monkeypatch):
    """The metrics never call .item(), .cpu(), .tolist(), .numpy() or bool()/float() on
    a tensor (host syncs on an accelerator); only summary()/to_dict() convert. The one
    host read allowed is int(class_to_task.max()), the number of tasks (a shape)."""
    logits, targets, class_to_task = random_case(17, 3, 30, 3, never_trained=1)
    seen_mask = class_to_task == 0

    def forbidden(*args, **kwargs):
        raise AssertionError("host read inside a metric computation")

    for name in ("item", "cpu", "tolist", "numpy", "__bool__", "__float__"):
        monkeypatch.setattr(torch.Tensor, name, forbidden)
    with pytest.raises(AssertionError):  # the patch is live
        bool(torch.tensor(True))
    run = run_metrics(logits, targets, class_to_task, per_class=True)
    step_metrics(logits[0], targets, class_to_task, 0, per_class=False)
    gzsl_metrics(logits[0], targets, seen_mask)
    monkeypatch.undo()
    assert isinstance(run.summary()["mH"], float)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("per_class", [False, True])
def test_cuda_matches_cpu(per_class):
    logits, targets, class_to_task = random_case(19, 4, 200, 4, never_trained=2)
    logits = logits + 0.01 * torch.randn(logits.shape, generator=torch.Generator().manual_seed(1))
    cpu = run_metrics(logits, targets, class_to_task, per_class=per_class)
    gpu = run_metrics(logits.cuda(), targets.cuda(), class_to_task.cuda(), per_class=per_class)
    assert gpu.acc_matrix.device.type == "cuda"
    for key, value in cpu.steps.items():
        assert_close(gpu.steps[key].cpu(), value.tolist(), tol=1e-5, what=key)
    assert_close(gpu.acc_matrix.cpu(), cpu.acc_matrix.tolist(), tol=1e-5)
    g = gzsl_metrics(logits[0].cuda(), targets.cuda(), (class_to_task == 0).cuda())
    c = gzsl_metrics(logits[0], targets, class_to_task == 0)
    for key in c:
        assert_close(g[key].cpu(), c[key].item(), tol=1e-5, what=key)


def test_to_dict_is_json_ready():
    logits, targets, class_to_task = random_case(23, 3, 30, 3)
    r = run_metrics(logits, targets, class_to_task, per_class=False)
    d = r.to_dict()
    text = json.dumps(d, allow_nan=False)  # fails on any NaN left in
    back = json.loads(text)
    assert set(back) >= {"summary", "steps", "acc_matrix", "task_forgetting",
                         "conventions"}
    assert back["steps"]["forgetting"][0] is None  # NaN at step 0 -> null
    assert back["steps"]["UA"][-1] is None          # last step: no unseen classes
    assert back["summary"] == pytest.approx(r.summary())
    assert len(back["acc_matrix"]) == 3 and len(back["acc_matrix"][0]) == 3
    assert "per-sample" in back["conventions"]["accuracy"]
    assert isinstance(r, RunMetrics)


def test_shape_errors():
    logits = torch.zeros(2, 5, 3)
    with pytest.raises(ValueError, match="targets"):
        run_metrics(logits, torch.zeros(4, dtype=torch.long), torch.zeros(3, dtype=torch.long),
                    per_class=True)
    with pytest.raises(ValueError, match="classes"):
        run_metrics(logits, torch.zeros(5, dtype=torch.long), torch.zeros(4, dtype=torch.long),
                    per_class=True)
    with pytest.raises(ValueError, match=r"\[N, C\]"):
        step_metrics(logits, torch.zeros(5, dtype=torch.long), torch.zeros(3, dtype=torch.long),
                     0, per_class=True)
    with pytest.raises(ValueError, match="floating"):
        gzsl_metrics(torch.zeros(5, 3, dtype=torch.long), torch.zeros(5, dtype=torch.long),
                     torch.ones(3, dtype=torch.bool))
