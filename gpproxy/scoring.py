"""Score proxies on a benchmark (``gpproxy score``) and tabulate them (``gpproxy bench``).

A proxy is a baseline name (``gpproxy.baselines.BASELINES``), a formula string
of a primitive pack, or an exported ``.py`` module defining
``score(net, inputs, targets) -> float``.

Protocol (recorded in every output): each arch's network is built with
``torch.manual_seed(seed)`` (PyTorch default init, as NB201 and
NAS-Bench-Suite-Zero) and sees the one minibatch ``load_batch(input, batch,
seed)``; BatchNorm in training mode; cross-entropy loss. Formula strings are
scored through the statistics cache (``build_cache`` -> ``load_statset`` ->
``FormulaEval``), so they get exactly the numbers the engine computes.

The space is the benchmark's (NB201 tables, ``nds:PATH``, ``tnb101:PATH``);
each space has its own datasets (``datasets_of``): what net head, input size and
default ground-truth column a dataset means. Per-arch scores are kept in
NAS-Bench-Suite-Zero's layout,
``data[dataset][arch][proxy] = {"score": ..., "time": ...}`` with the NASLib
6-tuple as the NB201 arch key (the canonical arch string in other spaces) and
``val_accuracy`` beside the proxies. Scores
that are NaN/inf are stored as -1e8, NASLib's rule. The file doubles as a
resume point: a rerun computes only what it lacks.
"""
from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import math
import sys
import time
import zlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from .errors import DataError, FormulaError, GpproxyError
from .fileio import atomic_write_json, atomic_write_text
from .spaces.base import Dataset
from .spaces.nb201_space import DATASETS  # noqa: F401  (NB201's datasets, for callers that name them)

ANALOG = "analog-nasbench"
CHUNK_ARCHS = 100  # formula evaluation chunk (bounds intermediate memory)
SAVE_EVERY_S = 60.0
# Double backward through channels_last conv/avg-pool is 2.5x slower than NCHW
# on CPU (measured, NB201 batch 64); everything else is ~1.5x faster in it.
NCHW_BASELINES = frozenset({"grasp"})


def datasets_of(space: str) -> dict:
    """{name: Dataset} of a space, the default first."""
    from .spaces import get_space

    return get_space(space).datasets()


@dataclass(frozen=True)
class Protocol:
    """Everything that changes a score besides the arch and the proxy.

    ``space=None`` means the benchmark's space (run_score/run_bench fill it in);
    ``resolution=None`` means each dataset's native input size.
    """

    space: str | None = "nb201"
    batch: int = 64
    seed: int = 0  # network init seed and minibatch draw seed
    input: str = "noise"
    pack: str = "default"
    # NASLib's protocol: every arch gets its own init and minibatch (seed_for);
    # ours by default: one seed for all, so archs differ only by architecture.
    per_arch_seed: bool = False
    resolution: int | None = None

    def resolution_for(self, ds: Dataset) -> int:
        return int(self.resolution or ds.resolution)

    def seed_for(self, arch: str) -> int:
        """The init/minibatch seed of ``arch`` (a stable hash of it with per_arch_seed)."""
        if not self.per_arch_seed:
            return self.seed
        return (self.seed * 1_000_003 + zlib.crc32(arch.encode())) % (2 ** 31)

    def cache_spec(self, ds: Dataset, noise_pass: bool = False):
        from .cache import CacheSpec
        from .probe import ProbeConfig

        return CacheSpec(space=self.space, num_classes=ds.num_classes, batch=self.batch, seed=self.seed,
                         input=self.input, resolution=self.resolution_for(ds),
                         probe=ProbeConfig(noise_pass=noise_pass, sample_seed=self.seed))

    def minibatch(self, ds: Dataset):
        """The batch every arch sees: the cache's own loader, so formulas see it too."""
        from .cache import load_input

        return load_input(self.cache_spec(ds))

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------- proxies


@dataclass
class Proxy:
    name: str  # JSON key and table row
    kind: str  # "baseline" | "formula" | "module"
    fn: object = None
    tree: object = None
    source: str = ""


def resolve_proxy(text: str, pack: str = "default") -> Proxy:
    """A baseline name, an exported ``.py`` file or a formula string of ``pack``."""
    from .baselines import BASELINES

    text = str(text).strip()
    if text in BASELINES:
        return Proxy(text, "baseline", fn=BASELINES[text], source="gpproxy.baselines")
    if text.endswith(".py"):
        return _module_proxy(Path(text))
    from .formula import parse_formula
    from .pack import load_pack

    p = load_pack(pack)
    try:
        tree = parse_formula(text, p)
    except FormulaError as e:
        raise GpproxyError(f"proxy {text[:60]!r} is not a baseline ({', '.join(BASELINES)}), "
                           f"not a .py file, and not a formula of pack {pack!r}: {e}") from None
    return Proxy(str(tree), "formula", tree=tree, source=f"pack {pack}")


def _module_proxy(path: Path) -> Proxy:
    if not path.is_file():
        raise GpproxyError(f"proxy module {path} does not exist")
    name = f"gpproxy_scored_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # the user's file: report, do not crash
        raise GpproxyError(f"proxy module {path} fails to import: {e.__class__.__name__}: {e}") from None
    fn = getattr(module, "score", None)
    if not callable(fn):
        raise GpproxyError(f"proxy module {path} defines no score(net, inputs, targets) function")
    return Proxy(path.stem, "module", fn=fn, source=str(path))


def resolve_proxies(texts, pack="default") -> list:
    out, seen = [], set()
    for t in texts:
        p = resolve_proxy(t, pack)
        if p.name in seen:
            raise GpproxyError(f"proxy {p.name!r} is given twice")
        seen.add(p.name)
        out.append(p)
    return out


# ---------------------------------------------------------------- the score file


def suite_key(space: str, arch: str) -> str:
    """NAS-Bench-Suite-Zero's arch key (the NASLib 6-tuple text for NB201)."""
    from .spaces import get_space

    return get_space(space).suite_key(arch)


def _finite(value) -> float:
    from .baselines import NASLIB_INVALID

    value = float(value)
    return value if math.isfinite(value) else NASLIB_INVALID


class ScoreStore:
    """``data[dataset][arch][proxy] = {"score", "time"}`` on disk, plus a protocol sidecar."""

    def __init__(self, path, protocol: Protocol):
        self.path = Path(path)
        self.data = {}
        self._last_save = time.monotonic()
        side = self.protocol_path
        if self.path.exists():
            try:
                self.data = json.loads(self.path.read_text())
            except (OSError, ValueError) as e:
                raise DataError(f"scores file {self.path} is unreadable ({e}); delete it or use another --scores")
            if side.exists():
                # keys added to Protocol later read as their defaults
                old = {**Protocol().to_dict(), **json.loads(side.read_text())}
                diff = [k for k, v in protocol.to_dict().items() if old.get(k) != v]
                if diff:
                    k = diff[0]
                    raise GpproxyError(f"scores file {self.path} was made with {k}={old.get(k)!r}, not "
                                       f"{getattr(protocol, k)!r}; use another --scores")
        self.protocol = protocol

    @property
    def protocol_path(self) -> Path:
        return self.path.with_name(self.path.name + ".protocol.json")

    def get(self, ds: str, arch_key: str, proxy: str):
        return self.data.get(ds, {}).get(arch_key, {}).get(proxy)

    def put(self, ds: str, arch_key: str, proxy: str, score: float, seconds: float) -> None:
        entry = self.data.setdefault(ds, {}).setdefault(arch_key, {})
        entry[proxy] = {"score": _finite(score), "time": round(float(seconds), 5)}

    def put_label(self, ds: str, arch_key: str, value: float) -> None:
        self.data.setdefault(ds, {}).setdefault(arch_key, {})["val_accuracy"] = float(value)

    def scores(self, ds: str, keys: list, proxy: str) -> np.ndarray:
        return np.array([self.data[ds][k][proxy]["score"] for k in keys], dtype=np.float64)

    def save(self, force: bool = True) -> None:
        if not force and time.monotonic() - self._last_save < SAVE_EVERY_S:
            return
        atomic_write_json(self.protocol_path, self.protocol.to_dict())
        atomic_write_text(self.path, json.dumps(self.data, sort_keys=True) + "\n")
        self._last_save = time.monotonic()


# ---------------------------------------------------------------- computing scores


def _fresh_net(space, arch, ds: Dataset, seed: int, channels_last: bool):
    import torch

    torch.manual_seed(seed)
    net = space.build(arch, ds.num_classes)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    return net


def _units(proxies: list) -> list:
    """Group proxies that share one pass: (names, fn(net, x, y, seed) -> {name: value}, nchw)."""
    from . import baselines as B
    from .baselines_recent import eznas_scores

    names = {p.name: p for p in proxies}
    units, done = [], set()
    shared = [
        (B.FORMULA_DEFINED, lambda net, x, y, s, n: B.seed_formula_scores(net, x, y, n)),
        (("jacov", "epe_nas"), lambda net, x, y, s, n: B.jacobian_scores(net, x, y, n)),
        (("eznas_preact_grad", "eznas_wgrad_noise"), lambda net, x, y, s, n: eznas_scores(net, x, y, seed=s)),
    ]
    for group, fn in shared:
        members = [n for n in group if n in names and names[n].kind == "baseline"]
        if members:
            units.append((members, lambda net, x, y, s, fn=fn, m=tuple(members): fn(net, x, y, s, m), False))
            done.update(members)
    for p in proxies:
        if p.name in done:
            continue
        if p.kind == "module":
            fn = lambda net, x, y, s, f=p.fn, n=p.name: {n: f(net, x, y)}
        else:
            takes_seed = "seed" in inspect.signature(p.fn).parameters
            fn = (lambda net, x, y, s, f=p.fn, n=p.name, t=takes_seed:
                  {n: f(net, x, y, seed=s) if t else f(net, x, y)})
        units.append(([p.name], fn, p.name in NCHW_BASELINES))
    return units


def score_arch(space, arch: str, ds: Dataset, seed: int, proxies: list, x, y) -> dict:
    """{proxy name: (score, seconds)} for non-formula proxies; a fresh net per pass."""
    import torch

    out = {}
    for members, fn, nchw in _units(proxies):
        cl = not nchw and space.channels_last(x.device)
        net = _fresh_net(space, arch, ds, seed, channels_last=cl)
        xx = x.contiguous(memory_format=torch.channels_last) if cl else x
        t0 = time.perf_counter()
        values = fn(net, xx, y, seed)
        dt = (time.perf_counter() - t0) / len(members)
        for name in members:
            out[name] = (values[name], dt)
    return out


def compute_scores(archs: list, ds: Dataset, protocol: Protocol, proxies: list, store: ScoreStore,
                   labels: dict | None = None, cache_root=None, log=None) -> None:
    """Fill ``store`` with every (arch, proxy) it lacks for dataset ``ds``."""
    from .spaces import get_space

    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    space = get_space(protocol.space)
    keys = [suite_key(protocol.space, a) for a in archs]
    if labels:
        for a, k in zip(archs, keys):
            store.put_label(ds.suite_name, k, labels[a])
    direct = [p for p in proxies if p.kind != "formula"]
    todo = [(a, k) for a, k in zip(archs, keys)
            if any(store.get(ds.suite_name, k, p.name) is None for p in direct)]
    if todo:
        x, y, _ = protocol.minibatch(ds)
        log(f"scoring {len(todo)} archs on {ds.name} with {len(direct)} proxies "
            f"({len(archs) - len(todo)} already in {store.path})")
        t0 = time.perf_counter()
        for i, (arch, key) in enumerate(todo):
            missing = [p for p in direct if store.get(ds.suite_name, key, p.name) is None]
            seed = protocol.seed_for(arch)
            if protocol.per_arch_seed:
                x, y, _ = replace(protocol, seed=seed, per_arch_seed=False).minibatch(ds)
            for name, (value, secs) in score_arch(space, arch, ds, seed, missing, x, y).items():
                store.put(ds.suite_name, key, name, value, secs)
            store.save(force=False)
            n = i + 1
            if n == len(todo) or n % max(1, len(todo) // 20) == 0 or n <= 2:
                el = time.perf_counter() - t0
                log(f"  [{n:>5}/{len(todo)}] {el / n:6.2f} s/arch, eta {(len(todo) - n) * el / n:7.0f}s")
    formulas = [p for p in proxies if p.kind == "formula"]
    if formulas and protocol.per_arch_seed:
        raise GpproxyError("formula proxies use one statistics cache (one seed); drop per-arch seeds")
    if formulas:
        _formula_scores(archs, keys, ds, protocol, formulas, store, cache_root, log)
    store.save()


def _formula_scores(archs, keys, ds, protocol, formulas, store, cache_root, log) -> None:
    """Formulas through the statistics cache, exactly as the engine evaluates them."""
    from .cache import build_cache
    from .evaluator import score_on_cache
    from .formula import stats_used
    from .pack import load_pack

    need = [(a, k) for a, k in zip(archs, keys)
            if any(store.get(ds.suite_name, k, f.name) is None for f in formulas)]
    if not need:
        return
    used = set().union(*(stats_used(f.tree) for f in formulas))
    spec = protocol.cache_spec(ds, noise_pass=any(s.endswith("_n") for s in used))
    from .spaces import get_space
    from .tasks import spec_digest

    root = Path(cache_root or "caches/score") / f"{get_space(protocol.space).slug}-{ds.name}-{spec_digest(spec)}"
    cache = build_cache(root, spec, [a for a, _ in need], jobs=1, log=log)
    pack = load_pack(protocol.pack)
    for lo in range(0, len(need), CHUNK_ARCHS):
        part = need[lo:lo + CHUNK_ARCHS]
        probe_s = [_probe_seconds(cache, a) for a, _ in part]
        loaded, seconds = [], {}
        for f in formulas:  # one call each: a formula's time is its own, no subtree shared with others
            values = score_on_cache(cache, [a for a, _ in part], {f.name: f.tree}, pack, chunk_archs=len(part),
                                    chunks=loaded, stats=sorted(used), seconds=seconds)[f.name]
            share = seconds[f.name] / len(part)
            for (_, key), v, ps in zip(part, values, probe_s):
                store.put(ds.suite_name, key, f.name, v, ps + share)
        store.save(force=False)


def _probe_seconds(cache, arch) -> float:
    meta = json.loads((cache.stats_dir / f"{cache.key_of(arch)}.json").read_text())
    return float(meta.get("seconds", 0.0))


# ---------------------------------------------------------------- statistics


def trial_indices(n_pool: int, n_archs, trials: int, seed: int) -> list:
    """Index arrays of each trial: all archs once, or ``n_archs`` drawn with seed+t."""
    if n_archs == "all" or n_archs is None:
        return [np.arange(n_pool)]
    if n_archs > n_pool:
        raise GpproxyError(f"--archs {n_archs}: only {n_pool} archs have a ground truth")
    return [np.sort(np.random.default_rng(seed + t).choice(n_pool, n_archs, replace=False))
            for t in range(trials)]


def report(scores: np.ndarray, acc: np.ndarray) -> dict:
    from .baselines import NASLIB_INVALID
    from .fitness import score_report

    rep = score_report(scores, acc)
    rep["invalid"] = int(np.sum(scores == NASLIB_INVALID))
    return rep


METRICS = ("kendall", "spearman", "top10pct", "top50")


def summarize(reports: list) -> dict:
    """mean and std (population) of each metric over trials."""
    out = {}
    for m in METRICS:
        v = np.array([r[m] for r in reports], dtype=np.float64)
        out[m] = (float(np.nanmean(v)), float(np.nanstd(v)) if len(v) > 1 else 0.0)
    out["n"] = int(reports[0]["n"])
    out["trials"] = len(reports)
    out["invalid"] = max(r["invalid"] for r in reports)
    return out


# ---------------------------------------------------------------- ground truth


@dataclass
class Truth:
    """Archs and targets per dataset, plus what was used and why."""

    source: str
    columns: dict  # dataset name -> (Dataset, target column, {arch: value})
    notes: list = field(default_factory=list)
    space: str = "nb201"  # the benchmark's space


BENCHMARK_PREFIXES = ("nds:", "tnb101:")


def load_truth(benchmark, datasets=None, target: str | None = None, fallback: bool = True,
               space: str | None = None, first_only: bool = False) -> Truth:
    """Targets of each dataset of the benchmark's space (``datasets=None``: all of them, or
    the first with ``first_only``).

    A missing NB201 table falls back to analog-nasbench (CIFAR-10); ``space``,
    when given, must be the benchmark's.
    """
    from .benchmarks import default_target, load_benchmark

    notes = []
    prefixed = isinstance(benchmark, str) and benchmark.startswith(BENCHMARK_PREFIXES)
    if benchmark is None or (benchmark != ANALOG and not prefixed and not Path(benchmark).exists()):
        from .spaces import get_space

        default = get_space(space or "nb201").default_benchmark
        if not fallback or default is None:
            raise DataError(f"benchmark {benchmark} not found" if benchmark else
                            f"space {space} needs --benchmark (a CSV/JSON of its archs, nds:PATH or tnb101:PATH)")
        notes.append(f"NB201 table {benchmark or '(none given)'} not found: fell back to {default} "
                     f"(one CIFAR-10 retraining of the NB201 space), CIFAR-10 only")
        benchmark = default
    bench = load_benchmark(benchmark, space=space)
    if space is not None and space != bench.space:
        raise GpproxyError(f"benchmark {benchmark} holds {bench.space} archs, not {space} ones; drop --space "
                           f"(the benchmark's space is used) or name the space in the benchmark "
                           f"(nds:PATH:space=NAME, tnb101:PATH:space=micro|macro)")
    table = datasets_of(bench.space)
    datasets = (list(table)[:1] if first_only else list(table)) if not datasets else list(datasets)
    if target is not None and len(datasets) > 1:
        raise GpproxyError(f"a target column ({target!r}) is one dataset's: give one dataset, not "
                           f"{', '.join(datasets)}")
    columns = {}
    for name in datasets:
        if name not in table:
            raise GpproxyError(f"unknown dataset {name!r} for space {bench.space}; choose from {', '.join(table)}")
        ds = table[name]
        col = target or next((c for c in (ds.target,) + ds.alt_targets if c in bench.targets()), ds.target)
        if not col:  # a dataset without its own column (a user space's) scores the table's default target
            col = default_target(bench)
        if col not in bench.targets():
            notes.append(f"{bench.name} has no column {col!r}: {ds.name} skipped")
            continue
        columns[name] = (ds, col, _finite_column(bench, col))
    if not columns and not target:
        ds = next(iter(table.values()))
        col = default_target(bench)
        notes.append(f"{bench.name} has none of the {bench.space} datasets' columns: {ds.name} scored against {col!r}")
        columns[ds.name] = (ds, col, _finite_column(bench, col))
    if not columns:
        raise DataError(f"{bench.name} has no column for {', '.join(datasets)}; its targets: "
                        f"{', '.join(bench.targets()) or '(none)'}")
    return Truth(bench.source, columns, notes, bench.space)


def _finite_column(bench, col) -> dict:
    acc = bench.accuracy(col)
    return {a: float(v) for a, v in zip(bench.archs, acc) if np.isfinite(v)}


def _archs_for(universe: list, archs_arg):
    """``all``, an int N (trials drawn later) or an explicit list of archs."""
    if isinstance(archs_arg, (list, tuple)):
        known = set(universe)
        missing = [a for a in archs_arg if a not in known]
        if missing:
            raise GpproxyError(f"arch {missing[0]} has no ground truth in the benchmark")
        return list(archs_arg)
    return list(universe)


# ---------------------------------------------------------------- score / bench


def _with_space(protocol: Protocol, truth: Truth, archs):
    """The protocol with the benchmark's space filled in, and ``archs`` canonical in it."""
    return replace(protocol, space=truth.space), _canonical_archs(truth.space, archs)


def run_score(proxy_text: str, benchmark, dataset: str | None = None, target=None, archs="all",
              trials: int = 1, protocol: Protocol | None = None, scores_path=None, cache_root=None,
              log=None) -> dict:
    """One proxy on one dataset (default: the space's first): correlations over all archs or N archs x T trials."""
    protocol = protocol or Protocol()
    proxy = resolve_proxy(proxy_text, protocol.pack)
    truth = load_truth(benchmark, [dataset] if dataset else None, target, fallback=False, space=protocol.space,
                       first_only=True)
    protocol, archs = _with_space(protocol, truth, archs)
    (name, (ds, col, lookup)), = truth.columns.items()
    pool, trial_sets = _pool_and_trials(lookup, archs, trials, protocol.seed)
    needed = sorted({i for t in trial_sets for i in t})
    store = ScoreStore(scores_path or "scores.json", protocol)
    chosen = [pool[i] for i in needed]
    compute_scores(chosen, ds, protocol, [proxy], store, labels=lookup, cache_root=cache_root, log=log)
    store.save()
    rep = _trial_reports(store, ds, protocol, proxy.name, pool, trial_sets, lookup)
    return {"proxy": proxy.name, "kind": proxy.kind, "space": protocol.space, "dataset": ds.name,
            "target": col, "num_classes": ds.num_classes, "resolution": protocol.resolution_for(ds),
            "input": protocol.input, "benchmark": truth.source, "notes": truth.notes, "protocol": protocol.to_dict(),
            "archs": len(trial_sets[0]), "trials": len(trial_sets), "scores": str(store.path),
            **{k: v for k, v in rep.items()}}


def _pool_and_trials(lookup: dict, archs, trials: int, seed: int):
    universe = list(lookup)
    if isinstance(archs, (list, tuple)):
        pool = _archs_for(universe, list(archs))
        return pool, [np.arange(len(pool))]
    return universe, trial_indices(len(universe), archs, trials, seed)


def _trial_reports(store, ds, protocol, proxy_name, pool, trial_sets, lookup) -> dict:
    reps = []
    for idx in trial_sets:
        archs = [pool[i] for i in idx]
        keys = [suite_key(protocol.space, a) for a in archs]
        reps.append(report(store.scores(ds.suite_name, keys, proxy_name),
                           np.array([lookup[a] for a in archs])))
    return summarize(reps)


def run_bench(proxy_texts: list, benchmark, datasets=None, archs=1000, trials: int = 10,
              protocol: Protocol | None = None, out="bench", baselines=None, cache_root=None, log=None,
              command: str = "", labels: bool = True, target: str | None = None) -> dict:
    """Every baseline plus ``proxy_texts`` on each dataset; Markdown + CSV + scores JSON.

    ``datasets=None``: every dataset of the benchmark's space (NB201: cifar10,
    cifar100, imagenet16_120). ``labels=False`` leaves the ground truth out of
    the scores JSON (for files kept next to code, where the benchmark's table
    must not be copied).
    """
    from .baselines import BASELINES

    protocol = protocol or Protocol()
    names = list(BASELINES) if baselines is None else list(baselines)
    proxies = resolve_proxies(names + list(proxy_texts), protocol.pack)
    truth = load_truth(benchmark, list(datasets) if datasets else None, target, space=protocol.space)
    protocol, archs = _with_space(protocol, truth, archs)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    store = ScoreStore(out.with_name(out.name + ".scores.json"), protocol)
    results, t0 = {}, time.perf_counter()
    for name, (ds, col, lookup) in truth.columns.items():
        pool, trial_sets = _pool_and_trials(lookup, archs, trials, protocol.seed)
        chosen = [pool[i] for i in sorted({i for t in trial_sets for i in t})]
        compute_scores(chosen, ds, protocol, proxies, store, labels=lookup if labels else None,
                       cache_root=cache_root, log=log)
        results[name] = {p.name: _trial_reports(store, ds, protocol, p.name, pool, trial_sets, lookup)
                         for p in proxies}
        results[name]["_meta"] = {"target": col, "archs": len(trial_sets[0]), "trials": len(trial_sets),
                                  "scored": len(chosen), "seconds_per_arch": _seconds_per_arch(
                                      store, ds, protocol, chosen, proxies)}
    header = bench_header(truth, protocol, archs, trials, command, time.perf_counter() - t0)
    md, csv = bench_tables(results, proxies, truth, header)
    md_path, csv_path = Path(f"{out}.md"), Path(f"{out}.csv")
    atomic_write_text(md_path, md)
    atomic_write_text(csv_path, csv)
    return {"markdown": str(md_path), "csv": str(csv_path), "scores": str(store.path),
            "results": results, "notes": truth.notes}


def _seconds_per_arch(store, ds, protocol, archs, proxies) -> dict:
    out = {}
    for p in proxies:
        t = [store.data[ds.suite_name][suite_key(protocol.space, a)][p.name]["time"] for a in archs]
        out[p.name] = float(np.mean(t)) if t else 0.0
    return out


# ---------------------------------------------------------------- tables


def _init_text(space: str) -> str:
    """How the space's builder initialises a net (after torch.manual_seed)."""
    from .spaces import get_space

    return get_space(space).init_text


def input_lines(truth: Truth, protocol: Protocol) -> list:
    """What minibatch each dataset's nets see, stated against what the benchmark trained on."""
    from .cache import _normalisation

    noise = protocol.input == "noise"
    lines = ["input: noise: N(0, 1) images and uniform random labels, no real images" if noise else
             f"input: {protocol.input}; the same images for every dataset, area-resized to each net's input "
             f"size when theirs differs, labels folded into the class count"]
    for name, (ds, col, lookup) in truth.columns.items():
        res = protocol.resolution_for(ds)
        norm = "" if noise else f", normalised with {_normalisation(protocol.cache_spec(ds))} mean/std"
        if not ds.images:
            if not noise:
                lines.append(f"{ds.name} nets see them at {res}x{res}{norm}")
            continue
        trained = f"{ds.name}: the benchmark trained on {ds.images}; here its nets see "
        lines.append(trained + ("noise" if noise else "these images") + f" at {res}x{res}{norm}")
    if "imagenet16_120" in truth.columns and not noise:
        r = protocol.resolution_for(truth.columns["imagenet16_120"][0])
        lines.append("ImageNet16-120 images are not available here: its nets see the input images "
                     f"area-{'downsampled' if r < 32 else 'resized'} to {r}x{r} with ImageNet16-120 normalisation")
    if "cifar100" in truth.columns and "cifar10" in protocol.input.lower():
        lines.append("CIFAR-100 nets see CIFAR-10 images (labels 0-9 of 100 classes)")
    return lines


def bench_header(truth: Truth, protocol: Protocol, archs, trials, command: str, seconds: float) -> list:
    """Protocol lines for the top of the Markdown table (and '#' lines of the CSV)."""
    lines = [f"space: {protocol.space}; ground truth: {truth.source}"]
    for name, (ds, col, lookup) in truth.columns.items():
        what = ds.label if col in (ds.target,) + ds.alt_targets else f"chosen with --target; default `{ds.target}`"
        res = protocol.resolution_for(ds)
        lines.append(f"{ds.name}: column `{col}` ({what}); net with {ds.num_classes} classes, "
                     f"{res}x{res} input" + ("" if res == ds.resolution else
                                            f" (--resolution; the benchmark's is {ds.resolution}x{ds.resolution})"))
    if archs == "all" or archs is None:
        lines.append("archs: all archs with a ground-truth value, one trial")
    elif isinstance(archs, (list, tuple)):
        lines.append(f"archs: {len(archs)} given archs, one trial")
    elif trials == 1:
        lines.append(f"archs: {archs} random archs drawn with numpy default_rng(seed), one trial")
    else:
        lines.append(f"archs: {archs} random archs x {trials} trials (trial t draws with "
                     f"numpy default_rng(seed + t)); mean ± std over trials")
    if protocol.per_arch_seed:
        lines.append(f"batch {protocol.batch}; a fresh seed per arch (crc32 of the arch mixed with seed "
                     f"{protocol.seed}) for its init and its minibatch, as NASLib's runner; BatchNorm in "
                     f"training mode; cross-entropy loss")
    else:
        lines.append(f"batch {protocol.batch}; seed {protocol.seed} (torch.manual_seed before building each "
                     f"net: {_init_text(protocol.space)}; same seed draws the minibatch); BatchNorm in training "
                     f"mode; cross-entropy loss")
    lines.extend(input_lines(truth, protocol))
    lines.append(f"formula strings: statistics cache of pack {protocol.pack!r} with default sampling "
                 f"(gpproxy.probe.ProbeConfig), evaluated as the engine does")
    lines.append("non-finite scores count as -1e8 (NASLib's rule); 'inv' = archs with such a score")
    lines.extend(f"note: {n}" for n in truth.notes)
    if command:
        lines.append(f"command: `{command}`")
    lines.append(f"wall time of this command: {seconds:.0f} s")
    return lines


def _fmt(mean_std, trials) -> str:
    m, s = mean_std
    return f"{m:.3f}" if trials <= 1 else f"{m:.3f} ± {s:.3f}"


def bench_tables(results: dict, proxies: list, truth: Truth, header: list):
    cols = list(results)
    md = [f"# Zero-cost proxies on {truth.space}", ""] + [f"- {h}" for h in header] + [""]
    head = ["proxy"]
    for c in cols:
        short = truth.columns[c][0].name
        head += [f"{short} τ", f"{short} ρ", f"{short} P@10%", f"{short} P@50"]
    head.append("s/arch")
    md.append("| " + " | ".join(head) + " |")
    md.append("|" + "---|" * len(head))
    csv = [f"# {h}" for h in header]
    csv.append("proxy,kind,dataset,target,archs,trials,invalid,kendall_mean,kendall_std,spearman_mean,"
               "spearman_std,top10pct_mean,top10pct_std,top50_mean,top50_std,seconds_per_arch")
    for p in proxies:
        row, secs = [f"`{p.name}`" if p.kind == "formula" else p.name], 0.0
        for c in cols:
            r, meta = results[c][p.name], results[c]["_meta"]
            row += [_fmt(r[m], r["trials"]) for m in METRICS]
            if r["invalid"]:
                row[-4] += f" ({r['invalid']} inv)"
            secs += meta["seconds_per_arch"][p.name]
            csv.append(",".join([_csv_cell(p.name), p.kind, c, meta["target"], str(meta["archs"]),
                                 str(meta["trials"]), str(r["invalid"])]
                                + [f"{v:.6f}" for m in METRICS for v in r[m]]
                                + [f"{meta['seconds_per_arch'][p.name]:.4f}"]))
        row.append(f"{secs:.2f}")
        md.append("| " + " | ".join(row) + " |")
    md += ["", "τ: Kendall, ρ: Spearman, P@10%/P@50: share of the true top-10% / top-50 archs among the "
           "proxy's top-10% / top-50; s/arch: mean seconds per arch summed over the datasets "
           "(1 CPU thread; shared passes split evenly among the proxies that share them)."]
    return "\n".join(md) + "\n", "\n".join(csv) + "\n"


def _csv_cell(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if ("," in text or '"' in text) else text


# ---------------------------------------------------------------- command line


def _parse_archs(text: str):
    """``all`` | N | FILE (one arch per line, any accepted encoding) -> 'all' | int | list."""
    text = str(text).strip()
    if text == "all":
        return "all"
    if text.isdigit():
        if int(text) < 2:
            raise GpproxyError("--archs needs at least 2 archs to rank")
        return int(text)
    path = Path(text)
    if not path.is_file():
        raise GpproxyError(f"--archs {text!r} is neither a number, 'all', nor an existing file")
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]


def _canonical_archs(space_name: str, archs):
    if not isinstance(archs, list):
        return archs
    from .spaces import get_space

    space = get_space(space_name)
    return [space.canonical(a) for a in archs]


def _common_arguments(p, archs: str, trials: int) -> None:
    p.add_argument("--benchmark", default=None,
                   help="NB201 accuracy CSV (e.g. nb201_accuracies_200ep.csv.gz) | analog-nasbench | NATS path | "
                        "nds:PATH[:first=N][:space=NAME] | tnb101:PATH[:space=micro|macro][:task=NAME]")
    p.add_argument("--archs", default=archs, help="all | N random archs per trial | FILE")
    p.add_argument("--trials", type=int, default=trials, help="with --archs N: independent draws of N archs")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seed", type=int, default=0, help="init seed of every net and minibatch seed")
    p.add_argument("--input", default="noise", help="noise | cifar10:DIR | cifar100:DIR | npz:FILE[:KEY]")
    p.add_argument("--resolution", type=int, default=None,
                   help="input side in pixels (default: each dataset's: 32 CIFAR/NDS, 16 ImageNet16-120, "
                        "224 NDS _in, 256 TNB101)")
    p.add_argument("--space", default=None, help="search space (default: the benchmark's; if given, must match it)")
    p.add_argument("--pack", default="default", help="primitive pack of formula proxies")
    p.add_argument("--cache-dir", default="caches/score", help="statistics caches of formula proxies")
    p.add_argument("--per-arch-seed", action="store_true",
                   help="a fresh init and minibatch per arch (NASLib's protocol) instead of one seed for all")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")


def score_arguments(p) -> None:
    """Arguments of ``gpproxy score``."""
    p.add_argument("proxy", help="baseline name | formula string | exported proxy .py file")
    p.add_argument("--dataset", default=None,
                   help="NB201: cifar10 | cifar100 | imagenet16_120; NDS: cifar10 (imagenet for _in spaces); "
                        "TNB101: class_object | class_scene (default: the first)")
    p.add_argument("--target", default=None, help="ground-truth column (default: the dataset's)")
    p.add_argument("--scores", default="scores.json", help="per-arch scores (NAS-Bench-Suite-Zero layout)")
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    _common_arguments(p, archs="all", trials=1)
    p.set_defaults(fn=cli_score)


def bench_arguments(p) -> None:
    """Arguments of ``gpproxy bench``."""
    p.add_argument("proxies", nargs="*", help="extra formula strings or exported .py files")
    p.add_argument("--datasets", default=None,
                   help="comma-separated (default: all of the space's: NB201 cifar10,cifar100,imagenet16_120; "
                        "NDS cifar10 or imagenet; TNB101 class_object,class_scene)")
    p.add_argument("--target", default=None, help="ground-truth column, with one dataset (default: the dataset's)")
    p.add_argument("--baselines", default="all", help="all | none | comma-separated baseline names")
    p.add_argument("--out", default="bench", help="output prefix: PREFIX.md, PREFIX.csv, PREFIX.scores.json")
    _common_arguments(p, archs="1000", trials=10)
    p.set_defaults(fn=cli_bench)


def _setup(args) -> Protocol:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.batch < 2:
        raise GpproxyError("--batch must be at least 2 (correlation-based proxies need 2 samples)")
    if args.trials < 1:
        raise GpproxyError("--trials must be at least 1")
    if args.resolution is not None and args.resolution < 1:
        raise GpproxyError("--resolution must be a positive number of pixels")
    return Protocol(space=args.space, batch=args.batch, seed=args.seed, input=args.input, pack=args.pack,
                    per_arch_seed=args.per_arch_seed, resolution=args.resolution)


def cli_score(args) -> int:
    protocol = _setup(args)
    archs = _parse_archs(args.archs)
    rep = run_score(args.proxy, args.benchmark or ANALOG, args.dataset, args.target, archs, args.trials,
                    protocol, args.scores, args.cache_dir)
    if args.json:
        print(json.dumps(rep, indent=1))
        return 0
    for note in rep["notes"]:
        print(f"note: {note}")
    print(f"{rep['proxy']} on {rep['space']} {rep['dataset']} ({rep['target']}; {rep['num_classes']}-class net, "
          f"{rep['resolution']}x{rep['resolution']} {rep['input']} input), {rep['archs']} archs x {rep['trials']} "
          f"trial(s):")
    for m in METRICS:
        mean, std = rep[m]
        print(f"  {m:<9} {mean:+.4f}" + (f" ± {std:.4f}" if rep["trials"] > 1 else ""))
    if rep["invalid"]:
        print(f"  {rep['invalid']} arch(s) with a non-finite score (ranked as -1e8)")
    print(f"per-arch scores: {rep['scores']}")
    return 0


def cli_bench(args) -> int:
    from .baselines import BASELINES

    protocol = _setup(args)
    if args.baselines == "all":
        names = list(BASELINES)
    elif args.baselines == "none":
        names = []
    else:
        names = [n.strip() for n in args.baselines.split(",") if n.strip()]
        unknown = [n for n in names if n not in BASELINES]
        if unknown:
            raise GpproxyError(f"unknown baseline {unknown[0]!r}; known: {', '.join(BASELINES)}")
    if not names and not args.proxies:
        raise GpproxyError("nothing to bench: give proxies or leave --baselines at 'all'")
    archs = _parse_archs(args.archs)
    datasets = [d.strip() for d in (args.datasets or "").split(",") if d.strip()] or None
    command = "gpproxy " + " ".join(sys.argv[1:]) if sys.argv and "gpproxy" in sys.argv[0] else ""
    res = run_bench(args.proxies, args.benchmark, datasets, archs, args.trials, protocol, args.out,
                    baselines=names, cache_root=args.cache_dir, command=command, target=args.target)
    for note in res["notes"]:
        print(f"note: {note}")
    print(f"wrote {res['markdown']}, {res['csv']} and {res['scores']}")
    return 0
