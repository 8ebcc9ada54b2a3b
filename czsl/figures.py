"""The figures czsl draws: TensorBoard's per-step images and ``czsl report``'s PNG.

* :func:`acc_matrix_figure`: the accuracy matrix ``a[t, k]`` so far as a heatmap (the
  ``figures/acc_matrix`` image of :mod:`czsl.board`);
* :func:`forgetting_matrix_figure`: how far each earlier task has dropped below its best
  earlier accuracy, on a diverging colour map (``figures/forgetting_matrix``);
* :func:`seen_unseen_figure`: one step's seen-unseen accuracy curve (Chao et al., 2016),
  its area shaded (``figures/seen_unseen_curve``);
* :func:`figure_pixels`: a figure as an RGB array, for ``SummaryWriter.add_image``;
* :func:`runs_figure`: forgetting and H after every step of several runs
  (``czsl report``).

Figures are drawn with matplotlib's Agg canvas (no display needed, and the global
pyplot backend is left alone); matplotlib is imported only when a figure is drawn, so
importing this module costs numpy alone.
"""

from __future__ import annotations

import math

import numpy as np


def figure_pixels(figure) -> np.ndarray:
    """Draw a matplotlib figure on an Agg canvas (no display, pyplot untouched).

    :param figure: a ``matplotlib.figure.Figure``.
    :return: its pixels, ``[H, W, 3]`` uint8 RGB.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def acc_matrix_figure(acc_matrix: np.ndarray, step: int):
    """A heatmap of the accuracy matrix after ``step``.

    :param acc_matrix: ``[S, T]`` accuracy (percent) of task ``k`` after step ``t``, NaN
        where undefined; rows ``S..T-1`` (steps not yet run) are drawn blank.
    :param step: the step the figure is for (its title).
    :return: a ``matplotlib.figure.Figure`` (not registered with pyplot: nothing to close).
    """
    import matplotlib
    from matplotlib.figure import Figure

    n_steps, n_tasks = acc_matrix.shape
    grid = np.full((max(n_steps, n_tasks), n_tasks), np.nan)
    grid[:n_steps] = acc_matrix
    fig = Figure(figsize=(6.4, 5.4), dpi=100)
    fig.subplots_adjust(left=0.11, right=0.9, bottom=0.1, top=0.94)  # fixed: cheap to draw
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="white")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0.0, vmax=100.0,
                      interpolation="nearest", aspect="auto")
    fig.colorbar(image, ax=ax, fraction=0.05, pad=0.03).set_label("accuracy on task k (%)")
    # Staircase between seen (k <= t) and unseen (k > t) tasks, one stair per step run.
    xs = np.repeat(np.arange(n_steps) + 0.5, 2)
    ys = np.arange(2 * n_steps) // 2 + np.tile([-0.5, 0.5], n_steps)
    ax.plot(xs, ys, color="red", linewidth=1.5, label="seen | unseen")
    if n_tasks <= 10:  # small matrices: print the numbers too
        for (t, k), value in np.ndenumerate(acc_matrix):
            if not math.isnan(value):
                ax.text(k, t, f"{value:.0f}", ha="center", va="center", fontsize=8,
                        color="black" if value > 60 else "white")
    _task_axes(ax, n_tasks, grid.shape[0], f"accuracy a[t, k] after step {step}")
    ax.legend(loc="lower left", fontsize=8)
    return fig


def forgetting_matrix(acc_matrix: np.ndarray) -> np.ndarray:
    """How far each task has dropped below its best earlier accuracy, per step.

    :param acc_matrix: ``[S, T]`` accuracy (percent), NaN where undefined.
    :return: ``[S, T]`` percentage points ``max_{i<t} a[i, k] - a[t, k]`` for ``k < t``
        (positive: forgotten; negative: better than ever), NaN elsewhere; its row mean
        over ``k < t``, divided by 100, is ``step/forgetting``.
    """
    n_steps, n_tasks = acc_matrix.shape
    best = np.fmax.accumulate(acc_matrix, axis=0)              # best up to and with t
    drop = np.full((n_steps, n_tasks), np.nan)
    drop[1:] = best[:-1] - acc_matrix[1:]                      # best strictly before t
    steps, tasks = np.indices((n_steps, n_tasks))
    drop[tasks >= steps] = np.nan                              # only tasks trained before t
    return drop


def forgetting_matrix_figure(acc_matrix: np.ndarray, step: int):
    """The drop of each earlier task below its best earlier accuracy, as a heatmap on a
    diverging colour map centred on zero (red: forgotten, blue: improved, white: kept),
    with the number in each cell up to 20 tasks.

    :param acc_matrix: ``[S, T]`` accuracy (percent) after steps ``0..S-1``.
    :param step: the step the figure is for (its title).
    :return: a ``matplotlib.figure.Figure`` (not registered with pyplot).
    """
    import matplotlib
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.figure import Figure

    drop = forgetting_matrix(acc_matrix)
    n_steps, n_tasks = drop.shape
    grid = np.full((max(n_steps, n_tasks), n_tasks), np.nan)
    grid[:n_steps] = drop
    # symmetric range so that zero is white; at least 5 points so noise stays pale
    reach = max(5.0, float(np.nanmax(np.abs(drop))) if np.isfinite(drop).any() else 5.0)
    fig = Figure(figsize=(6.4, 5.4), dpi=100)
    fig.subplots_adjust(left=0.11, right=0.9, bottom=0.1, top=0.94)
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="#eeeeee")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap,
                      norm=TwoSlopeNorm(0.0, -reach, reach), interpolation="nearest",
                      aspect="auto")
    fig.colorbar(image, ax=ax, fraction=0.05, pad=0.03).set_label(
        "drop below best earlier accuracy (points)")
    if n_tasks <= 20:
        size = 8 if n_tasks <= 10 else 5
        for (t, k), value in np.ndenumerate(drop):
            if not math.isnan(value):
                ax.text(k, t, f"{value:.0f}", ha="center", va="center", fontsize=size,
                        color="white" if abs(value) > 0.6 * reach else "black")
    _task_axes(ax, n_tasks, grid.shape[0],
               f"forgetting: best earlier a[i<t, k] - a[t, k], step {step}")
    return fig


def seen_unseen_figure(unseen_acc: np.ndarray, seen_acc: np.ndarray, step: int, *,
                       sa: float, ua: float, ausuc: float):
    """The seen-unseen accuracy curve of one step.

    :param unseen_acc: ``[K]`` unseen accuracy (percent) of each vertex
        (:func:`czsl.metrics.seen_unseen_curve`).
    :param seen_acc: ``[K]`` seen accuracy (percent) of each vertex.
    :param step: the step the figure is for.
    :param sa: the step's ``SA`` (percent), drawn with ``ua`` as the uncalibrated point.
    :param ua: the step's ``UA`` (percent; NaN at a step without unseen classes).
    :param ausuc: the step's ``AUSUC`` (the shaded area, for the title).
    :return: a ``matplotlib.figure.Figure`` (not registered with pyplot: nothing to close).
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.4, 5.0), dpi=100)
    fig.subplots_adjust(left=0.12, right=0.96, bottom=0.1, top=0.94)
    ax = fig.add_subplot()
    ax.fill_between(unseen_acc, seen_acc, alpha=0.25, label=f"AUSUC {ausuc:.1f}")
    ax.plot(unseen_acc, seen_acc, linewidth=1.5, label="seen-unseen curve")
    if math.isnan(ua):
        ax.text(50, 50, "no unseen classes:\nAUSUC = SA by convention", ha="center",
                va="center", fontsize=9)
    else:
        ax.plot([ua], [sa], "o", color="red", label=f"no calibration: UA {ua:.1f}, SA {sa:.1f}")
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    ax.set_xlabel("unseen accuracy (%)")
    ax.set_ylabel("seen accuracy (%)")
    ax.set_title(f"seen-unseen curve after step {step}")
    ax.legend(loc="upper right", fontsize=8)
    return fig


def runs_figure(runs: list[tuple[str, dict[str, list]]]):
    """``czsl report``'s figure: forgetting (left) and H (right) after every step, one
    line per run.

    :param runs: ``(label, steps)`` per run, ``steps`` a results.json's
        ``metrics.steps`` (lists with ``None`` where undefined).
    :return: a ``matplotlib.figure.Figure`` on an Agg canvas (``savefig`` works; not
        registered with pyplot).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(11, 4.5), dpi=120)
    FigureCanvasAgg(fig)  # draw with Agg; pyplot's global backend is left alone
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.13, top=0.9, wspace=0.22)
    ax_f, ax_h = fig.subplots(1, 2)
    for label, steps in runs:
        for ax, key in ((ax_f, "forgetting"), (ax_h, "H")):
            values = [math.nan if v is None else v for v in steps[key]]
            ax.plot(range(len(values)), values, marker="o", markersize=3, label=label)
    ax_f.set_title("forgetting after each step (lower is better)")
    ax_f.set_ylabel("forgetting (fraction)")
    ax_h.set_title("H after each step (higher is better)")
    ax_h.set_ylabel("H: harmonic mean of SA and UA (%)")
    ax_f.axhline(0.0, color="grey", linewidth=0.8, linestyle="--")
    n_steps = max(len(steps["H"]) for _, steps in runs)
    for ax in (ax_f, ax_h):
        ax.set_xlim(-0.3, max(n_steps - 0.7, 0.3))
        ax.set_xlabel("step t (after training task t)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig


def _task_axes(ax, n_tasks: int, n_steps: int, title: str) -> None:
    """Ticks, limits and labels of a step x task grid (x: task k, y: step t).

    A label per task up to 10 tasks, then every 5th (tick labels are most of the
    figure's drawing time: benchmarks/speed.md).
    """
    every = 1 if n_tasks <= 10 else 5
    ax.set_xticks(np.arange(0, n_tasks, every))
    ax.set_yticks(np.arange(0, n_steps, every))
    ax.set_xlim(-0.5, n_tasks - 0.5)
    ax.set_ylim(n_steps - 0.5, -0.5)
    ax.set_xlabel("task k")
    ax.set_ylabel("step t (after training task t)")
    ax.set_title(title)
