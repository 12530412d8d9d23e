"""Pictures of a run (matplotlib, headless): search progress, the Pareto
front, and the selected formula's scores against held-out accuracies."""
from __future__ import annotations

from pathlib import Path

from .errors import GpproxyError


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise GpproxyError("plots need matplotlib (a gpproxy dependency): pip install matplotlib") from None
    return plt


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
    return path


def progress(run, path) -> Path:
    """Best and median search fitness per generation."""
    plt = _pyplot()
    log = run.log
    if not log:
        raise GpproxyError(f"{run.root} has no finished generation to plot")
    g = [r["generation"] for r in log]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(g, [r["best"] for r in log], label="best")
    ax.plot(g, [r["median"] if r["median"] is not None else float("nan") for r in log], label="median")
    ax.set_xlabel("generation")
    ax.set_ylabel(f"search fitness ({run.config.fitness.correlation})")
    ax.legend()
    return _save(fig, path)


def front(run, path) -> Path:
    """Search fitness against formula size; the selected formula marked."""
    plt = _pyplot()
    rows = run.front
    if not rows:
        raise GpproxyError(f"{run.root}/pareto.csv is empty: nothing to plot")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.step([r.size for r in rows], [r.fitness for r in rows], where="post", color="0.6")
    ax.scatter([r.size for r in rows], [r.fitness for r in rows], s=18, label="Pareto front")
    chosen = [r for r in rows if r.selected]
    if chosen:
        ax.scatter([chosen[0].size], [chosen[0].fitness], s=80, facecolors="none", edgecolors="red",
                   label="selected")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("formula size (nodes)")
    ax.set_ylabel(f"search fitness ({run.config.fitness.correlation})")
    ax.legend(loc="lower right")
    return _save(fig, path)


def scatter(run, path, task: int = 0) -> Path:
    """Predicted rank (by the selected formula's score) against true-accuracy rank on the held-out
    archs of one task: ranks, because a proxy is judged by the order it gives."""
    import numpy as np
    from scipy.stats import rankdata

    plt = _pyplot()
    chosen = run.candidate()
    scores, acc = run.heldout_scores(chosen.formula, task)
    scores, acc = np.asarray(scores, dtype=float), np.asarray(acc, dtype=float)
    scores = np.where(np.isfinite(scores), scores, -np.inf)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.scatter(rankdata(scores), rankdata(acc), s=8, alpha=0.6)
    n = len(acc)
    ax.plot([1, n], [1, n], color="0.6", lw=0.8, ls="--", label="perfect ranking")
    ax.set_xlabel("predicted rank (proxy score, 1 = lowest)")
    ax.set_ylabel(f"true accuracy rank, {run.config.tasks[task].name}")
    held = chosen.heldout.get(run.config.tasks[task].name, {})
    if "kendall" in held:
        ax.text(0.03, 0.95, f"held-out archs: n = {n}, Kendall τ = {held['kendall']:.3f}",
                transform=ax.transAxes, va="top", fontsize=8)
    ax.legend(loc="lower right", fontsize=8)
    title = chosen.formula if len(chosen.formula) < 60 else chosen.formula[:57] + "..."
    ax.set_title(title, fontsize=8)
    return _save(fig, path)


FILES = {"front": "pareto_front.png", "progress": "fitness_per_generation.png", "scatter": "heldout_rank_scatter.png"}


def write_all(run) -> list:
    """The three pictures of a finished run, in its directory: [paths]."""
    out = []
    for kind, name in FILES.items():
        if {"front": not run.front, "progress": not run.log, "scatter": run.selected is None}[kind]:
            continue  # nothing to draw (a run that found no formula)
        out.append(globals()[kind](run, run.root / name))
    return out
