"""Value types of the command line's arguments, shared by ``czsl`` and ``czsl sweep``.

Only :mod:`argparse` is imported here: parsing a command imports nothing heavy.
"""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """``type=`` of an argument that takes a whole number of at least 1.

    :raises argparse.ArgumentTypeError: naming the value (argparse prints it as the
        usage error).
    """
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value
