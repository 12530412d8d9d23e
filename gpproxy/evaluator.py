"""The one evaluation seam: ``Evaluator.map(formula strings) -> results``.

DEAP and the engine never call a formula directly; they hand strings to an
evaluator. A worker rebuilds everything it needs from a picklable
``EvalSpec`` (cache paths, arch lists, accuracies, pre-drawn subsets), so the
result of a run does not depend on the backend or the number of workers.

Backends: ``serial`` (in process) and ``local`` (joblib/loky processes, one
torch thread each, each holding its own loaded statistics).
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import torch

from .cache import open_cache
from .device import worker_count
from .errors import FormulaError, GpproxyError
from .fitness import INVALID, check_scores, combine, seed_references, task_fitness
from .formula import FormulaEval, combine_population, is_population, parse_formula, population_terms
from .pack import load_pack
from .statset import iter_chunks, load_chunks

MATRIX_MEMO_BYTES = 256 * 2**20  # per process, for matrix-valued shared subtrees
FITNESS_DIGITS = 9  # float noise from thread counts must not change a stored fitness


@dataclass(frozen=True)
class TaskEval:
    name: str
    cache_root: str
    archs: tuple
    acc: tuple
    subsets: tuple = ()  # tuple of index tuples
    size_groups: tuple = ()  # index tuples of archs of about the same #params (fitness.size_weight)


@dataclass(frozen=True)
class EvalSpec:
    pack: str
    tasks: tuple  # of TaskEval
    correlation: str = "kendall"
    combine: str = "mean"
    size_weight: float = 0.0
    device: str = "cpu"
    chunk_archs: int | str = "auto"
    eval_timeout: float = 0.0  # seconds per formula and chunk; 0 = no limit


class EvalTimeout(RuntimeError):
    """A formula ran longer than ``search.eval_timeout`` on one chunk."""


# A formula that fails on the statistics (shape errors in a user pack, a
# statistic missing from the cache, any exception a user primitive raises, a
# time limit) is invalid, not a crash. KeyboardInterrupt/SystemExit still stop.
EVAL_ERRORS = (Exception,)


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise EvalTimeout in the block after ``seconds`` (0: no limit).

    SIGALRM-based: it interrupts Python code (a user primitive that loops), not a
    single long torch kernel, and only works in a process's main thread (the
    serial backend and loky workers); elsewhere (dask worker threads) no limit applies.
    """
    if not seconds or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def _alarm(signum, frame):
        raise EvalTimeout(f"took longer than search.eval_timeout = {seconds} s")

    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def score_on_cache(source, archs, formulas, pack, device="cpu", chunk_archs="auto", chunks=None, *,
                   stats=None, memos=None, matrix_memo_bytes=MATRIX_MEMO_BYTES, errors=None,
                   seconds=None, timeout: float = 0.0) -> dict:
    """Scores of `formulas` on `archs`: {formula: float64 array in `archs` order}.

    The one place where formulas meet chunks of cached statistics: engine
    fitness (EvalContext), held-out scores, ``gpproxy score`` and the
    formula-defined baselines all come here. Formulas are the inner loop, so
    each chunk is loaded once for all of them and subtrees they share are
    computed once per chunk.

    source     a Cache, or {arch: [LayerRecord]} probed in memory
    formulas   formula strings, or {key: formula string or parsed tree}; the
               result has the same keys
    stats      statistics to load (default: the pack's)
    chunks     a list: empty, it keeps the chunks loaded from `source`; filled,
               its chunks are evaluated instead (arch sets scored again and again)
    memos      a dict kept by the caller: one subtree memo per chunk, shared by
               the formulas of several calls (one batch of a generation)
    errors     a dict: a formula that raises one of EVAL_ERRORS is left out of
               the result and ``"Type: message"`` stored here; without it, it raises
    seconds    a dict: evaluation seconds per formula are added to it
    timeout    seconds a formula may take on one chunk (0: no limit); over it, it fails

    A formula whose value is not one number per arch (a user primitive
    returning the wrong shape: FormulaEval checks every node) fails like one that raises.
    """
    pairs = formulas.items() if isinstance(formulas, Mapping) else ((f, f) for f in formulas)
    trees, pset = {}, None
    for key, f in pairs:
        if isinstance(f, str):
            pset = pset or pack.pset()
            f = parse_formula(f, pack, pset)
        trees[key] = f
    # A population formula's terms are Net formulas scored like the others (sharing
    # their subtrees); it is combined from them once every chunk is done.
    population = {key: t for key, t in trees.items() if is_population(t)}
    nets = {key: t for key, t in trees.items() if key not in population}
    terms_of = {key: {_Term(str(t)): t for t in population_terms(tree, pack)} for key, tree in population.items()}
    for terms in terms_of.values():
        for term_key, term in terms.items():
            nets.setdefault(term_key, term)
    run = FormulaEval(pack, matrix_memo_bytes=matrix_memo_bytes)
    keep = chunks is not None and not chunks
    source_chunks = chunks if chunks else iter_chunks(
        source, archs, list(pack.stats) if stats is None else stats, device, chunk_archs)
    parts, failed, secs = {key: [] for key in nets}, {}, {}
    for i, S in enumerate(source_chunks):
        if keep:
            chunks.append(S)
        memo = {} if memos is None else memos.setdefault(i, {})
        with torch.no_grad():
            for key, tree in nets.items():
                if key in failed:
                    continue
                t0 = time.perf_counter()
                try:
                    with time_limit(timeout):
                        value = run(tree, S, memo)
                    parts[key].append(value.double().cpu().numpy())
                except EVAL_ERRORS as e:
                    if errors is None:
                        raise
                    failed[key] = f"{type(e).__name__}: {e}"
                secs[key] = secs.get(key, 0.0) + time.perf_counter() - t0
    values = {key: np.concatenate(p) if p else np.zeros(0) for key, p in parts.items() if key not in failed}
    for key, tree in population.items():
        t0 = time.perf_counter()
        terms = terms_of[key]
        try:
            lost = [failed[k] for k in terms if k in failed]
            if lost:
                raise FormulaError(f"a term fails: {lost[0]}")
            if not terms:
                raise FormulaError("a population formula without a population transform is a constant")
            values[key] = combine_population(tree, pack, {k.text: torch.from_numpy(values[k]) for k in terms}).numpy()
        except EVAL_ERRORS as e:
            if errors is None:
                raise
            failed[key] = f"{type(e).__name__}: {e}"
        # a term shared by several population formulas is charged to each
        secs[key] = time.perf_counter() - t0 + sum(secs.get(k, 0.0) for k in terms)
    if seconds is not None:
        for key in trees:
            seconds[key] = seconds.get(key, 0.0) + secs.get(key, 0.0)
    if errors is not None:
        errors.update({key: why for key, why in failed.items() if key in trees})
    return {key: values[key] for key in trees if key not in failed}


@dataclass(frozen=True)
class _Term:
    """Key of a population formula's per-network term (cannot equal a caller's key)."""

    text: str


def _statistics_key(t: TaskEval) -> tuple:
    """What a task's formula scores depend on: its cache and archs (not its target), so tasks that
    rank the same archs by different accuracies (NB201's three datasets) are scored once."""
    return t.cache_root, t.archs


def _invalid(why: str) -> dict:
    return {"fitness": INVALID, "valid": False, "error": why, "tasks": {}}


class EvalContext:
    """Loaded statistics + compiled vocabulary for one EvalSpec."""

    def __init__(self, spec: EvalSpec):
        self.spec = spec
        self.pack = load_pack(spec.pack)
        self.pset = self.pack.pset()
        self.caches, self.chunks, self.acc, self.subsets, self.groups = {}, {}, {}, {}, {}
        loaded: dict = {}
        for t in spec.tasks:
            cache = self.caches[t.name] = open_cache(t.cache_root)
            key = _statistics_key(t)
            if key not in loaded:  # tasks that differ only in their target share one load
                loaded[key] = load_chunks(cache, list(t.archs), stats=list(self.pack.stats),
                                          device=spec.device, chunk_archs=spec.chunk_archs)
            self.chunks[t.name] = loaded[key]
            self.acc[t.name] = np.asarray(t.acc, dtype=np.float64)
            self.subsets[t.name] = [np.asarray(s) for s in t.subsets]
            self.groups[t.name] = [np.asarray(g) for g in t.size_groups]
        # Every chunk keeps its own memo during a batch: split one budget among them.
        n_chunks = sum(len(c) for c in loaded.values())
        self.memo_bytes = MATRIX_MEMO_BYTES // max(1, n_chunks)
        self.references = self._references() if spec.combine == "min_relative" else None

    def _references(self) -> list:
        """Per task: the best fitness of the pack's baseline seeds (combine "min_relative")."""
        seeds = list(dict.fromkeys(self.pack.seeds.values()))
        if not seeds:
            raise GpproxyError(f"combine = 'min_relative' needs baseline seeds; pack {self.spec.pack!r} has none")
        invalid, per_task = self._task_fitness(seeds)
        return seed_references([v for f, v in per_task.items() if f not in invalid],
                               [t.name for t in self.spec.tasks])

    def _scores(self, trees: dict, task: TaskEval, memos=None, errors=None) -> dict:
        return score_on_cache(self.caches[task.name], list(task.archs), trees, self.pack, self.spec.device,
                              chunks=self.chunks[task.name], memos=memos,
                              matrix_memo_bytes=self.memo_bytes, errors=errors, timeout=self.spec.eval_timeout)

    def scores(self, tree, task: str) -> np.ndarray:
        """One formula's scores on a task's search archs."""
        (t,) = [t for t in self.spec.tasks if t.name == task]
        return self._scores({0: tree}, t)[0]

    def evaluate_many(self, formulas) -> list:
        """One result dict per formula: fitness (INVALID when the formula does
        not parse, fails, or gives scores that cannot be ranked on a task),
        validity, error and the per-task fitness. Subtrees shared within the
        batch are computed once per chunk."""
        results, per_task = self._task_fitness(formulas)
        for f in per_task:
            if f not in results:
                fit = round(combine([per_task[f][t.name] for t in self.spec.tasks], self.spec.combine,
                                    self.references), FITNESS_DIGITS)
                results[f] = {"fitness": fit, "valid": fit > INVALID, "error": None, "tasks": per_task[f]}
        return [results[f] for f in formulas]

    def _task_fitness(self, formulas) -> tuple:
        """({formula: invalid result}, {formula: {task: fitness}}) of the formulas that parse."""
        results, trees = {}, {}
        for f in formulas:
            try:
                trees[f] = parse_formula(f, self.pack, self.pset)
            except FormulaError as e:
                results[f] = _invalid(str(e))
        per_task = {f: {} for f in trees}
        memos: dict = {}
        scored: dict = {}  # statistics key -> (scores, errors): tasks that differ only in their target
        for t in self.spec.tasks:  # a formula invalid on one task is not scored on the next
            live = {f: tree for f, tree in trees.items() if f not in results}
            if not live:
                break
            key = _statistics_key(t)
            if key not in scored:
                errors: dict = {}
                scored[key] = (self._scores(live, t, memos.setdefault(t.name, {}), errors), errors)
            scores, errors = scored[key]
            for f in live:
                why = errors[f][:200] if f in errors else check_scores(scores[f])
                if why:
                    results[f] = _invalid(why)
                    continue
                per_task[f][t.name] = round(task_fitness(scores[f], self.acc[t.name], self.spec.correlation,
                                                         self.subsets[t.name], self.groups[t.name],
                                                         self.spec.size_weight), FITNESS_DIGITS)
        return results, per_task


_CONTEXTS: dict = {}


def context_for(spec: EvalSpec) -> EvalContext:
    """Per-process context, loaded once and reused across calls."""
    ctx = _CONTEXTS.get(spec)
    if ctx is None:
        _CONTEXTS.clear()  # one spec per process at a time: bounded memory
        ctx = _CONTEXTS[spec] = EvalContext(spec)
    return ctx


def _worker_eval(spec: EvalSpec, formulas: list, parent: tuple | None = None) -> list:
    """In a loky worker; ``parent``: the driver's pid and current directory (lock.serve_driver)."""
    if parent is not None:
        from .lock import serve_driver

        serve_driver(*parent)
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

        n = worker_count(self.jobs, len(formulas))
        blocks = [formulas[i::n] for i in range(n)]
        driver = (os.getpid(), os.getcwd())
        outs = Parallel(n_jobs=n, backend="loky")(delayed(_worker_eval)(self.spec, b, driver) for b in blocks)
        result = [None] * len(formulas)
        for i, out in enumerate(outs):
            result[i::n] = out
        return result


class DaskEvaluator(Evaluator):
    """Dask.distributed workers: each long-lived worker process loads the
    statistics once (the per-process context) and is fed formula strings.

    ``address`` is an existing scheduler (``tcp://host:8786``); without one, a
    LocalCluster of ``jobs`` single-threaded worker processes is started and
    closed with the evaluator. Workers get the cache directories and a pack
    file by absolute path and must see them there (shared filesystem), as
    they read them themselves.
    """

    def __init__(self, spec: EvalSpec, jobs: int = 2, address: str | None = None):
        super().__init__(spec)
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise GpproxyError("backend 'dask' needs dask.distributed: pip install 'gpproxy[dask]'") from None
        self._cluster = None
        if address:
            self.client = Client(address)
        else:
            self._cluster = LocalCluster(n_workers=max(1, jobs), threads_per_worker=1, processes=True,
                                         dashboard_address=None)
            self.client = Client(self._cluster)
        self.workers = max(1, len(self.client.scheduler_info()["workers"]))
        from .lock import for_dask_workers

        spec = replace(spec, pack=for_dask_workers(spec.pack, is_file_name=True),
                       tasks=tuple(replace(t, cache_root=for_dask_workers(t.cache_root)) for t in spec.tasks))
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
