"""Exported modules score real NB201 nets exactly as the engine does."""

import pytest
import torch

from gpproxy.cache import load_input
from gpproxy.export import export_formula
from gpproxy.formula import FormulaEval, parse_formula
from gpproxy.pack import load_pack
from gpproxy.probe import ProbeConfig
from gpproxy.spaces import get_space
from gpproxy.statset import load_statset
from tests.conftest import import_file as _import

FORMULAS = [
    "sum_layers(l1(mul(W, dW)))",
    "sum_layers(params)",
    "mean_layers(hamming(A))",
    "max_layers(div(std(normalize(dZ)), add(fan_in, 1.0)))",
    "add(sum_layers(frob(sqrt(Z))), mul(2.0, mean_layers(logdet(dW))))",
    # exact full-tensor moments (a reduction of a statistic itself)
    "sum_layers(frob(W))",
    "mean_layers(mean(dZ))",
    "add(sum_layers(l1(A)), sum_layers(sum(abs(Z))))",
    # exact moments of a product of two statistics sharing positions
    "sum_layers(sum(mul(W, dW)))",
    "sum_layers(l1(mul(dZ, Z)))",
]


@pytest.mark.parametrize("formula", FORMULAS)
def test_export_equals_engine(formula, exact_cache, tmp_path):
    cache, spec, archs = exact_cache
    pack = load_pack("default")
    out = export_formula(formula, tmp_path / "proxy_x.py", probe_cfg=spec.probe)
    mod = _import(out)
    src = out.read_text()
    imports = [ln for ln in src.splitlines() if ln.startswith(("import ", "from "))]
    assert all("torch" in ln for ln in imports), imports
    assert formula in src
    engine = FormulaEval(pack)(parse_formula(formula, pack), load_statset(cache, archs))
    x, y, _ = load_input(spec)
    space = get_space("nb201")
    for arch, want in zip(archs, engine.tolist()):
        torch.manual_seed(spec.seed)
        net = space.build(arch, 10)
        got = mod.score(net, x, y)
        assert got == pytest.approx(want, rel=2e-3, abs=1e-4), (arch, formula)
        per_layer = mod.compute(net, x, y)
        assert isinstance(per_layer, list) and all(torch.is_tensor(t) for t in per_layer)
        if formula.startswith("sum_layers"):
            assert float(sum(per_layer)) == pytest.approx(got, rel=1e-4, abs=1e-5)


def test_export_takes_the_exact_path_only_with_moments(tmp_path):
    src = export_formula("sum_layers(frob(W))", tmp_path / "a.py").read_text()
    assert "p_frob_exact(S['moments']['W'])" in src
    src = export_formula("sum_layers(frob(abs(W)))", tmp_path / "b.py").read_text()
    assert "_exact" not in src.split("def formula(S)")[1]
    old = ProbeConfig(moments=False)  # e.g. a cache from before moments
    out = export_formula("sum_layers(frob(W))", tmp_path / "c.py", probe_cfg=old)
    assert "_exact" not in out.read_text().split("def formula(S)")[1]
    S = _import(out).statistics(get_space("nb201").build(get_space("nb201").all_archs()[3], 10),
                                torch.randn(2, 3, 32, 32), torch.tensor([0, 1]))
    assert "moments" not in S  # nothing in the module computes them


def test_register_with_a_measure_decorator(tmp_path):
    out = export_formula("sum_layers(frob(dW))", tmp_path / "proxy_gn.py")
    mod = _import(out)
    registry = {}

    def measure(name, bn=True, **kw):
        def deco(fn):
            registry[name] = fn
            return fn
        return deco

    mod.register(measure)
    assert registry[mod.NAME] is mod.compute


def test_export_cli_from_run(tmp_path, tiny_table, tiny_cache, capsys):
    from gpproxy.cli import main
    from gpproxy.engine import Engine
    from tests.conftest import tiny_config

    Engine(tiny_config(tiny_table, tiny_cache, generations=1), tmp_path / "run", log=lambda m: None).run()
    assert main(["export", str(tmp_path / "run"), "-o", str(tmp_path / "p.py")]) == 0
    mod = _import(tmp_path / "p.py")
    doc = " ".join(mod.__doc__.split())  # paragraphs are wrapped
    assert "found by gpproxy run run " in doc and str(tmp_path) not in doc
    # the minibatch it was searched (and measured) with: formulas score best at the input size of their search
    assert "Measured with batch 4, noise input, init seed 0, 32x32 inputs." in doc
    assert main(["export", str(tmp_path / "run"), "--rank", "99", "-o", str(tmp_path / "q.py")]) == 2


QUICKSTART = "sum_layers(l1(normalize(square(dW))))"


def _provenance():
    from gpproxy.export import HeldOut, Provenance

    return Provenance(run="quickstart", config="quickstart", correlation="kendall", fitness=0.7115,
                      heldout=(HeldOut("nb201-c10-analog", "analog-nasbench", "baseline_accuracy", 0.6786, 0.8653,
                                       300),))


def test_quickstart_export_is_short_and_trimmed(tmp_path):
    out = export_formula(QUICKSTART, tmp_path / "proxy.py", provenance=_provenance())
    src = out.read_text()
    assert len(src.splitlines()) <= 150
    for leftover in ("if True", "# exported", "FAMILY", "kernel_moments", "tensor_moments", "sample_activation",
                     "/work", "held-out: {"):
        assert leftover not in src, leftover
    doc = " ".join(_import(out).__doc__.split())  # paragraphs are wrapped
    for word in ("Kendall tau 0.6786", "Spearman rho 0.8653", "n = 300", "normalize:", "l1:", "dW:", r"\sum_{l}"):
        assert word in doc, word
    # a formula string alone claims no benchmark
    assert "not validated on a benchmark" in _import(export_formula(QUICKSTART, tmp_path / "f.py")).__doc__
    assert "K_H" in _import(export_formula("sum_layers(hamming(A))", tmp_path / "h.py")).__doc__


def test_register_is_idempotent_and_renames(tmp_path):
    # foresight's measure decorator: a module-level dict that rejects a second registration
    ns = {}
    exec("_measure_impls = {}\n"
         "def measure(name, bn=True, copy_net=True, force_clean=True, **impl_args):\n"
         "    def make_impl(func):\n"
         "        if name in _measure_impls:\n"
         "            raise KeyError('Duplicated measure!')\n"
         "        _measure_impls[name] = func\n"
         "        return func\n"
         "    return make_impl\n", ns)
    mod = _import(export_formula("sum_layers(frob(dW))", tmp_path / "proxy.py"))
    mod.register(ns["measure"])
    mod.register(ns["measure"])  # a rerun notebook cell
    mod.register(ns["measure"], name="mine")
    assert set(ns["_measure_impls"]) == {mod.NAME, "mine"}
    other = _import(export_formula("sum_layers(frob(W))", tmp_path / "b" / "proxy.py"))
    assert other.NAME != mod.NAME  # two files named proxy.py do not collide


def test_compute_splits_data_as_zero_cost_nas(tmp_path):
    mod = _import(export_formula("sum_layers(frob(dW))", tmp_path / "p.py"))
    space = get_space("nb201")
    torch.manual_seed(0)
    net = space.build(space.all_archs()[5], 10)
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    halves = [sum(float(t) for t in mod.compute(net, x[s], y[s])) for s in (slice(0, 2), slice(2, 4))]
    assert sum(float(t) for t in mod.compute(net, x, y, split_data=2)) == pytest.approx(sum(halves), rel=1e-5)


def test_export_of_a_hostile_run_runs_no_code(tmp_path, tiny_table, tiny_cache, monkeypatch):
    from gpproxy.engine import Engine
    from gpproxy.errors import GpproxyError
    from gpproxy.run import Run
    from tests.conftest import tiny_config

    Engine(tiny_config(tiny_table, tiny_cache, generations=1), tmp_path / "run", log=lambda m: None).run()
    payload = '0.55"""\nimport os; os.system("touch PWNED")\n"""'
    path = tmp_path / "run" / "pareto.csv"
    import csv

    rows = list(csv.DictReader(path.open()))
    evil = f'x{payload}:heldout_kendall'
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) + [evil])
        w.writeheader()
        for r in rows:
            w.writerow({**r, "math": payload, evil: "0.5"})
    monkeypatch.chdir(tmp_path)
    out = Run.open(tmp_path / "run").export(tmp_path / "p.py")
    _import(out)
    assert not (tmp_path / "PWNED").exists() and "import os" not in out.read_text()
    for col in [c for c in rows[0] if "heldout_kendall" in c]:  # a number cell carrying code: refused
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            for r in rows:
                w.writerow({**r, col: payload})
        with pytest.raises(GpproxyError):
            Run.open(tmp_path / "run").export(tmp_path / "q.py")
    assert not (tmp_path / "PWNED").exists()


SPACE_FORMULAS = ["sum_layers(l1(normalize(square(dW))))", "sum_layers(l1(mul(W, dW)))", "mean_layers(hamming(A))",
                  "sum_layers(div(frob(dZ), add(params, 1.0)))", "max_layers(snr(Z))",
                  "sum_layers(l1(mul(Z, dZ)))", "add(sum_layers(frob(W)), mean_layers(out_numel))", "sum_layers(logdet(dZ))",
                  "sum_layers(mul(fan_in, out_channels))"]


@pytest.mark.parametrize("space_name", ["nb201", "nds_darts", "nds_resnext-b", "tnb101_micro", "tnb101_macro"])
def test_trimmed_export_equals_the_full_probe_on_every_space_family(space_name, tmp_path):
    """Trimmed modules compute what the engine's full probe + FormulaEval compute, net by net."""
    from gpproxy.probe import probe
    from gpproxy.statset import stack_layers
    from tests.test_multispace import sample_arch

    torch.set_num_threads(1)
    pack = load_pack("default")
    cfg = ProbeConfig(act_features=16, weight_rows=8, weight_cols=16)
    arch, res, classes = sample_arch(space_name)
    space = get_space(space_name)
    x, y = torch.randn(2, 3, res, res), torch.randint(0, classes, (2,))
    torch.manual_seed(0)
    net = space.build(arch, classes)
    records = probe(net, x, y, cfg)
    S = stack_layers([arch], [records])
    for i, formula in enumerate(SPACE_FORMULAS):
        want = float(FormulaEval(pack)(parse_formula(formula, pack), S)[0])
        got = _import(export_formula(formula, tmp_path / f"p{i}.py", probe_cfg=cfg)).score(net, x, y)
        assert got == pytest.approx(want, rel=1e-4, abs=1e-6), (space_name, formula)


def test_scores_are_keyed_by_content_not_file_name(tmp_path):
    """Two formulas exported to the same file name, scored into one store: two correct results."""
    from gpproxy.scoring import Protocol, score_proxy

    space = get_space("nb201")
    archs = [space.all_archs()[i] for i in (11, 2222, 7000)]
    store, results = tmp_path / "scores.json", []
    for formula in ("sum_layers(frob(dW))", "sum_layers(params)"):
        path = export_formula(formula, tmp_path / "proxy.py")
        got = score_proxy(str(path), archs, protocol=Protocol(batch=4), scores_path=store, cache_root=tmp_path)
        mod = _import(path)
        x, y, _ = Protocol(batch=4).minibatch(space.datasets()["cifar10"])
        want = []
        for a in archs:
            torch.manual_seed(0)
            want.append(mod.score(space.build(a, 10), x, y))
        assert got.values.tolist() == pytest.approx(want, rel=1e-2)  # the store runs channels_last
        results.append(got.values.tolist())
    assert results[0] != results[1]


def test_evolve_writes_three_pictures(tmp_path, tiny_table, tiny_cache):
    import gpproxy
    from gpproxy.plots import FILES
    from tests.conftest import tiny_config

    run = gpproxy.evolve(tiny_config(tiny_table, tiny_cache, generations=1), out=tmp_path / "run", log=lambda m: None)
    for name in FILES.values():
        assert (run.root / name).stat().st_size > 1000, name
    off = gpproxy.evolve(tiny_config(tiny_table, tiny_cache, generations=1), out=tmp_path / "off", plots=False,
                         log=lambda m: None)
    assert not any((off.root / name).exists() for name in FILES.values())


NOISY_PACK = '''from gpproxy.pack import Input, Output, Pack, Weight
from primitives import default as D

PACK = Pack(name="noisy", stats={"W": Weight, "dW": Weight, "A": Input, "Z": Output, "dZ": Output,
                                 "A_n": Input, "Z_n": Output, "dZ_n": Output, "dW_n": Weight},
            layer_terminals=("params",))
PACK.binary("mul", product=True)(D.mul)
PACK.unary("abs")(D.abs_)
PACK.reduce("l1", exact=D.exact_l1)(D.l1)
PACK.reduce("frob", exact=D.exact_frob)(D.frob)
PACK.reduce("logdet", exact=D.exact_logdet, exact_cols=6)(D.logdet)
PACK.aggregate("sum_layers", additive=True)(D.sum_layers)
'''


@pytest.mark.parametrize("formula", ["sum_layers(l1(dW_n))", "sum_layers(l1(mul(W, dW_n)))",
                                     "sum_layers(frob(abs(A_n)))", "sum_layers(l1(mul(Z_n, dZ_n)))",
                                     "sum_layers(logdet(Z_n))", "sum_layers(l1(mul(dZ, dZ_n)))"])
def test_noise_pass_exports_equal_the_full_probe(formula, tmp_path):
    from gpproxy.probe import probe
    from gpproxy.statset import stack_layers

    torch.set_num_threads(1)
    pack_file = tmp_path / "noisy_pack.py"
    pack_file.write_text(NOISY_PACK)
    pack = load_pack(str(pack_file))
    cfg = ProbeConfig(act_features=16, weight_rows=8, weight_cols=16, noise_pass=True)
    space = get_space("nb201")
    arch = space.all_archs()[1234]
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([1, 3])
    torch.manual_seed(0)
    net = space.build(arch, 10)
    want = float(FormulaEval(pack)(parse_formula(formula, pack), stack_layers([arch], [probe(net, x, y, cfg)]))[0])
    src = export_formula(formula, tmp_path / "p.py", pack_name=str(pack_file), probe_cfg=cfg)
    assert _import(src).score(net, x, y) == pytest.approx(want, rel=1e-5, abs=1e-6)


def test_names_in_a_docstring_keep_their_punctuation_but_never_end_it():
    from gpproxy.export import safe_text

    assert safe_text("experiments/transfer.py (results, transfer.md)") == "experiments/transfer.py (results, transfer.md)"
    assert safe_text('run"""\\\nimport os') == "run?????import os"  # 3 quotes, a backslash, a line break
