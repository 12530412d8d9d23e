"""Export a formula as a standalone, readable PyTorch module.

The module imports only torch and holds only what its formula reads: the probe
code for the statistics, full-tensor moments and kernels the formula uses
(copied from gpproxy.probe, so it samples exactly the positions the engine
cached and takes the same exact moments), the primitives it uses (with their
``exact`` twins where a reduction is applied to a statistic itself, as
``FormulaEval`` does), and one straight-line function that spells the formula
out. A formula of weight-gradient samples alone runs one forward+backward pass
and samples the gradients; one of layer sizes alone runs a forward pass. It
exposes the zero-cost-nas / NASLib measure shape:

    compute(net, inputs, targets, loss_fn=None, split_data=1, **kw) -> list[Tensor]
    score(net, inputs, targets, loss_fn=None) -> float
    register(measure, name=None)    # e.g. register(foresight.pruners.measures.measure)

A population-level formula (a pack with a population transform such as
``log_rank``) has no per-net score: its module offers
``score_population(nets, inputs, targets) -> list[float]`` (and
``terms(net, ...)``, one net's per-network terms) instead, and its ``score``
raises TypeError saying so.

The docstring's provenance is rendered from a typed :class:`Provenance` only:
numbers formatted from floats, names reduced to a safe alphabet, never a raw
cell of a run's CSV files.
"""
from __future__ import annotations

import ast
import hashlib
import inspect
import re
import textwrap
from dataclasses import dataclass, field
from math import isfinite
from pathlib import Path

from deap import gp

from . import probe
from .errors import GpproxyError
from .fileio import atomic_write_text
from .formula import exact_stat, is_population, parse_formula, population_terms, to_math
from .pack import FAMILY_OF_TYPE, MATRIX, Layer, Net, load_pack
from .probe import NOISE_SUFFIX, ProbeConfig, stat_family
from .version import __version__

# What each probe statistic and layer number is, in words (probe.py's vocabulary).
STAT_WORDS = {
    "W": "the layer's weight, flattened to (out channels, rest)",
    "dW": "the loss gradient of the layer's weight",
    "A": "the layer's input activation, flattened per sample to (batch, features)",
    "Z": "the layer's output (before any BatchNorm), (batch, features)",
    "dZ": "the loss gradient of the layer's output",
}
META_WORDS = {
    "params": "number of parameters of the layer (weight and bias)",
    "fan_in": "inputs per output unit (in channels / groups x kernel area)",
    "out_channels": "output channels (units) of the layer",
    "out_numel": "output size per sample (channels x height x width)",
}
NET_WORDS = {
    "jacov": "the whole net's input-logit Jacobian score (NASWOT v1's Jacobian covariance)",
    "naswot": "log-determinant of NASWOT's Hamming kernel summed over the inputs of every Conv2d/Linear layer",
}


# ---------------------------------------------------------------- provenance


def safe_text(text, limit: int = 120) -> str:
    """A name from a run directory reduced to letters, digits and ``_ .,:/+-()`` (no quotes,
    backslashes or line breaks), so it cannot end a docstring or string literal."""
    return re.sub(r"[^\w .,:/+()-]", "?", str(text))[:limit]


def _num(value, digits: int = 4) -> str:
    value = float(value)
    return f"{value:.{digits}f}" if isfinite(value) else "n/a"


@dataclass(frozen=True)
class HeldOut:
    """One task's held-out result of an exported formula (never used for selection)."""

    task: str
    benchmark: str
    target: str
    kendall: float
    spearman: float
    n: int | None = None


@dataclass(frozen=True)
class Provenance:
    """Where an exported formula comes from. ``run=None``: not validated on a benchmark."""

    run: str | None = None  # the run directory relative to its parent
    config: str = ""
    correlation: str = ""
    fitness: float | None = None
    heldout: tuple = field(default_factory=tuple)  # HeldOut rows
    protocol: str = ""  # the minibatch the held-out numbers were measured with, in words

    def render(self) -> str:
        if self.run is None:
            return "Provenance: not validated on a benchmark (exported from a formula string)."
        fitness = (f", search fitness ({safe_text(self.correlation)}) {_num(self.fitness)}"
                   if self.fitness is not None else "")
        lines = [f"Provenance: found by gpproxy run {safe_text(self.run)} (config {safe_text(self.config)}){fitness}."]
        if self.protocol:
            lines.append(f"Measured with {safe_text(self.protocol)}.")
        if not self.heldout:
            lines.append("No held-out result recorded.")
        for h in self.heldout:
            n = f", n = {int(h.n)}" if h.n is not None else ""
            lines.append(f"Held-out archs of {safe_text(h.task)} ({safe_text(h.benchmark)}, target "
                         f"{safe_text(h.target)}): Kendall tau {_num(h.kendall)}, Spearman rho {_num(h.spearman)}{n}.")
        return textwrap.fill(" ".join(lines), 100)


# ---------------------------------------------------------------- copying functions


def _source(fn, name=None, doc: bool = True) -> str:
    """Source of `fn` renamed to `name`, without decorators, comment lines and ``# exported``
    tags, its docstring cut to its first line (dropped without `doc`)."""
    src = textwrap.dedent(inspect.getsource(fn))
    lines = src.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(("def ", "async def ")))
    lines = lines[start:]
    body = ast.parse("\n".join(lines)).body[0].body
    if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)):
        first = body[0].value.value.strip().splitlines()[0]
        line = lines[body[0].lineno - 1]
        indent = line[: len(line) - len(line.lstrip())]
        lines[body[0].lineno - 1: body[0].end_lineno] = [f'{indent}"""{first}"""'] if doc else []
    lines = [ln.replace("  # exported", "") for ln in lines if not ln.lstrip().startswith("#")]
    src = "\n".join(lines) + "\n"
    if name and name != fn.__name__:
        src = src.replace(f"def {fn.__name__}(", f"def {name}(", 1)
    return src


def _py_name(prim_name: str) -> str:
    return f"p_{prim_name}"


def _exact_name(prim_name: str) -> str:
    return f"p_{prim_name}_exact"


def prim_words(prim) -> str:
    """A primitive in one line of words: its function's docstring, else its math template."""
    doc = inspect.getdoc(prim.fn)
    if doc:
        return doc.strip().splitlines()[0]
    return prim.math.format("x", "y")


# ---------------------------------------------------------------- the formula


@dataclass
class Needs:
    """What a formula reads from the probe."""

    samples: set = field(default_factory=set)  # statistics whose samples are read
    moments: set = field(default_factory=set)  # statistics / "X*Y" products whose moments are read
    kernels: set = field(default_factory=set)  # activation statistics whose kernel columns are read
    meta: set = field(default_factory=set)  # layer numbers
    net: set = field(default_factory=set)  # whole-network terms (probe.network_terms)
    prims: list = field(default_factory=list)  # primitives called, in order
    exact: list = field(default_factory=list)  # primitives whose exact twin is called

    def stats(self) -> set:
        out = set(self.samples) | set(self.kernels)
        for key in self.moments:
            out.update(key.split("*"))
        return out


def _add(seq: list, item) -> None:
    if item not in seq:
        seq.append(item)


def formula_code(tree, pack, moments: bool = True, needs: Needs | None = None) -> tuple[str, bool, Needs]:
    """Straight-line Python for a typed tree: (code, root is a layer aggregation, what it reads).

    Matrix values are lists with one (1, r, c) tensor per layer; Layer values
    are (L,) tensors; Net values are (1,) tensors. With `moments`, a reduction
    of a statistic itself is computed exactly from ``S['moments']`` (as
    FormulaEval does on a cache with moments). ``formula`` returns the
    per-layer terms too when the root aggregates layers. ``needs`` (optional)
    collects what several trees read.
    """
    lines, counter, root_args = [], [0], {}
    needs = Needs() if needs is None else needs

    def sampled(fn, arg, fam):
        return f"torch.cat([{fn}(x, s) for x, s in zip({arg}, S['scale'][{fam!r}])])"

    def rec(i):
        node = tree[i]
        if isinstance(node, gp.Terminal):
            if isinstance(node.value, float):
                n = "S['L']" if node.ret is Layer else "1"
                return f"torch.full(({n},), {node.value!r})", i + 1
            if node.ret is Layer:
                needs.meta.add(node.value)
                return f"S['meta'][{node.value!r}]", i + 1
            if node.ret is Net:
                needs.net.add(node.value)
                return f"S['net'][{node.value!r}]", i + 1
            needs.samples.add(node.value)
            return f"S['stats'][{node.value!r}]", i + 1
        end = tree.searchSubtree(i).stop
        prim = pack.prims[node.name]
        fn = _py_name(prim.name)
        key = exact_stat(tree, i, pack) if moments and prim.kind == "reduce" else None
        fam = FAMILY_OF_TYPE.get(node.args[0])
        if key is not None and (stat_family(key.split("*")[0]) == "weight" and prim.exact_cols > 4):
            key = None  # weights have no kernel columns: the sample, as FormulaEval
        counter[0] += 1
        var = f"t{counter[0]}"
        sub = str(gp.PrimitiveTree(tree[i:end]))
        if key is not None and not ("*" in key and key.startswith("Z")):
            # always recorded for every layer: the exact value alone
            _add(needs.exact, prim.name)
            needs.moments.add(key)
            if prim.exact_cols > 4:
                needs.kernels.add(key)
            expr = f"{_exact_name(prim.name)}(S['moments'][{key!r}]).float()"  # float32, as the engine stores it
            lines.append(f"    {var} = {expr}  # {sub}")
            return var, end
        args, j = [], i + 1
        for _ in range(node.arity):
            a, j = rec(j)
            args.append(a)
        _add(needs.prims, prim.name)
        if prim.kind in ("unary", "binary") and node.ret in MATRIX:
            expr = (f"[{fn}(x) for x in {args[0]}]" if prim.kind == "unary"
                    else f"[{fn}(x, y) for x, y in zip({args[0]}, {args[1]})]")
        elif prim.kind in ("unary", "binary"):
            expr = f"{fn}({', '.join(args)})"
        elif prim.kind == "reduce" and key is not None:
            # Z*dZ (or a Z kernel) is missing where Z changed in place before its gradient came:
            # then every layer uses the sample, as FormulaEval does
            _add(needs.exact, prim.name)
            needs.moments.add(key)
            if prim.exact_cols > 4:
                needs.kernels.add(key)
            expr = (f"{_exact_name(prim.name)}(S['moments'][{key!r}]).float() if {key!r} in S['moments'] "
                    f"else {sampled(fn, args[0], fam)}")
        elif prim.kind == "reduce":
            expr = sampled(fn, args[0], fam)
        else:
            expr = f"{fn}({args[0]}, S['seg'], S['counts'])"
        lines.append(f"    {var} = {expr}  # {sub}")
        if i == 0:
            root_args["args"] = args
        return var, j

    root, _ = rec(0)
    top = pack.prims.get(tree[0].name) if isinstance(tree[0], gp.Primitive) else None
    per_layer = top is not None and top.kind == "aggregate" and "args" in root_args
    layer_terms = root_args["args"][0] if per_layer else "None"
    return "\n".join(lines + [f"    return {root}, {layer_terms}"]) + "\n", per_layer, needs


def population_code(tree, pack, needs: Needs) -> tuple[str, list]:
    """(the body of ``combine(T)``, the per-network terms in T's order) for a population formula.

    As ``formula.combine_population``: an arch with a non-finite term gets NaN,
    and a population transform reads its term with non-finite values zeroed.
    """
    terms = population_terms(tree, pack)
    index = {str(t): k for k, t in enumerate(terms)}
    lines, counter = ["    T = [torch.as_tensor(t, dtype=torch.float64) for t in T]",
                      "    n = T[0].shape[0]",
                      "    bad = ~torch.stack([torch.isfinite(t) for t in T]).all(dim=0)",
                      "    T = [torch.nan_to_num(t, nan=0.0, posinf=0.0, neginf=0.0) for t in T]"], [0]

    def rec(i):
        node = tree[i]
        if isinstance(node, gp.Terminal):
            return f"torch.full((n,), {node.value!r}, dtype=torch.float64)", i + 1
        prim = pack.prims[node.name]
        _add(needs.prims, prim.name)
        end = tree.searchSubtree(i).stop
        if prim.kind == "population":
            expr, j = f"{_py_name(prim.name)}(T[{index[str(gp.PrimitiveTree(tree[i + 1:end]))]}])", end
        else:
            args, j = [], i + 1
            for _ in range(node.arity):
                a, j = rec(j)
                args.append(a)
            expr = f"{_py_name(prim.name)}({', '.join(args)})"
        counter[0] += 1
        lines.append(f"    p{counter[0]} = {expr}  # {gp.PrimitiveTree(tree[i:end])}")
        return f"p{counter[0]}", j

    root, _ = rec(0)
    lines.append(f"    return torch.where(bad, torch.full_like({root}, float('nan')), {root})")
    return "\n".join(lines) + "\n", terms


# ---------------------------------------------------------------- the probe, trimmed


def _pass_lines(suffix: str, needs: Needs) -> list:
    """Body lines of ``statistics`` for one forward(+backward) pass, recording only what
    `needs` names for it (suffix "" the clean pass, "_n" the Gaussian-noise pass)."""
    def moments_of(stat, t):
        if stat + suffix in needs.kernels:
            return f"torch.cat([tensor_moments({t}), kernel_moments({t})])"
        return f"tensor_moments({t})"

    zdz, wdw = f"Z{suffix}*dZ{suffix}", f"W*dW{suffix}"
    need_dz = bool({f"dZ{suffix}", zdz} & (needs.samples | needs.moments))
    need_dw = bool({f"dW{suffix}", wdw} & (needs.samples | needs.moments))
    backward = need_dz or need_dw
    hook = ["shapes[name] = tuple(out.shape)"]
    for stat, t, salt in (("A", "args[0]", "input"), ("Z", "out", "output")):
        if stat + suffix in needs.samples:
            hook.append(f"got[name]['{stat}{suffix}'] = sample_activation({t}, ACT_FEATURES, SEED, '{salt}')")
        if stat + suffix in needs.moments:
            hook.append(f"got[name]['m:{stat}{suffix}'] = {moments_of(stat, t)}")
    if need_dz:
        grad = [f"got[name]['ran:dZ{suffix}'] = True"]
        if f"dZ{suffix}" in needs.samples:
            grad.append(f"got[name]['dZ{suffix}'] = sample_activation(g, ACT_FEATURES, SEED, 'output')")
        if f"dZ{suffix}" in needs.moments:
            grad.append(f"got[name]['m:dZ{suffix}'] = {moments_of('dZ', 'g')}")
        if zdz in needs.moments:  # z changed in place before its gradient came: no product moments
            grad += ["if z._version == z_version and z.shape == g.shape:",
                     f"    got[name]['m:{zdz}'] = pair_moments(z, g)"]
        hook += ["if out.requires_grad:",
                 *(["    z, z_version = out.detach(), out._version"] if zdz in needs.moments else []),
                 "",
                 "    def grad_hook(g):",
                 *[f"        {ln}" for ln in grad],
                 "    out.register_hook(grad_hook)"]
    hook_fn = "noise_hook" if suffix else "hook"
    lines = [f"def {hook_fn}(name):",
             "    def on_output(module, args, out):",
             *[f"        {ln}" if ln else "" for ln in hook],
             "    return on_output",
             f"handles = [module.register_forward_hook({hook_fn}(name)) for name, module in layers]",
             "try:",
             "    net.train()  # BatchNorm with batch statistics, as the zero-cost literature scores"]
    x = "noise" if suffix else "inputs"
    if backward:
        lines += ["    net.zero_grad(set_to_none=True)",
                  f"    logits = net({x})",
                  "    logits = logits[-1] if isinstance(logits, (tuple, list)) else logits",
                  "    (loss_fn or torch.nn.functional.cross_entropy)(logits, targets).backward()"]
    else:
        lines += ["    with torch.no_grad():",
                  f"        net({x})"]
    lines += ["finally:",
              "    net.train(was_training)",
              "    for h in handles:",
              "        h.remove()"]
    after = []
    fix = []
    if f"dZ{suffix}" in needs.samples:
        fix.append(f"got[name]['dZ{suffix}'] = sample_activation(zeros, ACT_FEATURES, SEED, 'output')")
    if f"dZ{suffix}" in needs.moments:
        fix.append(f"got[name]['m:dZ{suffix}'] = {moments_of('dZ', 'zeros')}")
    if zdz in needs.moments:
        fix.append(f"got[name]['m:{zdz}'] = tensor_moments(zeros)")
    if fix:
        after += [f"if 'ran:dZ{suffix}' not in got[name]:  # no gradient reached the output: it is zero",
                  "    zeros = torch.zeros(shapes[name], device=inputs.device)",
                  *[f"    {ln}" for ln in fix]]
    if suffix == "" and "W" in needs.samples:
        after.append("got[name]['W'] = sample_weight(module.weight, WEIGHT_ROWS, WEIGHT_COLS, SEED)")
    if suffix == "" and "W" in needs.moments:
        after.append("got[name]['m:W'] = tensor_moments(module.weight)")
    if need_dw:
        after.append("grad = torch.zeros_like(module.weight) if module.weight.grad is None else module.weight.grad")
        if f"dW{suffix}" in needs.samples:
            after.append(f"got[name]['dW{suffix}'] = sample_weight(grad, WEIGHT_ROWS, WEIGHT_COLS, SEED)")
        if f"dW{suffix}" in needs.moments:
            after.append(f"got[name]['m:dW{suffix}'] = tensor_moments(grad)")
        if wdw in needs.moments:
            after.append(f"got[name]['m:{wdw}'] = pair_moments(module.weight, grad)")
    if after:
        lines += ["for name, module in layers:",
                  "    if name in shapes:",
                  *[f"        {ln}" for ln in after]]
    if backward:
        lines.append("net.zero_grad(set_to_none=True)")
    return lines


def _statistics_code(needs: Needs) -> str:
    noise = any(s.endswith(NOISE_SUFFIX) for s in needs.stats())
    lines = ["layers = [(n, m) for n, m in net.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]",
             ("shapes, got, was_training = {}, {name: {} for name, _ in layers}, net.training"
              if needs.samples or needs.moments else "shapes, was_training = {}, net.training"),
             "",
             *_pass_lines("", needs)]
    if noise:
        lines += ["noise = torch.randn(inputs.shape, generator=torch.Generator().manual_seed(SEED + 1)).to(inputs)",
                  "", *_pass_lines(NOISE_SUFFIX, needs)]
    lines += ["ran, dev = [(n, m) for n, m in layers if n in shapes], inputs.device",
              "S = {'L': len(ran), 'seg': torch.zeros(len(ran), dtype=torch.long, device=dev),",
              "     'counts': torch.tensor([float(len(ran))], device=dev)}"]
    samples = sorted(needs.samples)
    if samples:
        scale_of = {}
        for st in samples:
            scale_of.setdefault(stat_family(st), st)
        stats = ",\n              ".join(f"{st!r}: [got[n][{st!r}][0].unsqueeze(0) for n, _ in ran]"
                                          for st in samples)
        scales = ",\n              ".join(f"{f!r}: [torch.tensor([got[n][{st!r}][1]], device=dev) for n, _ in ran]"
                                           for f, st in sorted(scale_of.items()))
        lines += [f"S['stats'] = {{{stats}}}", f"S['scale'] = {{{scales}}}"]
    if needs.moments:  # a key some layer lacks (Z*dZ after an in-place op) is left out: formula() samples
        lines += ["S['moments'] = {k: torch.stack([got[n]['m:' + k] for n, _ in ran])",
                  f"                for k in {tuple(sorted(needs.moments))!r} "
                  "if all('m:' + k in got[n] for n, _ in ran)}"]
    meta = {
        "params": "float(sum(p.numel() for p in m.parameters(recurse=False)))",
        "fan_in": "float(m.weight[0].numel())",
        "out_channels": "float(m.weight.shape[0])",
        "out_numel": "float(out_numel(shapes[n]))",
    }
    if needs.net:  # after the statistics passes, as the probe computes them
        lines += ["S['net'] = {k: torch.tensor([v], device=dev) for k, v in network_terms(net, inputs).items()}"]
    if needs.meta:
        lines.append("S['meta'] = {")
        lines += [f"    {k!r}: torch.tensor([{meta[k]} for n, m in ran], device=dev)," for k in sorted(needs.meta)]
        lines.append("}")
    lines.append("return S")
    head = ["def statistics(net, inputs, targets, loss_fn=None):",
            '    """What formula() reads, for every Conv2d/Linear layer that ran, in registration order."""']
    return "\n".join(head + [f"    {ln}" if ln else "" for ln in lines]) + "\n"


OUT_NUMEL = '''def out_numel(shape):
    """Output size per sample, computed as the probe does (sample width x scale)."""
    total = 1
    for s in shape[1:]:
        total *= int(s)
    keep = min(ACT_FEATURES, total)
    return int(keep * (total / keep))
'''

POSITIONS = '''_POSITIONS = {}  # sample positions, computed once per (shape, keep, seed, salt) and reused


def sample_positions(*key):
    if key not in _POSITIONS:
        _POSITIONS[key] = _sample_positions(*key)
    return _POSITIONS[key]
'''


def probe_code(needs: Needs) -> tuple[str, list]:
    """The probe functions the formula needs and their constants' names."""
    samples = needs.samples
    noise = any(s.endswith(NOISE_SUFFIX) for s in needs.stats())
    funcs, consts = [], ["SEED"] if samples or noise else []
    if samples:
        funcs += [_source(probe.stable_seed, doc=False), _source(probe.sample_positions, "_sample_positions", doc=False),
                  POSITIONS]
    if any(stat_family(s) != "weight" for s in samples) or "out_numel" in needs.meta:
        consts.append("ACT_FEATURES")
    if any(stat_family(s) != "weight" for s in samples):
        funcs.append(_source(probe.sample_activation))
    if any(stat_family(s) == "weight" for s in samples):
        funcs.append(_source(probe.sample_weight))
        consts += ["WEIGHT_ROWS", "WEIGHT_COLS"]
    if any("*" not in k for k in needs.moments) or any("*" in k and k.startswith("Z") for k in needs.moments):
        funcs.append(_source(probe.tensor_moments))  # also the Z*dZ of a layer whose output got no gradient
    if needs.kernels:
        funcs.append(_source(probe.kernel_moments))
    if any("*" in k for k in needs.moments):
        funcs.append(_source(probe.pair_moments))
    if "out_numel" in needs.meta:
        funcs.append(OUT_NUMEL)
    if needs.net:
        funcs.append(_source(probe.network_terms))
    return "\n\n".join(funcs), consts


# ---------------------------------------------------------------- the module


HEAD = '''r"""Zero-cost proxy discovered by gpproxy {version} (primitive pack {pack}).

Formula:  {formula}
Readable: {math}
LaTeX:    {latex}

{words}

{provenance}

{probe}
"""
import torch

NAME, FORMULA = {name!r}, {formula!r}
{constants}


{probe_src}

{stats_src}

{prim_src}
'''

NET_TAIL = '''def formula(S):
    """FORMULA on statistics(...) -> (network score (1,), per-layer terms (L,) or None)."""
{formula_src}

def compute(net, inputs, targets, loss_fn=None, split_data=1, **kwargs):
    """{compute_doc}; split_data parts of the batch add up, as zero-cost-nas accumulates."""
    n, out = inputs.shape[0], None
    split_data = max(1, min(int(split_data), n))
    for sp in range(split_data):
        part = slice(sp * n // split_data, (sp + 1) * n // split_data)
        try:
            total, terms = formula(statistics(net, inputs[part], targets[part], loss_fn))
        except MemoryError as e:  # zero-cost-nas and NASLib retry on RuntimeError("out of memory")
            raise RuntimeError(f"out of memory: {{e}}") from e
        out = {terms} if out is None else [a + b for a, b in zip(out, {terms})]
    return out


def score(net, inputs, targets, loss_fn=None):
    """The proxy score of `net` on this minibatch (higher = predicted better)."""
    return float(formula(statistics(net, inputs, targets, loss_fn))[0][0])


def register(measure, name=None):
    """Add compute() to zero-cost-nas's / NASLib's registry as `name` (default NAME); idempotent."""
    registry = getattr(measure, "__globals__", {{}}).get("_measure_impls")
    if isinstance(registry, dict):
        registry.pop(name or NAME, None)
    return measure(name or NAME, bn=True)(compute)
'''



POPULATION_TAIL = '''{formula_src}
def combine(T):
    """FORMULA's population-level combination: T[k] holds term k of every net (one minibatch)."""
{combine_src}

def terms(net, inputs, targets, loss_fn=None):
    """The per-network terms of FORMULA for `net`: what score_population combines across nets."""
    S = statistics(net, inputs, targets, loss_fn)
    return [{term_calls}]


def score_population(nets, inputs, targets, loss_fn=None):
    """Scores of `nets` scored together on one minibatch (higher = predicted better).

    Population-level: a net's score depends on the other nets passed with it."""
    T = [torch.tensor(column, dtype=torch.float64) for column in zip(*[terms(net, inputs, targets, loss_fn) for net in nets])]
    return [float(v) for v in combine(T)]


def score(net, inputs, targets, loss_fn=None):
    """Not defined for one net: this proxy ranks nets against each other."""
    raise TypeError(f"{{NAME}} is a population-level proxy (log-ranks across the nets scored together): "
                    "use score_population(nets, inputs, targets)")
'''


def minibatch_words(batch, input_spec, seed, resolution, every_dataset: bool = False) -> str:
    """The minibatch a formula's numbers were measured with, in words for Provenance.protocol: an input file's
    path stays out (only its kind: noise, cifar10, npz, ...)."""
    size = ("each dataset at its own input size" if resolution is None else
            f"{resolution}x{resolution} inputs" + (" on every dataset" if every_dataset else ""))
    return f"batch {batch}, {str(input_spec).split(':')[0]} input, init seed {seed}, {size}"


def measure_name(formula: str) -> str:
    """Default measure name: derived from the formula, so two exports never collide by file name."""
    return "gpproxy_" + hashlib.sha1(formula.encode()).hexdigest()[:10]


def export_zoo(name: str, output, export_name: str | None = None) -> Path:
    """Write the zoo entry ``zoo:NAME`` as a standalone module, its measured report in the docstring."""
    from . import zoo

    e = zoo.entry(name)
    rows = tuple(HeldOut(column, "report archs of experiments/transfer.py", "accuracy", m["kendall"],
                         m["spearman"], m.get("n")) for column, m in e.measured.items())
    p = e.protocol
    words = minibatch_words(p.get("batch", "?"), p.get("input", "?"), p.get("seed", 0), p.get("resolution"),
                            every_dataset=True)
    provenance = Provenance(run=e.label, config=e.source, correlation="kendall", heldout=rows, protocol=words)
    cfg = ProbeConfig(sample_seed=int(e.protocol.get("seed", 0)))
    return export_formula(e.formula, output, e.pack, probe_cfg=cfg, provenance=provenance, name=export_name)


def export_formula(formula: str, output, pack_name: str = "default", probe_cfg: ProbeConfig | None = None,
                   provenance: Provenance | None = None, name: str | None = None) -> Path:
    """Write `formula` as a standalone torch module at `output` (see the module docstring)."""
    pack = load_pack(pack_name)
    tree = parse_formula(formula, pack)
    probe_cfg = probe_cfg or ProbeConfig()
    population = is_population(tree)
    if population:
        needs, per_layer = Needs(), False
        combine_src, terms = population_code(tree, pack, needs)
        code = "".join(f'def term_{k}(S):\n    """{t}"""\n' + formula_code(t, pack, probe_cfg.moments, needs)[0]
                       + "\n\n" for k, t in enumerate(terms))
    else:
        code, per_layer, needs = formula_code(tree, pack, probe_cfg.moments)
    output = Path(output)
    module = re.sub(r"\W", "_", output.stem)
    prims = [pack.prims[n] for n in needs.prims]
    prim_src = "".join(_source(p.fn, _py_name(p.name), doc=False) + "\n\n" for p in prims)
    prim_src += "".join(_source(pack.prims[n].exact, _exact_name(n)) + "\n\n" for n in needs.exact)
    probe_src, consts = probe_code(needs)
    values = {"SEED": probe_cfg.sample_seed, "ACT_FEATURES": probe_cfg.act_features,
              "WEIGHT_ROWS": probe_cfg.weight_rows, "WEIGHT_COLS": probe_cfg.weight_cols}
    used = sorted(needs.stats())
    words = ["Terms:"] + [f"  {s}: {STAT_WORDS[s.removesuffix(NOISE_SUFFIX)]}"
                          + (" (second pass, Gaussian-noise input)" if s.endswith(NOISE_SUFFIX) else "")
                          for s in used]
    words += [f"  {m}: {META_WORDS.get(m, 'a per-layer number of the probe')}" for m in sorted(needs.meta)]
    words += [f"  {m}: {NET_WORDS[m]}" for m in sorted(needs.net)]
    words += [f"  {p.name}: {prim_words(p)}" for p in
              [pack.prims[n] for n in dict.fromkeys(needs.prims + needs.exact)]]
    if needs.exact:
        words.append("  (a reduction of a statistic itself is exact, from moments of the full tensor)")
    grads = any(x.removesuffix(NOISE_SUFFIX) in ("dW", "dZ") for x in needs.stats())
    passes = ("One forward+backward pass" if grads else "One forward pass") + (
        " and one on Gaussian noise" if any(x.endswith(NOISE_SUFFIX) for x in needs.stats()) else "") + (
        " plus one forward+backward for the whole-network terms" if needs.net else "")
    additive = bool(per_layer and pack.prims[tree[0].name].additive)
    name = name or measure_name(str(tree))
    if not re.fullmatch(r"[A-Za-z_][\w.-]{0,80}", name):
        raise GpproxyError(f"measure name {str(name)[:60]!r}: a letter or '_' first, then letters, digits, '_', '.', '-'")
    use = ("Use: score_population(nets, inputs, targets) -> list of floats (higher = better). "
           "Population-level: a net's score depends on the nets scored with it, so there is no "
           "per-net score() / compute() for zero-cost-nas or NASLib; terms(net, ...) gives one net's terms. "
           if population else
           "Use: score(net, inputs, targets) -> float (higher = better); compute(), register(measure): "
           "zero-cost-nas / NASLib. ")
    text = (HEAD + (POPULATION_TAIL if population else NET_TAIL)).format(
        version=__version__, pack=safe_text(pack.name), formula=str(tree), math=to_math(tree, pack),
        latex=to_math(tree, pack, latex=True), words="\n".join(words),
        provenance=(provenance or Provenance()).render(),
        probe=textwrap.fill(f"{use}{passes} per net, BatchNorm in train mode. Imports only torch.", 100,
                            break_on_hyphens=False),
        module=module, name=name,
        constants=f"{', '.join(consts)} = {', '.join(repr(values[c]) for c in consts)}" if consts else "",
        probe_src=probe_src.rstrip() + "\n",
        stats_src=_statistics_code(needs), prim_src=prim_src.rstrip() + "\n\n", formula_src=code,
        # per-layer terms are the measure's output only where they add up to the score
        compute_doc="Per-layer terms whose sum is the score" if additive else "[score] as a one-element list",
        terms="list(terms)" if additive else "[total[0]]",
        combine_src=combine_src if population else "",
        term_calls=", ".join(f"float(term_{k}(S)[0][0])" for k in range(len(terms))) if population else "")
    compile(text, str(output), "exec")  # a generated module that does not compile is our bug
    output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(output, text)  # -o replaces its file whole: a killed export leaves the old one
    return output
