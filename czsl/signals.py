"""Interruptions: SIGINT, SIGTERM and SIGHUP stop a run the same way.

Within :func:`interruptible`, each of the three signals raises :class:`Interrupted` (a
``KeyboardInterrupt``) in the main thread, as Ctrl-C does by default: the run stops at
the next Python instruction, atomic writes remove their temporary file, the tasks saved
before stay resumable, and the run prints the same note with the resume command
(:mod:`czsl.run`). SIGTERM is the usual pre-emption signal of clusters; SIGHUP comes
when the terminal closes. Standard library only.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

#: The signals that stop a run, where the platform has them.
SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP")
                if hasattr(signal, n))


class Interrupted(KeyboardInterrupt):
    """A run was stopped by a signal.

    :param signum: the signal's number (the CLI exits with ``128 + signum``).
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Within the block, :data:`SIGNALS` raise :class:`Interrupted`; the handlers before
    are restored after it. Does nothing outside the main thread (a sweep's worker
    thread), where Python cannot set handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {signum: signal.getsignal(signum) for signum in SIGNALS}

    def stop(signum: int, frame: Any) -> None:
        raise Interrupted(signum)

    for signum in SIGNALS:
        signal.signal(signum, stop)
    try:
        yield
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


__all__ = ["Interrupted", "SIGNALS", "interruptible"]
