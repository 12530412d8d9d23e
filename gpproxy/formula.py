"""Formula strings: parse (never eval), evaluate on a StatSet, pretty-print.

``str(tree)`` is the canonical formula: the memo key, the CSV cell and the
input of every exporter. ``parse_formula`` rebuilds the typed tree with
``ast`` against the pack's whitelist: only calls of known primitive names,
known terminal names and numbers are accepted, so hostile text such as
``__import__('os')`` is rejected before anything runs.
"""
from __future__ import annotations

import ast

import torch
from deap import gp

from .errors import FormulaError, GpproxyError
from .pack import FAMILY_OF_TYPE, MATRIX, TYPE_NAMES, Layer, Net, Pack, Pop
from .probe import pair_key

MAX_FORMULA_CHARS = 4000
_MEMO_BYTES = "__matrix_memo_bytes__"  # not a formula: cannot collide with a subtree key
MAX_NESTING = 40


# ---------------------------------------------------------------- parsing


def parse_formula(text: str, pack: Pack, pset=None) -> gp.PrimitiveTree:
    """Typed tree of a formula string; FormulaError (one line) if not valid."""
    if not isinstance(text, str) or not text.strip():
        raise FormulaError("empty formula")
    text = text.strip()
    if len(text) > MAX_FORMULA_CHARS:
        raise FormulaError(f"formula is {len(text)} characters long (limit {MAX_FORMULA_CHARS})")
    depth, signs = 0, 0
    for ch in text:  # before ast.parse: deep nesting crashes Python's parser
        depth += ch == "("
        depth -= ch == ")"
        # unary signs nest too ("- - - 1"), without parentheses
        signs = signs + 1 if ch in "+-~" else (signs if ch.isspace() else 0)
        if depth > MAX_NESTING or signs > MAX_NESTING:
            raise FormulaError(f"formula nests deeper than {MAX_NESTING} levels")
    try:
        node = ast.parse(text, mode="eval").body
    except SyntaxError as e:
        raise FormulaError(f"formula is not valid syntax at column {e.offset}: {text[:80]!r}") from None
    except (RecursionError, MemoryError, ValueError, OverflowError) as e:
        raise FormulaError(f"formula cannot be parsed ({type(e).__name__}): {text[:80]!r}") from None
    pset = pset or pack.pset()
    terminals = {}
    for typ, terms in pset.terminals.items():
        for t in terms:
            if not isinstance(t.value, float):
                terminals[t.name] = t
    # A population transform makes the formula a Pop value; without one it is a Net value
    # (valid in every pack), so each text has one typing and one precise error.
    population = {n for n, p in pack.prims.items() if p.kind == "population"}
    calls = {c.func.id for c in ast.walk(node) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)}
    try:
        nodes = _build(node, Pop if calls & population else Net, pack, terminals)
    except RecursionError:
        raise FormulaError(f"formula nests too deeply: {text[:80]!r}") from None
    return gp.PrimitiveTree(nodes)


def _describe(node) -> str:
    try:
        return ast.unparse(node)[:60]
    except Exception:  # pragma: no cover - ast.unparse handles all parsed nodes
        return type(node).__name__


FLOAT32_MAX = 3.4028234663852886e38


def _number(node):
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        try:
            return float(node.value)
        except OverflowError:  # a 400-digit integer
            raise FormulaError(f"constant {str(node.value)[:20]}... is too large for a float") from None
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _number(node.operand)
        if inner is not None:
            return -inner if isinstance(node.op, ast.USub) else inner
    return None


def _build(node, expected, pack: Pack, terminals) -> list:
    num = _number(node)
    if num is not None:
        if expected not in (Layer, Net, Pop):
            raise FormulaError(f"number {num} used where a {TYPE_NAMES[expected]} tensor is needed")
        if num != num or num in (float("inf"), float("-inf")):
            raise FormulaError("constants must be finite numbers")
        if abs(num) > FLOAT32_MAX:  # statistics are float32 tensors: the constant would not fit
            raise FormulaError(f"constant {num:g} is out of float32 range (|c| <= {FLOAT32_MAX:.4g})")
        return [gp.Terminal(num, False, expected)]
    if isinstance(node, ast.Name):
        term = terminals.get(node.id)
        if term is None:
            if pack.prims.get(node.id):
                raise FormulaError(f"{node.id!r} is a primitive and needs arguments: {node.id}(...)")
            raise FormulaError(f"unknown name {node.id!r}; terminals of pack {pack.name}: "
                               f"{', '.join(sorted(terminals))}")
        if term.ret is not expected:
            raise FormulaError(f"{node.id!r} is a {TYPE_NAMES[term.ret]} value but a "
                               f"{TYPE_NAMES[expected]} value is needed here")
        return [term]
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name):
            raise FormulaError(f"only calls of primitive names are allowed, not {_describe(node.func)!r}")
        if node.keywords:
            raise FormulaError(f"keyword arguments are not allowed ({node.func.id})")
        name = node.func.id
        prim = pack.prims.get(name)
        if prim is None:
            raise FormulaError(f"unknown primitive {name!r}; primitives of pack {pack.name}: "
                               f"{', '.join(sorted(pack.prims))}")
        if len(node.args) != prim.arity:
            raise FormulaError(f"{name} takes {prim.arity} argument(s), got {len(node.args)}")
        candidates = [(args, ret) for args, ret in pack.overloads(name) if ret is expected]
        if not candidates:
            raise FormulaError(f"{name} cannot produce a {TYPE_NAMES[expected]} value here")
        errors = []
        for args, ret in candidates:
            try:
                children = [_build(a, t, pack, terminals) for a, t in zip(node.args, args)]
            except FormulaError as e:
                errors.append(e)
                continue
            return [gp.Primitive(name, list(args), ret)] + [n for c in children for n in c]
        if len(errors) == 1:
            raise errors[0]
        raise FormulaError(f"no typing of {name}(...) fits its arguments: {errors[0]}")
    raise FormulaError(f"not allowed in a formula: {_describe(node)!r} "
                       f"(only primitive calls, terminal names and numbers)")


def canonical(text: str, pack: Pack) -> str:
    return str(parse_formula(text, pack))


def restrict(pack: Pack, name: str, stats=None, drop=()) -> Pack:
    """A copy of `pack` with only `stats` (names; default all) and without the
    primitives named in `drop`: smaller vocabularies for ablations. Seeds that
    no longer parse in the smaller vocabulary are left out (hence here, beside
    the parser, and not in pack.py)."""
    keep = pack.stats if stats is None else {k: pack.stats[k] for k in stats}
    unknown = set(drop) - set(pack.prims)
    if unknown:
        raise GpproxyError(f"pack {pack.name} has no primitive(s) {', '.join(sorted(unknown))}")
    out = Pack(name=name, stats=dict(keep), layer_terminals=pack.layer_terminals,
               net_terminals=pack.net_terminals, constants=pack.constants,
               doc=f"{pack.name} restricted to {', '.join(keep)}" + (f" without {', '.join(drop)}" if drop else ""),
               prims={k: p for k, p in pack.prims.items() if k not in drop},
               stat_math=dict(pack.stat_math), stat_latex=dict(pack.stat_latex))
    for seed_name, formula in pack.seeds.items():
        try:
            parse_formula(formula, out)
        except GpproxyError:
            continue
        out.seeds[seed_name] = formula
    return out


def stats_used(tree) -> set:
    return {n.value for n in tree if isinstance(n, gp.Terminal) and isinstance(n.value, str)}


def exact_stat(tree, i, pack: Pack):
    """The statistic reduced by node `i` if it has an exact form there, else None.

    That is when node `i` is a reduction with an ``exact`` function whose
    argument is a statistic terminal itself (``frob(W)``, not ``frob(abs(W))``): its
    full-tensor value then follows from the cached moments of that statistic.
    It is also when the argument is the pack's element-wise product (a binary
    registered with ``product=True``) of two terminals whose product has
    moments (``probe.PAIRS``, either order): then it returns their key "X*Y".
    """
    node = tree[i]
    if not isinstance(node, gp.Primitive):
        return None
    prim = pack.prims[node.name]
    if prim.kind != "reduce" or prim.exact is None:
        return None
    child = tree[i + 1]
    if isinstance(child, gp.Terminal) and isinstance(child.value, str):
        return child.value
    if isinstance(child, gp.Primitive) and pack.prims[child.name].product:
        x, y = tree[i + 2: i + 4]
        if all(isinstance(t, gp.Terminal) and isinstance(t.value, str) for t in (x, y)):
            return pair_key(x.value, y.value)
    return None


# ---------------------------------------------------------------- evaluation


def is_population(tree) -> bool:
    """A population-level formula: its value for a network depends on the others scored with it."""
    return tree[0].ret is Pop


def population_terms(tree, pack: Pack) -> list:
    """The per-network subtrees of a population formula (each population
    transform's argument: Net formulas), once each, in order of appearance."""
    out = {}
    for i, node in enumerate(tree):
        if isinstance(node, gp.Primitive) and pack.prims[node.name].kind == "population":
            term = gp.PrimitiveTree(tree[tree.searchSubtree(i + 1)])
            out.setdefault(str(term), term)
    return list(out.values())


def combine_population(tree, pack: Pack, terms) -> torch.Tensor:
    """A population formula's values on a set of networks from its terms' values
    on exactly that set: ``terms`` maps str(term) -> (N,) tensor.

    A network with a non-finite term gets NaN (a transform such as a rank
    would otherwise hide it), so the formula fails like a Net formula would.
    """
    n = len(next(iter(terms.values())))
    bad = torch.zeros(n, dtype=torch.bool)
    for v in terms.values():
        bad |= ~torch.isfinite(v.cpu())

    def rec(i):
        node = tree[i]
        if isinstance(node, gp.Terminal):  # a Pop constant (a weight)
            return torch.full((n,), float(node.value), dtype=torch.float64), i + 1
        prim = pack.prims[node.name]
        if prim.kind == "population":
            end = tree.searchSubtree(i + 1).stop
            v = terms[str(gp.PrimitiveTree(tree[i + 1:end]))].cpu().double()
            return prim.fn(torch.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0)), end
        args, j = [], i + 1
        for _ in range(node.arity):
            v, j = rec(j)
            args.append(v)
        return prim.fn(*args), j

    out, _ = rec(0)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (n,):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"{tree[0].name} gave shape {got}, expected ({n},) (one number per arch)")
    return torch.where(bad, torch.full_like(out, float("nan")), out.double())


class FormulaEval:
    """Evaluates typed trees of one pack on a StatSet.

    ``memo`` (optional dict) keeps results of subtrees by (type, string), so
    formulas of one generation that share a subtree compute it once. Layer-
    and Net-level results are small and always kept; matrix-level results are
    kept until they fill ``matrix_memo_bytes`` (per memo dict).

    A reduction of a statistic itself uses the StatSet's exact full-tensor
    moments when it has them (see ``exact_stat``), the sample otherwise.
    """

    def __init__(self, pack: Pack, matrix_memo_bytes: int = 256 * 2**20):
        self.pack = pack
        self.matrix_memo_bytes = matrix_memo_bytes

    def __call__(self, tree, S, memo=None) -> torch.Tensor:
        """One number per arch of ``S``; a node of another shape raises ValueError."""
        if is_population(tree):
            # its terms are Net formulas: evaluate them here, combine over every arch scored
            raise FormulaError("a population-level formula is scored over all its archs at once "
                               "(evaluator.score_on_cache), not chunk by chunk")
        value, _ = self._eval(tree, 0, S, memo)
        _check_vector(value, tree[0], S)  # the root too when it is a terminal or a memo hit
        return value

    def _eval(self, tree, i, S, memo):
        node = tree[i]
        if isinstance(node, gp.Terminal):
            return self._terminal(node, S), i + 1
        end = tree.searchSubtree(i).stop
        key = None
        if memo is not None:
            # the type is part of the key: the same text can be Net- and Layer-typed
            key = (node.ret, str(gp.PrimitiveTree(tree[i:end])))
            hit = memo.get(key)
            if hit is not None:
                return hit, end
        stat = exact_stat(tree, i, self.pack)
        moments = getattr(S, "moments", {}).get(stat) if stat is not None else None
        if moments is not None and moments.shape[1] >= self.pack.prims[node.name].exact_cols:
            out = self.pack.prims[node.name].exact(moments).to(S.layer_counts.dtype)
            if key is not None:
                memo[key] = out
            return out, end
        args, j = [], i + 1
        for _ in range(node.arity):
            v, j = self._eval(tree, j, S, memo)
            args.append(v)
        prim = self.pack.prims[node.name]
        fn = prim.fn
        if prim.kind == "unary":
            out = [fn(t) for t in args[0]] if node.ret in MATRIX else fn(args[0])
        elif prim.kind == "binary":
            if node.ret in MATRIX:
                out = [fn(a, b) for a, b in zip(args[0], args[1])]
            else:
                out = fn(args[0], args[1])
        elif prim.kind == "reduce":
            fam = FAMILY_OF_TYPE[node.args[0]]
            out = torch.zeros(S.n_layers, dtype=S.layer_counts.dtype, device=S.layer_counts.device)
            for bucket, t in zip(S.buckets[fam], args[0]):
                out[bucket.layer_ids] = fn(t, bucket.scale).to(out.dtype)
        else:
            out = fn(args[0], S.arch_of_layer, S.layer_counts)
        if node.ret not in MATRIX:
            _check_vector(out, node, S)
        if key is not None:
            if node.ret in MATRIX:
                size = sum(t.numel() * t.element_size() for t in out)
                used = memo.get(_MEMO_BYTES, 0)
                if used + size <= self.matrix_memo_bytes:
                    memo[key] = out
                    memo[_MEMO_BYTES] = used + size
            else:
                memo[key] = out
        return out, end

    def _terminal(self, node, S):
        if isinstance(node.value, float):
            n = S.n_layers if node.ret is Layer else S.n_archs
            return torch.full((n,), node.value, dtype=S.layer_counts.dtype, device=S.layer_counts.device)
        name = node.value
        if node.ret is Layer:
            return S.meta[name]
        if node.ret is Net:
            try:
                return S.net[name]
            except KeyError:
                raise FormulaError(f"whole-network term {name!r} is not in this cache; rebuild it with "
                                   "net_terms = true (--net-terms)") from None
        try:
            return S.stats[name]
        except KeyError:
            raise FormulaError(f"statistic {name!r} is not in this cache (it has "
                               f"{', '.join(sorted(S.stats))}); rebuild the cache with it") from None


def _check_vector(out, node, S) -> None:
    """A Layer value has one number per layer, a Net value one per arch: a user
    primitive that returns another shape must fail, never broadcast silently."""
    n = S.n_layers if node.ret is Layer else S.n_archs
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (n,):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"{node.name} gave shape {got}, expected ({n},) "
                         f"(one number per {'layer' if node.ret is Layer else 'arch'})")


# ---------------------------------------------------------------- printing


def to_math(tree, pack: Pack, latex=False) -> str:
    """Readable infix (or LaTeX) rendering of a typed tree."""

    def rec(i):
        node = tree[i]
        if isinstance(node, gp.Terminal):
            if isinstance(node.value, float):
                return f"{node.value:g}", i + 1
            return pack.symbol(node.value, latex), i + 1
        parts, j = [], i + 1
        for _ in range(node.arity):
            s, j = rec(j)
            parts.append(s)
        prim = pack.prims[node.name]
        template = prim.latex if latex else prim.math
        return template.format(*parts), j

    return rec(0)[0]
