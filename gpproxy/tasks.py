"""A task: one space + benchmark table + target + a disjoint search/held-out split,
with its statistics cache built (or completed) and loaded for evaluation."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .benchmarks import default_target, load_benchmark
from .cache import CacheSpec, build_cache
from .config import TaskConfig
from .errors import GpproxyError
from .probe import ProbeConfig
from .spaces import get_space


def cache_spec(task: TaskConfig) -> CacheSpec:
    return CacheSpec(space=task.space, num_classes=task.num_classes, batch=task.batch,
                     seed=task.seed, input=task.input, resolution=task.resolution,
                     probe=ProbeConfig(act_features=task.act_features, weight_rows=task.weight_rows,
                                       weight_cols=task.weight_cols, noise_pass=task.noise_pass,
                                       sample_seed=task.seed, moments=task.moments),
                     storage=task.storage)


def cache_dir(task: TaskConfig) -> Path:
    if task.cache:
        return Path(task.cache)
    spec = json.dumps(cache_spec(task).to_dict(), sort_keys=True)
    return Path("caches") / f"{task.name}-{hashlib.sha1(spec.encode()).hexdigest()[:8]}"


def split_archs(archs: list, n_search: int, n_heldout, seed: int):
    """Disjoint (search, held-out) arch lists drawn with a fixed seed."""
    if n_search >= len(archs):
        raise GpproxyError(f"search_archs={n_search} leaves no held-out archs (the table has {len(archs)})")
    perm = np.random.default_rng(seed).permutation(len(archs))
    search = [archs[i] for i in perm[:n_search]]
    rest = perm[n_search:]
    if n_heldout != "rest":
        if n_heldout > len(rest):
            raise GpproxyError(f"heldout_archs={n_heldout} but only {len(rest)} archs remain after the search split")
        rest = rest[:n_heldout]
    return search, [archs[i] for i in rest]


@dataclass
class TaskData:
    config: TaskConfig
    target: str
    benchmark_source: str
    search_archs: list
    heldout_archs: list
    search_acc: np.ndarray
    heldout_acc: np.ndarray
    cache_root: Path


def prepare_task(task: TaskConfig, jobs: int = 1, device: str = "cpu", log=None) -> TaskData:
    """Load the table, split, and build whatever part of the cache is missing."""
    bench = load_benchmark(task.benchmark)
    target = task.target or default_target(bench)
    acc_all = bench.accuracy(target)
    space = get_space(task.space)
    finite = [a for a, v in zip(bench.archs, acc_all) if np.isfinite(v)]
    canon = [space.canonical(a) for a in finite]
    search, heldout = split_archs(canon, task.search_archs, task.heldout_archs, task.split_seed)
    lookup = dict(zip(canon, acc_all[np.isfinite(acc_all)]))
    root = cache_dir(task)
    build_cache(root, cache_spec(task), search + heldout, jobs=jobs, device=device,
                benchmark=task.benchmark, target=target, targets=lookup, log=log)
    return TaskData(task, target, bench.source, search, heldout,
                    np.array([lookup[a] for a in search]), np.array([lookup[a] for a in heldout]),
                    root)
