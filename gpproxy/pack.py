"""Typed primitive packs: the vocabulary formulas are written in.

Marker types carry shapes, so ill-formed programs cannot be generated:

``Weight``  per-layer weight-shaped samples (``W``, ``dW``)      (n, r, c) per bucket
``Input``   per-layer input-activation samples (``A``)           (n, B, k)
``Output``  per-layer output samples (``Z``, ``dZ``)             (n, B, k)
``Layer``   one number per layer                                 (L,)
``Net``     one number per network: the proxy score              (N,)
``Pop``     one number per network, relative to the networks     (N,)
            scored together (a population-level score: ranks)

A primitive is a plain torch function registered under a *kind*:

``unary(x)`` / ``binary(x, y)``  element-wise, registered for each type in ``on``
                                 (the same function serves every type: a
                                 formula string stays ``abs(W)``, not ``abs_w(W)``)
``reduce(x, scale)``             matrix -> Layer; ``scale`` (n,) is
                                 numel(full)/numel(sample) for sum-like estimates.
                                 Optional ``exact(m)``: the same reduction from
                                 the (L, 4) full-tensor moments [sum, sum |x|,
                                 sum x², numel]; used instead of the sample when
                                 the reduction's argument is a statistic itself
``aggregate(v, seg, counts)``    Layer -> Net; ``seg`` (L,) arch of each layer,
                                 ``counts`` (N,) layers per arch
``population(v)``                Net -> Pop over all the networks scored together
                                 (AZ-NAS's and VKDNW_agg's log-rank). A pack
                                 with one has ``Pop`` formulas (its root type);
                                 ``extend`` lets element-wise ops act on Pop
                                 values too. A Net formula stays valid in it.

Generic code (evaluation, export, printing) never names a pack's primitives or
statistics; a pack declares the roles it needs instead, and registration checks
each declaration on random inputs:

``binary(..., product=True)``     the element-wise product: a reduction of it
                                 may use the exact moments of the product of two
                                 statistics (``probe.PAIRS``) instead of samples
``aggregate(..., additive=True)`` the sum over layers: an exported proxy can
                                 return the per-layer terms (NASLib's shape)
``Pack(net_terminals=...)``       whole-network terms (``probe.NET_TERMS``: the
                                 input-logit Jacobian score, NASWOT's network
                                 kernel) as Net terminals; caches need
                                 ``net_terms``
``Pack(stat_latex=..., stat_math=...)``  how statistics and layer terminals are
                                 written in LaTeX / readable math (default: the
                                 name, ``\\mathrm{name}`` in LaTeX)

Functions must use only ``torch`` and their arguments: the exporter copies
their source into standalone modules. Every primitive is validated when
registered (random, all-zero and all-negative inputs must give finite values of
the right shape), so a pack cannot smuggle in an op that makes NaN on dead
layers.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from deap import gp

from .errors import GpproxyError


class Weight:
    """Per-layer weight-shaped samples."""


class Input:
    """Per-layer input-activation samples (rows are batch samples)."""


class Output:
    """Per-layer output / output-gradient samples (rows are batch samples)."""


class Layer:
    """One number per layer."""


class Net:
    """One number per network."""


class Pop:
    """One number per network, relative to the networks scored together."""


MATRIX = (Weight, Input, Output)
SCALAR = (Layer, Net)
ALL = MATRIX + SCALAR  # what an element-wise op serves by default; Pop only by Pack.extend
TYPE_OF_FAMILY = {"weight": Weight, "input": Input, "output": Output}
FAMILY_OF_TYPE = {v: k for k, v in TYPE_OF_FAMILY.items()}
TYPE_NAMES = {t: t.__name__ for t in ALL + (Pop,)}


@dataclass
class PrimDef:
    name: str
    kind: str  # unary | binary | reduce | aggregate | population
    fn: object
    types: tuple  # argument type of each registered overload
    math: str  # readable infix template, {0} {1} are the arguments
    latex: str
    exact: object = None  # reduce only: fn((L, k) moments) -> (L,), see module docstring
    exact_cols: int = 4  # moment columns `exact` reads: 4, or 6 for the activation kernels
    product: bool = False  # binary only: fn(x, y) is x * y (see module docstring)
    additive: bool = False  # aggregate only: fn sums the layers of each network

    @property
    def arity(self) -> int:
        return 2 if self.kind == "binary" else 1


@dataclass
class Pack:
    """A named vocabulary: statistics used, layer terminals, constants, primitives."""

    name: str
    stats: dict  # terminal name -> matrix type (Weight/Input/Output)
    layer_terminals: tuple = ("params",)
    # whole-network terms (probe.NET_TERMS) offered as Net terminals; a cache needs net_terms
    net_terminals: tuple = ()
    constants: tuple = (0.5, 1.0, 2.0)
    doc: str = ""
    prims: dict = field(default_factory=dict)  # name -> PrimDef
    seeds: dict = field(default_factory=dict)  # baseline name -> formula string
    stat_math: dict = field(default_factory=dict)  # terminal name -> readable symbol
    stat_latex: dict = field(default_factory=dict)  # terminal name -> LaTeX symbol

    def __post_init__(self):
        from .probe import NET_TERMS

        unknown = [t for t in self.net_terminals if t not in NET_TERMS]
        if unknown:
            raise GpproxyError(f"pack {self.name}: unknown whole-network term(s) {', '.join(map(repr, unknown))} "
                               f"(the probe computes {', '.join(NET_TERMS)})")

    # ------------------------------------------------------------ registration
    def _register(self, name, kind, types, math, latex, exact=None, exact_cols=4, **roles):
        def deco(fn):
            if name in self.prims:
                raise GpproxyError(f"pack {self.name}: primitive {name!r} registered twice")
            default_latex = r"\operatorname{{%s}}({0})" % name.replace("_", r"\_")
            prim = PrimDef(name, kind, fn, tuple(types), math or f"{name}({{0}})",
                           latex or math or default_latex, exact, exact_cols, **roles)
            validate_primitive(prim)
            if exact is not None:
                validate_exact(prim)
            validate_roles(prim)
            self.prims[name] = prim
            return fn
        return deco

    def unary(self, name, on=ALL, math=None, latex=None):
        return self._register(name, "unary", on, math, latex)

    def binary(self, name, on=ALL, math=None, latex=None, product=False):
        """Register an element-wise binary op; ``product=True`` declares it the
        element-wise product (see module docstring)."""
        math = math or f"{name}({{0}}, {{1}})"
        return self._register(name, "binary", on, math, latex, product=bool(product))

    def reduce(self, name, on=MATRIX, math=None, latex=None, exact=None, exact_cols=4):
        """Register a reduction; `exact(m)` (optional, a module-level def: exports
        copy its source) computes it exactly from (L, k) full-tensor moments
        (gpproxy.probe: [sum, sum |x|, sum x², numel] and, for activations only,
        [logdet, hamming] kernels: k = 6). `exact_cols` says how many columns it
        reads; a statistic with fewer (weights, older caches) uses its sample."""
        if exact_cols not in (4, 6):
            raise GpproxyError(f"primitive {name!r}: exact_cols must be 4 or 6, not {exact_cols!r}")
        return self._register(name, "reduce", on, math, latex, exact, exact_cols)

    def aggregate(self, name, math=None, latex=None, additive=False):
        """Register a Layer -> Net aggregation; ``additive=True`` declares it
        the plain sum over each network's layers."""
        return self._register(name, "aggregate", (Layer,), math, latex, additive=bool(additive))

    def population(self, name, math=None, latex=None):
        """Register a Net -> Pop transform over the networks scored together
        (e.g. log-rank); the pack's formulas then have the root type Pop."""
        return self._register(name, "population", (Net,), math, latex)

    def extend(self, name: str, on=(Pop,)) -> None:
        """Let the element-wise op `name` act on the types `on` as well (Pop:
        combining population-level values); validated on them first."""
        prim = self.prims.get(name)
        if prim is None or prim.kind not in ("unary", "binary"):
            raise GpproxyError(f"pack {self.name}: only a registered unary or binary op can be extended, not {name!r}")
        new = tuple(t for t in on if t not in prim.types)
        grown = PrimDef(prim.name, prim.kind, prim.fn, new, prim.math, prim.latex, product=prim.product)
        validate_primitive(grown)
        validate_roles(grown)
        self.prims[name] = replace(prim, types=prim.types + new)

    @property
    def root(self):
        """The type of a whole formula: Pop when the pack has a population transform, else Net."""
        return Pop if any(p.kind == "population" for p in self.prims.values()) else Net

    def symbol(self, name: str, latex: bool = False) -> str:
        """How terminal `name` (a statistic or layer terminal) is written."""
        if latex:
            return self.stat_latex.get(name, rf"\mathrm{{{name}}}".replace("_", r"\_"))
        return self.stat_math.get(name, name)

    def seed(self, name: str, formula: str) -> None:
        """A known proxy written in this vocabulary (can seed a population)."""
        self.seeds[name] = formula

    # ------------------------------------------------------------ DEAP view
    def active_types(self, prim: PrimDef) -> tuple:
        """Overload types of `prim` that this pack can feed (a matrix type
        with no statistic in the pack would have no terminal)."""
        have = set(self.stats.values()) | {Layer, Net, self.root}
        return tuple(t for t in prim.types if t in have)

    def pset(self, include_layer_terminals=True) -> gp.PrimitiveSetTyped:
        ps = gp.PrimitiveSetTyped(self.name, [], self.root)
        for prim in self.prims.values():
            for t in self.active_types(prim):
                if prim.kind == "unary":
                    ps.addPrimitive(prim.fn, [t], t, name=prim.name)
                elif prim.kind == "binary":
                    ps.addPrimitive(prim.fn, [t, t], t, name=prim.name)
                elif prim.kind == "reduce":
                    ps.addPrimitive(prim.fn, [t], Layer, name=prim.name)
                elif prim.kind == "aggregate":
                    ps.addPrimitive(prim.fn, [Layer], Net, name=prim.name)
                elif prim.kind == "population":
                    ps.addPrimitive(prim.fn, [Net], Pop, name=prim.name)
        for stat, typ in self.stats.items():
            ps.addTerminal(stat, typ, name=stat)
        if include_layer_terminals:
            for m in self.layer_terminals:
                ps.addTerminal(m, Layer, name=m)
        for m in self.net_terminals:
            ps.addTerminal(m, Net, name=m)
        for c in self.constants:
            # Unnamed: DEAP prints repr(value), and the same number may be
            # both a Layer and a Net constant.
            ps.addTerminal(float(c), Layer)
            ps.addTerminal(float(c), Net)
            if self.root is Pop:
                ps.addTerminal(float(c), Pop)  # weights of population-level terms
        missing = [TYPE_NAMES[t] for t in ALL + (Pop,)
                   if t in ps.primitives and ps.primitives[t] and not ps.terminals.get(t)]
        if missing:
            raise GpproxyError(f"pack {self.name}: types without terminals: {', '.join(missing)} "
                               "(add a statistic of that type)")
        barren = _types_without_producers(ps, self.root)
        if barren:
            # DEAP's generate puts a primitive at every node above the drawn height: a type reachable
            # from the root that no primitive returns makes genFull/genGrow raise IndexError mid-search
            names = ", ".join(TYPE_NAMES.get(t, getattr(t, "__name__", str(t))) for t in barren)
            raise GpproxyError(f"pack {self.name}: no primitive returns {names}, which formulas reach as an "
                               f"argument, so the search cannot grow them; register an element-wise op on it "
                               f"(e.g. @PACK.unary(\"abs\", on=({names},)))")
        return ps

    def random_formulas(self, n: int, seed: int = 0, min_height: int = 2, max_height: int = 5) -> list:
        """`n` distinct ramped half-and-half formulas (benchmarks, fidelity checks).

        Uses a private RNG state: the caller's `random` sequence is untouched.
        """
        import random

        outer = random.getstate()
        random.seed(seed)
        try:
            pset, out = self.pset(), set()
            while len(out) < n:
                out.add(str(gp.PrimitiveTree(gp.genHalfAndHalf(pset, min_height, max_height, type_=self.root))))
        finally:
            random.setstate(outer)
        return sorted(out)

    def overloads(self, name: str):
        """[(arg types, return type)] of a primitive name, for the parser."""
        prim = self.prims.get(name)
        if prim is None:
            return []
        out = []
        for t in self.active_types(prim):
            if prim.kind == "unary":
                out.append(((t,), t))
            elif prim.kind == "binary":
                out.append(((t, t), t))
            elif prim.kind == "reduce":
                out.append(((t,), Layer))
            elif prim.kind == "population":
                out.append(((Net,), Pop))
            else:
                out.append(((Layer,), Net))
        return out


def _types_without_producers(ps: gp.PrimitiveSetTyped, root) -> list:
    """Types reachable from ``root`` through primitive arguments that no primitive returns, in
    the order found (DEAP's generate needs a primitive of every type it may place above a leaf)."""
    seen, todo, out = {root}, [root], []
    while todo:
        t = todo.pop(0)
        prims = ps.primitives.get(t) or []
        if not prims:
            out.append(t)
        for prim in prims:
            for arg in prim.args:
                if arg not in seen:
                    seen.add(arg)
                    todo.append(arg)
    return out


# ---------------------------------------------------------------- validation


def _probe_inputs(typ):
    gen = torch.Generator().manual_seed(0)
    shape = (3, 5, 7) if typ in MATRIX else (7,)
    rnd = torch.randn(shape, generator=gen)
    if typ is Net:
        rnd[3] = rnd[1]  # a population transform must handle ties
    return {"random": rnd, "zeros": torch.zeros(shape), "negative": -rnd.abs() - 0.1}


def validate_primitive(prim: PrimDef) -> None:
    """Run a primitive on random / all-zero / all-negative inputs of each type.

    Raises GpproxyError naming the primitive, the type and the input on the
    first non-finite value or wrong shape.
    """
    for typ in prim.types:
        for label, x in _probe_inputs(typ).items():
            try:
                if prim.kind == "unary":
                    out, want = prim.fn(x), tuple(x.shape)
                elif prim.kind == "binary":
                    out, want = prim.fn(x, x.flip(0) * 0.5 + 0.1), tuple(x.shape)
                    out2 = prim.fn(x, torch.zeros_like(x))
                    if not torch.isfinite(out2).all():
                        raise GpproxyError(f"primitive {prim.name!r} ({TYPE_NAMES[typ]}) gives "
                                           f"non-finite values when its second input is all zeros")
                elif prim.kind == "reduce":
                    out, want = prim.fn(x, torch.full((x.shape[0],), 4.0)), (x.shape[0],)
                elif prim.kind == "population":
                    out, want = prim.fn(x), tuple(x.shape)
                else:
                    seg = torch.tensor([0, 0, 1, 1, 1, 2, 2])
                    out, want = prim.fn(x, seg, torch.tensor([2.0, 3.0, 2.0])), (3,)
            except GpproxyError:
                raise
            except Exception as e:
                raise GpproxyError(f"primitive {prim.name!r} ({TYPE_NAMES[typ]}) fails on {label} "
                                   f"input: {e.__class__.__name__}: {e}") from None
            _check_output(out, want, f"primitive {prim.name!r} ({TYPE_NAMES[typ]})", f"{label} input")


def _check_output(out, want: tuple, what: str, on: str) -> None:
    """A validated function must return a finite tensor of shape `want`."""
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != want:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise GpproxyError(f"{what} returns shape {got} on {on}, expected {want}")
    if not torch.isfinite(out).all():
        raise GpproxyError(f"{what} returns non-finite values on {on}; guard it (e.g. log(|x|+eps))")


def _moment_inputs():
    """(L, 6) moment rows [sum, sum |x|, sum x², numel, logdet, hamming]; numel > 0."""
    gen = torch.Generator().manual_seed(0)
    rnd = torch.randn((7, 3), generator=gen, dtype=torch.float64)
    numel = torch.tensor([[1.0], [2.0], [9.0], [64.0], [1e3], [1e5], [1e7]], dtype=torch.float64)
    kernels = torch.randn((7, 2), generator=gen, dtype=torch.float64) * 50
    firsts = {"random": rnd, "zeros": torch.zeros_like(rnd), "negative": -rnd.abs() - 0.1}
    return {label: torch.cat([m, numel, kernels], dim=1) for label, m in firsts.items()}


def validate_exact(prim: PrimDef) -> None:
    """Like validate_primitive, for a reduction's `exact` function."""
    if prim.kind != "reduce":
        raise GpproxyError(f"primitive {prim.name!r}: only reductions take exact=")
    if getattr(prim.exact, "__name__", "<lambda>") == "<lambda>":
        raise GpproxyError(f"primitive {prim.name!r}: exact= must be a named def function "
                           "(exported modules copy its source)")
    for label, m in _moment_inputs().items():
        m = m[:, :prim.exact_cols]
        try:
            out = prim.exact(m)
        except Exception as e:
            raise GpproxyError(f"exact function of {prim.name!r} fails on {label} moments: "
                               f"{e.__class__.__name__}: {e}") from None
        _check_output(out, (m.shape[0],), f"exact function of {prim.name!r}", f"{label} moments")


def validate_roles(prim: PrimDef) -> None:
    """A declared role must hold on random inputs: generic code trusts it (a
    product's reductions read exact product moments instead of running it; an
    additive aggregation's exports hand out per-layer terms as the score)."""
    if prim.product and prim.kind != "binary" or prim.additive and prim.kind != "aggregate":
        raise GpproxyError(f"primitive {prim.name!r}: product= is for binary ops, additive= for aggregations")
    if prim.product:
        for typ in prim.types:
            x = _probe_inputs(typ)["random"]
            y = x.flip(0) * 0.5 + 0.1
            if not torch.allclose(prim.fn(x, y), x * y, rtol=1e-5, atol=1e-6):
                raise GpproxyError(f"primitive {prim.name!r} is declared product=True but does not "
                                   f"compute x * y ({TYPE_NAMES[typ]})")
    if prim.additive:
        v = _probe_inputs(Layer)["random"]
        seg = torch.tensor([0, 0, 1, 1, 1, 2, 2])
        want = torch.zeros(3).index_add(0, seg, v)
        if not torch.allclose(prim.fn(v, seg, torch.tensor([2.0, 3.0, 2.0])), want, rtol=1e-5, atol=1e-6):
            raise GpproxyError(f"aggregation {prim.name!r} is declared additive=True but does not "
                               "sum the layers of each network")


# ---------------------------------------------------------------- discovery

PACK_DIR = Path(__file__).resolve().parent.parent / "primitives"
_LOADED: dict = {}


def load_pack(name_or_path: str) -> Pack:
    """A pack by name (module ``primitives.<name>``) or by path to a .py file.

    A pack module defines a module-level ``PACK = Pack(...)``. Users add packs
    by dropping a file into primitives/ or pointing at their own file.
    """
    path = Path(name_or_path)
    # a pack file is known by its absolute path: the same relative name in another directory is another pack
    loaded_as = str(path.resolve()) if path.suffix == ".py" else name_or_path
    if loaded_as in _LOADED:
        return _LOADED[loaded_as]
    if path.suffix == ".py":
        if not path.exists():
            raise GpproxyError(f"primitive pack file {path} does not exist")
        mod_name = f"gpproxy_user_pack_{abs(hash(str(path.resolve())))}"
        spec = importlib.util.spec_from_file_location(mod_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        try:
            spec.loader.exec_module(module)
        except GpproxyError:
            sys.modules.pop(mod_name, None)
            raise  # a registration check already names the primitive and what to do
        except (Exception, SystemExit) as e:  # the user's file: one line; sys.exit() there must not end gpproxy
            sys.modules.pop(mod_name, None)
            raise GpproxyError(f"primitive pack file {path} fails to import: {type(e).__name__}: {e}") from None
    else:
        try:
            module = importlib.import_module(f"primitives.{name_or_path}")
        except ModuleNotFoundError as e:
            if e.name and e.name.startswith("primitives"):
                avail = sorted(p.stem for p in PACK_DIR.glob("*.py") if not p.stem.startswith("_"))
                raise GpproxyError(f"unknown primitive pack {name_or_path!r}; "
                                   f"available: {', '.join(avail)}") from None
            raise GpproxyError(f"primitive pack {name_or_path!r} fails to import: "
                               f"{type(e).__name__}: {e}") from None
        except GpproxyError:
            raise
        except (Exception, SystemExit) as e:  # a file dropped into primitives/ is user code too
            raise GpproxyError(f"primitive pack {name_or_path!r} fails to import: "
                               f"{type(e).__name__}: {e}") from None
    pack = getattr(module, "PACK", None)
    if not isinstance(pack, Pack):
        raise GpproxyError(f"primitive pack {name_or_path!r} defines no PACK = Pack(...)")
    _LOADED[loaded_as] = pack
    return pack
