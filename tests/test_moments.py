"""Exact full-tensor moments: probe, cache, formulas, and caches from before them."""
import json

import pytest
import torch

from gpproxy.cache import CacheSpec, build_cache, load_input, open_cache
from gpproxy.errors import GpproxyError
from gpproxy.formula import FormulaEval, parse_formula
from gpproxy.pack import Pack, Weight, load_pack
from gpproxy.probe import ProbeConfig, kernel_moments, probe, probed_layers
from gpproxy.spaces import get_space
from gpproxy.statset import load_statset

SPEC = CacheSpec(batch=4, probe=ProbeConfig(act_features=16, weight_rows=8, weight_cols=16))
ARCHS = [get_space("nb201").all_archs()[i] for i in (5, 2024)]


def quiet(msg):
    pass


def _expected(t):
    d = t.detach().double()
    return torch.tensor([d.sum(), d.abs().sum(), (d * d).sum(), d.numel()], dtype=torch.float64)


def test_moments_equal_full_tensor_sums():
    """A real NB201 layer: every statistic's moments are torch's full-tensor sums."""
    space = get_space("nb201")
    torch.manual_seed(0)
    net = space.build(ARCHS[1], 10)
    name, module = probed_layers(net)[5]
    full = {"A": [], "Z": [], "dZ": [], "dW": []}  # [clean pass, noise pass]

    def keep(m, args, out):
        full["A"].append(args[0].detach().clone())
        full["Z"].append(out.detach().clone())
        out.register_hook(lambda g: full["dZ"].append(g.clone()))

    module.register_forward_hook(keep)
    module.weight.register_hook(lambda g: full["dW"].append(g.clone()))
    full["W"] = [module.weight.detach().clone()]
    x, y, _ = load_input(SPEC)
    cfg = ProbeConfig(act_features=16, weight_rows=8, weight_cols=16, noise_pass=True)
    layer = next(r for r in probe(net, x, y, cfg) if r.name == name)
    # the noise pass merges, not replaces; plus the products W*dW, Z*dZ, Z_n*dZ_n, W*dW_n
    assert set(layer.moments) == set(cfg.stat_names()) | set(cfg.pair_names())
    assert len(cfg.pair_names()) == 4
    assert set(layer.stats) == set(cfg.stat_names())  # LayerRecord.stats: {stat: (sample, scale)} only
    for stat, tensors in full.items():
        for suffix, t in zip(("", "_n"), tensors):
            got, want = layer.moments[stat + suffix], _expected(t)
            # activations append [logdet, hamming] of the full tensor (kernel_moments)
            assert got.dtype == torch.float64 and got.shape == ((4,) if stat in ("W", "dW") else (6,))
            if stat not in ("W", "dW"):
                assert torch.allclose(got[4:], kernel_moments(t), rtol=1e-6), stat + suffix
                got = got[:4]
            # float32 accumulation: ~1e-7 of sum |x| (a signed sum may cancel)
            assert torch.allclose(got[1:], want[1:], rtol=1e-6, atol=0), stat + suffix
            assert abs(got[0] - want[0]) <= 1e-6 * want[1], stat + suffix
    assert len(full["dZ"]) == 2 and len(full["A"]) == 2
    products = {"W*dW": full["W"][0] * full["dW"][0], "W*dW_n": full["W"][0] * full["dW"][1],
                "Z*dZ": full["Z"][0] * full["dZ"][0], "Z_n*dZ_n": full["Z"][1] * full["dZ"][1]}
    for key, t in products.items():
        got, want = layer.moments[key], _expected(t.double())
        assert got.dtype == torch.float64 and got.shape == (4,)
        assert torch.allclose(got[1:], want[1:], rtol=1e-5, atol=0), key
        assert abs(got[0] - want[0]) <= 1e-5 * want[1], key
    assert layer.moments["Z"][3] > layer.stats["Z"][0].numel()  # full, not the sample


def test_moments_off():
    torch.manual_seed(0)
    net = get_space("nb201").build(ARCHS[0], 10)
    x, y, _ = load_input(SPEC)
    cfg = ProbeConfig(act_features=16, weight_rows=8, weight_cols=16, moments=False)
    assert all(r.moments == {} for r in probe(net, x, y, cfg))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return build_cache(tmp_path_factory.mktemp("m") / "c", SPEC, ARCHS, log=quiet)


def _true_l2_norm(arch):
    torch.manual_seed(SPEC.seed)
    net = get_space("nb201").build(arch, 10)
    return sum(float(m.weight.detach().double().norm()) for _, m in probed_layers(net))


def _score(formula, S):
    pack = load_pack("default")
    return FormulaEval(pack)(parse_formula(formula, pack), S)


def test_l2_norm_from_cache_is_exact(cache):
    """sum_layers(frob(W)) from an fp16, 8x16-sampled cache equals the true l2 norm."""
    S = load_statset(cache)
    assert set(S.moments) == set(SPEC.probe.stat_names()) | {"W*dW", "Z*dZ"}
    assert S.moments["W"].shape == (S.n_layers, 4)
    got = _score("sum_layers(frob(W))", S)
    want = torch.tensor([_true_l2_norm(a) for a in ARCHS], dtype=torch.float32)
    assert torch.allclose(got, want, rtol=1e-6, atol=0), (got, want)
    # The same number through a non-terminal argument still takes the sample:
    # an estimate, visibly off at this sampling.
    sampled = _score("sum_layers(frob(abs(W)))", S)
    assert not torch.allclose(sampled, want, rtol=1e-3)


def _true_snip_plain(arch):
    """(sum |W * dW|, sum W * dW) over all conv/linear weights, from the full tensors.

    Computed as the cache builder runs the net (channels_last, one thread):
    NCHW gradients differ from those by ~3e-5 relative, which is not the point here.
    """
    torch.manual_seed(SPEC.seed)
    net = get_space("nb201").build(arch, 10).to(memory_format=torch.channels_last)
    net.train()
    x, y, _ = load_input(SPEC)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        logits = net(x.contiguous(memory_format=torch.channels_last))
        if isinstance(logits, (tuple, list)):
            logits = logits[-1]
        torch.nn.functional.cross_entropy(logits, y).backward()
    finally:
        torch.set_num_threads(before)
    prods = [(m.weight.detach().double() * m.weight.grad.double()) for _, m in probed_layers(net)]
    return sum(float(p.abs().sum()) for p in prods), sum(float(p.sum()) for p in prods)


def test_snip_and_plain_from_cache_are_exact(cache):
    """snip and plain from an fp16, 8x16-sampled cache equal their full-tensor values."""
    S = load_statset(cache)
    assert S.moments["W*dW"].shape == (S.n_layers, 4)
    true = [_true_snip_plain(a) for a in ARCHS]
    snip = _score("sum_layers(l1(mul(W, dW)))", S)
    assert torch.allclose(snip, torch.tensor([t[0] for t in true]), rtol=1e-5, atol=0), (snip, true)
    for order in ("mul(W, dW)", "mul(dW, W)"):
        plain = _score(f"sum_layers(sum({order}))", S)
        for got, (l1, want) in zip(plain.tolist(), true):
            assert abs(got - want) <= 1e-5 * l1, (order, got, want)
    # Only W and dW loaded: the product moments come along.
    assert "W*dW" in load_statset(cache, stats=["W", "dW"]).moments
    assert "W*dW" not in load_statset(cache, stats=["W"]).moments
    # A reduction of a product of statistics that are not a pair takes the sample.
    S_none = load_statset(cache)
    S_none.moments = {}
    assert torch.equal(_score("sum_layers(l1(mul(W, W)))", S),
                       _score("sum_layers(l1(mul(W, W)))", S_none))
    sampled = _score("sum_layers(l1(mul(W, dW)))", S_none)
    assert not torch.allclose(sampled, snip, rtol=1e-3)


def _make_old_style(root):
    """Strip what this change added: cache.json's probe.moments and the layer tables' moments."""
    manifest = json.loads((root / "cache.json").read_text())
    del manifest["spec"]["probe"]["moments"]
    (root / "cache.json").write_text(json.dumps(manifest))
    for path in (root / "stats").glob("*.json"):
        table = json.loads(path.read_text())
        for layer in table["layers"]:
            del layer["moments"]
        path.write_text(json.dumps(table))


def test_old_cache_loads_samples_and_refuses_moments(tmp_path):
    new = build_cache(tmp_path / "c", SPEC, ARCHS, log=quiet)
    S_new = load_statset(new)
    _make_old_style(tmp_path / "c")
    old = open_cache(tmp_path / "c")
    assert old.spec.probe.moments is False
    S_old = load_statset(old)
    assert S_old.moments == {}
    # Falls back to the sampled estimate: the same numbers as the new cache
    # evaluated without its moments.
    S_new.moments = {}
    formula = "add(sum_layers(frob(W)), mean_layers(mean(dZ)))"
    assert torch.equal(_score(formula, S_old), _score(formula, S_new))
    extra = get_space("nb201").all_archs()[9]
    with pytest.raises(GpproxyError, match=r"probe\.moments=False, not True") as e:
        build_cache(tmp_path / "c", SPEC, ARCHS + [extra], log=quiet)
    assert len(str(e.value).splitlines()) == 1
    # Completing it the old way still works and adds no moments.
    old_spec = CacheSpec(batch=SPEC.batch, probe=ProbeConfig(**{**SPEC.probe.to_dict(), "moments": False}))
    c = build_cache(tmp_path / "c", old_spec, ARCHS + [extra], log=quiet)
    table, _ = c.record(c.archs()[-1])
    assert all("moments" not in layer for layer in table["layers"])
    assert load_statset(c).moments == {}


def test_exact_functions_are_validated():
    pack = Pack(name="t", stats={"W": Weight})

    def exact_bad(m):
        return m[:, 0] / m[:, 2]  # 0/0 on all-zero moments

    with pytest.raises(GpproxyError, match="exact function of 'r1'.*non-finite.*zeros"):
        pack.reduce("r1", exact=exact_bad)(lambda x, scale: x.sum(dim=(1, 2)))

    def exact_shape(m):
        return m

    with pytest.raises(GpproxyError, match="shape"):
        pack.reduce("r2", exact=exact_shape)(lambda x, scale: x.sum(dim=(1, 2)))
    with pytest.raises(GpproxyError, match="named def"):
        pack.reduce("r3", exact=lambda m: m[:, 0])(lambda x, scale: x.sum(dim=(1, 2)))


def _full_activations(arch):
    """Full A and Z of every probed layer of `arch`, run as the cache builder runs it."""
    torch.manual_seed(SPEC.seed)
    net = get_space("nb201").build(arch, 10).to(memory_format=torch.channels_last)
    net.train()
    full = []
    hooks = [m.register_forward_hook(lambda m, args, out: full.append((args[0].detach().clone(),
                                                                        out.detach().clone())))
             for _, m in probed_layers(net)]
    x, y, _ = load_input(SPEC)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        net(x.contiguous(memory_format=torch.channels_last))
    finally:
        torch.set_num_threads(before)
        for h in hooks:
            h.remove()
    return full


def test_activation_kernels_from_cache_are_exact(cache):
    """hamming(A) and logdet(Z) of a 16-feature sample equal the pack's own
    reductions of the FULL activations; weights have no kernels (sample used)."""
    pack = load_pack("default")
    S = load_statset(cache)
    assert S.moments["A"].shape == (S.n_layers, 6) and S.moments["W"].shape == (S.n_layers, 4)
    want_h, want_l = [], []
    for arch in ARCHS:
        full = _full_activations(arch)
        want_h.append(sum(float(pack.prims["hamming"].fn(a.reshape(1, a.shape[0], -1), None)) for a, _ in full))
        want_l.append(sum(float(pack.prims["logdet"].fn(z.reshape(1, z.shape[0], -1), None)) for _, z in full))
    got_h = _score("sum_layers(hamming(A))", S)
    got_l = _score("sum_layers(logdet(Z))", S)
    assert torch.allclose(got_h, torch.tensor(want_h), rtol=1e-4, atol=1e-3), (got_h, want_h)
    assert torch.allclose(got_l, torch.tensor(want_l), rtol=1e-4, atol=1e-3), (got_l, want_l)
    # The sample's estimate is visibly different at this sampling...
    S_none = load_statset(cache)
    S_none.moments = {}
    assert not torch.allclose(_score("sum_layers(hamming(A))", S_none), got_h, rtol=1e-3)
    # ...weights and caches whose activation moments predate the kernels use the sample.
    assert torch.equal(_score("sum_layers(hamming(W))", S), _score("sum_layers(hamming(W))", S_none))
    S_old = load_statset(cache)
    S_old.moments = {k: v[:, :4] for k, v in S_old.moments.items()}
    assert torch.equal(_score("sum_layers(hamming(A))", S_old), _score("sum_layers(hamming(A))", S_none))
    assert torch.allclose(_score("sum_layers(frob(A))", S_old), _score("sum_layers(frob(A))", S))


def test_exact_cols_are_checked():
    pack = Pack(name="t", stats={"W": Weight})

    def exact_k(m):
        return m[:, 5]

    with pytest.raises(GpproxyError, match="exact_cols must be 4 or 6"):
        pack.reduce("r", exact=exact_k, exact_cols=5)(lambda x, scale: x.sum(dim=(1, 2)))
    with pytest.raises(GpproxyError, match="exact function of 'r2' fails"):  # reads column 5 of 4
        pack.reduce("r2", exact=exact_k)(lambda x, scale: x.sum(dim=(1, 2)))
    pack.reduce("r3", exact=exact_k, exact_cols=6)(lambda x, scale: x.sum(dim=(1, 2)))
