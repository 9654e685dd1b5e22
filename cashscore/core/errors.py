"""The one exception type every cashscore entry point turns into a clear message."""

from __future__ import annotations


class CashscoreError(Exception):
    """A problem with the user's input: files, flags, data or models. Never a bug."""
