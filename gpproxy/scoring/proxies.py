"""What can be scored: a baseline name (``gpproxy.baselines.BASELINES``), a
formula string of a primitive pack, or an exported ``.py`` module defining
``score(net, inputs, targets) -> float``."""
from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from ..errors import FormulaError, GpproxyError


@dataclass
class Proxy:
    name: str  # JSON key and table row: the formula, the baseline name, or STEM@sha256 of a module's content
    kind: str  # "baseline" | "formula" | "module"
    fn: object = None
    tree: object = None
    source: str = ""
    pack: str = ""  # formulas: the primitive pack that parsed them


def resolve_proxy(text: str, pack: str = "default") -> Proxy:
    """A baseline name, a ``zoo:NAME`` entry, an exported ``.py`` file or a formula string of ``pack``."""
    from ..baselines import BASELINES
    from .. import zoo

    text = str(text).strip()
    if zoo.is_zoo(text):
        e = zoo.entry(text)
        from ..formula import parse_formula
        from ..pack import load_pack

        tree = parse_formula(e.formula, load_pack(e.pack))
        return Proxy(str(tree), "formula", tree=tree, source=f"{e.label} (pack {e.pack})", pack=e.pack)
    if text in BASELINES:
        return Proxy(text, "baseline", fn=BASELINES[text], source="gpproxy.baselines")
    if text.endswith(".py"):
        return _module_proxy(Path(text))
    from ..formula import parse_formula
    from ..pack import load_pack

    p = load_pack(pack)
    try:
        tree = parse_formula(text, p)
    except FormulaError as e:
        raise GpproxyError(f"proxy {text[:60]!r} is not a baseline ({', '.join(BASELINES)}), "
                           f"not a .py file, and not a formula of pack {pack!r}: {e}") from None
    return Proxy(str(tree), "formula", tree=tree, source=f"pack {pack}", pack=pack)


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
