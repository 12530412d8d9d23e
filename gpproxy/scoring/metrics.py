"""Correlation reports of scores with accuracies, per trial and over trials."""
from __future__ import annotations

import math
import warnings

import numpy as np

from ..errors import GpproxyError

METRICS = ("kendall", "spearman", "top10pct", "top50")


def meaningful(metric: str, n: int) -> bool:
    """Whether ``metric`` says something on ``n`` archs: top-50 precision needs more than 50,
    top-10 % precision at least 20 (two archs in the top 10 %)."""
    return not ((metric == "top50" and n <= 50) or (metric == "top10pct" and n < 20))


def trial_indices(n_pool: int, n_archs, trials: int, seed: int) -> list:
    """Index arrays of each trial: all archs once, or ``n_archs`` drawn with seed+t."""
    if n_archs == "all" or n_archs is None:
        return [np.arange(n_pool)]
    if n_archs > n_pool:
        raise GpproxyError(f"--archs {n_archs}: only {n_pool} archs have a ground truth")
    return [np.sort(np.random.default_rng(seed + t).choice(n_pool, n_archs, replace=False))
            for t in range(trials)]


def report(scores: np.ndarray, acc: np.ndarray) -> dict:
    from ..baselines import NASLIB_INVALID
    from ..fitness import score_report

    if np.ptp(np.asarray(scores, dtype=np.float64)) == 0:  # no ranking: nan, said once, not scipy's warnings
        rep = {"kendall": math.nan, "spearman": math.nan, "top10pct": math.nan, "top50": math.nan,
               "n": len(acc), "constant": 1}
    else:
        rep = {**score_report(scores, acc), "constant": 0}
    rep["invalid"] = int(np.sum(scores == NASLIB_INVALID))
    return rep


def summarize(reports: list) -> dict:
    """mean and std (population) of each metric over trials."""
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nanmean of all-nan trials is nan: that is the answer
        for m in METRICS:
            v = np.array([r[m] for r in reports], dtype=np.float64)
            out[m] = (float(np.nanmean(v)), float(np.nanstd(v)) if len(v) > 1 else 0.0)
    out["n"] = int(reports[0]["n"])
    out["trials"] = len(reports)
    out["invalid"] = max(r["invalid"] for r in reports)
    out["constant"] = sum(r.get("constant", 0) for r in reports)  # trials where every arch scored the same
    return out


