"""Arithmetic the reports share."""

from __future__ import annotations


def share(part: int | float | None, whole: int | float | None) -> float | None:
    """``part / whole``, or None when there is nothing to divide."""
    if not whole or part is None:
        return None
    return float(part) / float(whole)
