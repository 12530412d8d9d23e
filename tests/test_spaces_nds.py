"""NDS spaces (Radosavovic et al., ICCV 2019): configs, builders, caches, the sweep loader.

The NAS-cell builder is checked against published numbers: NASLib's ``params``
for 1,225 NB301 (DARTS-space) rows in shared/data (C=32, 8 cells) and DARTS'
3.3 M parameters of its V2 cell (C=36, 20 cells). NDS sweep files themselves
are not public offline; the loader runs on small fixtures in their schema
(tests/fixtures/nds, written from shared/data/nds/NDS_SCHEMA.md).
"""
from __future__ import annotations

import csv
import gzip
import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from gpproxy.benchmarks import default_target, load_benchmark, load_nds
from gpproxy.cache import CacheSpec, build_cache
from gpproxy.errors import ArchError, DataError, GpproxyError
from gpproxy.spaces import get_space, nds, space_names

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
NB301 = SHARED / "nb301" / "nb301_naslib_prerelease_subsets_surrogate.csv.gz"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "nds"

DARTS_V2 = {  # DARTS (Liu et al., ICLR 2019) genotypes.py, DARTS_V2 = DARTS
    "normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["sep_conv_3x3", 0], ["sep_conv_3x3", 1],
               ["sep_conv_3x3", 1], ["skip_connect", 0], ["skip_connect", 0], ["dil_conv_3x3", 2]],
    "normal_concat": [2, 3, 4, 5],
    "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1], ["skip_connect", 2], ["max_pool_3x3", 1],
               ["max_pool_3x3", 0], ["skip_connect", 2], ["skip_connect", 2], ["max_pool_3x3", 1]],
    "reduce_concat": [2, 3, 4, 5],
}
NDS_SPACES = [f"nds_{f}" for f in nds.FAMILIES] + [f"nds_{f}_in" for f in nds.FAMILIES]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def random_cell_config(family: str, rng: random.Random, width: int = 4, depth: int = 3) -> dict:
    """A random genotype of the family's vocabulary (DARTS: 4 nodes, the others: 5)."""
    ops = nds.FAMILY_OPS[family]
    steps = 4 if family == "darts" else 5
    genotype = {}
    for kind in ("normal", "reduce"):
        genotype[kind] = [[rng.choice(ops), rng.randrange(0, j // 2 + 2)] for j in range(2 * steps)]
        genotype[f"{kind}_concat"] = sorted(rng.sample(range(2, 2 + steps), rng.randint(2, steps)))
    return {"genotype": genotype, "width": width, "depth": depth, "aux": True}


def small_anynet_config(family: str) -> dict:
    if family == "vanilla":
        return {"block_type": "double_plain_block", "ds": [1, 1, 2, 1], "ws": [8, 8, 16, 16], "ss": [1, 1, 2, 2]}
    if family == "resnet":
        return {"block_type": "res_basic_block", "ds": [1, 1, 1, 2], "ws": [8, 8, 16, 16], "ss": [1, 1, 2, 2]}
    return {"block_type": "res_bottleneck_block", "ds": [1, 1, 1, 1], "ws": [8, 8, 16, 32], "ss": [1, 1, 2, 2],
            "bot_muls": [1.0, 1.0, 0.5, 0.25], "num_gs": [1, 2, 4, 8 if family == "resnext-b" else 2]}


def small_config(space: str, rng: random.Random) -> dict:
    family, _ = nds.parse_space_name(space)
    if family in nds.CELL_FAMILIES:
        return random_cell_config(family, rng)
    return small_anynet_config(family)


# --------------------------------------------------------------------- registry and configs


def test_registry():
    names = space_names()
    for name in NDS_SPACES:
        assert name in names
        space = get_space(name)
        assert space.name == name
        with pytest.raises(GpproxyError, match="not enumerable"):
            space.all_archs()


def test_canonical_forms_agree():
    net = {"genotype": DARTS_V2, "width": 36, "depth": 20, "aux": True, "drop_prob": 0.2}
    space = get_space("nds_darts")
    text = space.canonical(net)
    assert text == space.canonical(json.dumps(net, indent=2))  # JSON text
    assert text == space.canonical({"job_id": 3, "net": net, "test_ep_top1": [1.0]})  # job summary
    assert text == space.canonical(text)  # idempotent
    assert "aux" not in text and " " not in text and json.loads(text)["width"] == 36
    key = space.key(text)
    assert re.fullmatch(r"darts-[0-9a-f]{16}", key) and key == space.key(net)
    assert space.key(space.canonical(dict(net, width=34))) != key
    # Genotype text as DARTS prints it reads the same.
    text_form = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
                 "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
                 "('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
                 "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
                 "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])")
    assert nds.darts_genotype_from_text(text_form) == DARTS_V2
    ranged = text_form.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=range(2, 6)")
    assert nds.darts_genotype_from_text(ranged) == DARTS_V2
    assert space.canonical(dict(net, genotype=dict(DARTS_V2, reduce_concat="range(2, 6)"))) == text
    with pytest.raises(ArchError, match="must be literals"):
        nds.darts_genotype_from_text(text_form.replace("[2, 3, 4, 5]", "__import__('os')", 1))
    anynet = {"block_type": "res_bottleneck_block", "ds": [1, 2], "ws": [16, 32], "ss": [1, 2],
              "bot_muls": [1, 0.5], "num_gs": [1.0, 2]}
    assert nds.canonical(anynet) == ('{"block_type":"res_bottleneck_block","bot_muls":[1.0,0.5],"ds":[1,2],'
                                     '"num_gs":[1,2],"ss":[1,2],"ws":[16,32]}')
    basic = {"block_type": "res_basic_block", "ds": [1, 2], "ws": [16, 32], "ss": [1, 2],
             "bot_muls": [None, None], "num_gs": [None, None]}
    assert nds.canonical(basic) == '{"block_type":"res_basic_block","ds":[1,2],"ss":[1,2],"ws":[16,32]}'


@pytest.mark.parametrize("bad, message", [
    ({"genotype": dict(DARTS_V2, normal=[["conv_7x1_1x7", 0]] * 8), "width": 8, "depth": 3},
     "not in the darts space's vocabulary"),
    ({"genotype": dict(DARTS_V2, normal=[["sep_conv_3x3", 0]] * 3 + [["sep_conv_3x3", 3]] * 5),
      "width": 8, "depth": 3}, "can only read states 0..2"),
    ({"genotype": dict(DARTS_V2, reduce_concat=[0, 2]), "width": 8, "depth": 3}, "out of range 2..5"),
    ({"genotype": DARTS_V2, "width": 7, "depth": 3}, "even integer"),
    ({"genotype": DARTS_V2, "depth": 3}, "lacks 'width'"),
    ({"genotype": {"normal": []}, "width": 8, "depth": 3}, "lacks"),
    ({"block_type": "res_basic_block", "ds": [1], "ws": [8]}, "lacks 'ss'"),
    ("{not json", "JSON of a 'net' config"),
])
def test_bad_configs(bad, message):
    with pytest.raises(ArchError, match=message):
        get_space("nds_darts" if "genotype" in str(bad) or isinstance(bad, str) else "nds_resnet").canonical(bad)


def test_family_mismatch():
    with pytest.raises(ArchError, match="not an arch of the resnet space"):
        get_space("nds_resnet").canonical({"genotype": DARTS_V2, "width": 8, "depth": 3})
    with pytest.raises(ArchError, match="need a 'genotype'"):
        get_space("nds_pnas").canonical(small_anynet_config("resnet"))
    with pytest.raises(ArchError, match="not divisible by 3 groups"):
        get_space("nds_resnext-a").build(
            {"block_type": "res_bottleneck_block", "ds": [1], "ws": [8], "ss": [1], "num_gs": [3]}, 10)


# --------------------------------------------------------------------- parameter counts vs published numbers


def test_darts_v2_published_params():
    # DARTS reports 3.3M parameters for its cell at C=36, 20 cells on CIFAR-10 (its
    # training log prints "param size = 3.349342MB"; the auxiliary head is excluded).
    config = {"genotype": DARTS_V2, "width": 36, "depth": 20}
    net = nds.build_cell_network(config, num_classes=10, family="darts")
    assert nds.count_params(net) == nds.analytic_params(config, 10) == 3_349_342


def test_nb301_naslib_params_all_rows():
    """NASLib's NB301 graph: C=32, 8 cells, no auxiliary head, cell-op BNs without affine."""
    if not NB301.exists():
        pytest.skip(f"shared data not available: {NB301}")
    with gzip.open(NB301, "rt", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1225
    mismatches = []
    for i, row in enumerate(rows):
        genotype = nds.darts_genotype_from_naslib_compact(row["compact"])
        assert genotype == nds.darts_genotype_from_text(row["genotype"])
        config = {"genotype": genotype, "width": 32, "depth": 8}
        count = nds.analytic_params(config, 10, cell_bn_affine=False)
        if round(count / 1e6, 6) != float(row["params"]):  # NASLib stores params / 1e6, 6 decimals
            mismatches.append((i, count, row["params"]))
    assert not mismatches, mismatches[:5]
    # Built networks: parameter count and NASLib's FLOPs (tensorwatch convention, a 32x32
    # image, plus the non-affine BN NASLib puts after each pool), on every 50th row.
    for row in rows[::50]:
        config = {"genotype": nds.darts_genotype_from_naslib_compact(row["compact"]), "width": 32, "depth": 8}
        built = nds.build_cell_network(config, 10, cell_bn_affine=False)
        assert round(nds.count_params(built) / 1e6, 6) == float(row["params"])
        flops = nds.naslib_flops(built, (1, 3, 32, 32), bn_after_pools=True)
        assert round(flops / 1e6, 6) == float(row["flops"]), row["compact"]


def test_resnet56_matches_nds_budget():
    # Consistency (not a verification): the NDS notebooks cap CIFAR AnyNets at 0.856 M
    # params, i.e. pycls' ResNet-56 (R-56_nds config). Our reading of a 4-entry config
    # (entry 0 = stem) gives exactly that network.
    config = {"block_type": "res_basic_block", "ds": [1, 9, 9, 9], "ws": [16, 16, 32, 64], "ss": [1, 1, 2, 2]}
    assert nds.count_params(get_space("nds_resnet").build(config, 10)) == 855_770
    layout = nds.anynet_layout(nds.parse_net(config), "resnet", imagenet=False)
    assert layout["stem_type"] == "res_stem_cifar" and layout["stem_w"] == 16 and len(layout["stages"]) == 3


# --------------------------------------------------------------------- builders


@pytest.mark.parametrize("family", nds.CELL_FAMILIES)
def test_cell_builders_all_ops(family):
    """Every op of the vocabulary, CIFAR and ImageNet nets, odd resolutions, built count == analytic."""
    rng = random.Random(family)
    ops = nds.FAMILY_OPS[family]
    config = random_cell_config(family, rng)
    for kind in ("normal", "reduce"):  # make sure every op appears somewhere
        for j, op in enumerate(ops[: len(config["genotype"][kind])]):
            config["genotype"][kind][j][0] = op
    for imagenet, hw in ((False, 17), (True, 37)):
        net = nds.build_network(config, num_classes=5, family=family, imagenet=imagenet)
        assert nds.count_params(net) == nds.analytic_params(config, 5, imagenet=imagenet)
        x = torch.randn(2, 3, hw, hw)
        out = net(x)
        assert out.shape == (2, 5)
        out.sum().backward()
        grads = [p.grad for p in net.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("family", nds.ANYNET_FAMILIES)
def test_anynet_builders(family):
    config = small_anynet_config(family)
    for imagenet in (False, True):
        net = get_space(nds.space_name(family, imagenet)).build(nds.canonical(config), 7)
        out = net(torch.randn(2, 3, 32, 32))
        assert out.shape == (2, 7)
        out.sum().backward()
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    if config["block_type"] == "res_bottleneck_block":
        assert max(c.groups for c in convs) == max(config["num_gs"][1:])  # entry 0 is the stem
    stem = net.stem[0]
    assert stem.kernel_size == ((3, 3) if family == "vanilla" else (7, 7))  # _in stems (NASWOT's choice)


def test_describe():
    info = get_space("nds_darts").describe({"genotype": DARTS_V2, "width": 8, "depth": 5}, 10)
    assert info["params"] == nds.analytic_params({"genotype": DARTS_V2, "width": 8, "depth": 5}, 10)
    assert info["n_layers"] == len(info["layers"]) and info["layers"][-1]["type"] == "Linear"
    depthwise = [L for L in info["layers"] if L["groups"] > 1]
    assert depthwise and all(L["groups"] == L["in_channels"] for L in depthwise)
    info = get_space("nds_resnext-a").describe(small_anynet_config("resnext-a"), 10)
    assert info["stem"] == {"type": "res_stem_cifar", "width": 8}


# --------------------------------------------------------------------- statistics cache


def test_cache_every_space(tmp_path):
    """Small random archs of every NDS space through build_cache; grouped/depthwise convs probe fine."""
    rng = random.Random(0)
    grouped_seen = 0
    for name in NDS_SPACES:
        space = get_space(name)
        configs = [small_config(name, rng)]
        if name == "nds_darts":  # sep/dil convs are depthwise + pointwise
            configs.append({"genotype": DARTS_V2, "width": 4, "depth": 3})
        archs = [space.canonical(c) for c in configs]
        spec = CacheSpec(space=name, batch=2, num_classes=10)
        cache = build_cache(tmp_path / name, spec, archs, progress=False, log=lambda msg: None)
        for arch in archs:
            assert cache.status(arch) == "ok"
            meta, flat = cache.record(arch, mmap=False)
            assert np.isfinite(flat).all()
            convs = {n: m for n, m in space.build(arch, 10).named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
            assert [L["name"] for L in meta["layers"]] == list(convs)
            for layer in meta["layers"]:
                module = convs[layer["name"]]
                if not isinstance(module, nn.Conv2d) or module.groups == 1:
                    continue
                grouped_seen += 1
                assert layer["meta"]["groups"] == module.groups
                fan_in = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
                assert layer["meta"]["fan_in"] == fan_in
                assert layer["stats"]["W"]["shape"] == [min(16, module.out_channels), min(64, fan_in)]
                assert layer["stats"]["dW"]["shape"] == layer["stats"]["W"]["shape"]
    assert grouped_seen > 10


# --------------------------------------------------------------------- the sweep loader


def test_load_darts_fixture():
    bench = load_benchmark(str(FIXTURES / "DARTS.json"))  # a .json that looks like NDS
    assert bench.space == "nds_darts"
    assert default_target(bench) == "final"
    assert set(bench.targets()) == {"final", "best", "params", "flops"}
    entries = json.loads((FIXTURES / "DARTS.json").read_text())
    assert len(bench) == 4  # entries 1 and 3 are the same net (two learning rates): averaged
    first = bench.lookup([entries[0]["net"]], "final")[0]
    assert first == 100 - entries[0]["test_ep_top1"][-1] == 87.75
    assert bench.lookup([entries[0]["net"]], "best")[0] == 100 - entries[0]["min_test_top1"]
    merged = bench.lookup([entries[1]["net"]], "final")[0]
    assert merged == pytest.approx(100 - (entries[1]["test_ep_top1"][-1] + entries[3]["test_ep_top1"][-1]) / 2)
    assert "1 repeated entries averaged" in bench.source
    # Archs are canonical strings that rebuild the net on their own.
    net = get_space(bench.space).build(bench.archs[0], 10)
    assert nds.count_params(net) == entries[0]["params"]  # the fixture stores our own count


def test_load_options_and_top_mid():
    resnet = load_benchmark(f"nds:{FIXTURES / 'ResNet.json'}")
    assert resnet.space == "nds_resnet" and len(resnet) == 4  # top + mid
    first = load_benchmark(f"nds:{FIXTURES / 'ResNet.json'}:first=3")
    assert first.archs == resnet.archs[:3] and "first=3" in first.source
    as_in = load_benchmark(f"nds:{FIXTURES / 'ResNet.json'}:space=ResNet_lr-wd_in:first=1")
    assert as_in.space == "nds_resnet_in"
    with pytest.raises(DataError, match="unknown option 'frist'"):
        load_benchmark(f"nds:{FIXTURES / 'ResNet.json'}:frist=3")
    with pytest.raises(DataError, match="first= needs a positive integer"):
        load_benchmark(f"nds:{FIXTURES / 'ResNet.json'}:first=0")
    with pytest.raises(DataError, match="unknown NDS space 'nds_foo'"):
        load_nds(FIXTURES / "ResNet.json", space="nds_foo")


def test_space_from_ops_when_file_renamed(tmp_path):
    renamed = tmp_path / "sweep.json"
    renamed.write_text((FIXTURES / "DARTS.json").read_text())
    assert load_nds(renamed).space == "nds_darts"  # 'none'/'dil_conv_5x5' only exist in DARTS
    anynet = tmp_path / "mine.json"
    anynet.write_text((FIXTURES / "ResNet.json").read_text())
    with pytest.raises(DataError, match=r"cannot tell the NDS space.*:space=NAME"):
        load_nds(anynet)
    assert load_nds(anynet, space="vanilla").space == "nds_vanilla"


def _write(tmp_path, name, entries):
    path = tmp_path / name
    path.write_text(json.dumps(entries))
    return path


def test_malformed_entries(tmp_path):
    entries = json.loads((FIXTURES / "DARTS.json").read_text())
    broken = [dict(e) for e in entries]
    del broken[2]["test_ep_top1"]
    path = _write(tmp_path, "DARTS.json", broken)
    with pytest.raises(DataError) as info:
        load_benchmark(f"nds:{path}")
    message = str(info.value)
    assert "\n" not in message
    assert re.search(r"DARTS.json: entry 2 \(job_id 103\): missing key 'test_ep_top1'", message)
    # first=2 stops before the broken entry
    assert len(load_benchmark(f"nds:{path}:first=2")) == 2

    no_net = [dict(e) for e in entries]
    del no_net[0]["net"]
    with pytest.raises(DataError, match=r"entry 0 \(job_id 101\): missing key 'net'"):
        load_nds(_write(tmp_path, "DARTS.json", no_net))

    bad_op = json.loads(json.dumps(entries))
    bad_op[4]["net"]["genotype"]["normal"][0][0] = "conv_7x1_1x7"
    with pytest.raises(DataError, match=r"entry 4 \(job_id 105\): bad 'net' config for nds_darts.*vocabulary"):
        load_nds(_write(tmp_path, "DARTS.json", bad_op))

    bad_curve = [dict(e) for e in entries]
    bad_curve[1]["test_ep_top1"] = []
    with pytest.raises(DataError, match=r"entry 1 \(job_id 102\): 'test_ep_top1' must be a non-empty list"):
        load_nds(_write(tmp_path, "DARTS.json", bad_curve))

    with pytest.raises(DataError, match=r"entry 1: expected a job summary object"):
        load_nds(_write(tmp_path, "DARTS.json", [entries[0], 5]))
    (tmp_path / "DARTS.json").write_text("[{")
    with pytest.raises(DataError, match="DARTS.json: not valid JSON"):
        load_nds(tmp_path / "DARTS.json")
    with pytest.raises(DataError, match="holds no job summaries"):
        load_nds(_write(tmp_path, "DARTS.json", []))


def test_cache_from_benchmark(tmp_path):
    """The benchmark's canonical strings go straight into a cache (what `gpproxy cache` does)."""
    bench = load_benchmark(f"nds:{FIXTURES / 'DARTS.json'}")
    archs = bench.archs[1:3]
    values = {a: float(v) for a, v in zip(bench.archs, bench.accuracy("final"))}
    cache = build_cache(tmp_path / "c", CacheSpec(space=bench.space, batch=2, num_classes=10), archs,
                        targets=values, progress=False, log=lambda msg: None)
    assert all(cache.status(a) == "ok" for a in archs)
    assert cache.targets() == {a: values[a] for a in archs}


def test_narrow_imagenet_cell_net_caches_without_crashing(tmp_path):
    """A DARTS_in net of width 8 at 224x224: its factorised reductions (1x1
    stride-2 convs, 12 -> 16 channels at 56x56) corrupted the heap in the
    channels-last backward pass of torch 2.13's oneDNN and killed the process.
    NDS nets run NCHW on CPU; a subprocess, as a crash must not take pytest down."""
    import subprocess
    import sys

    code = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from gpproxy.cache import CacheSpec, build_cache
from gpproxy.probe import ProbeConfig
from gpproxy.spaces import get_space
from test_spaces_nds import DARTS_V2
arch = get_space("nds_darts_in").canonical({{"genotype": DARTS_V2, "width": 8, "depth": 5}})
spec = CacheSpec(space="nds_darts_in", num_classes=1000, batch=2, resolution=224,
                 probe=ProbeConfig(act_features=16, weight_rows=8, weight_cols=16))
c = build_cache({str(tmp_path / "c")!r}, spec, [arch], log=lambda m: None)
print(len(c.archs()))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.returncode, done.stderr[-500:])
    assert done.stdout.strip() == "1"
    assert not get_space("nds_darts_in").channels_last_cpu and get_space("nb201").channels_last_cpu


def test_darts_space_reads_nb301_csv():
    """The staged NB301 CSV is a benchmark of the darts space; describe() gives NASLib's params and FLOPs."""
    if not NB301.exists():
        pytest.skip(f"shared data not available: {NB301}")
    bench = load_benchmark(str(NB301))
    assert bench.space == "darts" and len(bench) == 1218  # 1,225 rows, 7 archs listed twice (averaged)
    assert default_target(bench) == "val_accuracy_surrogate" and "repeated rows" in bench.source
    space = get_space("darts")
    with gzip.open(NB301, "rt", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows[::300]:
        arch = space.canonical(row["compact"])
        assert arch == space.canonical(row["genotype"]) == row["genotype"]
        info = space.describe(arch, 10)
        assert round(info["params"] / 1e6, 6) == float(row["params"])
        assert round(info["flops"] / 1e6, 6) == float(row["flops"])
        assert space.key(arch).startswith("darts-") and space.suite_key(arch) == arch
    with pytest.raises(GpproxyError, match="not enumerable"):
        space.archs()
    with pytest.raises(ArchError):
        space.canonical("[[(0, 9)], []]")


def test_normalisation_comes_from_the_space():
    """Real-image caches keep the mean/std they were built with (once chosen by the class count)."""
    from gpproxy.cache import _normalisation

    cases = [("nb201", 10, "cifar10:D", "cifar10"), ("nb201", 100, "cifar10:D", "cifar100"),
             ("nb201", 120, "cifar100:D", "imagenet16"), ("nb201", 10, "cifar100:D", "cifar100"),
             ("nb201", 7, "npz:F", "cifar10"), ("nds_darts_in", 1000, "npz:F", "cifar10"),
             ("nds_resnet", 100, "npz:F", "cifar100"), ("tnb101_micro", 100, "npz:F", "cifar100"),
             ("tnb101_micro", 63, "npz:F", "cifar10"), ("tnb101_macro", 10, "cifar100:D", "cifar100"),
             ("darts", 10, "npz:F", "cifar10")]
    for space, classes, inp, want in cases:
        assert _normalisation(CacheSpec(space=space, num_classes=classes, input=inp)) == want, (space, classes, inp)
