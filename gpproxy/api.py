"""The Python API: what the command line does, as calls.

    import gpproxy
    run = gpproxy.evolve("experiments/quickstart.toml", out="runs/qs", **{"search.generations": 5})
    print(run.selected.formula, run.selected.heldout)
    run.export("proxy.py")
    result = gpproxy.score(run.selected.formula, archs, space="nb201", ground_truth=accuracies)
"""
from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

from .config import Config, as_config
from .errors import GpproxyError
from .fileio import atomic_write_text
from .run import Run

GROUND_TRUTH_DIR = "ground_truth"
GROUND_TRUTH_COLUMN = "accuracy"


def evolve(config, out=None, *, ground_truth=None, log=None, plots: bool = True, **overrides) -> Run:
    """Run (or resume) an evolution and return its :class:`Run`.

    ``config``: a TOML/JSON path, a dict with the TOML's structure, or a
    :class:`Config`. ``overrides`` are applied with :meth:`Config.override`
    (dotted keys: ``**{"search.generations": 5}``) and validated again.
    ``ground_truth``: the accuracies as a mapping ``{arch: value}`` (every task)
    or ``{task name: {arch: value}}``; it is written into the run directory as
    ``ground_truth/<task>.csv`` and becomes the task's benchmark, so the run
    resumes without the caller's objects. ``out`` defaults to ``runs/<name>``.
    ``plots``: write the Pareto front, fitness per generation and the held-out
    rank scatter into the run directory (``plots.FILES``); False skips them.
    """
    from .engine import Engine

    cfg = as_config(config)
    if overrides:
        cfg = cfg.override(**overrides)
    root = Path(out) if out is not None else Path("runs") / cfg.name
    if ground_truth is not None:
        cfg = _with_ground_truth(cfg, root, ground_truth)
    Engine(cfg, root, log=log).run()
    run = Run.open(root)
    if plots:
        from . import plots as pictures

        pictures.write_all(run)
    return run


def _with_ground_truth(cfg: Config, root: Path, ground_truth) -> Config:
    names = [t.name for t in cfg.tasks]
    per_task = (ground_truth if ground_truth and set(ground_truth) <= set(names)
                and all(hasattr(v, "items") for v in ground_truth.values())
                else {n: ground_truth for n in names})
    tasks = []
    for t in cfg.to_dict()["tasks"]:
        mapping = per_task.get(t["name"])
        if mapping is not None:
            path = (root / GROUND_TRUTH_DIR / f"{t['name']}.csv").resolve()
            _write_ground_truth(path, mapping, t["name"])
            t.update(benchmark=str(path), target=GROUND_TRUTH_COLUMN)
        tasks.append(t)
    data = cfg.to_dict()
    data.pop("tasks")
    data["task"] = tasks
    return as_config(data)


def _write_ground_truth(path: Path, mapping, task: str) -> None:
    if not hasattr(mapping, "items") or len(mapping) < 2:
        raise GpproxyError(f"ground truth of task {task!r} must map at least 2 archs to accuracies")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["arch", GROUND_TRUTH_COLUMN])
    for arch, value in mapping.items():
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise GpproxyError(f"ground truth of task {task!r}: arch {str(arch)[:80]!r} has a non-numeric "
                               f"accuracy {value!r}") from None
        if not math.isfinite(value):
            raise GpproxyError(f"ground truth of task {task!r}: arch {str(arch)[:80]!r} has accuracy {value}")
        w.writerow([str(arch), repr(value)])
    text = buf.getvalue()
    if path.exists() and path.read_text() != text:
        raise GpproxyError(f"{path} holds other ground truth than this call's: a run directory belongs to "
                           f"one evolution; choose another out=")
    atomic_write_text(path, text)


def score(proxy, archs=None, *, space=None, ground_truth=None, benchmark=None, dataset=None, target=None,
          batch: int | None = None, seed: int = 0, input: str = "noise", pack: str = "default",
          resolution: int | None = None, cache_dir="caches/score", scores=None, log=None):
    """Score a proxy on archs of any space; correlate with ground truth when given.

    ``proxy``: a baseline name, a formula string of ``pack`` or an exported
    ``.py`` module. ``archs``: a list (any encoding of the space), N random
    archs of the ground truth, or None (all of them); at least 2 with ground
    truth (a correlation ranks them). ``space``: a built-in
    name or a user space ``.py`` file (default: the benchmark's, else NB201).
    ``ground_truth``: ``{arch: accuracy}``, or ``benchmark``: a spec as
    ``gpproxy score --benchmark`` takes. ``scores``: a NAS-Bench-Suite-Zero
    style JSON file to keep and reuse per-arch scores (default: in memory).
    ``batch`` and ``resolution`` (the nets' input size): a zoo entry's own
    protocol where None, else 64 and each dataset's own size.
    Returns :class:`gpproxy.scoring.Scores` (``.values``, ``.kendall``, ``.report``).
    """
    from .config import SEARCH_RULES, check_value
    from .scoring import Protocol, score_proxy
    from .spaces._common import show
    from .zoo import scoring_protocol

    proxy = os.fspath(proxy) if isinstance(proxy, os.PathLike) else proxy
    if not isinstance(proxy, str):
        # str(123) would parse as a constant formula: the same score for every arch
        raise GpproxyError(f"proxy = {show(proxy)} is not allowed: give a string (a baseline name, zoo:NAME, a "
                           f"formula or an exported .py file)")
    pack = os.fspath(pack) if isinstance(pack, os.PathLike) else pack
    check_value("pack", pack, SEARCH_RULES["pack"])
    if cache_dir is not None and (not isinstance(cache_dir, (str, os.PathLike))
                                  or Path(cache_dir).exists() and not Path(cache_dir).is_dir()):
        raise GpproxyError(f"cache_dir = {show(str(cache_dir))} is not allowed: give a directory (it holds the "
                           f"statistics caches of formula proxies)")
    batch, resolution = scoring_protocol(proxy, batch, resolution)
    protocol = Protocol(space=space, batch=batch, seed=seed, input=input, pack=pack, resolution=resolution)
    return score_proxy(proxy, archs, ground_truth=ground_truth, benchmark=benchmark, dataset=dataset,
                       target=target, protocol=protocol, scores_path=scores, cache_root=cache_dir,
                       log=log or (lambda m: None))
