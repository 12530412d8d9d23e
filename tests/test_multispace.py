"""A run whose fitness spans two spaces (NB201 + an NDS ResNeXt fixture):
evolve, kill + resume, inspect and export from the CLI; the export computes on
networks of every registered space family (grouped, depthwise, 1x1, linear)."""
import importlib.util
import json

import numpy as np
import pytest
import torch

from gpproxy.cli import main


def nds_fixture(path, n=14, seed=0):
    """An NDS-schema ResNeXt-B sweep (grouped bottleneck blocks) with synthetic errors."""
    rng = np.random.default_rng(seed)
    entries = []
    for j in range(n):
        ds = [1] + [int(v) for v in rng.integers(1, 3, 3)]
        ws = [16] + [int(v) for v in rng.choice([16, 32, 48], 3)]
        err = 30 - 0.2 * sum(d * w for d, w in zip(ds, ws)) / 10 + float(rng.normal(0, 1))
        entries.append({"job_id": j, "rng_seed": 1, "params": 0, "flops": 0,
                        "net": {"block_type": "res_bottleneck_block", "ds": ds, "ws": ws, "ss": [1, 1, 2, 2],
                                "bot_muls": [1.0, 0.5, 0.5, 0.5], "num_gs": [1, 4, 4, 4]},
                        "optim": {"base_lr": 0.1}, "test_ep_top1": [60.0, err + 5, err],
                        "min_test_top1": err})
    path.write_text(json.dumps(entries))
    return path


def multi_config(tmp_path, table):
    nds = nds_fixture(tmp_path / "ResNeXt-B.json")
    toml = f"""
name = "multi"
seed = 1
device = "cpu"
[search]
population = 8
generations = 3
init_max_height = 4
max_height = 7
[fitness]
correlation = "spearman"
combine = "min"
[[task]]
name = "nb201"
benchmark = "{table}"
target = "acc"
search_archs = 20
heldout_archs = 10
batch = 4
act_features = 16
weight_rows = 8
weight_cols = 16
cache = "{tmp_path / 'c-nb201'}"
[[task]]
name = "resnext"
space = "nds_resnext-b"
benchmark = "nds:{nds}"
target = "final"
search_archs = 8
heldout_archs = "rest"
batch = 4
act_features = 16
weight_rows = 8
weight_cols = 16
cache = "{tmp_path / 'c-nds'}"
"""
    cfg = tmp_path / "multi.toml"
    cfg.write_text(toml)
    return cfg


def test_multispace_evolve_resume_inspect_export(tmp_path, tiny_table, capsys, monkeypatch):
    from gpproxy import rundir
    from gpproxy.engine import Engine

    cfg = multi_config(tmp_path, tiny_table)
    original = Engine._after_generation

    def dying(self, g, *a, **k):
        original(self, g, *a, **k)
        if g == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(Engine, "_after_generation", dying)
    assert main(["evolve", str(cfg), "--out", str(tmp_path / "run")]) == 130
    monkeypatch.setattr(Engine, "_after_generation", original)
    assert main(["resume", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "task nb201" in out and "task resnext" in out
    rows = rundir.read_csv(tmp_path / "run" / "pareto.csv")
    assert "nb201:heldout_kendall" in rows[0] and "resnext:heldout_kendall" in rows[0]
    memo = rundir.load_checkpoint(tmp_path / "run")["memo"]
    valid = [r for r in memo.values() if r["valid"]]
    assert valid and all(set(r["tasks"]) == {"nb201", "resnext"} for r in valid)
    assert all(r["fitness"] == pytest.approx(min(r["tasks"].values())) for r in valid)
    assert main(["inspect", str(tmp_path / "run"), "--json"]) == 0
    capsys.readouterr()
    assert main(["export", str(tmp_path / "run"), "-o", str(tmp_path / "proxy_multi.py")]) == 0


def sample_arch(space_name):
    """(arch, input resolution, classes): a small arch of each space family."""
    import random

    from gpproxy.spaces import get_space
    from tests.test_spaces_nds import small_config

    space = get_space(space_name)
    if space_name == "nb201":
        return space.all_archs()[4321], 32, 10
    if space_name.startswith("nds_"):
        return space.canonical(json.dumps(small_config(space_name, random.Random(0)))), 32, 10
    return random.Random(0).choice(space.all_archs()), 64, 63


@pytest.mark.parametrize("formula", ["sum_layers(l1(mul(W, dW)))", "mean_layers(hamming(A))",
                                     "sum_layers(div(frob(dZ), add(params, 1.0)))"])
def test_export_runs_on_every_space_family(tmp_path, formula):
    from gpproxy.export import export_formula
    from gpproxy.spaces import get_space

    out = export_formula(formula, tmp_path / "proxy_any.py")
    spec = importlib.util.spec_from_file_location("proxy_any", out)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    seen = set()
    for space_name in ("nb201", "nds_darts", "nds_resnext-b", "nds_vanilla", "tnb101_micro", "tnb101_macro"):
        arch, res, classes = sample_arch(space_name)
        torch.manual_seed(0)
        net = get_space(space_name).build(arch, classes)
        x = torch.randn(2, 3, res, res)
        y = torch.randint(0, classes, (2,))
        for m in net.modules():
            if isinstance(m, torch.nn.Linear):
                seen.add("linear")
            elif isinstance(m, torch.nn.Conv2d):
                seen.add("depthwise" if m.groups == m.in_channels > 1 else "grouped" if m.groups > 1
                         else "1x1" if m.kernel_size == (1, 1) else "kxk")
        assert np.isfinite(mod.score(net, x, y)), space_name
    assert seen == {"linear", "depthwise", "grouped", "1x1", "kxk"}
