"""Every metric czsl reports, declared once: its name, label, unit, direction and format.

:mod:`czsl.metrics` computes the numbers; everything that shows them reads this list:
``results.json`` (:mod:`czsl.results`), the table ``czsl run`` prints, TensorBoard's
scalar tags and HParams metrics (:mod:`czsl.board`), ``czsl report`` and the sweep tables
(``benchmarks/czsl_table.py``). Adding a metric is one :class:`Metric` in
:data:`METRICS` plus its computation in :mod:`czsl.metrics` (a key of
``RunMetrics.steps``, of ``RunMetrics.summary()`` or of ``gzsl_metrics()``, after its
scope); ``tests/test_metric_registry.py`` fails if the two disagree, or if a view misses
a metric.

Scopes:

* :data:`STEP` — one value per step of a run (``results["metrics"]["steps"]``,
  TensorBoard ``step/<name>``);
* :data:`SUMMARY` — one value per run (``results["summary"]``, TensorBoard
  ``summary/<name>`` and the HParams tab, ``czsl report``, sweep tables);
* :data:`GZSL` — static GZSL, one value for a single-task run of the ``static``
  protocol (``results["gzsl"]``).

The module uses only the standard library, so reports and tables read it without torch.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Units.
PERCENT, FRACTION = "percent", "fraction"
#: Scopes (see the module docstring).
STEP, SUMMARY, GZSL = "step", "summary", "gzsl"


@dataclass(frozen=True)
class Metric:
    """One metric as it is shown (its definition is in :mod:`czsl.metrics`).

    :param name: its key in ``results.json`` and in :mod:`czsl.metrics`' output, and the
        last part of its TensorBoard tag.
    :param label: its row label in ``czsl report`` (the unit is added: ``mSA (%)``).
    :param column: its heading in narrow tables (the terminal table, sweep tables).
    :param unit: :data:`PERCENT` (0-100) or :data:`FRACTION`.
    :param higher_is_better: the direction of "better".
    :param scope: :data:`STEP`, :data:`SUMMARY` or :data:`GZSL`.
    :param digits: decimals shown.
    :param headline: shown where space is short too: the per-step terminal table, the
        sweep tables, the report's static GZSL rows (every metric is in
        ``results.json``, TensorBoard and, for summaries, the report).
    :param series: for a summary, the per-step metric it condenses.
    :param over: for a summary, how: over which steps, in a few words.
    """

    name: str
    label: str
    column: str
    unit: str
    higher_is_better: bool
    scope: str
    digits: int
    headline: bool = True
    series: str | None = None
    over: str | None = None

    @property
    def unit_suffix(self) -> str:
        """`` (%)`` for a percentage, else nothing: what a label gets for its unit."""
        return " (%)" if self.unit == PERCENT else ""

    def format(self, value: float | None, missing: str = "-") -> str:
        """``value`` with :attr:`digits` decimals, or ``missing`` where it is undefined.

        :param value: a number, or ``None`` / NaN for undefined.
        :param missing: what an undefined value reads as.
        """
        if value is None or value != value:  # None or NaN
            return missing
        return f"{value:.{self.digits}f}"


def _acc(name: str, scope: str, label: str | None = None, column: str | None = None,
         **more) -> Metric:
    """An accuracy-like metric: percent, higher is better, one decimal."""
    return Metric(name, label or name, column or name, PERCENT, True, scope, 1, **more)


_ZS = "mean over steps with unseen classes"

#: Every metric, in the order results.json and the report list them within a scope.
METRICS: tuple[Metric, ...] = (
    _acc("SA", STEP),
    _acc("UA", STEP),
    _acc("H", STEP),
    _acc("JA", STEP),
    _acc("AUSUC", STEP, headline=False),
    Metric("forgetting", "forgetting", "forgetting", FRACTION, False, STEP, 3,
           headline=False),
    _acc("mSA", SUMMARY, series="SA", over=_ZS),
    _acc("mUA", SUMMARY, series="UA", over=_ZS),
    _acc("mH", SUMMARY, series="H", over=_ZS),
    _acc("mJA", SUMMARY, series="JA", over="mean over all steps"),
    _acc("mAUC", SUMMARY, series="AUSUC", over=_ZS),
    Metric("forgetting_final", "forgetting, final", "forgetting", FRACTION, False, SUMMARY,
           3, series="forgetting", over="final step"),
    Metric("forgetting_mean", "forgetting, mean", "forgetting, mean", FRACTION, False,
           SUMMARY, 3, headline=False, series="forgetting", over="mean over steps"),
    _acc("zsl_top1", GZSL, "static ZSL top-1", "ZSL top-1"),
    _acc("u", GZSL, "static GZSL u", headline=False),
    _acc("s", GZSL, "static GZSL s", headline=False),
    _acc("H", GZSL, "static GZSL H"),
    _acc("AUSUC", GZSL, "static GZSL AUSUC", headline=False),
)


#: Per-step metrics that mean nothing at a step without unseen classes (UA, H undefined;
#: AUSUC equal to SA by convention): TensorBoard logs no point for them there.
NEED_UNSEEN: frozenset[str] = frozenset({"UA", "H", "AUSUC"})


def of_scope(scope: str, *, headline: bool | None = None) -> tuple[Metric, ...]:
    """The metrics of ``scope``, in :data:`METRICS` order.

    :param scope: :data:`STEP`, :data:`SUMMARY` or :data:`GZSL`.
    :param headline: ``True``: only headline metrics; ``False``: only the others;
        ``None``: all.
    :raises ValueError: for an unknown scope.
    """
    if scope not in (STEP, SUMMARY, GZSL):
        raise ValueError(f"unknown metric scope {scope!r}; expected {STEP!r}, {SUMMARY!r} "
                         f"or {GZSL!r}")
    return tuple(m for m in METRICS if m.scope == scope
                 and (headline is None or m.headline == headline))


def names(metrics: tuple[Metric, ...]) -> tuple[str, ...]:
    """The :attr:`Metric.name` of each of ``metrics``."""
    return tuple(m.name for m in metrics)


#: The summary metrics as the HParams tab's columns: the trade-off first, then forgetting
#: (what a continual run is about), then the rest alphabetically.
HPARAMS_ORDER: tuple[str, ...] = ("mH", "forgetting_final", "forgetting_mean", "mAUC",
                                  "mJA", "mSA", "mUA")


def by_unit_then_name(metrics: tuple[Metric, ...]) -> tuple[Metric, ...]:
    """``metrics`` as columns of a table of runs: percentages first, then fractions,
    each alphabetically (the HParams tab and the sweep tables list them so)."""
    return tuple(sorted(metrics, key=lambda m: (m.unit != PERCENT, m.name)))


__all__ = ["FRACTION", "GZSL", "HPARAMS_ORDER", "METRICS", "Metric", "NEED_UNSEEN", "PERCENT",
           "STEP", "SUMMARY", "by_unit_then_name", "names", "of_scope"]
