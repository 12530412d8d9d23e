"""Rank correlation between proxy scores and accuracies, and how a formula's
per-task correlations become one fitness value."""
from __future__ import annotations

import numpy as np
from scipy import stats as sps

INVALID = -1.0  # fitness of a program that fails: no valid correlation is lower


def kendall(x, y) -> float:
    return float(sps.kendalltau(x, y).statistic)


def spearman(x, y) -> float:
    return float(sps.spearmanr(x, y).statistic)


def weighted_kendall(x, y) -> float:
    """Vigna's weighted τ (hyperbolic weights by rank): swaps among the best
    archs of either ranking cost more than swaps among the worst, as NAS only
    ever picks from the top."""
    return float(sps.weightedtau(x, y).statistic)


CORRELATIONS = {"kendall": kendall, "spearman": spearman, "weighted_kendall": weighted_kendall}


def top_precision(scores, acc, k: int) -> float:
    """Fraction of the true top-k archs (by accuracy) among the proxy's top-k."""
    k = max(1, min(k, len(acc)))
    top_true = set(np.argsort(-np.asarray(acc), kind="stable")[:k])
    top_pred = set(np.argsort(-np.asarray(scores), kind="stable")[:k])
    return len(top_true & top_pred) / k


def score_report(scores, acc) -> dict:
    """Kendall, Spearman, top-10% and top-50 precision of one score vector."""
    n = len(acc)
    return {"kendall": kendall(scores, acc), "spearman": spearman(scores, acc),
            "top10pct": top_precision(scores, acc, max(1, n // 10)),
            "top50": top_precision(scores, acc, 50), "n": n}


def check_scores(scores: np.ndarray) -> str | None:
    """Why a score vector cannot be ranked, or None if it can."""
    if not np.all(np.isfinite(scores)):
        return "non-finite scores"
    if np.ptp(scores) <= 1e-12 * max(1.0, float(np.abs(scores).max())):
        return "constant scores"
    return None


def draw_subsets(n: int, count: int, fraction: float, seed: int) -> list:
    """EZNAS-style evaluation subsets, drawn once by the driver (never by workers)."""
    rng = np.random.default_rng(seed)
    size = max(2, int(round(n * fraction)))
    return [np.sort(rng.choice(n, size=size, replace=False)) for _ in range(count)]


def task_fitness(scores, acc, correlation: str, subsets=None) -> float:
    corr = CORRELATIONS[correlation]
    if not subsets:
        value = corr(scores, acc)
    else:
        value = min(corr(scores[s], acc[s]) for s in subsets)
    return INVALID if not np.isfinite(value) else value


def combine(values: list, how: str) -> float:
    return float(np.mean(values) if how == "mean" else np.min(values))
