"""Whole-network terms (probe.network_terms, the network pack's Net terminals):
their values, the cache flag that records them, errors, searches and exports."""
import numpy as np
import pytest
import torch

from gpproxy import baselines as B
from gpproxy.errors import FormulaError, GpproxyError
from gpproxy.formula import parse_formula
from gpproxy.pack import Net, Pack, Weight, load_pack
from gpproxy.probe import NET_TERMS, ProbeConfig, network_terms
from tests.conftest import import_file

MIXED = "add(sum_layers(eff_rank(dW)), log(neg(jacov)))"
ARCHS = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|nor_conv_3x3~0|avg_pool_3x3~1|skip_connect~2|",
         "|skip_connect~0|+|skip_connect~0|nor_conv_3x3~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
         "|nor_conv_1x1~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_3x3~0|none~1|nor_conv_1x1~2|",
         "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")  # no input-output path


def _net(arch, seed=0):
    from gpproxy.spaces import get_space

    torch.manual_seed(seed)
    return get_space("nb201").build(arch, 10)


@pytest.fixture(scope="module")
def net_cache(tmp_path_factory):
    from gpproxy.cache import CacheSpec, build_cache

    spec = CacheSpec(batch=4, storage="float32", probe=ProbeConfig(act_features=16, weight_rows=8, weight_cols=16,
                                                                   net_terms=True))
    root = tmp_path_factory.mktemp("net") / "c"
    return build_cache(root, spec, list(ARCHS), log=lambda m: None), spec


def _kernel_by_hand(net, x):
    """NASWOT's kernel on the inputs of every Conv2d/Linear layer, one sample at a time."""
    codes = []
    hooks = [m.register_forward_hook(lambda m, a, o: codes.append(a[0].detach().reshape(len(x), -1) > 0))
             for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    net.train()
    with torch.no_grad():
        net(x)
    for h in hooks:
        h.remove()
    k = np.zeros((len(x), len(x)))
    for c in codes:
        c = c.numpy()
        for i in range(len(x)):
            for j in range(len(x)):
                k[i, j] += np.sum(c[i] == c[j])
    return np.linalg.slogdet(k + 1e-3 * np.eye(len(x)))[1]


def test_terms_by_hand_and_against_the_baselines(one_torch_thread):
    x = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    for arch in ARCHS[:3]:
        got = network_terms(_net(arch), x)
        assert set(got) == set(NET_TERMS)
        assert got["jacov"] == pytest.approx(B.jacov(_net(arch), x), rel=1e-9)
        assert got["naswot"] == pytest.approx(_kernel_by_hand(_net(arch), x), rel=1e-9)


def test_naswot_needs_no_relu_module(one_torch_thread):
    """NAS-Bench-Macro calls torch.relu: NASWOT's nn.ReLU hooks see nothing there, these codes do."""
    from pathlib import Path

    from gpproxy.spaces import get_space

    space = get_space(str(Path(__file__).resolve().parents[1] / "examples" / "spaces" / "nb_macro.py"))
    x = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    values = set()
    for arch in ("00000000", "12121212", "22222222"):
        torch.manual_seed(0)
        values.add(round(network_terms(space.build(arch, 10), x)["naswot"], 6))
    assert len(values) == 3


def test_a_net_without_input_output_path_is_finite_and_last(one_torch_thread):
    x = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    dead = network_terms(_net(ARCHS[3]), x)
    assert np.isnan(B.jacov(_net(ARCHS[3]), x))  # the plain baseline has no number for it
    assert all(np.isfinite(v) for v in dead.values())
    assert dead["jacov"] < min(network_terms(_net(a), x)["jacov"] for a in ARCHS[:3])


def test_a_net_whose_logits_ignore_the_input():
    class Constant(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = torch.nn.Parameter(torch.zeros(10))

        def forward(self, x):
            return self.bias.expand(x.shape[0], 10)

    got = network_terms(Constant(), torch.randn(4, 3, 8, 8))
    assert all(np.isfinite(v) for v in got.values())


def test_the_probe_statistics_do_not_change_with_net_terms(one_torch_thread):
    from gpproxy.probe import probe

    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    y = torch.randint(0, 10, (4,), generator=torch.Generator().manual_seed(2))
    cfg = ProbeConfig(act_features=16, weight_rows=8, weight_cols=16)
    plain = probe(_net(ARCHS[0]), x, y, cfg)
    with_terms = probe(_net(ARCHS[0]), x, y, ProbeConfig(**{**cfg.to_dict(), "net_terms": True}))
    for a, b in zip(plain, with_terms):
        assert all(torch.equal(a.stats[s][0], b.stats[s][0]) for s in a.stats)
        assert "net" not in a.meta and set(b.meta["net"]) == set(NET_TERMS)


def test_engine_reads_the_cached_terms(net_cache, one_torch_thread):
    from gpproxy.cache import load_input
    from gpproxy.evaluator import score_on_cache

    cache, spec = net_cache
    pack = load_pack("network")
    got = score_on_cache(cache, list(ARCHS), ["jacov", "naswot", MIXED], pack)
    x, _, _ = load_input(spec)
    # the cache ran channels_last, these nets NCHW: float32 rounding that 1/(λ + 1e-5) amplifies
    for i, arch in enumerate(ARCHS):
        want = network_terms(_net(arch, spec.seed), x)
        assert got["jacov"][i] == pytest.approx(want["jacov"], rel=1e-3)
        assert got["naswot"][i] == pytest.approx(want["naswot"], rel=1e-5)
    assert np.all(np.isfinite(got[MIXED]))


def test_a_cache_without_them_says_how_to_get_them(exact_cache):
    from gpproxy.evaluator import score_on_cache

    cache, _, archs = exact_cache
    errors = {}
    out = score_on_cache(cache, archs, ["jacov"], load_pack("network"), errors=errors)
    assert "jacov" not in out and "net_terms = true" in errors["jacov"] and "\n" not in errors["jacov"]
    with pytest.raises(FormulaError, match="rebuild it with net_terms"):
        score_on_cache(cache, archs, ["jacov"], load_pack("network"))


def test_cache_flag_and_old_caches(net_cache, tmp_path):
    from gpproxy.cache import CacheSpec, build_cache, open_cache

    # a spec without net terms is written as before the field existed (same cache names)
    assert "net_terms" not in ProbeConfig().to_dict()
    cache, spec = net_cache
    assert open_cache(cache.root).spec.probe.net_terms
    plain = CacheSpec(batch=4, storage="float32", probe=ProbeConfig(act_features=16, weight_rows=8, weight_cols=16))
    with pytest.raises(GpproxyError, match="probe.net_terms=True, not False"):
        build_cache(cache.root, plain, list(ARCHS[:1]), log=lambda m: None)


def test_pack_declarations_are_checked():
    assert load_pack("network").net_terminals == NET_TERMS
    assert parse_formula("naswot", load_pack("network"))[0].ret is Net
    with pytest.raises(GpproxyError, match="unknown whole-network term"):
        Pack("p", stats={"W": Weight}, net_terminals=("jacov", "flops"))
    with pytest.raises(FormulaError, match="unknown name 'jacov'"):
        parse_formula("jacov", load_pack("transfer"))


def test_a_search_needs_the_flag_and_then_runs(tiny_table, tmp_path, one_torch_thread):
    from gpproxy import rundir
    from gpproxy.engine import Engine
    from tests.conftest import tiny_config

    cfg = tiny_config(tiny_table, tmp_path / "cache", pack="network", generations=2, population=12)
    with pytest.raises(GpproxyError, match="net_terms = true"):
        Engine(cfg, tmp_path / "run0", log=lambda m: None)
    cfg.tasks[0].net_terms = True
    Engine(cfg, tmp_path / "run", log=lambda m: None).run()
    pack = load_pack("network")
    rows = rundir.read_csv(tmp_path / "run" / "hall_of_fame.csv")
    assert rows and all(str(parse_formula(r["formula"], pack)) == r["formula"] for r in rows)


def test_export_equals_engine(net_cache, tmp_path, one_torch_thread):
    from gpproxy.cache import load_input
    from gpproxy.evaluator import score_on_cache
    from gpproxy.export import export_formula

    cache, spec = net_cache
    out = export_formula(MIXED, tmp_path / "net.py", pack_name="network", probe_cfg=spec.probe)
    assert "def network_terms(" in out.read_text()
    mod = import_file(out)
    engine = score_on_cache(cache, list(ARCHS), [MIXED], load_pack("network"))[MIXED]
    x, y, _ = load_input(spec)
    # in channels_last, as the cache was built (NCHW rounds differently: see above)
    cl = torch.channels_last
    got = [mod.score(_net(a, spec.seed).to(memory_format=cl), x.contiguous(memory_format=cl), y) for a in ARCHS]
    assert np.allclose(got, engine, rtol=1e-5)
