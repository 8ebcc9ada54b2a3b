"""The figures czsl draws: TensorBoard's per-step images and ``czsl report``'s PNG.

* :class:`Heatmap`: the accuracy matrix ``a[t, k]`` so far (the ``figures/acc_matrix``
  image of :mod:`czsl.board`), or how far each earlier task has dropped below its best
  earlier accuracy (:func:`forgetting_matrix`), on a diverging colour map
  (``figures/forgetting_matrix``), drawn step after step at little cost;
* :class:`SeenUnseenCurve`: one step's seen-unseen accuracy curve (Chao et al., 2016),
  its area shaded (``figures/seen_unseen_curve``), likewise;
* :func:`runs_figure`: forgetting and H after every step of several runs
  (``czsl report``).

Figures are drawn with matplotlib's Agg canvas (no display needed, and the global
pyplot backend is left alone); matplotlib is imported only when a figure is drawn, so
importing this module costs numpy alone.
"""

from __future__ import annotations

import math

import numpy as np


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


#: The colour ranges of the forgetting heatmap, ``-reach..reach`` points: the smallest
#: that holds every drop (at least 5 points, so noise stays pale). A few fixed ranges
#: instead of the largest drop itself: the colour bar changes at a few steps only, so
#: its drawing is reused in between (:class:`Heatmap`), and colours of two steps compare.
FORGETTING_REACHES = (5.0, 10.0, 20.0, 50.0, 100.0)


class Heatmap:
    """A step x task heatmap, drawn after step after step of a run, cheaply.

    ``Heatmap("accuracy")``: the accuracy matrix ``a[t, k]`` so far (colour: accuracy in
    percent, viridis; blank: undefined cells and steps not yet run), with a staircase
    between the tasks seen at each step (left) and those still unseen (right), and the
    number in each cell up to 10 tasks (``figures/acc_matrix`` of :mod:`czsl.board`).

    ``Heatmap("forgetting")``: :func:`forgetting_matrix`, the drop of each earlier task
    below its best earlier accuracy, on a diverging colour map centred on zero (red:
    forgotten, blue: better than ever, white: kept; range: :data:`FORGETTING_REACHES`),
    the number in each cell up to 20 tasks (``figures/forgetting_matrix``).

    Drawing a figure with matplotlib from scratch costs ~0.5 s at 20 tasks, most of it
    text (each of the up to 190 cell numbers through ``Text.draw``); a run draws one per
    step. So the figure is kept: its frame (axes, ticks, labels, colour bar) is drawn
    once and saved as a background (matplotlib's blitting, ``copy_from_bbox`` /
    ``restore_region`` on the Agg canvas); each step restores it, draws only the cells,
    the staircase and the title over it, and stamps the cell numbers onto the pixels
    from bitmaps matplotlib renders once per distinct number (:func:`_text_mask`). The
    frame is drawn again only when it changes (another number of tasks); another colour
    range redraws its colour bar alone.

    :param kind: ``"accuracy"`` or ``"forgetting"``.
    """

    def __init__(self, kind: str) -> None:
        if kind not in ("accuracy", "forgetting"):
            raise ValueError(f"heatmap kind {kind!r}: use 'accuracy' or 'forgetting'")
        self.kind = kind
        self.figure = None  #: the ``matplotlib.figure.Figure`` (after the first draw)
        self._frame = None  # (n_rows, n_tasks, reach) the frame was drawn for

    def pixels(self, acc_matrix: np.ndarray, step: int) -> np.ndarray:
        """The heatmap after ``step``.

        :param acc_matrix: ``[S, T]`` accuracy (percent) of task ``k`` after step ``t``,
            NaN where undefined; rows ``S..T-1`` (steps not yet run) are drawn blank.
        :param step: the step the figure is for (its title).
        :return: ``[H, W, 3]`` uint8 RGB (for ``SummaryWriter.add_image``).
        """
        n_steps, n_tasks = acc_matrix.shape
        values = forgetting_matrix(acc_matrix) if self.kind == "forgetting" else acc_matrix
        reach = 100.0
        if self.kind == "forgetting":
            largest = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 0.0
            reach = next((r for r in FORGETTING_REACHES if largest <= r),
                         FORGETTING_REACHES[-1])
        frame = (max(n_steps, n_tasks), n_tasks, reach)
        if self._frame is not None and frame[:2] == self._frame[:2] and frame != self._frame:
            self._redraw_colour_bar(reach)  # only the colour range changed
        elif frame != self._frame:
            self._draw_frame(*frame)
        grid = np.full(frame[:2], np.nan)
        grid[:n_steps] = values
        canvas, ax = self.figure.canvas, self.figure.axes[0]
        canvas.restore_region(self._background)
        buffer = np.asarray(canvas.buffer_rgba())      # [H, W, 4], a view of the canvas
        # the cells, coloured with numpy: the colour of each pixel's cell (what imshow's
        # nearest-neighbour resampling draws, without its cost)
        colours = self._image.to_rgba(np.ma.masked_invalid(grid), bytes=True)  # [R, T, 4]
        (top, bottom), (left, right) = self._cells_at
        buffer[top:bottom, left:right] = colours[self._cell_rows][:, self._cell_columns]
        if self.kind == "accuracy":  # one stair per step run
            self._stairs.set_data(np.repeat(np.arange(n_steps) + 0.5, 2),
                                  np.arange(2 * n_steps) // 2 + np.tile([-0.5, 0.5], n_steps))
            ax.draw_artist(self._stairs)
        for spine in ax.spines.values():  # the cells were drawn over them
            ax.draw_artist(spine)
        pixels = buffer[..., :3].copy()
        _stamp_words(pixels, ["after", "step", str(step)], row=self._title_row, right=right,
                     size=self._title_size, dpi=self.figure.dpi)
        limit, size = (10, 8) if self.kind == "accuracy" else (20, 8 if n_tasks <= 10 else 5)
        if n_tasks <= limit:
            for (t, k), value in np.ndenumerate(values):
                if not math.isnan(value):
                    light = (value <= 60 if self.kind == "accuracy"
                             else abs(value) > 0.6 * reach)
                    # str(round()): "0", not "-0", for -0.3
                    _stamp(pixels, _text_mask(str(round(value)), size, self.figure.dpi),
                           self._centres[t, k], 255 if light else 0)
        return pixels

    def _redraw_colour_bar(self, reach: float) -> None:
        """The saved frame with the colour bar of the range ``-reach..reach``: the colour
        bar's area (its ticks and label, before and after) painted white and the colour
        bar drawn there again, instead of the whole frame."""
        from matplotlib.colors import TwoSlopeNorm

        canvas, colour_bar = self.figure.canvas, self.figure.axes[1]
        renderer = canvas.get_renderer()
        before = colour_bar.get_tightbbox(renderer)
        self._image.set_norm(TwoSlopeNorm(0.0, -reach, reach))  # the colour bar follows
        after = colour_bar.get_tightbbox(renderer)
        canvas.restore_region(self._background)
        height = self.figure.bbox.height
        x0, x1 = min(before.x0, after.x0), max(before.x1, after.x1)
        y0, y1 = min(before.y0, after.y0), max(before.y1, after.y1)
        buffer = np.asarray(canvas.buffer_rgba())
        buffer[max(int(height - y1) - 3, 0):int(np.ceil(height - y0)) + 3,  # 3 px margin:
               max(int(x0) - 3, 0):int(np.ceil(x1)) + 3] = 255               # antialiasing
        colour_bar.draw(renderer)
        self._background = canvas.copy_from_bbox(self.figure.bbox)
        self._frame = (*self._frame[:2], reach)

    def _draw_frame(self, n_rows: int, n_tasks: int, reach: float) -> None:
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.colors import Normalize, TwoSlopeNorm
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6.4, 5.4), dpi=100)
        FigureCanvasAgg(fig)
        fig.subplots_adjust(left=0.11, right=0.9, bottom=0.1, top=0.94)  # fixed: cheap
        ax = fig.add_subplot()
        if self.kind == "accuracy":
            cmap = matplotlib.colormaps["viridis"].with_extremes(bad="white")
            norm, label = Normalize(0.0, 100.0), "accuracy on task k (%)"
        else:
            cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="#eeeeee")
            norm = TwoSlopeNorm(0.0, -reach, reach)
            label = "drop below best earlier accuracy (points)"
        self._image = ax.imshow(np.ma.masked_invalid(np.full((n_rows, n_tasks), np.nan)),
                                cmap=cmap, norm=norm, interpolation="nearest",
                                aspect="auto", animated=True)
        fig.colorbar(self._image, ax=ax, fraction=0.05, pad=0.03).set_label(label)
        if self.kind == "accuracy":
            self._stairs, = ax.plot([], [], color="red", linewidth=1.5,
                                    label="seen | unseen", animated=True)
        # the step is stamped at the right of the title (:meth:`pixels`): a title drawn
        # by matplotlib at every step would cost more than the rest of the step
        _task_axes(ax, n_tasks, n_rows, "accuracy a[t, k]" if self.kind == "accuracy"
                   else "forgetting: best earlier a[i<t, k] - a[t, k]")
        ax.title.set_horizontalalignment("left")
        ax.title.set_x(0.0)
        if self.kind == "accuracy":
            ax.legend(loc="lower left", fontsize=8)
        fig.canvas.draw()  # everything but the animated artists
        self._background = fig.canvas.copy_from_bbox(fig.bbox)
        height = fig.bbox.height
        # display coordinates count y from the bottom, the pixel rows from the top
        title = ax.title.get_window_extent()
        self._title_row = height - (title.y0 + title.y1) / 2
        self._title_size = ax.title.get_fontsize()
        steps, tasks = np.indices((n_rows, n_tasks))
        xy = ax.transData.transform(np.column_stack([tasks.ravel(), steps.ravel()]))
        self._centres = np.column_stack([height - xy[:, 1], xy[:, 0]]).reshape(
            n_rows, n_tasks, 2)  # pixel (row, column) of each cell's centre
        # the pixel rows and columns the cells cover, and the cell of each
        x_edges = ax.transData.transform(
            np.column_stack([np.arange(n_tasks + 1) - 0.5, np.zeros(n_tasks + 1)]))[:, 0]
        y_edges = height - ax.transData.transform(
            np.column_stack([np.zeros(n_rows + 1), np.arange(n_rows + 1) - 0.5]))[:, 1]
        left, right = int(round(x_edges[0])), int(round(x_edges[-1]))
        top, bottom = int(round(y_edges[0])), int(round(y_edges[-1]))
        self._cells_at = ((top, bottom), (left, right))
        self._cell_columns = np.clip(np.searchsorted(x_edges, np.arange(left, right) + 0.5)
                                     - 1, 0, n_tasks - 1)
        self._cell_rows = np.clip(np.searchsorted(y_edges, np.arange(top, bottom) + 0.5)
                                  - 1, 0, n_rows - 1)
        self.figure, self._frame = fig, (n_rows, n_tasks, reach)


_TEXT_MASKS: dict[tuple[str, float, float], np.ndarray] = {}

#: Text whose ink spans the tallest and deepest glyphs: every mask of a size spans its
#: rows, so that masks stamped on one row share the baseline.
_FULL_HEIGHT = "[]|bdfhklpqy"


def _text_mask(text: str, size: float, dpi: float) -> np.ndarray:
    """How much ink ``text`` puts on each pixel when matplotlib draws it (its default
    font, ``size`` points, ``dpi``): ``[h, w]`` in 0..1, the columns cropped to the
    ink, the rows those of :data:`_FULL_HEIGHT` (the same for every text of the size).
    Rendered once per text and cached: the texts are cell numbers and words, a few
    dozen per run (:func:`_stamp_words`)."""
    key = (text, size, dpi)
    if key in _TEXT_MASKS:
        return _TEXT_MASKS[key]
    if len(text) > 1 and set(text) <= set(_NUMBER_CHARACTERS):
        # a number: its characters side by side, each rendered once (a run draws a few
        # hundred distinct numbers, and rendering one costs milliseconds)
        ink = np.hstack([_glyph(c, size, dpi) for c in text])
    else:
        ink = _render(text, size, dpi)
    if text == _FULL_HEIGHT:
        mask = ink
    else:
        rows = np.nonzero(_text_mask(_FULL_HEIGHT, size, dpi).any(axis=1))[0]
        cols = np.nonzero(ink.any(axis=0))[0]
        mask = (ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] if cols.size
                else ink[rows[0]:rows[-1] + 1, :0])
    _TEXT_MASKS[key] = mask
    return mask


#: The characters of the numbers :func:`_text_mask` puts together from single glyphs.
_NUMBER_CHARACTERS = "0123456789-.,"


def _render(text: str, size: float, dpi: float) -> np.ndarray:
    """``text`` drawn by matplotlib with its baseline at row ``2 em`` of a transparent
    ``[3 em, (len + 2) em]`` box, starting at column ``em``; the ink, 0..1."""
    from matplotlib.backends.backend_agg import RendererAgg
    from matplotlib.font_manager import FontProperties

    em = int(size * dpi / 72) + 1  # pixels
    renderer = RendererAgg((len(text) + 2) * em, 3 * em, dpi)  # transparent until drawn
    renderer.draw_text(renderer.new_gc(), em, 2 * em, text, FontProperties(size=size), 0.0)
    return np.asarray(renderer.buffer_rgba())[..., 3].astype(np.float64) / 255.0


def _glyph(character: str, size: float, dpi: float) -> np.ndarray:
    """One character as :func:`_render` draws it, cut to its advance width (where the
    next character would start), so that glyphs set side by side read as the text."""
    key = (f"glyph {character}", size, dpi)
    if key not in _TEXT_MASKS:
        from matplotlib.backends.backend_agg import RendererAgg
        from matplotlib.font_manager import FontProperties

        em = int(size * dpi / 72) + 1
        width, _, _ = RendererAgg(1, 1, dpi).get_text_width_height_descent(
            character, FontProperties(size=size), ismath=False)
        _TEXT_MASKS[key] = _render(character, size, dpi)[:, em:em + int(round(width))]
    return _TEXT_MASKS[key]


def _stamp_words(pixels: np.ndarray, words: list[str], *, row: float, right: float,
                 size: float, dpi: float) -> None:
    """Stamp ``words`` in black as one line of text ending at column ``right``, centred
    on ``row``, a space apart: each word's mask is cached (:func:`_text_mask`), where the
    whole line would be rendered anew whenever a number in it changes."""
    space = 0.45 * size * dpi / 72
    for word in reversed(words):
        mask = _text_mask(word, size, dpi)
        _stamp(pixels, mask, (row, right - mask.shape[1] / 2), 0)
        right -= mask.shape[1] + space


def _stamp(pixels: np.ndarray, mask: np.ndarray, centre: np.ndarray, grey: int) -> None:
    """Blend the grey level ``grey`` into ``pixels`` ``[H, W, 3]`` through ``mask``,
    the mask's centre at pixel ``centre`` (row, column); clipped at the edges."""
    h, w = mask.shape
    top, left = int(round(centre[0] - h / 2)), int(round(centre[1] - w / 2))
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + h, pixels.shape[0]), min(left + w, pixels.shape[1])
    if r0 >= r1 or c0 >= c1:
        return
    alpha = mask[r0 - top:r1 - top, c0 - left:c1 - left, None]
    region = pixels[r0:r1, c0:c1]
    region[...] = np.rint(region * (1.0 - alpha) + grey * alpha).astype(np.uint8)


class SeenUnseenCurve:
    """One step's seen-unseen accuracy curve (Chao et al., 2016), drawn step after step
    of a run, cheaply (``figures/seen_unseen_curve`` of :mod:`czsl.board`): every
    seen/unseen trade-off a calibration bias on the unseen classes can reach, its area
    (AUSUC) shaded, and the uncalibrated ``(UA, SA)`` as a red dot; the values are
    written under the legend.

    As :class:`Heatmap`, the frame (axes, grid, labels, legend) is drawn once and
    restored at each step, which draws only the curve, its area and the dot over it and
    stamps the step and the values onto the pixels.
    """

    def __init__(self) -> None:
        self.figure = None  #: the ``matplotlib.figure.Figure`` (after the first draw)

    def pixels(self, unseen_acc: np.ndarray, seen_acc: np.ndarray, step: int, *,
               sa: float, ua: float, ausuc: float) -> np.ndarray:
        """The curve of step ``step``.

        :param unseen_acc: ``[K]`` unseen accuracy (percent) of each vertex
            (:func:`czsl.metrics.seen_unseen_curve`).
        :param seen_acc: ``[K]`` seen accuracy (percent) of each vertex.
        :param step: the step the figure is for.
        :param sa: the step's ``SA`` (percent), drawn with ``ua`` as the dot.
        :param ua: the step's ``UA`` (percent).
        :param ausuc: the step's ``AUSUC`` (the shaded area).
        :return: ``[H, W, 3]`` uint8 RGB (for ``SummaryWriter.add_image``).
        """
        if self.figure is None:
            self._draw_frame()
        canvas, ax = self.figure.canvas, self.figure.axes[0]
        canvas.restore_region(self._background)
        area = ax.fill_between(unseen_acc, seen_acc, color="C0", alpha=0.25, animated=True)
        ax.draw_artist(area)
        area.remove()
        self._curve.set_data(unseen_acc, seen_acc)
        self._dot.set_data([ua], [sa])
        ax.draw_artist(self._curve)
        ax.draw_artist(self._dot)
        pixels = np.asarray(canvas.buffer_rgba())[..., :3].copy()
        dpi, (row, right) = self.figure.dpi, self._title_at
        _stamp_words(pixels, ["after", "step", str(step)], row=row, right=right,
                     size=self._title_size, dpi=dpi)
        row, right = self._values_at
        _stamp_words(pixels, ["AUSUC", f"{ausuc:.1f},", "UA", f"{ua:.1f},", "SA", f"{sa:.1f}"],
                     row=row, right=right, size=9, dpi=dpi)
        return pixels

    def _draw_frame(self) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.patches import Patch

        fig = Figure(figsize=(5.4, 5.0), dpi=100)
        FigureCanvasAgg(fig)
        fig.subplots_adjust(left=0.12, right=0.96, bottom=0.1, top=0.94)
        ax = fig.add_subplot()
        self._curve, = ax.plot([], [], color="C0", linewidth=1.5, animated=True,
                               label="seen-unseen curve")
        self._dot, = ax.plot([], [], "o", color="red", animated=True,
                             label="no calibration: (UA, SA)")
        legend = ax.legend(handles=[Patch(color="C0", alpha=0.25, label="area: AUSUC"),
                                    self._curve, self._dot], loc="upper right", fontsize=8)
        ax.set_xlim(0, 100)
        ax.set_ylim(0, 100)
        ax.set_aspect("equal")
        ax.grid(alpha=0.3)
        ax.set_xlabel("unseen accuracy (%)")
        ax.set_ylabel("seen accuracy (%)")
        ax.set_title("seen-unseen curve", loc="left")
        fig.canvas.draw()  # everything but the animated artists
        self._background = fig.canvas.copy_from_bbox(fig.bbox)
        height = fig.bbox.height
        title, box = ax.title.get_window_extent(), legend.get_window_extent()
        self._title_size = ax.title.get_fontsize()
        self._title_at = (height - (title.y0 + title.y1) / 2, ax.get_window_extent().x1)
        self._values_at = (height - box.y0 + 12, box.x1)  # under the legend, right-aligned
        self.figure = fig


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
