"""``gpproxy score`` and ``gpproxy bench`` as calls: scores over all archs or N
archs x T trials, and their correlations with the ground truth."""
from __future__ import annotations

import math
import numbers
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import ArchError, GpproxyError
from ..fileio import atomic_write_text
from ..spaces import get_space
from ..spaces._common import show
from ..zoo import protocol_notes
from .compute import compute_scores
from .protocol import Protocol
from .proxies import (baseline_names, per_arch, population_notes, proxy_seconds, proxy_values, resolve_proxies,
                      resolve_proxy)
from .report import bench_header, bench_tables
from .metrics import report, summarize, trial_indices
from .store import ScoreStore, suite_key
from .truth import Truth, archs_in_truth, load_truth


def _canonical_archs(space_name: str, archs):
    if not isinstance(archs, list):
        return archs
    space = get_space(space_name)
    return [space.canonical(a) for a in archs]


def _with_space(protocol: Protocol, truth: Truth, archs):
    """The protocol with the benchmark's space filled in, and ``archs`` canonical in it."""
    return replace(protocol, space=truth.space), _canonical_archs(truth.space, archs)


def run_score(proxy_text: str, benchmark, dataset: str | None = None, target=None, archs="all",
              trials: int = 1, protocol: Protocol | None = None, scores_path=None, cache_root=None,
              log=None) -> dict:
    """One proxy on one dataset (default: the space's first): correlations over all archs or N archs x T trials
    (a population-level proxy is combined within each trial's archs)."""
    protocol = protocol or Protocol()
    proxy = resolve_proxy(proxy_text, protocol.pack)
    truth = load_truth(benchmark, [dataset] if dataset else None, target, fallback=False, space=protocol.space,
                       first_only=True)
    protocol, archs = _with_space(protocol, truth, archs)
    (name, (ds, col, lookup)), = truth.columns.items()
    pool, trial_sets = _pool_and_trials(lookup, archs, trials, protocol.seed)
    needed = sorted({i for t in trial_sets for i in t})
    store = ScoreStore(scores_path or default_scores_path(protocol, cache_root), protocol)
    chosen = [pool[i] for i in needed]
    reused = sum(all(store.get(ds.suite_name, suite_key(protocol.space, a), p.name) is not None
                     for p in per_arch([proxy])) for a in chosen)
    compute_scores(chosen, ds, protocol, [proxy], store, labels=suite_labels(store, truth, ds, col, lookup),
                   cache_root=cache_root, log=log)
    store.save()
    rep = _trial_reports(store, ds, protocol, proxy, pool, trial_sets, lookup)
    return {"proxy": proxy.name, "kind": proxy.kind, "space": protocol.space, "dataset": ds.name,
            "target": col, "num_classes": ds.num_classes, "resolution": protocol.resolution_for(ds),
            "input": protocol.input, "benchmark": truth.source,
            "notes": truth.notes + population_notes([proxy]) + protocol_notes([proxy_text], protocol.batch,
                                                                               protocol.resolution),
            "protocol": protocol.to_dict(),
            "archs": len(trial_sets[0]), "trials": len(trial_sets), "scores": str(store.path), "reused": reused,
            **{k: v for k, v in rep.items()}}


def suite_labels(store: ScoreStore, truth: Truth, ds, col: str, lookup: dict):
    """``lookup`` as the scores file's val_accuracy when ``col`` is the dataset's own label
    (its default or alternative target), its source recorded; else None: a column chosen
    with --target, or another benchmark's, is not the suite's val_accuracy."""
    if col not in (ds.target,) + tuple(ds.alt_targets):
        return None
    store.label_source(ds.suite_name, truth.source, col)
    return lookup


def _pool_and_trials(lookup: dict, archs, trials: int, seed: int):
    universe = list(lookup)
    if isinstance(archs, (list, tuple)):
        pool = archs_in_truth(universe, list(archs))
        return pool, [np.arange(len(pool))]
    return universe, trial_indices(len(universe), archs, trials, seed)


def default_scores_path(protocol: Protocol, cache_root=None) -> Path:
    """Where ``score`` keeps per-arch scores without ``--scores``: one store per protocol, so a run with
    another batch, seed, input or size neither mixes with nor is refused by an earlier one."""
    import hashlib

    from ..spaces._common import compact_json

    digest = hashlib.sha1(compact_json(protocol.to_dict()).encode()).hexdigest()[:8]
    return Path(cache_root or "caches/score") / f"scores-{get_space(protocol.space).slug}-{digest}.json"


def _trial_reports(store, ds, protocol, proxy, pool, trial_sets, lookup) -> dict:
    """Correlations per trial; a population-level proxy is combined within each trial's archs."""
    reps = []
    for idx in trial_sets:
        archs = [pool[i] for i in idx]
        keys = [suite_key(protocol.space, a) for a in archs]
        reps.append(report(proxy_values(store, ds.suite_name, keys, proxy),
                           np.array([lookup[a] for a in archs])))
    return summarize(reps)


def run_bench(proxy_texts: list, benchmark, datasets=None, archs=1000, trials: int = 10,
              protocol: Protocol | None = None, out="bench", baselines=None, cache_root=None, log=None,
              command: str = "", labels: bool = True, target: str | None = None) -> dict:
    """Every baseline plus ``proxy_texts`` on each dataset; Markdown + CSV + scores JSON.

    ``baselines=None``: every per-arch and population-level baseline; a
    population-level one (``aznas``, ``vkdnw_agg``) is combined within each
    trial's archs. ``datasets=None``: every dataset of the benchmark's space
    (NB201: cifar10, cifar100, imagenet16_120). ``labels=False`` leaves the ground truth out of
    the scores JSON (for files kept next to code, where the benchmark's table
    must not be copied).
    """
    protocol = protocol or Protocol()
    names = baseline_names() if baselines is None else list(baselines)
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
        compute_scores(chosen, ds, protocol, proxies, store,
                       labels=suite_labels(store, truth, ds, col, lookup) if labels else None,
                       cache_root=cache_root, log=log)
        results[name] = {p.name: _trial_reports(store, ds, protocol, p, pool, trial_sets, lookup)
                         for p in proxies}
        results[name]["_meta"] = {"target": col, "archs": len(trial_sets[0]), "trials": len(trial_sets),
                                  "scored": len(chosen), "seconds_per_arch": _seconds_per_arch(
                                      store, ds, protocol, chosen, proxies)}
    notes = population_notes(proxies) + protocol_notes(proxy_texts, protocol.batch, protocol.resolution)
    header = bench_header(truth, protocol, archs, trials, command, time.perf_counter() - t0) + notes
    md, csv = bench_tables(results, proxies, truth, header)
    md_path, csv_path = Path(f"{out}.md"), Path(f"{out}.csv")
    atomic_write_text(md_path, md)
    atomic_write_text(csv_path, csv)
    return {"markdown": str(md_path), "csv": str(csv_path), "scores": str(store.path),
            "results": results, "notes": truth.notes + notes}


def _seconds_per_arch(store, ds, protocol, archs, proxies) -> dict:
    out = {}
    for p in proxies:
        t = [proxy_seconds(store, ds.suite_name, suite_key(protocol.space, a), p) for a in archs]
        out[p.name] = float(np.mean(t)) if t else 0.0
    return out


@dataclass(frozen=True)
class Scores:
    """One proxy's scores on archs of one space and dataset (``gpproxy.score``).

    ``accuracy`` and ``report`` (Kendall τ, Spearman ρ, top-10 % and top-50
    precision, n, invalid) are None when no ground truth was given.
    """

    proxy: str
    space: str
    dataset: str
    archs: list
    values: np.ndarray
    accuracy: np.ndarray | None = None
    report: dict | None = None

    @property
    def kendall(self) -> float | None:
        return self.report["kendall"] if self.report else None

    @property
    def spearman(self) -> float | None:
        return self.report["spearman"] if self.report else None

    def as_dict(self) -> dict:
        """{arch: score}."""
        return dict(zip(self.archs, self.values.tolist()))


def _truth_lookup(space, ground_truth) -> dict:
    """``{canonical arch: accuracy}`` of an in-memory ground truth; refused as ``gpproxy.evolve``
    refuses it: not a mapping, an arch the space cannot read, a non-numeric or non-finite accuracy."""
    if not hasattr(ground_truth, "items"):
        raise GpproxyError(f"ground truth must map archs to accuracies ({{arch: accuracy}}), not a "
                           f"{type(ground_truth).__name__}")
    lookup = {}
    for arch, value in ground_truth.items():
        try:
            key = space.canonical(arch)
        except ArchError as e:
            raise ArchError(f"ground truth names an invalid arch: {e}") from None
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise GpproxyError(f"ground truth of arch {str(arch)[:80]!r} is not a number: {value!r}") from None
        if not math.isfinite(value):
            raise GpproxyError(f"ground truth of arch {str(arch)[:80]!r} has accuracy {value}: give finite "
                               f"accuracies (leave out archs without one)")
        lookup[key] = value
    return lookup


def score_proxy(proxy_text: str, archs=None, *, ground_truth=None, benchmark=None, dataset: str | None = None,
                target: str | None = None, protocol: Protocol | None = None, scores_path=None, cache_root=None,
                log=None) -> Scores:
    """Score one proxy on ``archs`` (a list in any encoding of the space, N random archs, or None: every
    arch of the ground truth) of ``protocol.space`` (default NB201).

    Ground truth, optional: an in-memory ``{arch: accuracy}`` mapping, or a ``benchmark`` spec as
    ``gpproxy score --benchmark`` takes (its ``dataset`` / ``target``). A population-level proxy
    (``aznas``, ``vkdnw_agg``) is combined across exactly these archs: other archs, other values.
    """
    protocol = protocol or Protocol()
    if ground_truth is not None and benchmark is not None:
        raise GpproxyError("give ground truth as a mapping or as a benchmark, not both")
    proxy = resolve_proxy(proxy_text, protocol.pack)
    lookup, truth = None, None
    if benchmark is not None:
        truth = load_truth(benchmark, [dataset] if dataset else None, target, fallback=False,
                           space=protocol.space, first_only=True)
        protocol = replace(protocol, space=truth.space)
        (_, (ds, col, lookup)), = truth.columns.items()
    else:
        protocol = replace(protocol, space=protocol.space or "nb201")
        table = get_space(protocol.space).datasets()
        if dataset is not None and dataset not in table:
            raise GpproxyError(f"unknown dataset {dataset!r} for space {protocol.space}; choose from "
                               f"{', '.join(table)}")
        ds = table[dataset or next(iter(table))]
        if ground_truth is not None:
            lookup = _truth_lookup(get_space(protocol.space), ground_truth)
    if archs is None:
        if lookup is None:
            raise GpproxyError("give the archs to score, or ground truth to take them from")
        chosen = list(lookup)
    elif isinstance(archs, numbers.Integral) and not isinstance(archs, bool):
        if lookup is None:
            raise GpproxyError("archs=N draws from the ground truth's archs: give a list of archs instead")
        if archs < 2:  # as the CLI's --archs N
            raise GpproxyError(f"archs={int(archs)}: needs at least 2 archs to rank")
        idx = trial_indices(len(lookup), int(archs), 1, protocol.seed)[0]
        universe = list(lookup)
        chosen = [universe[i] for i in idx]
    elif isinstance(archs, (str, bytes)) or not isinstance(archs, Iterable):
        raise GpproxyError(f"archs = {show(archs)} is not allowed: give a list of archs (one arch too: [arch]), "
                           f"a number N >= 2 of archs to draw from the ground truth, or None")
    else:
        chosen = _canonical_archs(protocol.space, list(archs))
        if not chosen:
            raise GpproxyError("archs is an empty list: give the archs to score")
    if lookup is not None:
        missing = [a for a in chosen if a not in lookup]
        if missing:
            raise GpproxyError(f"arch {missing[0]} has no ground truth")
        if len(chosen) < 2:  # a correlation needs two archs; without ground truth one arch's score is fine
            raise GpproxyError(f"{len(chosen)} arch(s) with ground truth: needs at least 2 archs to rank")
    store = ScoreStore(scores_path, protocol)
    # a caller's own accuracies are not the suite's val_accuracy: kept out of the file
    labels = suite_labels(store, truth, ds, col, lookup) if truth is not None else None
    compute_scores(chosen, ds, protocol, [proxy], store, labels=labels, cache_root=cache_root, log=log)
    store.save()
    values = proxy_values(store, ds.suite_name, [suite_key(protocol.space, a) for a in chosen], proxy)
    acc = np.array([lookup[a] for a in chosen]) if lookup is not None else None
    return Scores(proxy.name, protocol.space, ds.name, chosen, values, acc,
                  report(values, acc) if acc is not None and len(chosen) > 1 else None)
