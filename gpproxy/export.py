"""Export a formula as a standalone, readable PyTorch module.

The module imports only torch. It carries verbatim copies of the probe
functions (so it samples exactly the statistics the engine cached, and takes
the same exact full-tensor moments) and of the primitives the formula uses
(with their ``exact`` twins where a reduction is applied to a statistic
itself, as ``FormulaEval`` does), and one generated function that spells the
formula out step by step. It exposes the zero-cost-nas / NASLib measure shape:

    compute(net, inputs, targets, loss_fn=None, split_data=1, **kw) -> list[Tensor]
    score(net, inputs, targets, loss_fn=None) -> float
    register(measure)    # e.g. register(foresight.pruners.measures.measure)
"""
from __future__ import annotations

import inspect
import json
import textwrap
from pathlib import Path

from deap import gp

from . import probe
from .version import __version__
from .formula import exact_stat, parse_formula, stats_used, to_math
from .pack import FAMILY_OF_TYPE, MATRIX, Layer, load_pack
from .probe import ProbeConfig

EXPORTED_PROBE_FUNCS = (probe.stable_seed, probe.sample_positions, probe.sample_activation,
                        probe.sample_weight, probe.tensor_moments, probe.kernel_moments, probe.pair_moments,
                        probe.probed_layers,
                        probe.run_pass, probe.layer_meta, probe.collect_stats)


def _source(fn, name=None) -> str:
    src = textwrap.dedent(inspect.getsource(fn))
    lines = src.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(("def ", "async def ")))
    src = "\n".join(lines[start:]) + "\n"  # decorators may span several lines
    if name and name != fn.__name__:
        src = src.replace(f"def {fn.__name__}(", f"def {name}(", 1)
    return src


def _py_name(prim_name: str) -> str:
    return f"p_{prim_name}"


def _exact_name(prim_name: str) -> str:
    return f"p_{prim_name}_exact"


def exact_prims(tree, pack, moments: bool) -> list:
    """Names of the reductions that take their exact form somewhere in `tree`."""
    if not moments:
        return []
    return list(dict.fromkeys(tree[i].name for i in range(len(tree))
                              if exact_stat(tree, i, pack) is not None))


def formula_code(tree, pack, moments: bool = True) -> tuple[str, bool]:
    """Straight-line Python for a typed tree.

    Matrix values are lists with one (1, r, c) tensor per layer; Layer values
    are (L,) tensors; Net values are (1,) tensors. With `moments`, a reduction
    of a statistic itself is computed exactly from ``S['moments']`` (as
    FormulaEval does on a cache with moments). Returns (code, root is a layer
    aggregation): then ``formula`` also returns the per-layer terms.
    """
    lines, counter, root_args = [], [0], {}

    def new():
        counter[0] += 1
        return f"t{counter[0]}"

    def rec(i):
        node = tree[i]
        if isinstance(node, gp.Terminal):
            if isinstance(node.value, float):
                n = "S['L']" if node.ret is Layer else "1"
                return f"torch.full(({n},), {node.value!r})", i + 1
            if node.ret is Layer:
                return f"S['meta'][{node.value!r}]", i + 1
            return f"S['stats'][{node.value!r}]", i + 1
        args, j = [], i + 1
        for _ in range(node.arity):
            a, j = rec(j)
            args.append(a)
        prim = pack.prims[node.name]
        fn = _py_name(prim.name)
        var = new()
        sub = str(gp.PrimitiveTree(tree[i:j]))
        if prim.kind in ("unary", "binary") and node.ret in MATRIX:
            if prim.kind == "unary":
                expr = f"[{fn}(x) for x in {args[0]}]"
            else:
                expr = f"[{fn}(x, y) for x, y in zip({args[0]}, {args[1]})]"
        elif prim.kind in ("unary", "binary"):
            expr = f"{fn}({', '.join(args)})"
        elif prim.kind == "reduce" and moments and exact_stat(tree, i, pack) is not None:
            # .float(): the engine stores the float64 result as float32 too
            key = exact_stat(tree, i, pack)
            expr = f"{_exact_name(prim.name)}(S['moments'][{key!r}]).float()"
            fam = FAMILY_OF_TYPE[node.args[0]]
            sampled = f"torch.cat([{fn}(x, s) for x, s in zip({args[0]}, S['scale'][{fam!r}])])"
            if "*" in key:  # product moments: a layer may lack them (as FormulaEval, use the sample)
                expr = f"{expr} if {key!r} in S['moments'] else {sampled}"
            elif prim.exact_cols > 4:  # kernel columns exist for activations only (as FormulaEval)
                expr = f"{expr} if S['moments'][{key!r}].shape[1] >= {prim.exact_cols} else {sampled}"
        elif prim.kind == "reduce":
            fam = FAMILY_OF_TYPE[node.args[0]]
            expr = f"torch.cat([{fn}(x, s) for x, s in zip({args[0]}, S['scale'][{fam!r}])])"
        else:
            expr = f"{fn}({args[0]}, S['seg'], S['counts'])"
        lines.append(f"    {var} = {expr}  # {sub}")
        if i == 0:
            root_args["args"] = args
        return var, j

    root, _ = rec(0)
    top = pack.prims.get(tree[0].name) if isinstance(tree[0], gp.Primitive) else None
    per_layer = top is not None and top.kind == "aggregate"
    layer_terms = root_args["args"][0] if per_layer else "None"
    ret = f"    return {root}, {layer_terms}"
    return "\n".join(lines + [ret]) + "\n", per_layer


TEMPLATE = '''r"""Zero-cost proxy discovered by gpproxy {version}.

Formula (gpproxy canonical form, primitive pack {pack!r}):

    {formula}

Readable:  {math}
LaTeX:     {latex}
{provenance}
How the statistics are taken (identical to the gpproxy cache it was found on):
one forward+backward pass (cross-entropy unless a loss_fn is given), BN in
train mode; every Conv2d/Linear layer contributes samples of its weight (W),
weight gradient (dW), input (A), output (Z) and output gradient (dZ) at fixed
positions: {probe}. With "moments", each also gives exact full-tensor
[sum, sum |x|, sum x^2, numel], used by reductions of a statistic itself.
Standalone: imports only torch. Use it as

    import {module}
    s = {module}.score(net, inputs, targets)            # one float, higher = better
    per_layer = {module}.compute(net, inputs, targets)  # zero-cost-nas / NASLib shape
    {module}.register(measure)                          # add to foresight/NASLib's registry
"""
import torch
import torch.nn.functional as F

NAME = {name!r}
FORMULA = {formula!r}
PROBE = {probe_dict!r}
FAMILY = {family!r}
PAIRS = {pairs!r}

# ---------------------------------------------------------------- statistics
# (copied verbatim from gpproxy.probe)

{probe_src}

def statistics(net, inputs, targets, loss_fn=None):
    """Per-layer samples, scales, full-tensor moments and exact layer numbers,
    as the formula reads them."""
    layers = collect_stats(net, inputs, targets, loss_fn or F.cross_entropy, PROBE["act_features"],
                           PROBE["weight_rows"], PROBE["weight_cols"], PROBE["sample_seed"],
                           PROBE["noise_pass"], moments=PROBE["moments"])
    device = inputs.device
    stats, scale = {{s: [] for s in FAMILY}}, {{f: [] for f in set(FAMILY.values())}}
    moments = {{s: [] for s in FAMILY}}
    meta = {{"params": [], "fan_in": [], "out_channels": [], "out_numel": []}}
    for name, module, rec, exact in layers:
        seen = set()
        for stat, family in FAMILY.items():
            sample, sc = rec[stat]
            stats[stat].append(sample.unsqueeze(0))
            if PROBE["moments"]:
                moments[stat].append(exact[stat])
            if family not in seen:
                scale[family].append(torch.tensor([sc], device=device))
                seen.add(family)
        for key in PAIRS:  # product moments ("W*dW", ...)
            if key in exact:
                moments.setdefault(key, []).append(exact[key])
        m = layer_meta(module)
        m["out_numel"] = int(rec["Z"][0].shape[1] * rec["Z"][1])
        for k in meta:
            meta[k].append(float(m[k]))
    n = len(layers)
    return {{"stats": stats, "scale": scale, "L": n,
            "moments": {{s: torch.stack(m) for s, m in moments.items() if m and len(m) == n}},
            "meta": {{k: torch.tensor(v, device=device) for k, v in meta.items()}},
            "seg": torch.zeros(n, dtype=torch.long, device=device),
            "counts": torch.tensor([float(n)], device=device)}}

# ---------------------------------------------------------------- primitives
# (copied verbatim from the gpproxy primitive pack {pack!r})

{prim_src}
# ---------------------------------------------------------------- the formula

def formula(S):
    """{formula}  ->  (network score (1,), per-layer terms (L,) or None)"""
{formula_src}

def compute(net, inputs, targets, loss_fn=None, split_data=1, **kwargs):
    """Per-layer terms whose sum is the score when the formula is a sum over
    layers (the zero-cost-nas / NASLib measure shape); otherwise [score]."""
    if split_data != 1:
        raise ValueError("this proxy is defined on one minibatch: use split_data=1")
    S = statistics(net, inputs, targets, loss_fn)
    with torch.no_grad():
        total, per_layer = formula(S)
    if {additive} and per_layer is not None:
        return list(per_layer)
    return [total[0]]


def score(net, inputs, targets, loss_fn=None):
    """The proxy score of `net` on this minibatch (higher = predicted better)."""
    S = statistics(net, inputs, targets, loss_fn)
    with torch.no_grad():
        total, _ = formula(S)
    return float(total[0])


def register(measure):
    """Register under NAME with a zero-cost-nas / NASLib style `measure` decorator."""
    return measure(NAME, bn=True)(compute)
'''


def export_formula(formula: str, output, pack_name: str = "default", probe_cfg: ProbeConfig | None = None,
                   provenance: str = "", name: str | None = None) -> Path:
    pack = load_pack(pack_name)
    tree = parse_formula(formula, pack)
    probe_cfg = probe_cfg or ProbeConfig()
    if any(s.endswith("_n") for s in stats_used(tree)) and not probe_cfg.noise_pass:
        probe_cfg = ProbeConfig(**{**probe_cfg.to_dict(), "noise_pass": True})
    output = Path(output)
    module = output.stem
    used = []
    for node in tree:
        if isinstance(node, gp.Primitive) and node.name not in used:
            used.append(node.name)
    prim_src = "\n\n".join(_source(pack.prims[n].fn, _py_name(n)) for n in used)
    for n in exact_prims(tree, pack, probe_cfg.moments):
        prim_src += "\n\n" + _source(pack.prims[n].exact, _exact_name(n))
    code, per_layer = formula_code(tree, pack, probe_cfg.moments)
    family = {s: FAMILY_OF_TYPE[t] for s, t in pack.stats.items()
              if probe_cfg.noise_pass or not s.endswith("_n")}
    text = TEMPLATE.format(
        version=__version__, pack=pack.name, formula=str(tree), math=to_math(tree, pack),
        latex=to_math(tree, pack, latex=True), provenance=provenance, probe=json.dumps(probe_cfg.to_dict()),
        module=module, name=name or module, probe_dict=probe_cfg.to_dict(), family=family,
        pairs=probe_cfg.pair_names(),
        probe_src="\n\n".join(_source(f) for f in EXPORTED_PROBE_FUNCS),
        prim_src=prim_src, formula_src=code,
        # per-layer terms are the measure's output only where they add up to the score
        additive=per_layer and pack.prims[tree[0].name].additive)
    compile(text, str(output), "exec")  # a generated module that does not compile is our bug
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    return output
