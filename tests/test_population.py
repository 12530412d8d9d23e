"""Population-level formulas (primitives/population.py): log-rank terms combined
across the archs scored together, in the parser, the evaluator, `score` and exports."""
import numpy as np
import pytest
import torch
from scipy.stats import rankdata

from gpproxy.baselines_peers import log_rank_aggregate
from gpproxy.errors import FormulaError, GpproxyError
from gpproxy.formula import FormulaEval, is_population, parse_formula, population_terms
from gpproxy.pack import Net, Pack, Pop, Weight, load_pack
from tests.conftest import import_file

TERMS = ("sum_layers(eig_entropy(A))", "last_minus_first(eig_entropy(A))", "sum_layers(params)")
AZ_LIKE = f"add(add(log_rank({TERMS[0]}), log_rank({TERMS[1]})), log_rank({TERMS[2]}))"


@pytest.fixture(scope="module")
def pack():
    return load_pack("population")


def test_log_rank_by_hand(pack):
    v = torch.tensor([3.0, 1.0, 3.0, 2.0], dtype=torch.float64)
    got = pack.prims["log_rank"].fn(v)
    assert torch.allclose(got, torch.log(torch.tensor([3.5, 1.0, 3.5, 2.0], dtype=torch.float64) / 4))
    x = torch.randn(50, dtype=torch.float64)
    assert np.allclose(pack.prims["log_rank"].fn(x).numpy(), np.log(rankdata(x.numpy()) / 50))


def test_typing(pack):
    assert pack.root is Pop and load_pack("transfer").root is Net
    assert parse_formula(AZ_LIKE, pack)[0].ret is Pop and is_population(parse_formula(AZ_LIKE, pack))
    net = parse_formula("sum_layers(l1(W))", pack)  # a Net formula stays valid, and stays per-net
    assert net[0].ret is Net and not is_population(net)
    assert [str(t) for t in population_terms(parse_formula(AZ_LIKE, pack), pack)] == list(TERMS)
    with pytest.raises(FormulaError, match="Pop"):
        parse_formula("add(log_rank(sum_layers(l1(W))), sum_layers(l1(W)))", pack)
    with pytest.raises(FormulaError, match="unknown primitive 'log_rank'"):
        parse_formula("log_rank(sum_layers(l1(W)))", load_pack("transfer"))
    with pytest.raises(FormulaError, match="population-level"):
        FormulaEval(pack)(parse_formula(AZ_LIKE, pack), None)
    # DEAP generates Pop-rooted trees, each of which prints and parses back
    for f in pack.random_formulas(20, seed=4):
        assert str(parse_formula(f, pack)) == f


def test_registration_is_validated():
    p = Pack("p", stats={"W": Weight})

    @p.unary("abs")
    def a(x):
        return x.abs()

    with pytest.raises(GpproxyError, match="only a registered unary or binary"):
        p.extend("nothing")
    with pytest.raises(GpproxyError, match="shape"):
        @p.population("first_only")
        def first_only(v):
            return v[:1]
    with pytest.raises(GpproxyError, match="non-finite"):
        @p.population("bad_log")
        def bad_log(v):
            return torch.log(v)


def test_engine_values_are_the_log_rank_aggregate_of_the_terms(pack, tiny_cache):
    from gpproxy.cache import open_cache
    from gpproxy.evaluator import score_on_cache

    cache = open_cache(tiny_cache)
    archs = cache.archs()[:12]
    for chunk in (1, 5, "auto"):  # ranks are over every arch scored, however they are chunked
        got = score_on_cache(cache, archs, {"pop": AZ_LIKE, **{t: t for t in TERMS}}, pack, chunk_archs=chunk)
        want = log_rank_aggregate([got[t] for t in TERMS])
        assert np.allclose(got["pop"], want, rtol=1e-12), chunk
    half = score_on_cache(cache, archs[:6], [AZ_LIKE], pack)[AZ_LIKE]
    assert not np.allclose(half, got["pop"][:6])  # another population, other values


def test_a_failing_term_fails_its_formula_only(tiny_cache):
    from gpproxy.cache import open_cache
    from gpproxy.evaluator import score_on_cache

    p = load_pack("population")
    cache = open_cache(tiny_cache)
    archs = cache.archs()[:5]
    bad = "add(log_rank(sum_layers(l1(W))), log_rank(sum_layers(frob(Q))))"  # Q: not in the pack
    with pytest.raises(FormulaError):
        score_on_cache(cache, archs, [bad], p)
    errors = {}
    got = score_on_cache(cache, archs, {"ok": AZ_LIKE, "const": "log_rank(2.0)"}, p, errors=errors)
    assert set(got) == {"ok", "const"} and not errors and np.ptp(got["const"]) == 0


def test_nonfinite_term_gives_nan_not_a_rank(pack):
    from gpproxy.formula import combine_population

    tree = parse_formula(AZ_LIKE, pack)
    terms = {t: torch.arange(4, dtype=torch.float64) for t in TERMS}
    terms[TERMS[1]] = torch.tensor([0.0, float("nan"), 2.0, 1.0], dtype=torch.float64)
    out = combine_population(tree, pack, terms)
    assert torch.isnan(out[1]) and torch.isfinite(out[[0, 2, 3]]).all()


def test_search_with_the_population_pack(tiny_table, tiny_cache, tmp_path, one_torch_thread):
    from gpproxy import rundir
    from gpproxy.engine import Engine
    from tests.conftest import tiny_config

    root = tmp_path / "run"
    Engine(tiny_config(tiny_table, tiny_cache, pack="population", generations=2, population=12),
           root, log=lambda m: None).run()
    rows = rundir.read_csv(root / "hall_of_fame.csv")
    pack = load_pack("population")
    assert all(str(parse_formula(r["formula"], pack)) == r["formula"] for r in rows)
    assert any(is_population(parse_formula(r["formula"], pack)) for r in rows)


def test_export_score_population_equals_engine(pack, exact_cache, tmp_path, one_torch_thread):
    from gpproxy.cache import load_input
    from gpproxy.evaluator import score_on_cache
    from gpproxy.export import export_formula
    from gpproxy.spaces import get_space

    cache, spec, archs = exact_cache
    out = export_formula(AZ_LIKE, tmp_path / "pop.py", pack_name="population", probe_cfg=spec.probe)
    src = out.read_text()
    assert "def score_population(" in src and "def p_log_rank(" in src
    mod = import_file(out)
    engine = score_on_cache(cache, archs, [AZ_LIKE], pack)[AZ_LIKE]
    x, y, _ = load_input(spec)
    space = get_space("nb201")
    nets = []
    for arch in archs:
        torch.manual_seed(spec.seed)
        nets.append(space.build(arch, 10))
    assert np.allclose(mod.score_population(nets, x, y), engine, rtol=1e-6)
    with pytest.raises(TypeError, match="score_population"):
        mod.score(nets[0], x, y)


def test_scoring_a_population_formula(pack):
    from gpproxy.scoring.proxies import per_arch, resolve_proxy

    p = resolve_proxy(AZ_LIKE, "population")
    assert p.kind == "population" and p.components == TERMS
    parts = per_arch([p])
    assert [q.name for q in parts] == list(TERMS) and all(q.kind == "formula" and q.pack == "population"
                                                           for q in parts)
    cols = [np.array([1.0, 3.0, 2.0]), np.array([2.0, 1.0, 3.0]), np.array([3.0, 2.0, 1.0])]
    assert np.allclose(p.fn(cols), log_rank_aggregate(cols))


def test_score_combines_stored_terms_within_each_arch_set(tiny_table, tmp_path, one_torch_thread):
    import json

    from gpproxy.scoring import Protocol
    from gpproxy.scoring.run import run_score, score_proxy

    prot = Protocol(batch=4, seed=0, pack="population")
    kw = dict(protocol=prot, scores_path=tmp_path / "s.json", cache_root=tmp_path / "caches", log=lambda m: None)
    rep = run_score(AZ_LIKE, str(tiny_table), target="acc", archs=8, **kw)
    assert rep["kind"] == "population" and any("population-level" in n for n in rep["notes"])
    stored = json.loads((tmp_path / "s.json").read_text())
    entries = next(iter(stored.values())).values()
    assert all(set(TERMS) <= set(e) and AZ_LIKE not in e for e in entries)  # the terms only
    s8 = score_proxy(AZ_LIKE, benchmark=str(tiny_table), target="acc", **kw)
    cols = [score_proxy(t, s8.archs, **kw).values for t in TERMS]
    assert np.allclose(s8.values, log_rank_aggregate(cols))
