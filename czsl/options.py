"""Checks for a plugin's options: each turns a bad value into one clear error.

A scenario's ``[model]``, ``[regularizer]``, ... table reaches a plugin as keyword
arguments, straight from TOML or ``--set``: a typo there can be a string where a number
belongs (``ewc_lambda = "10"``), ``nan``, a fraction where a count belongs, or ``1``
where ``true`` belongs. Python would take most of these silently (``"false"`` is true;
``nan < 0`` is false, so a range check passes it) and the run would train on garbage.
A plugin checks each option with these functions as it is built::

    from czsl.options import boolean, number

    def make_plugin(*, ewc_lambda=10.0, normalize=True):
        ewc_lambda = number("ewc_lambda", ewc_lambda, at_least=0)
        normalize = boolean("normalize", normalize)

Each returns the value (``number`` as a ``float``) or raises :class:`OptionError`;
:meth:`czsl.plugins.Plugins.make` adds which plugin it was and where to fix it. Only the
standard library is used, so plugin modules stay cheap to import.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from czsl.errors import OptionError

__all__ = ["OptionError", "boolean", "choice", "integer", "number"]


def boolean(key: str, value: Any) -> bool:
    """``value`` if it is ``True`` or ``False``.

    :raises OptionError: for anything else (``1``, ``"false"``, ``None``).
    """
    if not isinstance(value, bool):
        raise OptionError(key, f"must be true or false, got {value!r}")
    return value


def integer(key: str, value: Any, *, at_least: int = 1) -> int:
    """``value`` if it is a whole number (not a bool, not ``2.0``) ``>= at_least``.

    :raises OptionError: naming the bound (``must be a positive integer`` for 1).
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < at_least:
        what = {0: "a non-negative integer", 1: "a positive integer"}.get(
            at_least, f"an integer >= {at_least}")
        raise OptionError(key, f"must be {what}, got {value!r}")
    return value


def number(key: str, value: Any, *, at_least: float | None = None,
           above: float | None = None, at_most: float | None = None,
           below: float | None = None) -> float:
    """``value`` as a float if it is a finite int or float within the bounds given.

    :param at_least: ``value >= at_least``; ``above``: ``value > above``.
    :param at_most: ``value <= at_most``; ``below``: ``value < below``.
    :raises OptionError: for a non-number, a bool, NaN or infinity, or a value out of
        bounds, naming the range (``in [0, 1)``, ``> 0``, ...).
    """
    low = "[" if at_least is not None else "(" if above is not None else None
    high = "]" if at_most is not None else ")" if below is not None else None
    lo = at_least if at_least is not None else above
    hi = at_most if at_most is not None else below
    if low and high:
        where = f"in {low}{lo:g}, {hi:g}{high}"
    elif low:
        where = f"{'>=' if low == '[' else '>'} {lo:g}"
    elif high:
        where = f"{'<=' if high == ']' else '<'} {hi:g}"
    else:
        where = ""
    ok = (not isinstance(value, bool) and isinstance(value, (int, float))
          and math.isfinite(value)
          and (at_least is None or value >= at_least) and (above is None or value > above)
          and (at_most is None or value <= at_most) and (below is None or value < below))
    if not ok:
        raise OptionError(key, f"must be a finite number {where}".rstrip()
                          + f", got {value!r}")
    return float(value)


def choice(key: str, value: Any, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``.

    :raises OptionError: listing the choices.
    """
    if not isinstance(value, str) or value not in choices:
        raise OptionError(key, f"must be one of {', '.join(map(repr, choices))}, "
                               f"got {value!r}")
    return value
