"""Stopping a command by signal: SIGINT or SIGTERM (a service manager's stop) exit with code 0.

Kept apart from the commands so that ``pads-stream node`` can install the handler before it
imports anything heavy: a stop while the model loads is still a clean exit.
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
