"""A task: one space + benchmark table + target + a disjoint search/held-out split,
with its statistics cache built (or completed) and loaded for evaluation."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .benchmarks import default_target, load_benchmark
from .cache import CacheSpec, build_cache, open_cache
from .config import TaskConfig
from .errors import GpproxyError
from .probe import ProbeConfig
from .spaces import get_space
from .spaces.user import SpaceBuildError


def cache_spec(task: TaskConfig) -> CacheSpec:
    return CacheSpec(space=task.space, num_classes=task.num_classes, batch=task.batch,
                     seed=task.seed, input=task.input, resolution=task.resolution,
                     probe=ProbeConfig(act_features=task.act_features, weight_rows=task.weight_rows,
                                       weight_cols=task.weight_cols, noise_pass=task.noise_pass,
                                       sample_seed=task.seed, moments=task.moments,
                                       net_terms=task.net_terms),
                     storage=task.storage)


def spec_digest(spec: CacheSpec) -> str:
    """8 hex naming a cache made with ``spec``: its dict, plus a user space file's sha256
    (so an edited file gets a new cache; built-in spaces keep their old names)."""
    ident = spec.to_dict()
    fingerprint = get_space(spec.space).fingerprint()
    if fingerprint:
        ident["space_sha256"] = fingerprint["sha256"]
    return hashlib.sha1(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:8]


def cache_dir(task: TaskConfig) -> Path:
    if task.cache:
        return Path(task.cache)
    return Path("caches") / f"{task.name}-{spec_digest(cache_spec(task))}"


def build_task_cache(root, spec: CacheSpec, archs: list, bench, **kwargs):
    """``build_cache`` that names the benchmark row of an arch a user space cannot build."""
    try:
        return build_cache(root, spec, archs, **kwargs)
    except SpaceBuildError as e:
        raise SpaceBuildError(f"{e} (the arch of {bench.where(e.arch)})", e.arch) from None


def split_archs(archs: list, n_search: int, n_heldout, seed: int):
    """Disjoint (search, held-out) arch lists drawn with a fixed seed."""
    if n_search >= len(archs) - 1:
        raise GpproxyError(f"search_archs={n_search} leaves fewer than 2 held-out archs (the table has "
                           f"{len(archs)} archs with a finite target)")
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
    space = get_space(task.space)
    bench = load_benchmark(task.benchmark, space=space)
    target = task.target or default_target(bench)
    acc_all = bench.accuracy(target)
    finite = [a for a, v in zip(bench.archs, acc_all) if np.isfinite(v)]
    dropped = len(acc_all) - len(finite)
    if dropped and log is not None:
        log(f"task {task.name}: {dropped} of {len(acc_all)} archs have no finite {target!r} value "
            f"(NaN, inf or empty) and are left out of the split")
    canon = [space.canonical(a) for a in finite]
    search, heldout = split_archs(canon, task.search_archs, task.heldout_archs, task.split_seed)
    lookup = dict(zip(canon, acc_all[np.isfinite(acc_all)]))
    search_acc = np.array([lookup[a] for a in search])
    if np.ptp(search_acc) == 0:
        raise GpproxyError(f"task {task.name}: target {target!r} of {task.benchmark} is the same "
                           f"({search_acc[0]:g}) for every search arch: there is nothing to rank")
    root = cache_dir(task)
    build_task_cache(root, cache_spec(task), search + heldout, bench, jobs=jobs, device=device,
                     benchmark=task.benchmark, target=target, targets=lookup, log=log)
    return TaskData(task, target, bench.source, search, heldout,
                    search_acc, np.array([lookup[a] for a in heldout]), root)


def cache_benchmark(out, spec: CacheSpec, benchmark: str, target: str = "", archs="all", jobs: int = 2,
                    device: str = "auto", dask_address: str = "", log=None):
    """``gpproxy cache``: build (or complete) the cache of ``archs`` of a benchmark.

    ``archs``: ``"all"``, N (drawn with ``numpy default_rng(spec.seed)``) or a
    list of archs in any encoding of ``spec.space``. Returns (cache, target).
    """
    from .device import resolve_device

    space = get_space(spec.space)
    bench = load_benchmark(benchmark, space=space)
    target = target or default_target(bench)
    acc = bench.accuracy(target)  # fails early on an unknown column
    universe = list(bench.archs)
    if archs == "all":
        chosen = universe
    elif isinstance(archs, int):
        if not 1 <= archs <= len(universe):
            raise GpproxyError(f"--archs {archs}: the benchmark has {len(universe)} archs")
        chosen = [universe[i] for i in np.random.default_rng(spec.seed).permutation(len(universe))[:archs]]
    else:
        chosen = list(archs)
    chosen = [space.canonical(a) for a in chosen]
    lookup = {space.canonical(a): float(v) for a, v in zip(bench.archs, acc) if np.isfinite(v)}
    missing = [a for a in chosen if a not in lookup]
    if missing:
        raise GpproxyError(f"arch {missing[0]} has no {target!r} value in {benchmark}")
    client = None
    if dask_address:
        try:
            from distributed import Client
        except ImportError:
            raise GpproxyError("--dask needs dask.distributed: pip install 'gpproxy[dask]'") from None
        client = Client(dask_address)
    try:
        cache = build_task_cache(out, spec, chosen, bench, jobs=jobs, device=resolve_device(device),
                                 benchmark=benchmark, target=target, targets=lookup,
                                 backend="dask" if client else "loky", log=log)
    finally:
        if client is not None:
            client.close()
    return cache, target


def arch_params(cache_root, archs) -> np.ndarray:
    """Each arch's probed #params (its conv and linear layers, from the cache's
    layer records): the size that ``fitness.size_weight`` groups archs by."""
    cache = open_cache(cache_root)
    return np.array([sum(r.meta.get("params", 0) for r in cache.layers(a)) for a in archs], dtype=np.float64)
