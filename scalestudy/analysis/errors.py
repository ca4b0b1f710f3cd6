"""The analysis layer's one error type."""

from __future__ import annotations


class AnalysisError(ValueError):
    """Bad or thin input; ``str(error)`` is a one-line message fit for a terminal."""
