"""Computing scores: non-formula proxies on a fresh network per pass, formula
strings through the statistics cache, exactly as the engine evaluates them."""
from __future__ import annotations

import inspect
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from ..errors import GpproxyError
from ..spaces.base import Dataset
from .protocol import Protocol
from .store import ScoreStore, suite_key

CHUNK_ARCHS = 100  # formula evaluation chunk (bounds intermediate memory)
# Double backward through channels_last conv/avg-pool is 2.5x slower than NCHW
# on CPU (measured, NB201 batch 64); everything else is ~1.5x faster in it.
NCHW_BASELINES = frozenset({"grasp"})


def _fresh_net(space, arch, ds: Dataset, seed: int, channels_last: bool):
    import torch

    torch.manual_seed(seed)
    net = space.build(arch, ds.num_classes)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    return net


def _units(proxies: list) -> list:
    """Group proxies that share one pass: (names, fn(net, x, y, seed) -> {name: value}, nchw)."""
    from .. import baselines as B
    from ..baselines_peers import PER_ARCH, peer_scores
    from ..baselines_recent import eznas_scores

    names = {p.name: p for p in proxies}
    units, done = [], set()
    shared = [
        (B.FORMULA_DEFINED, lambda net, x, y, s, n: B.seed_formula_scores(net, x, y, n)),
        (("jacov", "epe_nas"), lambda net, x, y, s, n: B.jacobian_scores(net, x, y, n)),
        (("eznas_preact_grad", "eznas_wgrad_noise"), lambda net, x, y, s, n: eznas_scores(net, x, y, seed=s)),
        (tuple(PER_ARCH), lambda net, x, y, s, n: peer_scores(net, x, y, s, n)),
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
    """Fill ``store`` with every (arch, proxy) it lacks for dataset ``ds``; a population-level
    proxy stores its per-arch components (``proxies.per_arch``)."""
    from ..spaces import get_space
    from .proxies import per_arch

    proxies = per_arch(proxies)

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
    from ..cache import build_cache
    from ..evaluator import score_on_cache
    from ..formula import stats_used
    from ..pack import load_pack

    need = [(a, k) for a, k in zip(archs, keys)
            if any(store.get(ds.suite_name, k, f.name) is None for f in formulas)]
    if not need:
        return
    used = set().union(*(stats_used(f.tree) for f in formulas))
    from ..probe import NET_TERMS

    spec = protocol.cache_spec(ds, noise_pass=any(s.endswith("_n") for s in used),
                               net_terms=bool(used & set(NET_TERMS)))
    from ..spaces import get_space
    from ..tasks import spec_digest

    root = Path(cache_root or "caches/score") / f"{get_space(protocol.space).slug}-{ds.name}-{spec_digest(spec)}"
    cache = build_cache(root, spec, [a for a, _ in need], jobs=1, log=log)
    packs = {f.pack or protocol.pack: load_pack(f.pack or protocol.pack) for f in formulas}
    for lo in range(0, len(need), CHUNK_ARCHS):
        part = need[lo:lo + CHUNK_ARCHS]
        probe_s = [_probe_seconds(cache, a) for a, _ in part]
        loaded, seconds = [], {}
        for f in formulas:  # one call each: a formula's time is its own, no subtree shared with others
            pack = packs[f.pack or protocol.pack]
            values = score_on_cache(cache, [a for a, _ in part], {f.name: f.tree}, pack, chunk_archs=len(part),
                                    chunks=loaded, stats=sorted(used), seconds=seconds)[f.name]
            share = seconds[f.name] / len(part)
            for (_, key), v, ps in zip(part, values, probe_s):
                store.put(ds.suite_name, key, f.name, v, ps + share)
        store.save(force=False)


def _probe_seconds(cache, arch) -> float:
    meta = json.loads((cache.stats_dir / f"{cache.key_of(arch)}.json").read_text())
    return float(meta.get("seconds", 0.0))
