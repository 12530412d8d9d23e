"""What can be scored: a baseline name (``gpproxy.baselines.BASELINES``), a
population-level baseline (``gpproxy.baselines_peers.POPULATION``), a formula
string of a primitive pack, or an exported ``.py`` module defining
``score(net, inputs, targets) -> float``.

A population-level proxy (AZ-NAS's ``aznas``, ``vkdnw_agg``, or a formula with a
population transform such as ``log_rank``) has no per-arch score of its own: its
value for an arch combines per-arch component scores (ordinary baselines or
formulas, stored as usual) across the archs scored together, so it changes
with them. ``per_arch`` lists what must be computed and stored;
``proxy_values`` is the one place that turns stored scores into a proxy's
values over a set of archs."""
from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from ..errors import FormulaError, GpproxyError


@dataclass
class Proxy:
    name: str  # JSON key and table row: the formula, the baseline name, or STEM@sha256 of a module's content
    kind: str  # "baseline" | "formula" | "module" | "population"
    fn: object = None  # population: fn(list of component score arrays) -> scores
    tree: object = None
    source: str = ""
    pack: str = ""  # formulas: the primitive pack that parsed them
    components: tuple = ()  # population: the per-arch baselines it combines


def baseline_names() -> list:
    """Every baseline name: per-arch ones, then the population-level ones."""
    from ..baselines import BASELINES
    from ..baselines_peers import POPULATION

    return list(BASELINES) + list(POPULATION)


def resolve_proxy(text: str, pack: str = "default") -> Proxy:
    """A baseline name, a ``zoo:NAME`` entry, an exported ``.py`` file or a formula string of ``pack``."""
    from ..baselines import BASELINES
    from .. import zoo
    from ..baselines_peers import POPULATION

    text = str(text).strip()
    if zoo.is_zoo(text):
        e = zoo.entry(text)
        return _formula_proxy(e.formula, e.pack, f"{e.label} (pack {e.pack})")
    if text in BASELINES:
        return Proxy(text, "baseline", fn=BASELINES[text], source="gpproxy.baselines")
    if text in POPULATION:
        components, combine = POPULATION[text]
        return Proxy(text, "population", fn=combine, source="gpproxy.baselines_peers (population-level)",
                     components=tuple(components))
    if text.endswith(".py"):
        return _module_proxy(Path(text))
    return _formula_proxy(text, pack, f"pack {pack}")


def _formula_proxy(text: str, pack: str, source: str) -> Proxy:
    from ..formula import is_population, parse_formula, population_terms
    from ..pack import load_pack

    try:
        tree = parse_formula(text, load_pack(pack))
    except FormulaError as e:
        raise GpproxyError(f"proxy {text[:60]!r} is not a baseline ({', '.join(baseline_names())}), "
                           f"not a .py file, and not a formula of pack {pack!r}: {e}") from None
    if is_population(tree):
        terms = tuple(str(t) for t in population_terms(tree, load_pack(pack)))
        return Proxy(str(tree), "population", fn=partial(_combine_formula, tree, pack), tree=tree,
                     source=f"{source} (population-level formula)", pack=pack, components=terms)
    return Proxy(str(tree), "formula", tree=tree, source=source, pack=pack)


def _combine_formula(tree, pack: str, columns) -> np.ndarray:
    """A population formula's values from its terms' scores (in ``population_terms`` order)."""
    import torch

    from ..formula import combine_population, population_terms
    from ..pack import load_pack

    p = load_pack(pack)
    values = {str(t): torch.as_tensor(np.asarray(c, dtype=np.float64)) for t, c in zip(population_terms(tree, p), columns)}
    return combine_population(tree, p, values).numpy()


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
    # keyed by content: a different file saved under the same name is a different proxy
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    return Proxy(f"{path.stem}@{digest}", "module", fn=fn, source=str(path))


def resolve_proxies(texts, pack="default") -> list:
    out, seen = [], set()
    for t in texts:
        p = resolve_proxy(t, pack)
        if p.name in seen:
            raise GpproxyError(f"proxy {p.name!r} is given twice")
        seen.add(p.name)
        out.append(p)
    return out


def per_arch(proxies: list) -> list:
    """``proxies`` with each population-level one replaced by its components (once each)."""
    out, seen = [], set()
    for p in proxies:
        for q in ([resolve_proxy(c, p.pack or "default") for c in p.components] if p.kind == "population" else [p]):
            if q.name not in seen:
                seen.add(q.name)
                out.append(q)
    return out


def proxy_values(store, ds: str, keys: list, proxy: Proxy) -> np.ndarray:
    """``proxy``'s scores on archs ``keys`` of dataset ``ds`` from the store; a population-level
    proxy is combined from its stored components across exactly these archs."""
    if proxy.kind != "population":
        return store.scores(ds, keys, proxy.name)
    return np.asarray(proxy.fn([store.scores(ds, keys, c) for c in proxy.components]), dtype=np.float64)


def proxy_seconds(store, ds: str, key: str, proxy: Proxy) -> float:
    """Seconds ``proxy`` took on one arch (a population-level one: its components' sum)."""
    names = proxy.components if proxy.kind == "population" else (proxy.name,)
    return float(sum(store.data[ds][key][n]["time"] for n in names))


def population_notes(proxies: list) -> list:
    """One line per population-level proxy: what it combines, and that its values depend on the archs scored."""
    def how(p):
        return "its formula's population transforms" if p.tree is not None else "Σ log(rank/N)"

    return [f"{p.name} is population-level ({how(p)} of {', '.join(p.components)} across the archs scored "
            f"together: each trial's archs), so an arch's value depends on the others"
            for p in proxies if p.kind == "population"]
