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


def ndcg(scores, acc, k: int = 5000) -> float:
    """Normalised discounted cumulative gain at ``k`` with the accuracies as
    linear gains, as VKDNW reports it (scikit-learn's ``ndcg_score``: tied
    scores share their gains and discounts)."""
    scores, acc = np.asarray(scores, dtype=np.float64), np.asarray(acc, dtype=np.float64)
    discount = 1.0 / np.log2(np.arange(len(acc)) + 2.0)
    discount[k:] = 0.0
    cum = np.cumsum(discount)

    def dcg(order_by):
        _, inv, counts = np.unique(-order_by, return_inverse=True, return_counts=True)
        gains = np.zeros(len(counts))
        np.add.at(gains, inv, acc)
        ends = np.cumsum(counts) - 1
        return float(np.sum(gains / counts * np.diff(cum[ends], prepend=0.0)))

    ideal = dcg(acc)
    return dcg(scores) / ideal if ideal > 0 else float("nan")


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


def size_groups(sizes, count: int) -> tuple:
    """Indices of the archs in each of ``count`` quantile groups of ``sizes``
    (#params): ties stay together, groups of fewer than 5 archs are dropped."""
    sizes = np.asarray(sizes, dtype=np.float64)
    edges = np.quantile(sizes, np.linspace(0, 1, count + 1)[1:-1])
    group = np.searchsorted(edges, sizes, side="right")
    out = [np.flatnonzero(group == g) for g in range(count)]
    return tuple(tuple(int(i) for i in g) for g in out if len(g) >= 5)


def within_groups(scores, acc, groups, correlation: str) -> float:
    """Mean correlation inside size groups: how well a proxy ranks archs of
    about the same size (a proxy that only measures size scores 0 here)."""
    corr = CORRELATIONS[correlation]
    values = []
    for g in map(np.asarray, groups):  # no copy for the evaluator's arrays
        if np.ptp(acc[g]) == 0:
            continue
        values.append(corr(scores[g], acc[g]) if np.ptp(scores[g]) > 0 else 0.0)
    return float(np.mean(values)) if values else 0.0


def task_fitness(scores, acc, correlation: str, subsets=None, groups=(), size_weight: float = 0.0) -> float:
    """Correlation (min over ``subsets`` when given), blended with the mean
    correlation within size ``groups`` by ``size_weight``."""
    corr = CORRELATIONS[correlation]
    if not subsets:
        value = corr(scores, acc)
    else:
        value = min(corr(scores[s], acc[s]) for s in subsets)
    if size_weight > 0 and groups and np.isfinite(value):
        value = (1 - size_weight) * value + size_weight * within_groups(scores, acc, groups, correlation)
    return INVALID if not np.isfinite(value) else value


COMBINES = ("mean", "min", "min_relative")
# "min_relative": the minimum over tasks of a formula's fitness divided by the task's reference, the best
# fitness of the pack's baseline seeds there, so a task that every proxy finds hard (low tau) does not
# decide the search alone. The floor keeps a task where every baseline fails positive and counted.
REFERENCE_FLOOR = 0.05


def seed_references(task_values: list, tasks: list) -> list:
    """Per task, the "min_relative" reference: the best fitness among the seeds' {task: fitness} dicts
    (an empty dict: a seed invalid somewhere, left out); INVALID where no seed ranks the task."""
    return [max([v[t] for v in task_values if v] or [INVALID]) for t in tasks]


def combine(values: list, how: str, references: list | None = None) -> float:
    """One fitness from per-task values (``references``: per task, in the same order, for "min_relative")."""
    if how == "min_relative":
        return float(np.min(np.asarray(values) / np.maximum(np.asarray(references), REFERENCE_FLOOR)))
    return float(np.mean(values) if how == "mean" else np.min(values))
