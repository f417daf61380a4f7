"""Stopping a command by signal: SIGINT or SIGTERM (a service manager's stop) exit with code 0.

Kept apart from the commands so that ``pads-stream node`` can install the handler before it
imports anything heavy: a stop while it imports is a clean exit; while it loads its model it
notes the stop (:class:`DeferredStop`) and leaves once the load returns.
"""

from __future__ import annotations

import signal


def exit_cleanly(signum: int, _frame: object) -> None:
    """A signal handler that ends the process with exit code 0."""
    raise SystemExit(0)


def exit_on_stop_signals() -> None:
    """SIGINT and SIGTERM end the process with exit code 0 (until a handler replaces this one)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, exit_cleanly)


class DeferredStop:
    """SIGINT and SIGTERM noted, acted on at the caller's next safe point (:attr:`requested`).

    Raising from a signal handler while native code runs (a model loading, a first estimate
    through torch or ONNX Runtime) can abort the process instead of exiting it (seen once on a
    busy machine: exit code −6); noting the stop and leaving between steps cannot.
    """

    def __init__(self) -> None:
        self.requested = False
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self.note)

    def note(self, signum: int, _frame: object) -> None:
        self.requested = True
