"""Errors a user can fix, shared by every layer: the commands print them as one line, exit code 2."""

from __future__ import annotations


class UsageError(ValueError):
    """A mistake in a command's arguments or inputs that the user can fix: printed as one line
    ``pads-stream COMMAND: message``, exit code 2."""
