"""The transfer pack (primitives/transfer.py): hand-checked values of its new
primitives, the layer order they rely on, chunking invariance, parse/render,
exports equal to the engine, and a short evolution."""
import math
import random

import numpy as np
import pytest
import torch
from deap import gp

from gpproxy.formula import FormulaEval, canonical, parse_formula, to_math
from gpproxy.pack import Net, load_pack
from tests.conftest import import_file

NEW_REDUCE = ("eig_entropy", "eff_rank", "top_eig")
NEW_AGGREGATE = ("last_minus_first", "depth_slope", "min_layers", "std_layers")


@pytest.fixture(scope="module")
def pack():
    return load_pack("transfer")


def _orthonormal_rows(rows, cols, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(cols, cols, generator=gen, dtype=torch.float64))
    return q[:rows].float()


def _rank_one(rows, cols, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.outer(torch.randn(rows, generator=gen), torch.randn(cols, generator=gen))


# ---------------------------------------------------------------- the pack


def test_transfer_extends_the_default_pack_without_changing_it(pack):
    default = load_pack("default")
    assert pack.name == "transfer" and default.name == "default"
    for name, prim in default.prims.items():
        assert pack.prims[name] is prim  # shared, not re-registered
    assert set(pack.prims) - set(default.prims) == set(NEW_REDUCE + NEW_AGGREGATE)
    assert not set(NEW_REDUCE + NEW_AGGREGATE) & set(default.prims)
    assert pack.stats == default.stats and pack.layer_terminals == default.layer_terminals
    assert pack.constants == default.constants
    assert pack.seeds.items() >= default.seeds.items()
    assert list(pack.seeds)[:2] == ["az_expressivity_like", "az_progressivity_like"]
    assert "az_expressivity_like" not in default.seeds


def test_new_primitives_have_docs_math_and_latex(pack):
    from gpproxy.export import prim_words

    for name in NEW_REDUCE + NEW_AGGREGATE:
        prim = pack.prims[name]
        assert prim.fn.__doc__ and prim_words(prim) == prim.fn.__doc__.strip().splitlines()[0]
        assert "{0}" in prim.math and "{0}" in prim.latex
        assert prim.exact is None and not prim.additive and not prim.product


def test_seeds_parse_and_render(pack):
    for formula in pack.seeds.values():
        tree = parse_formula(formula, pack)
        assert str(tree) == formula
        assert to_math(tree, pack) and to_math(tree, pack, latex=True)


def test_random_trees_with_new_names_round_trip(pack):
    pset = pack.pset()
    random.seed(7)
    seen = set()
    for _ in range(400):
        tree = gp.PrimitiveTree(gp.genHalfAndHalf(pset, 1, 5, type_=Net))
        text = str(tree)
        assert str(parse_formula(text, pack)) == text
        seen |= {n.name for n in tree if isinstance(n, gp.Primitive)}
    assert set(NEW_REDUCE + NEW_AGGREGATE) <= seen
    text = "add(last_minus_first(eig_entropy(A)), mul(depth_slope(eff_rank(W)), std_layers(top_eig(dZ))))"
    assert canonical(text, pack) == text
    assert "H\\left(" in to_math(parse_formula(text, pack), pack, latex=True)
    with pytest.raises(Exception, match="unknown primitive"):
        parse_formula(text, load_pack("default"))


def test_config_names_the_pack(tiny_table, tiny_cache):
    from tests.conftest import tiny_config

    assert tiny_config(tiny_table, tiny_cache, pack="transfer").search.pack == "transfer"


# ---------------------------------------------------------------- spectral reductions, by hand


def test_eig_entropy_by_hand(pack):
    fn, one = pack.prims["eig_entropy"].fn, torch.ones(1)
    for rows in (1, 3, 5, 8):
        got = fn(_orthonormal_rows(rows, 8).unsqueeze(0), one)
        assert got.item() == pytest.approx(math.log(rows), abs=1e-5)  # flat spectrum
    assert fn(_rank_one(5, 8).unsqueeze(0), one).item() == pytest.approx(0.0, abs=1e-6)
    # two equal eigenvalues out of four: log 2; scale-free; all-zero layer: 0
    half = torch.zeros(4, 6)
    half[0, 0], half[1, 1] = 3.0, 3.0
    assert fn(half.unsqueeze(0), one).item() == pytest.approx(math.log(2), abs=1e-6)
    assert fn(1e-20 * half.unsqueeze(0), one).item() == pytest.approx(math.log(2), abs=1e-6)
    assert fn(1e15 * half.unsqueeze(0), one).item() == pytest.approx(math.log(2), abs=1e-6)
    assert fn(torch.zeros(2, 4, 6), one).tolist() == [0.0, 0.0]
    # batched: each matrix alone
    x = torch.stack([_orthonormal_rows(5, 8), _rank_one(5, 8), torch.randn(5, 8)])
    alone = torch.cat([fn(m.unsqueeze(0), one) for m in x])
    assert torch.allclose(fn(x, torch.ones(3)), alone, atol=1e-6)


def test_eff_rank_and_top_eig_by_hand(pack):
    eff, top, one = pack.prims["eff_rank"].fn, pack.prims["top_eig"].fn, torch.ones(1)
    ortho, rank1 = _orthonormal_rows(5, 8).unsqueeze(0), _rank_one(5, 8).unsqueeze(0)
    assert eff(ortho, one).item() == pytest.approx(1.0, abs=1e-5)
    assert eff(rank1, one).item() == pytest.approx(1 / 5, abs=1e-5)
    assert top(ortho, one).item() == pytest.approx(1 / 5, abs=1e-5)
    assert top(rank1, one).item() == pytest.approx(1.0, abs=1e-5)
    # eigenvalues 4, 1 (rows 2 and 1 of a diagonal): participation 25/17 over 2 rows, top share 4/5
    d = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).unsqueeze(0)
    assert eff(d, one).item() == pytest.approx(25 / 17 / 2, rel=1e-5)
    assert top(d, one).item() == pytest.approx(4 / 5, rel=1e-5)
    z = torch.zeros(1, 4, 6)
    assert eff(z, one).item() == 0.0 and top(z, one).item() == 0.0


# ---------------------------------------------------------------- aggregations, by hand


def test_layer_order_aggregations_by_hand(pack):
    p = pack.prims
    # arch 0: layers 1, 2, 4; arch 1: one layer 10; arch 2: layers 3, 5
    v = torch.tensor([1.0, 2.0, 4.0, 10.0, 3.0, 5.0])
    seg = torch.tensor([0, 0, 0, 1, 2, 2])
    counts = torch.tensor([3.0, 1.0, 2.0])
    assert p["last_minus_first"].fn(v, seg, counts).tolist() == [3.0, 0.0, 2.0]
    # depths 0, 1/2, 1 -> slope 3 (least squares); one layer -> 0; two layers -> the difference
    assert p["depth_slope"].fn(v, seg, counts).tolist() == pytest.approx([3.0, 0.0, 2.0])
    assert p["min_layers"].fn(v, seg, counts).tolist() == [1.0, 10.0, 3.0]
    assert p["std_layers"].fn(v, seg, counts).tolist() == pytest.approx([math.sqrt(14 / 9), 0.0, 1.0])
    # an exported module: one net, seg all zeros
    one = torch.zeros(3, dtype=torch.long)
    assert p["last_minus_first"].fn(v[:3], one, torch.tensor([3.0])).tolist() == [3.0]
    assert p["depth_slope"].fn(torch.tensor([5.0, 3.0, 1.0, -1.0]), torch.zeros(4, dtype=torch.long),
                               torch.tensor([4.0])).tolist() == pytest.approx([-6.0])
    # order matters for the order-aware ones only
    rev = torch.tensor([4.0, 2.0, 1.0, 10.0, 5.0, 3.0])
    assert p["last_minus_first"].fn(rev, seg, counts).tolist() == [-3.0, 0.0, -2.0]
    assert p["std_layers"].fn(rev, seg, counts).tolist() == pytest.approx(p["std_layers"].fn(v, seg, counts).tolist())


def test_aggregations_stay_finite_on_huge_values(pack):
    v = torch.tensor([1e30, -1e30, 1e30, 5.0])
    seg = torch.tensor([0, 0, 0, 1])
    counts = torch.tensor([3.0, 1.0])
    for name in NEW_AGGREGATE:
        out = pack.prims[name].fn(v, seg, counts)
        assert out.shape == (2,) and torch.isfinite(out).all() and out.dtype == counts.dtype, name


# ---------------------------------------------------------------- layer order in caches and exports


def test_layer_order_is_the_probe_order_and_ends_where_the_forward_pass_does(tiny_cache):
    """The order the aggregations read: a StatSet numbers each arch's layers
    contiguously in its cache records' order; that is the probe's registration
    order, whose first and last layers are the first and last to run (NB201:
    stem conv, classifier). Inside, NB201 runs a residual block's downsample
    before its convs: registration order is not the full forward order."""
    from gpproxy.cache import open_cache
    from gpproxy.probe import probed_layers
    from gpproxy.spaces import get_space
    from gpproxy.statset import load_statset

    cache = open_cache(tiny_cache)
    archs = cache.archs()[:5]
    S = load_statset(cache, archs)
    seg = S.arch_of_layer.tolist()
    assert seg == sorted(seg) and S.layer_counts.tolist() == [float(seg.count(i)) for i in range(len(archs))]
    space = get_space("nb201")
    for a in archs:
        names = [r.name for r in cache.layers(a)]
        net = space.build(a, 10)
        fired = []
        hooks = [m.register_forward_hook(lambda mod, i, o, n=n: fired.append(n)) for n, m in probed_layers(net)]
        with torch.no_grad():
            net(torch.randn(2, 3, 32, 32))
        for h in hooks:
            h.remove()
        ran = set(fired)
        assert names == [n for n, _ in probed_layers(net) if n in ran]  # registration order
        assert sorted(names) == sorted(ran)
        assert names[0] == fired[0] and names[-1] == fired[-1]  # same ends as the forward pass
        assert names[0] == "stem.0" and isinstance(dict(net.named_modules())[names[-1]], torch.nn.Linear)
    # per-layer meta in the StatSet follows the same order (the classifier is last)
    last = torch.tensor([i for i in range(len(seg)) if i + 1 == len(seg) or seg[i + 1] != seg[i]])
    assert (S.meta["out_numel"][last] == 10).all()


def test_chunking_invariance_on_the_tiny_cache(pack, tiny_cache):
    from gpproxy.cache import open_cache
    from gpproxy.evaluator import score_on_cache
    from gpproxy.statset import load_statset

    cache = open_cache(tiny_cache)
    archs = cache.archs()[:9]
    formulas = ["sum_layers(eig_entropy(A))", "last_minus_first(eig_entropy(A))", "depth_slope(top_eig(Z))",
                "std_layers(eff_rank(W))", "min_layers(logdet(A))", "last_minus_first(frob(dW))",
                "depth_slope(mul(params, eig_entropy(dZ)))", "std_layers(hamming(A))"]
    run = FormulaEval(pack)
    S = load_statset(cache, archs)
    with torch.no_grad():
        whole = {f: run(parse_formula(f, pack), S) for f in formulas}
        for f in formulas:
            tree = parse_formula(f, pack)
            alone = torch.cat([run(tree, load_statset(cache, [a])) for a in archs])
            assert torch.isfinite(whole[f]).all() and whole[f].std() > 0, f
            assert torch.allclose(whole[f], alone, rtol=1e-5, atol=1e-6), f
        for chunk in (1, 2, 4):
            got = score_on_cache(cache, archs, formulas, pack, chunk_archs=chunk)
            for f in formulas:
                assert np.allclose(got[f], whole[f].double().numpy(), rtol=1e-5, atol=1e-6), (chunk, f)


# ---------------------------------------------------------------- exports


EXPORTED = [
    "add(sum_layers(eig_entropy(A)), last_minus_first(eig_entropy(A)))",
    "last_minus_first(eig_entropy(A))",
    "depth_slope(top_eig(Z))",
    "add(std_layers(eff_rank(dW)), min_layers(logdet(A)))",
]


@pytest.mark.parametrize("formula", EXPORTED)
def test_export_equals_engine(formula, pack, exact_cache, tmp_path, one_torch_thread):
    from gpproxy.cache import load_input
    from gpproxy.export import export_formula
    from gpproxy.spaces import get_space
    from gpproxy.statset import load_statset

    cache, spec, archs = exact_cache
    out = export_formula(formula, tmp_path / "proxy_t.py", pack_name="transfer", probe_cfg=spec.probe)
    src = out.read_text()
    assert all("torch" in ln for ln in src.splitlines() if ln.startswith(("import ", "from ")))
    assert "primitive pack transfer" in src
    for name in NEW_REDUCE + NEW_AGGREGATE:  # copied verbatim where used
        assert (f"def p_{name}(" in src) == (f"{name}(" in formula), name
    mod = import_file(out)
    engine = FormulaEval(pack)(parse_formula(formula, pack), load_statset(cache, archs))
    assert engine.std() > 0
    x, y, _ = load_input(spec)
    space = get_space("nb201")
    for arch, want in zip(archs, engine.tolist()):
        torch.manual_seed(spec.seed)
        got = mod.score(space.build(arch, 10), x, y)
        assert got == pytest.approx(want, rel=2e-3, abs=1e-4), (arch, formula)


# ---------------------------------------------------------------- evolution


def test_two_generations_with_the_transfer_pack(tiny_table, tiny_cache, tmp_path, one_torch_thread):
    from gpproxy import rundir
    from gpproxy.engine import Engine
    from tests.conftest import tiny_config

    root = tmp_path / "run"
    summary = Engine(tiny_config(tiny_table, tiny_cache, pack="transfer", generations=2, population=12),
                     root, log=lambda m: None).run()
    assert [r["generation"] for r in rundir.read_log(root)] == [0, 1, 2]
    rows = rundir.read_csv(root / "hall_of_fame.csv") + rundir.read_csv(root / "pareto.csv")
    pack = load_pack("transfer")
    for r in rows:
        assert str(parse_formula(r["formula"], pack)) == r["formula"]
    assert summary["selected"]["formula"]
