import random

import pytest
import torch
from deap import gp

from gpproxy.errors import FormulaError
from gpproxy.formula import canonical, parse_formula, to_math
from gpproxy.pack import Net, load_pack


@pytest.fixture(scope="module")
def pack():
    return load_pack("default")


def test_random_trees_round_trip(pack):
    pset = pack.pset()
    random.seed(1)
    for _ in range(300):
        tree = gp.PrimitiveTree(gp.genHalfAndHalf(pset, 1, 6, type_=Net))
        text = str(tree)
        again = parse_formula(text, pack)
        assert str(again) == text
        assert [n.ret for n in again] == [n.ret for n in tree]


def test_seeds_parse_and_render(pack):
    for name, f in pack.seeds.items():
        tree = parse_formula(f, pack)
        assert str(tree) == f
        assert to_math(tree, pack) and to_math(tree, pack, latex=True)


def test_negative_and_int_constants(pack):
    assert canonical("sum_layers(mul(params, -2))", pack) == "sum_layers(mul(params, -2.0))"


@pytest.mark.parametrize("text, fragment", [
    ("__import__('os').system('touch /tmp/gpproxy_pwned')", "only calls of primitive names"),
    ("os.system('x')", "only calls of primitive names"),
    ("sum_layers(frob(W)) + 1", "not allowed"),
    ("lambda: 1", "not allowed"),
    ("sum_layers(frob(W.__class__))", "not allowed"),
    ("eval('1')", "unknown primitive"),
    ("sum_layers(frob(Q))", "unknown name"),
    ("sum_layers(frob(W, dW))", "takes 1 argument"),
    ("sum_layers(frob(params))", "frob"),
    ("frob(W)", "cannot produce a Net"),
    ("sum_layers(mul(W, A))", "Weight value"),
    ("sum_layers(frob(abs))", "needs arguments"),
    ("sum_layers(frob(W), k=1)", "keyword"),
    ("sum_layers(frob(W)", "not valid syntax"),
    ("", "empty"),
    ("abs(" * 100 + "1.0" + ")" * 100, "nests deeper"),
    ("sum_layers(abs(1e999))", "finite"),
    ("sum_layers(mul(params, 1e39))", "out of float32 range"),
    ("sum_layers(mul(params, -1e308))", "out of float32 range"),
])
def test_hostile_or_malformed_rejected(pack, text, fragment, tmp_path):
    with pytest.raises(FormulaError) as e:
        parse_formula(text, pack)
    assert fragment in str(e.value)
    assert "\n" not in str(e.value)


def test_nothing_is_executed(pack, tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FormulaError):
        parse_formula(f"__import__('pathlib').Path('{marker}').touch()", pack)
    assert not marker.exists()


def test_formula_eval_matches_per_arch_loop(pack, tiny_cache):
    """Bucketed evaluation equals evaluating each arch alone (its own StatSet)."""
    from gpproxy.cache import open_cache
    from gpproxy.formula import FormulaEval
    from gpproxy.statset import load_statset

    cache = open_cache(tiny_cache)
    archs = cache.archs()[:6]
    run = FormulaEval(pack)
    S = load_statset(cache, archs)
    for f in ["sum_layers(l1(mul(W, dW)))", "mean_layers(hamming(A))", "max_layers(std(normalize(dZ)))",
              "sum_layers(div(frob(Z), add(params, 1.0)))"]:
        tree = parse_formula(f, pack)
        together = run(tree, S)
        alone = torch.cat([run(tree, load_statset(cache, [a])) for a in archs])
        assert torch.allclose(together, alone, rtol=1e-4, atol=1e-5), f


def test_memo_keys_carry_the_type(pack, tiny_cache):
    """The same subtree text as a Net- and a Layer-typed value must not share a memo entry."""
    from gpproxy.cache import open_cache
    from gpproxy.formula import FormulaEval
    from gpproxy.statset import load_statset

    cache = open_cache(tiny_cache)
    S = load_statset(cache, cache.archs()[:6])
    run = FormulaEval(pack)
    net_typed = parse_formula("add(sum_layers(l1(W)), sign(2.0))", pack)
    layer_typed = parse_formula("sum_layers(mul(l1(W), sign(2.0)))", pack)
    memo = {}
    first = run(net_typed, S, memo)
    second = run(layer_typed, S, memo)
    assert torch.allclose(first, run(net_typed, S))
    assert torch.allclose(second, run(layer_typed, S))
