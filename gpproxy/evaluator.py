"""The one evaluation seam: ``Evaluator.map(formula strings) -> results``.

DEAP and the engine never call a formula directly; they hand strings to an
evaluator. A worker rebuilds everything it needs from a picklable
``EvalSpec`` (cache paths, arch lists, accuracies, pre-drawn subsets), so the
result of a run does not depend on the backend or the number of workers.

Backends: ``serial`` (in process) and ``local`` (joblib/loky processes, one
torch thread each, each holding its own loaded statistics).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from .cache import open_cache
from .errors import FormulaError
from .fitness import INVALID, check_scores, combine, task_fitness
from .formula import FormulaEval, parse_formula
from .pack import load_pack
from .statset import load_chunks

MATRIX_MEMO_BYTES = 256 * 2**20  # per process, for matrix-valued shared subtrees
FITNESS_DIGITS = 9  # float noise from thread counts must not change a stored fitness


@dataclass(frozen=True)
class TaskEval:
    name: str
    cache_root: str
    archs: tuple
    acc: tuple
    subsets: tuple = ()  # tuple of index tuples


@dataclass(frozen=True)
class EvalSpec:
    pack: str
    tasks: tuple  # of TaskEval
    correlation: str = "kendall"
    combine: str = "mean"
    device: str = "cpu"
    chunk_archs: int | str = "auto"


class EvalContext:
    """Loaded statistics + compiled vocabulary for one EvalSpec."""

    def __init__(self, spec: EvalSpec):
        self.spec = spec
        self.pack = load_pack(spec.pack)
        self.pset = self.pack.pset()
        self.chunks = {}
        self.acc = {}
        self.subsets = {}
        for t in spec.tasks:
            cache = open_cache(t.cache_root)
            self.chunks[t.name] = load_chunks(cache, list(t.archs), stats=list(self.pack.stats),
                                              device=spec.device, chunk_archs=spec.chunk_archs)
            self.acc[t.name] = np.asarray(t.acc, dtype=np.float64)
            self.subsets[t.name] = [np.asarray(s) for s in t.subsets]
        # Every chunk keeps its own memo during a batch: split one budget among them.
        n_chunks = sum(len(c) for c in self.chunks.values())
        self.run = FormulaEval(self.pack, matrix_memo_bytes=MATRIX_MEMO_BYTES // max(1, n_chunks))

    def scores(self, tree, task: str, memos=None) -> np.ndarray:
        parts = []
        for i, S in enumerate(self.chunks[task]):
            memo = None if memos is None else memos.setdefault((task, i), {})
            with torch.no_grad():
                parts.append(self.run(tree, S, memo).double().cpu().numpy())
        return np.concatenate(parts)

    def evaluate(self, formula: str, memos=None) -> dict:
        try:
            tree = parse_formula(formula, self.pack, self.pset)
        except FormulaError as e:
            return {"fitness": INVALID, "valid": False, "error": str(e), "tasks": {}}
        per_task = {}
        for t in self.spec.tasks:
            try:
                s = self.scores(tree, t.name, memos)
            except (RuntimeError, ValueError, IndexError) as e:  # e.g. shape errors in user packs
                return {"fitness": INVALID, "valid": False, "error": f"{type(e).__name__}: {e}"[:200],
                        "tasks": {}}
            why = check_scores(s)
            if why:
                return {"fitness": INVALID, "valid": False, "error": why, "tasks": {}}
            per_task[t.name] = round(task_fitness(s, self.acc[t.name], self.spec.correlation,
                                                  self.subsets[t.name]), FITNESS_DIGITS)
        fit = round(combine(list(per_task.values()), self.spec.combine), FITNESS_DIGITS)
        return {"fitness": fit, "valid": fit > INVALID, "error": None, "tasks": per_task}

    def evaluate_many(self, formulas) -> list:
        memos = {}  # shared Layer/Net-level subtrees within one batch
        return [self.evaluate(f, memos) for f in formulas]


def score_on_cache(cache, archs, formulas, pack, device="cpu", chunk_archs="auto", chunks=None) -> dict:
    """{formula: np.ndarray of scores for `archs`}, loading the cache chunk by chunk.

    Formulas are the inner loop, so each chunk of statistics is read once for
    all formulas and subtrees they share are computed once. Pass a list as
    `chunks` to keep the loaded chunks for the next call (small arch sets).
    """
    from .statset import chunk_bounds, load_statset, resolve_chunk_archs

    run = FormulaEval(pack)
    trees = {f: parse_formula(f, pack) for f in formulas}
    parts = {f: [] for f in formulas}
    keep = chunks is not None and not chunks
    if chunks:
        source = chunks
    else:
        chunk = resolve_chunk_archs(chunk_archs, cache, archs, list(pack.stats), device)
        source = (load_statset(cache, archs[a:b], stats=list(pack.stats), device=device)
                  for a, b in chunk_bounds(len(archs), chunk))
    for S in source:
        if keep:
            chunks.append(S)
        memo = {}
        with torch.no_grad():
            for f, tree in trees.items():
                parts[f].append(run(tree, S, memo).double().cpu().numpy())
    return {f: np.concatenate(p) if p else np.zeros(0) for f, p in parts.items()}


_CONTEXTS: dict = {}


def context_for(spec: EvalSpec) -> EvalContext:
    """Per-process context, loaded once and reused across calls."""
    ctx = _CONTEXTS.get(spec)
    if ctx is None:
        _CONTEXTS.clear()  # one spec per process at a time: bounded memory
        ctx = _CONTEXTS[spec] = EvalContext(spec)
    return ctx


def _worker_eval(spec: EvalSpec, formulas: list) -> list:
    torch.set_num_threads(1)
    return context_for(spec).evaluate_many(formulas)


class Evaluator:
    """Base: ``map`` returns one result dict per formula, in order."""

    def __init__(self, spec: EvalSpec):
        self.spec = spec
        self.last_seconds = 0.0

    def map(self, formulas: list) -> list:
        t0 = time.perf_counter()
        out = self._map(list(formulas)) if formulas else []
        self.last_seconds = time.perf_counter() - t0
        return out

    def _map(self, formulas):  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self):
        pass


class SerialEvaluator(Evaluator):
    def _map(self, formulas):
        return context_for(self.spec).evaluate_many(formulas)


class LocalEvaluator(Evaluator):
    """joblib/loky worker processes; formulas are split into contiguous blocks."""

    def __init__(self, spec: EvalSpec, jobs: int = 2):
        super().__init__(spec)
        self.jobs = max(1, jobs)

    def _map(self, formulas):
        from joblib import Parallel, delayed

        n = min(self.jobs, len(formulas))
        blocks = [formulas[i::n] for i in range(n)]
        outs = Parallel(n_jobs=n, backend="loky")(delayed(_worker_eval)(self.spec, b) for b in blocks)
        result = [None] * len(formulas)
        for i, out in enumerate(outs):
            result[i::n] = out
        return result


class DaskEvaluator(Evaluator):
    """Dask.distributed workers: each long-lived worker process loads the
    statistics once (the per-process context) and is fed formula strings.

    ``address`` is an existing scheduler (``tcp://host:8786``); without one, a
    LocalCluster of ``jobs`` single-threaded worker processes is started and
    closed with the evaluator. Workers must see the cache directory at the
    same path (shared filesystem), as they read it themselves.
    """

    def __init__(self, spec: EvalSpec, jobs: int = 2, address: str | None = None):
        super().__init__(spec)
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            from .errors import GpproxyError

            raise GpproxyError("backend 'dask' needs dask.distributed: pip install 'gpproxy[dask]'") from None
        self._cluster = None
        if address:
            self.client = Client(address)
        else:
            self._cluster = LocalCluster(n_workers=max(1, jobs), threads_per_worker=1, processes=True,
                                         dashboard_address=None)
            self.client = Client(self._cluster)
        self.workers = max(1, len(self.client.scheduler_info()["workers"]))
        self._spec = self.client.scatter(spec, broadcast=True)

    def _map(self, formulas):
        n = min(self.workers, len(formulas))
        blocks = [formulas[i::n] for i in range(n)]
        futures = [self.client.submit(_worker_eval, self._spec, b, pure=False) for b in blocks]
        outs = self.client.gather(futures)
        result = [None] * len(formulas)
        for i, out in enumerate(outs):
            result[i::n] = out
        return result

    def close(self):
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def make_evaluator(spec: EvalSpec, backend: str = "serial", jobs: int = 2, address: str | None = None) -> Evaluator:
    if backend == "serial":
        return SerialEvaluator(spec)
    if backend == "local":
        return LocalEvaluator(spec, jobs)
    if backend == "dask":
        return DaskEvaluator(spec, jobs, address)
    raise ValueError(f"unknown evaluator backend {backend!r}")
