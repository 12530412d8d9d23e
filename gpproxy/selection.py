"""The rule that picks the one formula a run hands out, and its wording.

The engine applies it when it writes ``pareto.csv`` and ``summary.json``;
``inspect`` and :class:`gpproxy.Run` print the same words.
"""
from __future__ import annotations


def selection_rule(tolerance: float) -> str:
    """The rule in words."""
    return f"smallest front formula within {tolerance} of the best search fitness"


def select(front: list, tolerance: float) -> dict | None:
    """The smallest front member whose search fitness is within ``tolerance`` of the best."""
    if not front:
        return None
    best = max(r["fitness"] for r in front)
    return min((r for r in front if r["fitness"] >= best - tolerance), key=lambda r: r["size"])
